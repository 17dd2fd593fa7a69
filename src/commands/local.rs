//! `orch local ...`: the local target's zone drill and foreground supervisor.
use super::Ctx;
use crate::cli::LocalCommand;
use crate::error::{OrchError, Outcome};

pub async fn run(ctx: &Ctx<'_>, command: LocalCommand) -> Result<Outcome, OrchError> {
    let stack = ctx.stack()?;
    crate::local::command(ctx, &stack, command).await
}
