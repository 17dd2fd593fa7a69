//! `orch local ...`: the local target's zone drill and foreground supervisor.
use super::Ctx;
use crate::cli::LocalCommand;
use crate::error::{OrchError, Outcome};

pub(crate) async fn run(ctx: &Ctx<'_>, command: LocalCommand) -> Result<Outcome, OrchError> {
    let stack = ctx.stack()?;
    match command {
        LocalCommand::ZoneDown { zone } => crate::local::zone(ctx, &stack, &zone, true).await,
        LocalCommand::ZoneUp { zone } => crate::local::zone(ctx, &stack, &zone, false).await,
        LocalCommand::Serve => crate::local::serve(ctx, &stack).await,
    }
}
