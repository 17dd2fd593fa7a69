//! Pulumi's own stack lock in a DIY backend (`.pulumi/locks/…`): a pulumi killed mid-update leaves
//! it behind and every later update fails with "the stack is currently locked". [`locks_in`] reads
//! the holders from that error. `pulumi cancel` removes them only when they are proven stale
//! ([`proven_stale`]): each was taken, on this host, while the orch run whose deploy lock this run
//! took over (its lease expired) held it, in this very boot and PID namespace, by a process that
//! is gone. A live holder, one from elsewhere, or one no expired orch run vouches for is never
//! touched: pulumi's lock has no lease, so nothing else proves it dead.
use crate::clock::Time;
use crate::host;
use crate::state::lock::LockInfo;

/// One lock holder, as pulumi's error names it: `created by USER@HOST (pid N) at TIME`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateLock {
    pub user: String,
    pub host: String,
    pub pid: u32,
    /// When pulumi took it (`lockContent.Timestamp`, RFC 3339), when the error says.
    pub at: Option<Time>,
}

impl StateLock {
    pub fn describe(&self) -> String {
        format!("{}@{} (pid {})", self.user, self.host, self.pid)
    }
}

/// The holders named in a "stack is currently locked" error; `None` when `stderr` is another error.
pub fn locks_in(stderr: &str) -> Option<Vec<StateLock>> {
    if !stderr.contains("is currently locked") {
        return None;
    }
    let locks = stderr
        .lines()
        .filter_map(|line| {
            let rest = &line[line.find("created by ")? + "created by ".len()..];
            let (who, rest) = rest.split_once(" (pid ")?;
            let (user, host) = who.rsplit_once('@')?;
            let (pid, rest) = rest.split_once(')')?;
            let at = rest
                .trim()
                .strip_prefix("at ")
                .and_then(|t| chrono::DateTime::parse_from_rfc3339(t.trim()).ok())
                .map(|t| t.to_utc());
            Some(StateLock {
                user: user.into(),
                host: host.into(),
                pid: pid.trim().parse().ok()?,
                at,
            })
        })
        .collect();
    Some(locks)
}

/// True when every holder is proven stale by `expired`, the orch lock this run took over.
pub fn proven_stale(locks: &[StateLock], expired: Option<&LockInfo>) -> bool {
    let Some(run) = expired else { return false };
    let (Some(end), Some(place)) = (run.expires, run.place.as_ref()) else { return false };
    // pulumi prints its lock's time to the second (RFC 3339).
    let start = chrono::SubsecRound::trunc_subsecs(run.since, 0);
    !locks.is_empty()
        && locks.iter().all(|l| {
            l.host == run.host
                && l.at.is_some_and(|at| start <= at && at <= end)
                && host::process_gone(Some(place), l.pid)
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOCKED: &str = "error: the stack is currently locked by 1 lock(s). Either wait for the other process(es) to end or delete the lock file with `pulumi cancel`.\n  s3://orch-state-dev/.pulumi/locks/organization/orch/dev/bf4d21ea.json: created by ci@build-7 (pid 42) at 2026-11-25T13:21:31Z\n";

    #[test]
    fn holders_are_read_from_the_lock_error() {
        let at = "2026-11-25T13:21:31Z".parse().ok();
        assert_eq!(
            locks_in(LOCKED),
            Some(vec![StateLock { user: "ci".into(), host: "build-7".into(), pid: 42, at }])
        );
        assert_eq!(locks_in("error: update failed"), None);
    }

    #[test]
    fn only_a_dead_process_of_the_expired_run_in_this_place_is_stale() {
        let mut run = LockInfo::mine("orch up", std::time::Duration::from_secs(60));
        run.since = crate::clock::now() - chrono::Duration::seconds(60);
        run.expires = Some(crate::clock::now());
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        let at = Some(run.since + chrono::Duration::seconds(1));
        let dead = StateLock { user: "u".into(), host: run.host.clone(), pid, at };
        assert!(proven_stale(std::slice::from_ref(&dead), Some(&run)));
        assert!(!proven_stale(std::slice::from_ref(&dead), None), "no expired run vouches");
        let alive = StateLock { pid: std::process::id(), ..dead.clone() };
        assert!(!proven_stale(&[dead.clone(), alive], Some(&run)), "one holder is alive");
        let later = StateLock {
            at: Some(crate::clock::now() + chrono::Duration::seconds(5)),
            ..dead.clone()
        };
        assert!(!proven_stale(&[later], Some(&run)), "taken after that run's lease");
        let other_host = StateLock { host: "build-7".into(), ..dead.clone() };
        assert!(!proven_stale(&[other_host], Some(&run)));
        let mut elsewhere = run.clone();
        elsewhere.place =
            elsewhere.place.map(|p| host::Place { pid_namespace: "pid:[1]".into(), ..p });
        assert!(!proven_stale(&[dead], Some(&elsewhere)), "another PID namespace");
        assert!(!proven_stale(&[], Some(&run)));
    }
}
