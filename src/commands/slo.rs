//! `orch slo`: the error budget of the stack's `slo:` objective (exit 0, or 1 when the budget is
//! exhausted; 2 without an `slo:` section or on an AWS stack, whose ALB metrics are not read yet).
use super::Ctx;
use crate::cli::ReportArgs;
use crate::config::{SloSettings, Stack, Target};
use crate::error::{OrchError, Outcome};
use crate::project::Project;

pub(crate) async fn run(ctx: &Ctx<'_>, args: ReportArgs) -> Result<Outcome, OrchError> {
    let project = ctx.project()?;
    let stack = ctx.stack()?;
    let budget = budget(&project, &stack)?;
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
fn objective(stack: &Stack) -> Result<&SloSettings, OrchError> {
    stack.slo.as_ref().ok_or_else(|| {
        OrchError::failed(
            format!("stacks/{}.yaml has no `slo:` section", stack.name),
            "add `slo: {availability: 99.9, latency_p99_ms: 300}` (docs/configuration.md)",
        )
    })
}

/// The error budget of `stack` as of now, from what its load balancer logged.
pub(crate) fn budget(project: &Project, stack: &Stack) -> Result<crate::slo::Budget, OrchError> {
    let slo = objective(stack)?;
    if stack.target != Target::Local {
        return Err(OrchError::failed(
            format!("`orch slo --env {}`: the error budget is read from the local load balancer's access log; an AWS environment's ALB metrics are not read yet", stack.name),
            "use `orch slo --env local`",
        ));
    }
    Ok(crate::local::slo::budget(&crate::local::paths(project, stack), slo))
}
