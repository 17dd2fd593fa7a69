//! `orch status`: where an environment stands (exit 0 healthy, 1 degraded or down, 2 error or
//! never deployed).
use super::Ctx;
use crate::cli::ReportArgs;
use crate::config::Target;
use crate::error::{OrchError, Outcome};

pub(crate) async fn run(ctx: &Ctx<'_>, args: ReportArgs) -> Result<Outcome, OrchError> {
    let stack = ctx.stack()?;
    match stack.target {
        Target::Local => crate::status::local::status(ctx, &stack, args.json).await,
        Target::Aws => crate::status::aws::status(ctx, &stack, args.json).await,
    }
}
