//! Operating a deployed AWS environment: `status` and `drift`. Not built yet.
use crate::cli::ReportArgs;
use crate::commands::Ctx;
use crate::config::Stack;
use crate::error::{OrchError, Outcome};

pub async fn status(_ctx: &Ctx<'_>, stack: &Stack, _args: &ReportArgs) -> Result<Outcome, OrchError> {
    Err(OrchError::NotBuilt { command: "status", what: format!("the aws target (environment `{}`)", stack.name) })
}
pub async fn drift(_ctx: &Ctx<'_>, stack: &Stack, _args: &ReportArgs) -> Result<Outcome, OrchError> {
    Err(OrchError::NotBuilt { command: "drift", what: format!("environment `{}`", stack.name) })
}
