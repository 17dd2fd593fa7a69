//! `orch drift`: drift between the code and what is deployed (exit 0 none, 1 drift, 2 error).
use super::Ctx;
use crate::cli::ReportArgs;
use crate::error::{OrchError, Outcome};

pub(crate) async fn run(ctx: &Ctx<'_>, args: ReportArgs) -> Result<Outcome, OrchError> {
    let stack = ctx.stack()?;
    crate::ops::drift(ctx, &stack, args.json).await
}
