//! This machine's identity as locks and releases record it (host name, user), and the one place a
//! process id can be judged: a [`Place`] (boot id and PID namespace) — a pid means the same process
//! only within one namespace of one boot, so a host name is never enough (two containers share one
//! name; a second run in another PID namespace sees none of the first's processes).
use serde::{Deserialize, Serialize};

/// The host name, or `unknown-host`.
pub(crate) fn name() -> String {
    nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_else(|| "unknown-host".into())
}

/// `user@host`: who ran a deployment, as the release history records it.
pub(crate) fn who() -> String {
    format!("{}@{}", user(), name())
}

/// The user running orch: `$USER`, else the passwd entry, else `unknown`.
pub(crate) fn user() -> String {
    std::env::var("USER")
        .ok()
        .or_else(|| {
            nix::unistd::User::from_uid(nix::unistd::getuid()).ok().flatten().map(|u| u.name)
        })
        .unwrap_or_else(|| "unknown".into())
}

/// Where a pid means something: this boot of this kernel (`/proc/sys/kernel/random/boot_id`) and
/// this PID namespace (the `pid:[inode]` link `/proc/self/ns/pid`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Place {
    pub boot_id: String,
    pub pid_namespace: String,
}

impl Place {
    /// This process's place; `None` when /proc cannot tell (then no pid is ever judged).
    pub fn here() -> Option<Place> {
        let boot_id = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").ok()?;
        let ns = std::fs::read_link("/proc/self/ns/pid").ok()?;
        Some(Place {
            boot_id: boot_id.trim().to_string(),
            pid_namespace: ns.to_string_lossy().into_owned(),
        })
    }
}

/// True only when `place` is this process's own place and `pid` no longer runs there: it does not
/// exist, or it is a zombie (dead, not yet reaped). Another namespace, another boot, an unknown
/// place, pid 0, or a live pid (even a reused one) is never called gone.
pub(crate) fn process_gone(place: Option<&Place>, pid: u32) -> bool {
    let (Some(place), Some(here)) = (place, Place::here()) else { return false };
    if *place != here || pid == 0 {
        return false;
    }
    let Ok(raw) = i32::try_from(pid) else { return false };
    match nix::sys::signal::kill(nix::unistd::Pid::from_raw(raw), None) {
        Err(nix::errno::Errno::ESRCH) => true,
        Ok(()) => zombie(pid),
        Err(_) => false,
    }
}

/// `/proc/<pid>/stat` says state `Z`; the state follows the `)` that closes the command name.
fn zombie(pid: u32) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { return false };
    stat.rfind(')')
        .and_then(|i| stat[i + 1..].split_whitespace().next())
        .is_some_and(|state| state == "Z")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_dead_process_in_this_very_place_is_gone() {
        let here = Place::here().expect("/proc tells the boot id and PID namespace");
        assert!(!process_gone(Some(&here), std::process::id()), "this process is alive");
        let elsewhere = Place { pid_namespace: "pid:[1]".into(), ..here.clone() };
        assert!(!process_gone(Some(&elsewhere), u32::MAX - 1), "another namespace is never judged");
        assert!(!process_gone(None, u32::MAX - 1), "an unknown place is never judged");
        assert!(!process_gone(Some(&here), 0));
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        assert!(process_gone(Some(&here), pid), "a reaped child is gone");
        // A child that exited but is not reaped yet is a zombie: gone too.
        let mut zombie = std::process::Command::new("true").spawn().unwrap();
        let start = std::time::Instant::now();
        while !std::fs::read_to_string(format!("/proc/{}/stat", zombie.id()))
            .unwrap_or_default()
            .contains(") Z")
        {
            assert!(start.elapsed() < std::time::Duration::from_secs(10), "the child never exited");
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        assert!(process_gone(Some(&here), zombie.id()));
        zombie.wait().unwrap();
    }
}
