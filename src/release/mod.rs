//! Releases, both targets: the one record a release leaves ([`Release`]: when, what revision and
//! image, how far it got, who ran it, its canary analysis and `--force` reason, plus what the
//! target ran it with — [`crate::local::release::LocalRun`] or [`crate::state::record::AwsRun`]),
//! the listing `orch releases` prints ([`history`]) and why `orch rollback` can refuse
//! ([`RollbackError`]). One module per target lists its records and rolls back ([`local`],
//! [`aws`]); where the records are kept stays with the target (`releases.json` of the local tier,
//! the state store's `deployments/<env>/history/`).
pub(crate) mod aws;
pub(crate) mod history;
pub(crate) mod local;

use serde::{Deserialize, Serialize};

pub(crate) use history::Row;

/// How far a release got. The local tier's releases end `deployed`, `rolled_back` or `aborted`
/// (`rolling` while instances are replaced); the AWS ones `verified`, `unverified`, `failed`,
/// `rolled_back` or `interrupted` (`applying` while `pulumi up` runs). AWS records of orch
/// versions before these states were written only after a verified deployment, so a record without
/// a state reads as `verified`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    /// AWS: `pulumi up` started and the run has not ended (or its process died).
    Applying,
    /// Local: instances are being replaced.
    Rolling,
    /// Local: every instance runs the release.
    Deployed,
    /// AWS: deployed, rolled out, and the acceptance suite passed.
    #[default]
    Verified,
    /// AWS: deployed and rolled out, but the acceptance suite failed.
    Unverified,
    /// AWS: stopped by SIGINT/SIGTERM after the stack started changing.
    Interrupted,
    /// Its instances failed their health checks (local) or the instance refresh rolled them back
    /// (AWS); the previous release keeps serving.
    RolledBack,
    /// Local: its canary was judged worse than the baseline (or could not be judged).
    Aborted,
    /// AWS: `pulumi up` or the rollout failed.
    Failed,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Applying => "applying",
            State::Rolling => "rolling",
            State::Deployed => "deployed",
            State::Verified => "verified",
            State::Unverified => "unverified",
            State::Interrupted => "interrupted",
            State::RolledBack => "rolled_back",
            State::Aborted => "aborted",
            State::Failed => "failed",
        }
    }
    /// A release that ran to the end: what `orch rollback` can go back to.
    pub fn is_good(self) -> bool {
        matches!(self, State::Deployed | State::Verified)
    }
}

/// One release, as the target keeps it: the fields both targets share, and `run`, what the target
/// ran it with. Stored as one JSON object (the target's fields beside the shared ones); the names
/// are the AWS record's, and the local history's older names (`digest`, `outcome`, `reason`,
/// `analysis`) still read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Release<T> {
    pub time: crate::clock::Time,
    /// The source revision it was built from.
    #[serde(default)]
    pub revision: String,
    /// The image digest (`sha256:…`; local: or the hash of a program handed over by `ORCH_APP_BIN`).
    #[serde(rename = "image_digest", alias = "digest")]
    pub digest: String,
    #[serde(default, alias = "outcome")]
    pub state: State,
    /// Why it ended as it did, when it did not end well.
    #[serde(default, alias = "reason", skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// Who ran it (`user@host`; absent in AWS records of older orch versions).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by: Option<String>,
    /// A canary's judged steps: samples, ratios, p99s and verdicts.
    #[serde(default, alias = "analysis", skip_serializing_if = "Vec::is_empty")]
    pub canary: Vec<crate::rollout::canary::StepAnalysis>,
    /// Why it was deployed with `--force` past an exhausted error budget.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub forced: Option<String>,
    #[serde(flatten)]
    pub run: T,
}

/// What a target ran a release with, as far as the listing needs it.
pub trait Ran {
    /// The AMI (AWS only).
    fn ami(&self) -> Option<&str> {
        None
    }
    /// What tells two releases apart (local: the release id, over image and environment; AWS:
    /// image digest and AMI).
    fn runs(&self, digest: &str) -> String;
}

impl<T: Ran> Release<T> {
    /// The listing's row: named `id`, its outcome `outcome` (the state, or AWS's `destroyed`).
    pub(crate) fn row(&self, id: String, outcome: &str, live: bool) -> Row {
        Row {
            id,
            time: self.time,
            revision: self.revision.clone(),
            digest: self.digest.clone(),
            ami: self.run.ami().map(str::to_string),
            outcome: outcome.into(),
            by: self.by.clone().unwrap_or_else(|| "-".into()),
            live,
            image_present: None,
            canary: self.canary.clone(),
            forced: self.forced.clone(),
            runs: self.run.runs(&self.digest),
        }
    }
}

/// Why a rollback cannot go ahead (both targets).
#[derive(Debug, thiserror::Error)]
pub enum RollbackError {
    #[error("cannot roll `{env}` back: {why}")]
    NoTarget { env: String, why: String },
    #[error("{what} is gone (removed since it was listed)")]
    Vanished { what: String },
    #[error("release {id} ran {}, which is gone", path.display())]
    ProgramGone { id: String, path: std::path::PathBuf },
    #[error("{key}: {why}")]
    BadRecord { key: String, why: String },
}

impl RollbackError {
    /// The next command to run.
    pub(crate) fn hint(&self) -> String {
        match self {
            RollbackError::NoTarget { env, .. } => {
                format!("`orch releases --env {env}` lists the releases")
            }
            RollbackError::Vanished { .. } => "run `orch releases` and pick another".into(),
            RollbackError::ProgramGone { .. } => {
                "rebuild it: check out its revision and run `orch up --env local`".into()
            }
            RollbackError::BadRecord { .. } => {
                "roll back to another release (`orch releases`) or fix the record".into()
            }
        }
    }
}
