//! The tier's files under `.orch/<env>/` and its state file (`state.json`, rewritten by the running
//! supervisor every tick, read by `status`, `up`, `down` and `verify`); process checks, and the sweep
//! that removes leftovers of a killed orch (every process of the tier carries `ORCH_LOCAL_TIER=<dir>`).
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

/// Environment variable marking every process of one tier with its state directory.
pub const TIER_MARK: &str = "ORCH_LOCAL_TIER";

/// Where the tier keeps its files.
#[derive(Debug, Clone)]
pub struct Paths {
    pub dir: PathBuf,
}

impl Paths {
    pub fn new(dir: PathBuf) -> Self {
        Paths { dir }
    }
    pub fn state(&self) -> PathBuf {
        self.dir.join("state.json")
    }
    pub fn control(&self) -> PathBuf {
        self.dir.join("control.json")
    }
    pub fn access_log(&self) -> PathBuf {
        self.dir.join("access.log")
    }
    pub fn serve_log(&self) -> PathBuf {
        self.dir.join("serve.log")
    }
    pub fn instances(&self) -> PathBuf {
        self.dir.join("instances")
    }
    pub fn tls(&self) -> PathBuf {
        self.dir.join("tls")
    }
    pub fn db(&self) -> PathBuf {
        self.dir.join("app.db")
    }
    /// The release history (`orch releases`).
    pub fn releases(&self) -> PathBuf {
        self.dir.join("releases.json")
    }
    /// Unpacked images, one folder per digest.
    pub fn release_dir(&self, digest: &str) -> PathBuf {
        self.dir
            .join("releases")
            .join(digest.trim_start_matches("sha256:").chars().take(12).collect::<String>())
    }
}

/// One instance, as recorded.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct InstanceView {
    pub id: String,
    pub zone: String,
    pub addr: String,
    pub pid: Option<u32>,
    pub healthy: bool,
    pub in_rotation: bool,
    pub in_grace: bool,
    pub age_seconds: u64,
    /// The release it runs, and that release's image digest.
    #[serde(default)]
    pub release: String,
    #[serde(default)]
    pub image_digest: String,
}

/// One zone, as recorded.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ZoneView {
    pub name: String,
    pub available: bool,
    pub instances: u32,
    pub healthy: u32,
    /// Failed launches in a row in this zone (crash loop), 0 when launches succeed.
    #[serde(default)]
    pub launch_failures: u32,
    /// Seconds before the supervisor launches in this zone again (exponential backoff).
    #[serde(default)]
    pub backoff_seconds: f64,
}

/// What the running supervisor writes every tick.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct State {
    /// The supervisor (`orch local serve`) process.
    pub pid: u32,
    pub started_at: crate::clock::Time,
    pub updated_at: crate::clock::Time,
    pub http_url: String,
    pub https_url: String,
    /// The CA certificate clients should trust.
    pub ca: PathBuf,
    pub program: PathBuf,
    pub desired: u32,
    /// Every zone has a healthy instance, `desired` are in service and nothing is left to do.
    pub balanced: bool,
    pub zones: Vec<ZoneView>,
    pub instances: Vec<InstanceView>,
    /// The last control generation the supervisor applied.
    pub control_generation: u64,
    /// Recent supervisor events, newest last.
    pub events: Vec<String>,
    /// The release the supervisor targets and how its rollout stands.
    pub release: super::release::ReleaseView,
    /// Scaling on load, when the stack has a `scaling` section.
    #[serde(default)]
    pub scaling: Option<crate::local::group::autoscale::ScalingView>,
    /// Bytes of request bodies the load balancer holds in its buffers now (all connections; the
    /// budget is `ORCH_LB_BUFFER_BYTES`).
    #[serde(default)]
    pub buffered_bytes: usize,
}

impl State {
    pub fn in_service(&self) -> u32 {
        self.instances.iter().filter(|i| i.healthy).count() as u32
    }
}

/// Write `state` atomically and durably (temp file + fsync + rename + fsync of the folder).
pub fn write(paths: &Paths, state: &State) -> std::io::Result<()> {
    let text = serde_json::to_vec_pretty(state).map_err(std::io::Error::other)?;
    crate::atomic::write(&paths.state(), &text)
}

/// The recorded state, if any (an unreadable file counts as none).
pub fn read(paths: &Paths) -> Option<State> {
    let text = std::fs::read(paths.state()).ok()?;
    serde_json::from_slice(&text).ok()
}

/// Is `pid` a live (not zombie) process?
pub fn alive(pid: u32) -> bool {
    let Ok(raw) = i32::try_from(pid) else { return false };
    if kill(Pid::from_raw(raw), None).is_err() {
        return false;
    }
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat.rsplit_once(") ").is_none_or(|(_, rest)| !rest.starts_with('Z')),
        Err(_) => true,
    }
}

/// Is `pid` a live process of the tier at `dir`?
pub fn in_tier(pid: u32, dir: &Path) -> bool {
    let Ok(environ) = std::fs::read(format!("/proc/{pid}/environ")) else { return false };
    let mark = format!("{TIER_MARK}={}", dir.display());
    alive(pid) && environ.split(|b| *b == 0).any(|entry| entry == mark.as_bytes())
}

/// The live processes marked as belonging to the tier at `dir`, except this one.
pub fn tier_processes(dir: &Path) -> Vec<u32> {
    let me = std::process::id();
    let Ok(entries) = std::fs::read_dir("/proc") else { return vec![] };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| *pid != me && in_tier(*pid, dir))
        .collect()
}

/// Send `signal` to `pid`, ignoring a process that is already gone.
pub fn signal(pid: u32, signal: Signal) {
    if let Ok(raw) = i32::try_from(pid) {
        let _ = kill(Pid::from_raw(raw), signal);
    }
}

/// SIGTERM the processes, wait up to `grace` for them to go, then SIGKILL the rest.
pub fn stop_all(pids: &[u32], grace: std::time::Duration) {
    for pid in pids {
        signal(*pid, Signal::SIGTERM);
    }
    let deadline = std::time::Instant::now() + grace;
    while std::time::Instant::now() < deadline && pids.iter().any(|p| alive(*p)) {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    for pid in pids.iter().filter(|p| alive(**p)) {
        signal(*pid, Signal::SIGKILL);
    }
}

/// Whether a tier runs at `paths`.
#[derive(Debug)]
pub enum Tier {
    /// Its supervisor is alive.
    Running(Box<State>),
    /// Nothing runs; `cleaned` leftover processes of a killed orch were stopped and stale files removed.
    Stopped { cleaned: usize },
}

/// Look for a running tier; if its supervisor is gone, stop the leftovers and remove the stale state.
pub fn inspect(paths: &Paths) -> Tier {
    if let Some(state) = read(paths) {
        if in_tier(state.pid, &paths.dir) {
            return Tier::Running(Box::new(state));
        }
    }
    let leftovers = tier_processes(&paths.dir);
    // A supervisor without a state file yet (still starting) counts as running only if it writes one.
    stop_all(&leftovers, std::time::Duration::from_secs(3));
    let _ = std::fs::remove_file(paths.state());
    let _ = std::fs::remove_file(paths.control());
    Tier::Stopped { cleaned: leftovers.len() }
}
