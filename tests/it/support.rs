//! Shared helpers: a scratch copy of the project, running the `orch` binary, and the test servers
//! that scripts/test.sh starts (skipped locally when absent, required under CI).
#![allow(dead_code)]
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The repository root.
pub(crate) fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A temporary project holding a copy of `stacks/`, `pulumi/`, `app/pages/`, `schema/` and `data/`.
pub(crate) struct Scratch {
    path: PathBuf,
    /// Removes the folder when dropped (`None`: a project someone else made and removes).
    _dir: Option<tempfile::TempDir>,
}

impl Scratch {
    pub(crate) fn new() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        for sub in ["stacks", "pulumi", "app/pages", "schema", "data"] {
            let from = repo().join(sub);
            if from.is_dir() {
                copy_dir(&from, &dir.path().join(sub));
            }
        }
        Scratch { path: dir.path().to_path_buf(), _dir: Some(dir) }
    }
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }
    pub(crate) fn write(&self, rel: &str, text: &str) {
        let path = self.path().join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
    pub(crate) fn read(&self, rel: &str) -> String {
        std::fs::read_to_string(self.path().join(rel)).unwrap()
    }
    /// `orch` with `--root` set to this scratch project.
    pub(crate) fn orch(&self) -> assert_cmd::Command {
        let mut cmd = orch();
        cmd.env("ORCH_ROOT", self.path());
        cmd
    }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// The `orch` binary with a clean environment for the variables it reads.
pub(crate) fn orch() -> assert_cmd::Command {
    let mut cmd = assert_cmd::Command::cargo_bin("orch").expect("orch binary");
    cmd.env_remove("ORCH_ENV").env_remove("ORCH_ROOT").env("NO_COLOR", "1");
    cmd
}

/// The value of a test-service variable set by scripts/test.sh. `None` means: skip this test
/// (locally). Under CI a missing service is a failure, never a silent skip.
pub(crate) fn service(var: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(v) if !v.is_empty() => Some(v),
        _ if std::env::var_os("CI").is_some() => {
            panic!("{var} is not set: run the tests through scripts/test.sh")
        }
        _ => {
            eprintln!("skipping: {var} not set (scripts/test.sh starts the service)");
            None
        }
    }
}

pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

pub(crate) fn port_open(port: u16) -> bool {
    std::net::TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_millis(200))
        .is_ok()
}

/// A running tier; dropping it runs `orch down` (when this process started it).
pub(crate) struct Tier {
    pub scratch: Scratch,
    pub http: u16,
    pub https: u16,
    /// Started by this process (else scripts/test.sh's shared tier).
    owned: bool,
}

impl Tier {
    /// A scratch project whose local stack uses free ports (not started).
    pub(crate) fn scratch() -> Tier {
        let scratch = Scratch::new();
        let (http, https, base) = (free_port(), free_port(), free_port());
        let stack = scratch
            .read("stacks/local.yaml")
            .replace("http_port: 8080", &format!("http_port: {http}"))
            .replace("https_port: 8443", &format!("https_port: {https}"))
            .replace("port: 18080", &format!("port: {base}"));
        // Fixed capacity: the tests of other things must not see the group scale under their load.
        scratch.write("stacks/local.yaml", &without_block(&stack, "scaling:"));
        Tier { scratch, http, https, owned: true }
    }

    pub(crate) fn orch(&self) -> assert_cmd::Command {
        let mut cmd = self.scratch.orch();
        cmd.env("ORCH_BUILD_PROFILE", "dev").timeout(Duration::from_secs(600));
        cmd
    }

    /// `orch up --env local --detach`; returns its stdout.
    pub(crate) fn up(&self) -> String {
        let out = self.orch().args(["up", "--env", "local", "--detach"]).output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "up failed:\n{stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        stdout
    }

    pub(crate) fn https(&self, path: &str) -> String {
        format!("https://127.0.0.1:{}{path}", self.https)
    }

