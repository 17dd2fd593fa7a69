//! The per-environment deploy lock, a lease: one object `locks/<env>.json` in the state store,
//! created only if absent (S3 `If-None-Match: *`, a directory: an exclusive link). The holder
//! renews it — moves `expires` forward — every quarter lease while it runs, each time by
//! compare-and-swap on the version it wrote last (S3 `If-Match` on the ETag). A lock is stale only
//! when its lease has expired, wherever it was taken: host names and pids are never judged here.
//! Taking over a stale lock, `--force-unlock` and release are compare-and-swaps too, so two runs
//! can never both hold it: whoever loses the swap re-reads and is refused.
use serde::{Deserialize, Serialize};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::store::Store;
use super::StateError;
use crate::clock::Time;
use crate::printer::Printer;

/// Who holds the lock, and until when; the body of the lock object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockInfo {
    pub holder: String,
    pub user: String,
    pub host: String,
    pub pid: u32,
    pub since: Time,
    pub command: String,
    /// The end of the lease unless renewed; a lock without one (older orch) never expires.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires: Option<Time>,
    /// The lease length in seconds.
    #[serde(default)]
    pub lease_seconds: u64,
    /// Where `pid` means something (boot id, PID namespace), for judging the pulumi it started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub place: Option<crate::host::Place>,
}

/// The lease length: `ORCH_LOCK_LEASE_SECONDS`, default 60 s (renewed every quarter of it).
pub(crate) fn lease(settings: &crate::settings::Settings) -> Duration {
    settings.lock_lease.unwrap_or(Duration::from_secs(60))
}

impl LockInfo {
    /// A fresh identity for this process, its `lease` starting now.
    pub fn mine(command: &str, lease: Duration) -> Self {
        let now = crate::clock::now();
        LockInfo {
            holder: format!("{:016x}", rand::random::<u64>()),
            user: crate::host::user(),
            host: crate::host::name(),
            pid: std::process::id(),
            since: now,
            command: command.into(),
            expires: Some(now + lease),
            lease_seconds: lease.as_secs(),
            place: crate::host::Place::here(),
        }
    }

    /// True when the lease ended before `now` (and was not renewed).
    pub fn expired(&self, now: Time) -> bool {
        self.expires.is_some_and(|e| e < now)
    }

    /// `holder (user@host, pid N) since T, lease until T'` for messages.
    pub fn describe(&self) -> String {
        let lease = match self.expires {
            Some(e) => format!(", lease until {}", crate::clock::show(&e)),
            None => ", no lease (an older orch)".into(),
        };
        format!(
            "{} ({}@{}, pid {}) since {}{lease}",
            self.holder,
            self.user,
            self.host,
            self.pid,
            crate::clock::show(&self.since)
        )
    }
}

pub fn key(env: &str) -> String {
    format!("locks/{env}.json")
}

/// The current lock on `env`, if any (read-only; used by the plan). A lock file that does not
/// parse is an error, never "no lock": only `--force-unlock` removes it.
pub async fn observe(store: &Store, env: &str) -> Result<Option<LockInfo>, StateError> {
    match store.get(&key(env)).await? {
        None => Ok(None),
        Some(bytes) => parse(&bytes).map(Some).map_err(|why| unreadable(store, env, &why)),
    }
}

fn parse(bytes: &[u8]) -> Result<LockInfo, String> {
    serde_json::from_slice(bytes).map_err(|e| e.to_string())
}

fn unreadable(store: &Store, env: &str, why: &str) -> StateError {
    StateError::Refused(format!(
        "the lock {} is unreadable ({why}); if no run holds it, `orch up --env {env} --force-unlock` removes it",
        store.describe(&key(env))
    ))
}

fn encode(info: &LockInfo) -> Result<Vec<u8>, StateError> {
    serde_json::to_vec_pretty(info)
        .map_err(|e| StateError::step("encoding the lock", e.to_string()))
}

/// A held lock, renewed in the background; call [`Lock::release`] when done (also on error).
#[derive(Debug)]
pub struct Lock {
    store: Store,
    env: String,
    pub info: LockInfo,
    /// The lock this run took over because its lease had expired (not one `--force-unlock` broke):
    /// what proves a pulumi stack lock of that run stale (`pulumi::lock`).
    pub expired: Option<LockInfo>,
    held: Arc<Mutex<Held>>,
    renewer: tokio::task::JoinHandle<()>,
    /// Tells the renewer to stop after the renewal it may be sending.
    stop: Arc<tokio::sync::Notify>,
}

/// The version of the lock object this run wrote last, or that the lock was lost.
#[derive(Debug)]
struct Held {
    tag: Option<String>,
    info: LockInfo,
}

