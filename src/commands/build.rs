//! `orch build`: the app's OCI image into build/<env>/image/, pushed with `--push`.
use super::Ctx;
use crate::error::{OrchError, Outcome};
use crate::cli::BuildArgs;

pub async fn run(ctx: &Ctx<'_>, _args: BuildArgs) -> Result<Outcome, OrchError> {
    let stack = ctx.stack()?;
    Err(OrchError::NotBuilt { command: "build", what: format!("environment `{}`", stack.name) })
}
