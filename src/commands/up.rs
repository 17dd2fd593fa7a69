//! `orch up`: bring an environment up or converge it; local target or AWS by the stack's `target`.
use super::Ctx;
use crate::cli::UpArgs;
use crate::config::Target;
use crate::context::UpOptions;
use crate::error::{OrchError, Outcome};

pub(crate) async fn run(ctx: &Ctx<'_>, args: UpArgs) -> Result<Outcome, OrchError> {
    let args = UpOptions {
        dry_run: args.dry_run,
        json: args.json,
        yes: args.yes,
        detach: args.detach,
        force: args.force,
        force_unlock: args.force_unlock,
    };
    let stack = ctx.stack()?;
    match stack.target {
        Target::Local => crate::local::up(ctx, &stack, &args).await,
        Target::Aws => crate::deploy::up(ctx, &stack, &args).await,
    }
}