/// Take the lock on `env` for `lease` (see [`lease`]): create it, or take over one whose lease
/// expired, or any one with `force` — each a compare-and-swap; a live lease is refused naming its
/// holder.
pub async fn acquire(
    store: &Store,
    env: &str,
    command: &str,
    lease: Duration,
    force: bool,
    printer: &Printer,
) -> Result<Lock, StateError> {
    let mine = LockInfo::mine(command, lease);
    let body = encode(&mine)?;
    let k = key(env);
    let mut expired = None;
    for _ in 0..3 {
        if let Some(tag) = store.put_if_absent(&k, &body).await? {
            confirm(store, env, &mine).await?;
            return Ok(Lock::hold(store, env, mine, expired, tag, lease, printer));
        }
        let Some(current) = store.get_versioned(&k).await? else { continue };
        match parse(&current.body) {
            Err(why) if force => {
                printer.warn(&format!("--force-unlock: replacing an unreadable lock ({why})"));
            }
            Err(why) => return Err(unreadable(store, env, &why)),
            Ok(other) if force => printer.warn(&format!(
                "--force-unlock: taking over the lock held by {}; make sure that run is really gone",
                other.describe()
            )),
            Ok(other) if other.expired(crate::clock::now()) => {
                printer.warn(&format!(
                    "taking over an expired lock: {} stopped renewing its lease",
                    other.describe()
                ));
                expired = Some(other);
            }
            Ok(other) => return Err(locked(env, other)),
        }
        // Only if it is still the version just read: a holder that renewed meanwhile keeps it.
        if let Some(tag) = store.put_if_match(&k, &body, &current.tag).await? {
            confirm(store, env, &mine).await?;
            return Ok(Lock::hold(store, env, mine, expired, tag, lease, printer));
        }
        expired = None;
    }
    Err(StateError::Refused(format!(
        "could not take the lock {}: other runs changed it at every attempt",
        store.describe(&k)
    )))
}

/// Read the lock back after writing it: a backend that ignored the condition shows another holder.
async fn confirm(store: &Store, env: &str, mine: &LockInfo) -> Result<(), StateError> {
    match observe(store, env).await? {
        Some(now) if now.holder == mine.holder => Ok(()),
        Some(other) => Err(locked(env, other)),
        None => Err(StateError::Refused(format!(
            "the lock {} vanished right after it was written; is another tool deleting it?",
            store.describe(&key(env))
        ))),
    }
}

fn locked(env: &str, o: LockInfo) -> StateError {
    StateError::Locked { env: env.into(), by: Box::new(o) }
}

impl Lock {
    fn hold(
        store: &Store,
        env: &str,
        info: LockInfo,
        expired: Option<LockInfo>,
        tag: String,
        lease: Duration,
        printer: &Printer,
    ) -> Lock {
        let held = Arc::new(Mutex::new(Held { tag: Some(tag), info: info.clone() }));
        let stop = Arc::new(tokio::sync::Notify::new());
        let renewer = tokio::spawn(renew(
            store.clone(),
            key(env),
            held.clone(),
            lease,
            printer.clone(),
            stop.clone(),
        ));
        Lock { store: store.clone(), env: env.into(), info, expired, held, renewer, stop }
    }

    /// False once another run took the lock over (this run's lease had expired).
    pub fn still_held(&self) -> bool {
        self.held.lock().map(|h| h.tag.is_some()).unwrap_or(false)
    }

    /// Stop renewing and remove the lock if it is still the version this run wrote. The renewer
    /// is stopped, not aborted: a renewal already sent completes and its new version is the one
    /// removed (an aborted one could land after the version was read, leaving the lock behind).
    pub async fn release(self) -> Result<(), StateError> {
        self.stop.notify_one();
        let _ = self.renewer.await;
        let tag = self.held.lock().ok().and_then(|h| h.tag.clone());
        match tag {
            Some(tag) => {
                self.store.delete_if_match(&key(&self.env), &tag).await?;
                Ok(())
            }
            None => Ok(()),
        }
    }
}

