//! The deployment's typed errors, each with the next command to run as a hint.
use crate::pulumi::PulumiError;

#[derive(Debug, thiserror::Error)]
pub enum DeployError {
    #[error("{what}: {message}")]
    Aws { what: String, message: String },
    #[error(transparent)]
    State(#[from] crate::state::StateError),
    #[error(transparent)]
    Pulumi(#[from] PulumiError),
    #[error("timed out after {seconds} s waiting for {what}")]
    Timeout { what: String, seconds: u64 },
    #[error("{0}")]
    Refused(String),
    #[error("{what}: {message}")]
    Step { what: String, message: String },
    /// An instance refresh that ended other than Successful (Cancelled, Failed, Rollback…).
    #[error("{what} ended {status}: {reason}")]
    RefreshEnded { what: String, status: String, reason: String },
    #[error("public DNS does not delegate {name} to its hosted zone: it lists {} instead of {}", list(.found), .want.join(", "))]
    NotDelegated { name: String, want: Vec<String>, found: Vec<String> },
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("stack `{0}` has no `pulumi.backend`")]
    NoBackend(String),
    #[error("`{env}` has no recorded deployment with a `url` output in {at}")]
    NotDeployed { env: String, at: String },
    #[error("`{env}` is protected and there is no terminal to confirm on")]
    NoTerminal { env: String, verb: String },
    #[error("not confirmed; nothing was changed")]
    NotConfirmed { env: String },
    #[error("the registry holds {held} but {built} was built")]
    RegistryMismatch { held: String, built: String },
}

fn list(names: &[String]) -> String {
    if names.is_empty() {
        "no name servers".into()
    } else {
        names.join(", ")
    }
}

impl DeployError {
    /// An AWS SDK failure, with the full error chain in the message.
    pub fn aws<E: std::error::Error + 'static>(
        what: impl Into<String>,
    ) -> impl FnOnce(E) -> DeployError {
        let what = what.into();
        move |e| DeployError::Aws { what, message: crate::aws::describe(&e) }
    }
    pub fn step(what: impl Into<String>, message: impl Into<String>) -> Self {
        DeployError::Step { what: what.into(), message: message.into() }
    }
    pub fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> DeployError {
        let what = what.into();
        move |source| DeployError::Io { what, source }
    }

    pub fn hint(&self) -> String {
        match self {
            DeployError::Aws { message, .. } if message == crate::aws::NO_CREDENTIALS => crate::aws::NO_CREDENTIALS_HINT.into(),
            DeployError::Aws { .. } => "check AWS credentials and region (AWS_PROFILE, AWS_REGION), then rerun `orch up`; every step is idempotent".into(),
            DeployError::State(crate::state::StateError::Locked { env, .. }) => format!("wait for that run to finish; if it crashed, run `orch up --env {env} --force-unlock`"),
            DeployError::State(crate::state::StateError::Aws { what, message }) => DeployError::Aws { what: what.clone(), message: message.clone() }.hint(),
            DeployError::State(crate::state::StateError::Refused(_)) => "read the message above; nothing was changed by this step".into(),
            DeployError::State(_) => "fix the cause above and rerun `orch up`; every step is idempotent".into(),
            DeployError::Pulumi(e) => e.hint(),
            DeployError::Timeout { .. } => "rerun `orch up`: finished steps are skipped and the wait resumes".into(),
            DeployError::NotDelegated { name, .. } => {
                format!("set the name servers above for {name} at your registrar, wait until `dig +short NS {name}` lists them, then rerun `orch up` (ORCH_OFFLINE=1 skips this check)")
            }
            DeployError::Refused(_) => "read the message above; nothing was changed by this step".into(),
            DeployError::RefreshEnded { .. } => "`orch releases` shows the release as rolled back or failed; `orch status` shows what the group runs; fix the cause and rerun `orch up`".into(),
            DeployError::Step { .. } | DeployError::Io { .. } => "fix the cause above and rerun `orch up`; every step is idempotent".into(),
            DeployError::NoBackend(env) => format!("add `pulumi: {{backend: s3://<bucket>}}` to stacks/{env}.yaml"),
            DeployError::NotDeployed { env, .. } => format!("run `orch up --env {env}`, or give the URL: orch verify https://…"),
            DeployError::NoTerminal { env, verb } => format!("rerun with --yes to {verb} `{env}` without a prompt"),
            DeployError::NotConfirmed { env } => format!("type `{env}` at the prompt, or pass --yes"),
            DeployError::RegistryMismatch { .. } => "run `orch build --push` and check the registry".into(),
        }
    }
}
