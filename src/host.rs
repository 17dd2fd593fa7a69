//! This machine's identity as locks record it (host name, user), and whether a process a lock names
//! is gone — how a stale lock left by a crashed run is told from a live one.

/// The host name, or `unknown-host`.
pub fn name() -> String {
    nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_else(|| "unknown-host".into())
}

/// `user@host`: who ran a deployment, as the release history records it.
pub fn who() -> String {
    format!("{}@{}", user(), name())
}

/// The user running orch: `$USER`, else the passwd entry, else `unknown`.
pub fn user() -> String {
    std::env::var("USER")
        .ok()
        .or_else(|| {
            nix::unistd::User::from_uid(nix::unistd::getuid()).ok().flatten().map(|u| u.name)
        })
        .unwrap_or_else(|| "unknown".into())
}

/// True only when `host` is this machine and process `pid` no longer runs on it: it does not exist,
/// or it is a zombie (dead, not yet reaped — an orphan whose reaper is slow). A process on another
/// host, pid 0, or a live pid (even a reused one) is never called gone.
pub fn process_gone(host: &str, pid: u32, this_host: &str) -> bool {
    if host != this_host || pid == 0 {
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
    fn only_a_dead_process_on_this_host_is_gone() {
        let here = name();
        assert!(!process_gone(&here, std::process::id(), &here), "this process is alive");
        assert!(!process_gone("elsewhere", u32::MAX - 1, &here), "another host is never judged");
        assert!(!process_gone(&here, 0, &here));
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        assert!(process_gone(&here, pid, &here), "a reaped child is gone");
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
        assert!(process_gone(&here, zombie.id(), &here));
        zombie.wait().unwrap();
    }
}