    /// The tier's CA certificate (PEM file).
    pub(crate) fn ca(&self) -> PathBuf {
        self.scratch.path().join(".orch/local/tls/ca.pem")
    }
}

/// `yaml` without the top-level block that starts with the line `key` (and its indented lines).
pub(crate) fn without_block(yaml: &str, key: &str) -> String {
    let mut out = String::new();
    let mut skipping = false;
    for line in yaml.lines() {
        if line == key {
            skipping = true;
            continue;
        }
        if skipping && (line.starts_with(' ') || line.starts_with('#')) {
            continue;
        }
        skipping = false;
        out.push_str(line);
        out.push('\n');
    }
    out
}

impl Drop for Tier {
    fn drop(&mut self) {
        if !self.owned {
            return;
        }
        let _ = self.orch().args(["down", "--env", "local"]).output();
    }
}

/// The tier every test shares that only needs something live to verify against (the deploy
/// tests' `url`/`httpUrl` outputs and CA). scripts/test.sh runs each test in a process of its own
/// and starts this tier once for all of them (`ORCH_TEST_SHARED_TIER="<project> <http> <https>"`,
/// scripts/lib/shared-tier.sh); without it (`cargo test`, one process) the first test to ask starts
/// one, stopped when the process exits (a static is never dropped: an `atexit` handler runs `orch down`).
static SHARED: std::sync::OnceLock<Tier> = std::sync::OnceLock::new();

pub(crate) fn shared_tier() -> &'static Tier {
    SHARED.get_or_init(|| {
        if let Ok(given) = std::env::var("ORCH_TEST_SHARED_TIER") {
            let parts: Vec<&str> = given.split(' ').collect();
            let [dir, http, https] = parts[..] else {
                panic!("ORCH_TEST_SHARED_TIER `{given}`: want `<project> <http port> <https port>`")
            };
            let port = |p: &str| p.parse().expect("ORCH_TEST_SHARED_TIER port");
            let scratch = Scratch { path: dir.into(), _dir: None };
            return Tier { scratch, http: port(http), https: port(https), owned: false };
        }
        let tier = Tier::scratch();
        tier.up();
        extern "C" fn stop_shared() {
            if let Some(tier) = SHARED.get() {
                let _ = tier.orch().args(["down", "--env", "local"]).output();
                let _ = std::fs::remove_dir_all(tier.scratch.path());
            }
        }
        // SAFETY: registers a plain function with no arguments to run at exit(3).
        unsafe { nix::libc::atexit(stop_shared) };
        tier
    })
}

/// Poll `cond` every 50 ms until it holds; fail the test naming `what` after `within`. Returns how
/// long it took. The one way tests wait (never a fixed sleep).
pub(crate) fn wait_until(within: Duration, what: &str, mut cond: impl FnMut() -> bool) -> Duration {
    let start = std::time::Instant::now();
    while !cond() {
        assert!(start.elapsed() < within, "{what}: not within {within:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
    start.elapsed()
}

/// [`wait_until`] for a condition that is itself async (an S3 read, say).
pub(crate) async fn wait_until_async<F: std::future::Future<Output = bool>>(
    within: Duration,
    what: &str,
    mut cond: impl FnMut() -> F,
) -> Duration {
    let start = std::time::Instant::now();
    while !cond().await {
        assert!(start.elapsed() < within, "{what}: not within {within:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    start.elapsed()
}

/// A name no other test (or earlier run against the same moto) uses: pid, time and a counter.
pub(crate) fn unique() -> String {
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let nanos =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos();
    let n = N.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    format!("{}{:x}{n}", std::process::id() % 10000, nanos % 0xfffff)
}

/// The SDK configuration for the moto at `endpoint` in `region`, with moto's test credentials
/// given directly (never through the process environment: tests run in parallel).
pub(crate) async fn moto_sdk(endpoint: &str, region: &str) -> aws_config::SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new(region.to_string()))
        .endpoint_url(endpoint)
        .credentials_provider(aws_sdk_s3::config::Credentials::new(
            "testing", "testing", None, None, "test",
        ))
        .load()
        .await
}
