//! Starting and stopping instances. [`Launcher`] is the seam: [`ProcessLauncher`] runs the app's
//! entrypoint as a child process with the instance's identity, zone, address and database in its
//! environment (output to `.orch/local/instances/<id>.log`); tests can launch anything else. The
//! log of a terminated instance moves to `instances/retired/`, where only the newest
//! [`RETIRED_LOGS_KEPT`] stay: a crash loop cannot fill the disk with logs.
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;

use crate::local::release::Release;

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

/// What to launch.
#[derive(Debug, Clone)]
pub struct LaunchSpec {
    pub id: String,
    pub zone: String,
    pub addr: SocketAddr,
    /// The program and environment to run.
    pub release: Arc<Release>,
}

/// A launched instance.
pub trait Instance: Send {
    fn pid(&self) -> Option<u32>;
    /// True once it has exited (reaping it).
    fn exited(&mut self) -> bool;
    /// Ask it to stop (SIGTERM), or kill it outright (SIGKILL) when `hard`.
    fn stop(&mut self, hard: bool);
}

/// Logs of terminated instances kept (the newest ones).
pub const RETIRED_LOGS_KEPT: usize = 8;

/// Launches instances.
pub trait Launcher: Send + Sync {
    fn launch(&self, spec: &LaunchSpec) -> std::io::Result<Box<dyn Instance>>;
    /// The instance `id` is gone for good: clean up after it (its log).
    fn retire(&self, _id: &str) {}
}

/// Runs the release's program per instance.
#[derive(Debug, Clone)]
pub struct ProcessLauncher {
    /// Environment for every instance of every release (the database URL); never logged.
    pub env: Vec<(String, String)>,
    pub log_dir: PathBuf,
}

impl Launcher for ProcessLauncher {
    fn launch(&self, spec: &LaunchSpec) -> std::io::Result<Box<dyn Instance>> {
        std::fs::create_dir_all(&self.log_dir)?;
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_dir.join(format!("{}.log", spec.id)))?;
        let child = Command::new(&spec.release.program)
            .envs(spec.release.env.iter().map(|(k, v)| (k, v)))
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .env("BIND", spec.addr.ip().to_string())
            .env("PORT", spec.addr.port().to_string())
            .env("INSTANCE_ID", &spec.id)
            .env("AVAILABILITY_ZONE", &spec.zone)
            // A closed port: the app never tries the real metadata service on this machine.
            .env("IMDS_ENDPOINT", "http://127.0.0.1:9")
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()?;
        Ok(Box::new(Process { child, done: false }))
    }

    fn retire(&self, id: &str) {
        let retired = self.log_dir.join("retired");
        let name = format!("{id}.log");
        if std::fs::create_dir_all(&retired).is_err()
            || std::fs::rename(self.log_dir.join(&name), retired.join(&name)).is_err()
        {
            let _ = std::fs::remove_file(self.log_dir.join(&name));
            return;
        }
        prune(&retired, RETIRED_LOGS_KEPT);
    }
}

/// Remove all but the `keep` most recently modified files of `dir`.
fn prune(dir: &std::path::Path, keep: usize) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    let mut files: Vec<(std::time::SystemTime, PathBuf)> = entries
        .filter_map(Result::ok)
        .filter_map(|e| Some((e.metadata().ok()?.modified().ok()?, e.path())))
        .collect();
    files.sort_by_key(|f| std::cmp::Reverse(f.0));
    for (_, path) in files.into_iter().skip(keep) {
        let _ = std::fs::remove_file(path);
    }
}

struct Process {
    child: Child,
    done: bool,
}

impl Instance for Process {
    fn pid(&self) -> Option<u32> {
        (!self.done).then(|| self.child.id())
    }
    fn exited(&mut self) -> bool {
        if !self.done {
            self.done = matches!(self.child.try_wait(), Ok(Some(_)) | Err(_));
        }
        self.done
    }
    fn stop(&mut self, hard: bool) {
        if self.exited() {
            return;
        }
        let signal = if hard { Signal::SIGKILL } else { Signal::SIGTERM };
        if let Ok(pid) = i32::try_from(self.child.id()) {
            let _ = kill(Pid::from_raw(pid), signal);
        }
    }
}

/// A fresh instance id: `i-` and 17 random hex digits, like EC2's.
pub fn new_instance_id() -> String {
    use rand::RngExt;
    let mut rng = rand::rng();
    let digits: String =
        (0..17).map(|_| char::from_digit(rng.random_range(0..16), 16).unwrap_or('0')).collect();
    format!("i-{digits}")
}

/// Is `id` shaped like an instance id?
pub fn is_instance_id(id: &str) -> bool {
    id.strip_prefix("i-").is_some_and(|h| {
        h.len() == 17 && h.chars().all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instance_ids_look_like_ec2() {
        let id = new_instance_id();
        assert!(is_instance_id(&id), "{id}");
        assert_ne!(id, new_instance_id());
        assert!(!is_instance_id("i-123"));
    }

    #[test]
    fn process_launcher_passes_identity_and_stops() {
        let dir = tempfile::tempdir().unwrap();
        let launcher = ProcessLauncher { env: vec![], log_dir: dir.path().into() };
        // sh without args reads stdin (null) and exits at once.
        let spec = LaunchSpec {
            id: new_instance_id(),
            zone: "local-a".into(),
            addr: "127.0.1.2:1".parse().unwrap(),
            release: Arc::new(Release::new("sha256:00", "/bin/sh".into(), vec![])),
        };
        let mut inst = launcher.launch(&spec).unwrap();
        for _ in 0..100 {
            if inst.exited() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        assert!(inst.exited());
        assert!(inst.pid().is_none());
        inst.stop(true);
    }

    #[test]
    fn retired_logs_are_pruned_to_the_newest() {
        let dir = tempfile::tempdir().unwrap();
        let launcher = ProcessLauncher { env: vec![], log_dir: dir.path().into() };
        for k in 0..RETIRED_LOGS_KEPT + 5 {
            let id = format!("i-{k:017x}");
            std::fs::write(dir.path().join(format!("{id}.log")), "x").unwrap();
            launcher.retire(&id);
        }
        let left = std::fs::read_dir(dir.path().join("retired")).unwrap().count();
        assert_eq!(left, RETIRED_LOGS_KEPT);
        assert!(!dir.path().join("i-00000000000000000.log").exists());
    }
}
