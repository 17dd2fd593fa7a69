//! `orch check`: render and check the program offline (exit 0 clean, 1 findings, 2 error).
use super::Ctx;
use crate::error::{OrchError, Outcome};
use crate::cli::ReportArgs;

pub async fn run(ctx: &Ctx<'_>, _args: ReportArgs) -> Result<Outcome, OrchError> {
    let stack = ctx.stack()?;
    Err(OrchError::NotBuilt { command: "check", what: format!("environment `{}`", stack.name) })
}
