//! `orch releases`: the release history of an environment, newest first, the live one marked.
use super::Ctx;
use crate::cli::ReportArgs;
use crate::config::Target;
use crate::error::{OrchError, Outcome};

pub(crate) async fn run(ctx: &Ctx<'_>, args: ReportArgs) -> Result<Outcome, OrchError> {
    let project = ctx.project()?;
    let stack = ctx.stack()?;
    let rows = match stack.target {
        Target::Local => crate::release::local::list(&crate::local::paths(&project, &stack))?,
        Target::Aws => crate::release::aws::releases(&stack).await?,
    };
    if args.json {
        ctx.printer.json(&serde_json::json!({ "env": stack.name, "releases": rows }))?;
    } else if rows.is_empty() {
        ctx.printer.progress(&format!("`{}` has no releases yet", stack.name));
    } else {
        for line in crate::release::history::table(&rows) {
            ctx.printer.data(&line);
        }
    }
    Ok(Outcome::Ok)
}
