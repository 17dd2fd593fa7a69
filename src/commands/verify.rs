//! `orch verify`: the acceptance suite against a deployed URL (exit 0 pass, 1 fail).
use super::Ctx;
use crate::error::{OrchError, Outcome};
use crate::cli::VerifyArgs;

pub async fn run(ctx: &Ctx<'_>, _args: VerifyArgs) -> Result<Outcome, OrchError> {
    Err(OrchError::NotBuilt { command: "verify", what: format!("environment `{}`", ctx.env) })
}
