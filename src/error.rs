//! The top-level error type: one report per failure, with a hint naming the next command to run,
//! and the exit-code contract (0 ok, 1 finding, 2 usage/config error or orch failure, 130/143
//! stopped by SIGINT/SIGTERM).
use crate::check::CheckError;
use crate::config::ConfigError;
use crate::image::ImageError;
use crate::ops::OpsError;
use crate::render::RenderError;

/// What a command that ran to the end found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Everything is as it should be: exit 0.
    Ok,
    /// The command worked and found something wrong (drift, unhealthy, failed check): exit 1.
    Finding,
}

impl Outcome {
    pub fn code(self) -> u8 {
        match self {
            Outcome::Ok => 0,
            Outcome::Finding => 1,
        }
    }
    /// `Finding` if `found`, else `Ok`.
    pub fn finding_if(found: bool) -> Self {
        if found {
            Outcome::Finding
        } else {
            Outcome::Ok
        }
    }
}

/// Every way a command can fail. All of them exit 2, but an interruption (130 for SIGINT, 143 for
/// SIGTERM).
#[derive(Debug, thiserror::Error)]
pub enum OrchError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Deploy(#[from] crate::deploy::DeployError),
    #[error(transparent)]
    Ops(#[from] OpsError),
    #[error(transparent)]
    Render(#[from] RenderError),
    #[error(transparent)]
    Check(#[from] CheckError),
    #[error(transparent)]
    Cost(#[from] crate::cost::CostError),
    #[error(transparent)]
    Image(#[from] ImageError),
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Usage(String),
    #[error(transparent)]
    Settings(#[from] crate::settings::SettingsError),
    #[error(transparent)]
    Local(#[from] crate::local::LocalError),
    #[error(transparent)]
    Logs(#[from] crate::logs::LogsError),
    #[error(transparent)]
    Slo(#[from] crate::slo::SloError),
    #[error(transparent)]
    Rollback(#[from] crate::release::RollbackError),
    #[error("no `stacks/` folder in {} or any parent", cwd.display())]
    NoProject { cwd: std::path::PathBuf },
    /// A state orch itself should never reach.
    #[error("{0}")]
    Internal(String),
    /// Stopped by SIGINT or SIGTERM: exits 128 + the signal's number (130, 143).
    #[error("{message}")]
    Interrupted { message: String, hint: String, code: u8 },
}

impl OrchError {
    pub fn exit_code(&self) -> u8 {
        match self {
            OrchError::Interrupted { code, .. } => *code,
            _ => 2,
        }
    }

    pub fn io(what: impl Into<String>, source: std::io::Error) -> Self {
        OrchError::Io { what: what.into(), source }
    }

    /// The next command to try, if there is an obvious one.
    pub fn hint(&self) -> Option<String> {
        match self {
            OrchError::Config(e) => Some(e.hint()),
            OrchError::Deploy(e) => Some(e.hint()),
            OrchError::Ops(e) => Some(e.hint()),
            OrchError::Render(e) => Some(e.hint()),
            OrchError::Check(e) => Some(e.hint()),
            OrchError::Cost(e) => Some(e.hint()),
            OrchError::Image(e) => e.hint(),
            OrchError::Usage(_) => Some("run `orch --help`".into()),
            OrchError::Settings(e) => Some(format!(
                "fix or unset {} (docs/operations.md lists every ORCH_* variable)",
                e.var
            )),
            OrchError::Rollback(e) => Some(e.hint()),
            OrchError::NoProject { .. } => {
                Some("run orch from inside the project checkout, or pass --root DIR".into())
            }
            OrchError::Internal(_) => Some("report this as a bug".into()),
            OrchError::Interrupted { hint, .. } => Some(hint.clone()),
            OrchError::Io { .. } => None,
            OrchError::Local(e) => Some(e.hint()),
            OrchError::Logs(e) => Some(e.hint()),
            OrchError::Slo(e) => Some(e.hint()),
        }
    }
}

impl From<crate::state::StateError> for OrchError {
    fn from(e: crate::state::StateError) -> Self {
        OrchError::Deploy(crate::deploy::DeployError::from(e))
    }
}
