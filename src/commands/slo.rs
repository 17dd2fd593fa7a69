//! `orch slo`: the error budget of the stack's `slo:` objective (exit 0, or 1 when the budget is
//! exhausted; 2 without an `slo:` section or when the metrics cannot be read): locally from the
//! load balancer's access log, on AWS from the ALB's CloudWatch metrics.
use super::Ctx;
use crate::cli::ReportArgs;
use crate::config::{SloSettings, Stack, Target};
use crate::error::{OrchError, Outcome};
use crate::slo::SloError;

pub(crate) async fn run(ctx: &Ctx<'_>, args: ReportArgs) -> Result<Outcome, OrchError> {
    let project = ctx.project()?;
    let stack = ctx.stack()?;
    let slo = objective(&stack)?;
    let (budget, note) = match stack.target {
        Target::Local => {
            (crate::local::slo::budget(&crate::local::paths(&project, &stack), slo), None)
        }
        Target::Aws => crate::ops::slo::for_stack(&stack, slo).await?,
    };
    if let Some(note) = note {
        ctx.printer.warn(&note);
    }
    if args.json {
        ctx.printer.json(&budget)?;
    } else {
        for line in budget.lines() {
            ctx.printer.data(&line);
        }
    }
    Ok(Outcome::finding_if(budget.exhausted))
}

/// The stack's objective, or an error naming the missing section.
fn objective(stack: &Stack) -> Result<&SloSettings, SloError> {
    stack.slo.as_ref().ok_or_else(|| SloError::NoObjective { env: stack.name.clone() })
}
