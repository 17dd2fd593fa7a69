//! The per-environment deploy lock: one object `locks/<env>.json` in the state store, created with a
//! conditional put (S3 `If-None-Match: *`) and read back to confirm we hold it. A lock left by a dead
//! process on this host is broken with a warning; any other needs `--force-unlock`.
use serde::{Deserialize, Serialize};

use super::store::Store;
use super::StateError;
use crate::printer::Printer;

/// Who holds the lock; the body of the lock object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockInfo {
    pub holder: String,
    pub user: String,
    pub host: String,
    pub pid: u32,
    pub since: crate::clock::Time,
    pub command: String,
}

impl LockInfo {
    /// A fresh identity for this process.
    pub fn mine(command: &str) -> Self {
        LockInfo {
            holder: format!("{:016x}", rand::random::<u64>()),
            user: crate::host::user(),
            host: crate::host::name(),
            pid: std::process::id(),
            since: crate::clock::now(),
            command: command.into(),
        }
    }

    /// True when the holder is a process on this host that no longer exists.
    pub fn is_stale_here(&self, this_host: &str) -> bool {
        crate::host::process_gone(&self.host, self.pid, this_host)
    }
}

pub fn key(env: &str) -> String {
    format!("locks/{env}.json")
}

/// The current lock on `env`, if any (read-only; used by the plan). A lock file that does not
/// parse is an error, never "no lock": only `--force-unlock` removes it.
pub async fn observe(store: &Store, env: &str) -> Result<Option<LockInfo>, StateError> {
    match read(store, env).await? {
        Some(Err(why)) => Err(unreadable(store, env, &why)),
        Some(Ok(info)) => Ok(Some(info)),
        None => Ok(None),
    }
}

fn unreadable(store: &Store, env: &str, why: &str) -> StateError {
    StateError::Refused(format!(
        "the lock {} is unreadable ({why}); if no run holds it, `orch up --env {env} --force-unlock` removes it",
        store.describe(&key(env))
    ))
}

/// The lock file, parsed or with why it does not parse.
async fn read(store: &Store, env: &str) -> Result<Option<Result<LockInfo, String>>, StateError> {
    Ok(store
        .get(&key(env))
        .await?
        .map(|bytes| serde_json::from_slice(&bytes).map_err(|e| e.to_string())))
}

/// A held lock; call [`Lock::release`] when done (also on error).
#[derive(Debug)]
pub struct Lock {
    store: Store,
    env: String,
    pub info: LockInfo,
}

/// Take the lock on `env`, breaking a stale one (dead pid on this host) or any one with `force`.
pub async fn acquire(
    store: &Store,
    env: &str,
    command: &str,
    force: bool,
    printer: &Printer,
) -> Result<Lock, StateError> {
    let mine = LockInfo::mine(command);
    let body = serde_json::to_vec_pretty(&mine)
        .map_err(|e| StateError::step("encoding the lock", e.to_string()))?;
    for attempt in 0..2 {
        if store.put_if_absent(&key(env), &body).await? {
            // Read back: a backend that ignored the condition would show another holder here.
            let now = observe(store, env).await?;
            if now.as_ref().map(|l| &l.holder) == Some(&mine.holder) {
                return Ok(Lock { store: store.clone(), env: env.into(), info: mine });
            }
            if let Some(other) = now {
                return Err(locked(env, other));
            }
            continue;
        }
        let other = match read(store, env).await? {
            None => continue,
            Some(Ok(other)) => other,
            Some(Err(why)) if attempt == 0 && force => {
                printer.warn(&format!("--force-unlock: removing an unreadable lock ({why})"));
                store.delete(&key(env)).await?;
                continue;
            }
            Some(Err(why)) => return Err(unreadable(store, env, &why)),
        };
        if attempt == 0 && force {
            printer.warn(&format!(
                "--force-unlock: removing the lock held by {} ({}@{}, pid {}) since {}; make sure that run is really gone",
                other.holder, other.user, other.host, other.pid, crate::clock::show(&other.since)
            ));
        } else if attempt == 0 && other.is_stale_here(&mine.host) {
            printer.warn(&format!(
                "breaking a stale lock: pid {} on this host ({}) held it since {} and no longer runs",
                other.pid, other.host, crate::clock::show(&other.since)
            ));
        } else {
            return Err(locked(env, other));
        }
        store.delete(&key(env)).await?;
    }
    Err(StateError::Refused(format!(
        "could not take the lock {} after breaking it; another run took it first",
        store.describe(&key(env))
    )))
}

fn locked(env: &str, o: LockInfo) -> StateError {
    StateError::Locked { env: env.into(), by: Box::new(o) }
}

impl Lock {
    /// Remove the lock if it is still ours.
    pub async fn release(self) -> Result<(), StateError> {
        match observe(&self.store, &self.env).await? {
            Some(current) if current.holder == self.info.holder => {
                self.store.delete(&key(&self.env)).await
            }
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn second_acquire_is_refused_naming_the_holder_and_release_frees_it() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::Dir(dir.path().to_path_buf());
        let p = Printer::plain();
        let first = acquire(&store, "dev", "up", false, &p).await.unwrap();
        let err = acquire(&store, "dev", "up", false, &p).await.unwrap_err();
        let text = err.to_string();
        assert!(text.contains(&first.info.holder) && text.contains(&first.info.host), "{text}");
        first.release().await.unwrap();
        acquire(&store, "dev", "up", false, &p).await.unwrap().release().await.unwrap();
    }

    #[tokio::test]
    async fn a_corrupt_lock_is_an_error_not_no_lock_and_only_force_removes_it() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::Dir(dir.path().to_path_buf());
        let p = Printer::plain();
        store.put(&key("dev"), b"{\"holder\": tru").await.unwrap();
        let err = observe(&store, "dev").await.unwrap_err().to_string();
        assert!(err.contains("is unreadable") && err.contains("--force-unlock"), "{err}");
        let err = acquire(&store, "dev", "up", false, &p).await.unwrap_err().to_string();
        assert!(err.contains("is unreadable"), "{err}");
        acquire(&store, "dev", "up", true, &p).await.unwrap().release().await.unwrap();
        assert_eq!(observe(&store, "dev").await.unwrap(), None);
    }

    #[tokio::test]
    async fn a_dead_pid_on_this_host_is_stale_and_force_breaks_any_lock() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::Dir(dir.path().to_path_buf());
        let p = Printer::plain();
        let mut dead = LockInfo::mine("up");
        let mut child = std::process::Command::new("true").spawn().unwrap();
        dead.pid = child.id();
        child.wait().unwrap();
        store.put(&key("dev"), &serde_json::to_vec(&dead).unwrap()).await.unwrap();
        acquire(&store, "dev", "up", false, &p).await.unwrap().release().await.unwrap();

        let mut remote = LockInfo::mine("up");
        remote.host = "elsewhere".into();
        store.put(&key("dev"), &serde_json::to_vec(&remote).unwrap()).await.unwrap();
        assert!(matches!(
            acquire(&store, "dev", "up", false, &p).await,
            Err(StateError::Locked { .. })
        ));
        acquire(&store, "dev", "up", true, &p).await.unwrap().release().await.unwrap();
    }
}
