//! `orch down`: tear an environment down (the local database file is kept).
use super::Ctx;
use crate::cli::DownArgs;
use crate::config::Target;
use crate::context::DownOptions;
use crate::error::{OrchError, Outcome};

pub(crate) async fn run(ctx: &Ctx<'_>, args: DownArgs) -> Result<Outcome, OrchError> {
    let args = DownOptions {
        dry_run: args.dry_run,
        yes: args.yes,
        force_unlock: args.force_unlock,
        unprotect: args.unprotect,
    };
    let stack = ctx.stack()?;
    match stack.target {
        Target::Local => crate::local::down(ctx, &stack, &args).await,
        Target::Aws => crate::deploy::down(ctx, &stack, &args).await,
    }
}