/// Every quarter `lease`: move `expires` forward by compare-and-swap on the version written last.
/// A failed swap means another run took the lock over: say so and stop. A failed request is
/// retried at the next tick (the lease has three more to go).
async fn renew(
    store: Store,
    key: String,
    held: Arc<Mutex<Held>>,
    lease: Duration,
    printer: Printer,
    stop: Arc<tokio::sync::Notify>,
) {
    let every = lease / 4;
    loop {
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = stop.notified() => return,
        }
        let (tag, body) = {
            let Ok(mut h) = held.lock() else { return };
            let Some(tag) = h.tag.clone() else { return };
            h.info.expires = Some(crate::clock::now() + lease);
            let Ok(body) = encode(&h.info) else { return };
            (tag, body)
        };
        match store.put_if_match(&key, &body, &tag).await {
            Ok(next) => {
                let Ok(mut h) = held.lock() else { return };
                if next.is_none() {
                    printer.warn(&format!(
                        "the deploy lock {} was taken over by another run (this run's lease had expired)",
                        store.describe(&key)
                    ));
                }
                h.tag = next;
                if h.tag.is_none() {
                    return;
                }
            }
            Err(e) => printer.warn(&format!("renewing the deploy lock: {e}; retrying")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LEASE: Duration = Duration::from_secs(60);

    fn dir_store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::Dir(dir.path().to_path_buf());
        (dir, store)
    }

    #[tokio::test]
    async fn second_acquire_is_refused_naming_the_holder_and_release_frees_it() {
        let (_dir, store) = dir_store();
        let p = Printer::plain();
        let first = acquire(&store, "dev", "up", LEASE, false, &p).await.unwrap();
        let err = acquire(&store, "dev", "up", LEASE, false, &p).await.unwrap_err();
        let text = err.to_string();
        assert!(text.contains(&first.info.holder) && text.contains("lease until"), "{text}");
        first.release().await.unwrap();
        acquire(&store, "dev", "up", LEASE, false, &p).await.unwrap().release().await.unwrap();
    }

    #[tokio::test]
    async fn a_corrupt_lock_is_an_error_not_no_lock_and_only_force_removes_it() {
        let (_dir, store) = dir_store();
        let p = Printer::plain();
        store.put(&key("dev"), b"{\"holder\": tru").await.unwrap();
        let err = observe(&store, "dev").await.unwrap_err().to_string();
        assert!(err.contains("is unreadable") && err.contains("--force-unlock"), "{err}");
        let err = acquire(&store, "dev", "up", LEASE, false, &p).await.unwrap_err().to_string();
        assert!(err.contains("is unreadable"), "{err}");
        acquire(&store, "dev", "up", LEASE, true, &p).await.unwrap().release().await.unwrap();
        assert_eq!(observe(&store, "dev").await.unwrap(), None);
    }

    #[tokio::test]
    async fn only_an_expired_lease_is_stale_wherever_it_was_taken() {
        let (_dir, store) = dir_store();
        let p = Printer::plain();
        // A dead pid on this very host with a live lease: refused (no pid is judged).
        let mut dead = LockInfo::mine("up", LEASE);
        let mut child = std::process::Command::new("true").spawn().unwrap();
        dead.pid = child.id();
        child.wait().unwrap();
        store.put(&key("dev"), &serde_json::to_vec(&dead).unwrap()).await.unwrap();
        assert!(matches!(
            acquire(&store, "dev", "up", LEASE, false, &p).await,
            Err(StateError::Locked { .. })
        ));
        // Another host, lease over: taken over, and the expired holder is handed on.
        let mut remote = LockInfo::mine("up", LEASE);
        remote.host = "elsewhere".into();
        remote.expires = Some(crate::clock::now() - chrono::Duration::seconds(1));
        store.put(&key("dev"), &serde_json::to_vec(&remote).unwrap()).await.unwrap();
        let lock = acquire(&store, "dev", "up", LEASE, false, &p).await.unwrap();
        assert_eq!(lock.expired.as_ref().map(|l| l.host.as_str()), Some("elsewhere"));
        lock.release().await.unwrap();
        // A lock of an older orch has no lease: only --force-unlock takes it.
        let mut old = LockInfo::mine("up", LEASE);
        old.expires = None;
        store.put(&key("dev"), &serde_json::to_vec(&old).unwrap()).await.unwrap();
        assert!(acquire(&store, "dev", "up", LEASE, false, &p).await.is_err());
        let forced = acquire(&store, "dev", "up", LEASE, true, &p).await.unwrap();
        assert_eq!(forced.expired, None);
        forced.release().await.unwrap();
    }

    #[tokio::test]
    async fn release_never_removes_a_lock_another_run_took_over() {
        let (_dir, store) = dir_store();
        let p = Printer::plain();
        let first = acquire(&store, "dev", "up", LEASE, false, &p).await.unwrap();
        // Another run forces it (its own version now); the first's release must leave it.
        let second = acquire(&store, "dev", "up", LEASE, true, &p).await.unwrap();
        first.release().await.unwrap();
        assert_eq!(
            observe(&store, "dev").await.unwrap().map(|l| l.holder),
            Some(second.info.holder.clone())
        );
        second.release().await.unwrap();
        assert_eq!(observe(&store, "dev").await.unwrap(), None);
    }
}
