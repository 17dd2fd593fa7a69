//! `orch rollback`: redeploy an earlier release by digest (no build), local or AWS.
use super::Ctx;
use crate::cli::RollbackArgs;
use crate::config::Target;
use crate::error::{OrchError, Outcome};

pub(crate) async fn run(ctx: &Ctx<'_>, args: RollbackArgs) -> Result<Outcome, OrchError> {
    let stack = ctx.stack()?;
    match stack.target {
        Target::Local => crate::release::local::rollback(ctx, &stack, args.to.as_deref()).await,
        Target::Aws => crate::deploy::rollback(ctx, &stack, args.to.as_deref(), args.yes).await,
    }
}
