//! Pulumi's own stack lock in a DIY backend (`.pulumi/locks/…`): a pulumi killed mid-update leaves
//! it behind and every later update fails with "the stack is currently locked". [`locks_in`] reads
//! the holders from that error; a lock whose process is gone from this host is stale and
//! `pulumi cancel` removes it. A live holder, or one on another host, is never touched.
use crate::host;

/// One lock holder, as pulumi's error names it: `created by USER@HOST (pid N)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateLock {
    pub user: String,
    pub host: String,
    pub pid: u32,
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
            let pid = rest.split(')').next()?.trim().parse().ok()?;
            Some(StateLock { user: user.into(), host: host.into(), pid })
        })
        .collect();
    Some(locks)
}

/// True when every holder is a process gone from this host (so no update can still be running).
pub fn all_stale(locks: &[StateLock]) -> bool {
    let here = host::name();
    !locks.is_empty() && locks.iter().all(|l| host::process_gone(&l.host, l.pid, &here))
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOCKED: &str = "error: the stack is currently locked by 1 lock(s). Either wait for the other process(es) to end or delete the lock file with `pulumi cancel`.\n  s3://orch-state-dev/.pulumi/locks/organization/orch/dev/bf4d21ea.json: created by ci@build-7 (pid 42) at 2026-11-25T13:21:31Z\n";

    #[test]
    fn holders_are_read_from_the_lock_error() {
        assert_eq!(
            locks_in(LOCKED),
            Some(vec![StateLock { user: "ci".into(), host: "build-7".into(), pid: 42 }])
        );
        assert_eq!(locks_in("error: update failed"), None);
    }

    #[test]
    fn only_dead_processes_here_are_stale() {
        let here = host::name();
        assert!(
            !all_stale(&[StateLock { user: "u".into(), host: "build-7".into(), pid: 42 }]),
            "another host"
        );
        assert!(
            !all_stale(&[StateLock {
                user: "u".into(),
                host: here.clone(),
                pid: std::process::id()
            }]),
            "alive"
        );
        assert!(!all_stale(&[]));
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        assert!(all_stale(&[StateLock { user: "u".into(), host: here, pid }]));
    }
}
