//! The local target: the whole tier on this machine — app instances in two zones on separate
//! loopback ranges, an HTTPS load balancer with health checks, and a supervisor that keeps the
//! desired capacity spread over the zones. `orch local serve` runs it; `up`/`down`/`status` and the
//! zone drill drive it through the files under `.orch/<env>/` (see docs/local.md).
//!
//! The tree: [`lb`] is the load balancer (the ALB's twin), [`group`] the instance group (the Auto
//! Scaling group's twin); the lifecycle of the tier — `up`/`down`/`serve`, its files, releases and
//! status — lives here beside them.
pub mod artifact;
pub mod control;
pub mod group;
pub mod lb;
pub(crate) mod lifecycle;
pub mod release;
mod report;
pub mod serve;
pub(crate) mod slo;
pub mod state;

use std::path::{Path, PathBuf};

use crate::config::{Engine, Stack};
use crate::context::{Ctx, DownOptions, UpOptions};
use crate::error::{OrchError, Outcome};
use crate::project::Project;
use group::supervisor::Zone;
use state::Paths;

/// Failures of the local target.
#[derive(Debug, thiserror::Error)]
pub enum LocalError {
    #[error("cannot listen on 127.0.0.1:{port}: {source}")]
    Bind { port: u16, source: std::io::Error },
    #[error(transparent)]
    Tls(#[from] lb::tls::TlsError),
    #[error(transparent)]
    Artifact(#[from] artifact::ArtifactError),
    #[error("{what}: {source}")]
    Io { what: String, source: std::io::Error },
    #[error("the local tier is not running")]
    NotRunning,
    #[error("unknown zone `{zone}`; the zones are: {zones}")]
    UnknownZone { zone: String, zones: String },
    #[error("{0}")]
    Database(String),
    #[error("the local tier did not become healthy within {seconds} s{detail}")]
    NotHealthy { seconds: u64, detail: String },
    #[error("the local tier stopped while starting{detail}")]
    Exited { detail: String },
    #[error("zone `{zone}` has no loopback range `127.x.y.0/24` in local.loopback")]
    Loopback { zone: String },
    #[error("{reason}; the previous release keeps serving and is still the deployed one")]
    RolledBack { reason: String },
    #[error("the release history {} does not parse ({why}); it was left as it is", path.display())]
    History { path: PathBuf, why: String },
    #[error("{0}")]
    Locked(#[from] crate::state::StateError),
    #[error("the supervisor did not acknowledge the request within {seconds} s")]
    NotAcknowledged { seconds: u64 },
}

impl LocalError {
    pub fn io(what: impl AsRef<Path>, source: std::io::Error) -> Self {
        LocalError::Io { what: what.as_ref().display().to_string(), source }
    }

    /// The next command to run.
    pub fn hint(&self) -> String {
        match self {
            LocalError::Bind { .. } => "another program (or another tier) uses the port: `orch status --env local`, or change local.http_port/https_port".into(),
            LocalError::NotRunning => "start it with `orch up --env local --detach`".into(),
            LocalError::UnknownZone { .. } => "use one of the zones listed in stacks/local.yaml".into(),
            LocalError::Database(_) => "set the variable named by database.url_env, or use `engine: sqlite`".into(),
            LocalError::NotHealthy { .. } | LocalError::Exited { .. } => "see .orch/local/serve.log and .orch/local/instances/*.log, then `orch down --env local`".into(),
            LocalError::Artifact(_) => "fix the app build (`cargo build -p app`) or set ORCH_APP_BIN".into(),
            LocalError::Loopback { .. } => "give one 127.x.y.0/24 range per zone in local.loopback".into(),
            LocalError::RolledBack { .. } => "fix the release (the instance logs above say why), then `orch up --env local` again; `orch releases --env local` lists what ran".into(),
            LocalError::History { path, .. } => format!("repair {} or move it aside (a new history then starts); no orch command rewrites it as it is", path.display()),
            LocalError::Locked(_) => "wait for that `orch` to finish; if it was killed, its lease runs out within ORCH_LOCK_LEASE_SECONDS (default 60) and the next run takes the lock over".into(),
            LocalError::Tls(_) => "remove .orch/local/tls/ to regenerate the certificate, then retry".into(),
            LocalError::Io { what, .. } if what.contains("tls") => "remove .orch/local/tls/ to regenerate the certificate, then retry".into(),
            LocalError::NotAcknowledged { .. } => "check `orch status --env local`".into(),
            LocalError::Io { .. } => "fix the cause named above (a missing or unreadable file, a binary replaced while it ran), then `orch up --env local` again".into(),
        }
    }
}

/// The tier's files for `stack`.
pub fn paths(project: &Project, stack: &Stack) -> Paths {
    Paths::new(absolute(&project.state_dir(&stack.name)))
}

/// The zones with their loopback ranges.
fn zones(stack: &Stack) -> Result<Vec<Zone>, LocalError> {
    let ranges = stack.local_settings().loopback;
    stack
        .zones
        .iter()
        .enumerate()
        .map(|(i, name)| {
            ranges
                .get(i)
                .and_then(|r| Zone::new(name, r))
                .ok_or_else(|| LocalError::Loopback { zone: name.clone() })
        })
        .collect()
}

/// The instances' database: the SQLite file under the state directory, or the Postgres URL held
/// by the variable `database.url_env` names. Returns (DATABASE_URL, what to print instead of it).
fn database(stack: &Stack, paths: &Paths) -> Result<(String, String), LocalError> {
    match stack.database.engine {
        Engine::Sqlite => {
            let db = absolute(&paths.db());
            Ok((format!("sqlite://{}?mode=rwc", db.display()), format!("SQLite {}", db.display())))
        }
        Engine::Postgres => {
            let var = stack.database.url_env.as_deref().ok_or_else(|| {
                LocalError::Database(
                    "database.engine is postgres but database.url_env names no variable".into(),
                )
            })?;
            match std::env::var(var) {
                Ok(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
                    Ok((url, format!("PostgreSQL (URL from ${var})")))
                }
                Ok(_) => {
                    Err(LocalError::Database(format!("${var} does not hold a postgres:// URL")))
                }
                Err(_) => Err(LocalError::Database(format!(
                    "database.url_env names ${var}, which is not set"
                ))),
            }
        }
    }
}

fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}

/// The tier's lock (`.orch/<env>/locks/<env>.json`): the deploy lock's lease
/// ([`crate::state::lock`]) in a directory store, held by `up` and `rollback` while they change the
/// tier, so two of them never race on the control file. A second one is refused naming the holder.
pub(crate) async fn lock(
    ctx: &Ctx<'_>,
    stack: &Stack,
    paths: &Paths,
    command: &str,
    force: bool,
) -> Result<crate::state::lock::Lock, LocalError> {
    let store = crate::state::store::Store::Dir(paths.dir.clone());
    let lease = crate::state::lock::lease(ctx.settings());
    let lock = crate::state::lock::acquire(&store, &stack.name, command, lease, force, ctx.printer)
        .await?;
    Ok(lock)
}

/// The running tier's state, if a tier runs for `stack`.
pub fn running_state(project: &Project, stack: &Stack) -> Option<state::State> {
    let paths = paths(project, stack);
    state::read(&paths).filter(|s| state::in_tier(s.pid, &paths.dir))
}

pub async fn up(ctx: &Ctx<'_>, stack: &Stack, args: &UpOptions) -> Result<Outcome, OrchError> {
    lifecycle::up(ctx, stack, args).await
}
pub async fn down(ctx: &Ctx<'_>, stack: &Stack, args: &DownOptions) -> Result<Outcome, OrchError> {
    lifecycle::down(ctx, stack, args).await
}
pub use lifecycle::serve;
pub use report::zone;
