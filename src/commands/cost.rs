//! `orch cost`: the monthly cost of the environment's rendered program (exit 0, or 2 when a
//! resource cannot be priced).
use super::Ctx;
use crate::cli::ReportArgs;
use crate::error::{OrchError, Outcome};
use crate::{cost, render};

pub(crate) async fn run(ctx: &Ctx<'_>, args: ReportArgs) -> Result<Outcome, OrchError> {
    let project = ctx.project()?;
    let stack = ctx.stack()?;
    let rendered = render::render(&project, &stack)?;
    let estimate = cost::estimate(&project, &stack, &rendered.program)?;
    if args.json {
        ctx.printer.json(&estimate)?;
    } else {
        for line in estimate.text() {
            ctx.printer.data(&line);
        }
    }
    Ok(Outcome::Ok)
}
