//! Operating a deployed AWS environment: observing it (the clients, the group, targets, certificate,
//! delegation, URL and rollout), judging each observation into a report row, and `orch drift`
//! (whether reality still matches the code: exit 0 none, 1 drift). `orch status` on AWS
//! (`crate::status::aws`) reports with the same pieces. Both print a table or `--json`, and exit 2
//! when they cannot report at all (no config, no deployment record).
pub(crate) mod checks;
pub(crate) mod cloud;
mod drift;
pub(crate) mod judge;
pub(crate) mod observe;
pub(crate) mod probe;
pub(crate) mod record;
mod refresh;
pub(crate) mod report;
pub(crate) mod slo;

pub(crate) use report::{Level, Report};

use std::sync::Arc;

use crate::config::Stack;
use crate::context::Ctx;
use crate::error::{OrchError, Outcome};

/// Why status or drift could not report.
#[derive(Debug, thiserror::Error)]
pub enum OpsError {
    #[error("environment `{0}` has no pulumi backend (`pulumi.backend` in its stack file)")]
    NoBackend(String),
    #[error("cannot read the deployment record: {0}")]
    Record(String),
    #[error("environment `{0}` has no recorded deployment")]
    NoRecord(String),
    #[error(transparent)]
    Render(crate::render::RenderError),
    #[error(transparent)]
    Pulumi(crate::pulumi::PulumiError),
    #[error("drift check incomplete for `{env}`: {failed} check(s) could not run")]
    Incomplete { env: String, failed: usize },
    #[error("{0}")]
    Internal(String),
    #[error("`{0}` is a local environment: there is no deployed infrastructure to drift")]
    LocalEnvironment(String),
}

impl OpsError {
    pub fn hint(&self) -> String {
        match self {
            OpsError::NoBackend(env) => {
                format!("set `pulumi.backend` in stacks/{env}.yaml (see docs/configuration.md)")
            }
            OpsError::Record(e) if e.contains(crate::aws::NO_CREDENTIALS) => {
                crate::aws::NO_CREDENTIALS_HINT.into()
            }
            OpsError::Record(_) => {
                "check AWS credentials and region (`aws sts get-caller-identity`), then rerun"
                    .into()
            }
            OpsError::NoRecord(_) => "deploy first: `orch up --env ENV`".into(),
            OpsError::Render(e) => e.hint(),
            OpsError::Pulumi(e) => e.hint(),
            OpsError::Incomplete { env, .. } => {
                format!("read the ERROR rows above, fix access, rerun `orch drift --env {env}`")
            }
            OpsError::Internal(_) => "report this as a bug".into(),
            OpsError::LocalEnvironment(env) => format!("use `orch status --env {env}`"),
        }
    }
}

pub(crate) fn emit(ctx: &Ctx<'_>, report: &Report, json: bool) -> Result<(), OrchError> {
    if json {
        ctx.printer.json(&report.document())
    } else {
        ctx.printer.data(&report.table());
        Ok(())
    }
}

/// `orch drift` for the aws target.
pub(crate) async fn drift(ctx: &Ctx<'_>, stack: &Stack, json: bool) -> Result<Outcome, OrchError> {
    if stack.target == crate::config::Target::Local {
        return Err(OpsError::LocalEnvironment(stack.name.clone()).into());
    }
    let project = ctx.project()?;
    let spinner = ctx
        .printer
        .spinner(format!("checking {} for drift (pulumi refresh --preview-only)", stack.name));
    let clients = cloud::Clients::new(&stack.region).await;
    let pulumi = ctx.settings().pulumi.as_deref();
    let report =
        drift::gather(&project, stack, &clients, Arc::new(crate::runner::Duct), pulumi).await;
    spinner.finish_and_clear();
    let report = report?;
    emit(ctx, &report, json)?;
    match report.verdict.outcome() {
        Some(outcome) => Ok(outcome),
        None => Err(OpsError::Incomplete {
            env: stack.name.clone(),
            failed: report.rows.iter().filter(|r| r.level == Level::Error).count(),
        }
        .into()),
    }
}
