//! `orch local ...`: the local target's zone drill and foreground supervisor.
use super::Ctx;
use crate::error::{OrchError, Outcome};
use crate::cli::LocalCommand;

pub async fn run(ctx: &Ctx<'_>, command: LocalCommand) -> Result<Outcome, OrchError> {
    let stack = ctx.stack()?;
    crate::local::command(ctx, &stack, command).await
}
