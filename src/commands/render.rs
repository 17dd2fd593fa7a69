//! `orch render`: write the environment's Pulumi YAML program into build/<env>/.
use super::Ctx;
use crate::error::{OrchError, Outcome};
use crate::render;

pub(crate) async fn run(ctx: &Ctx<'_>) -> Result<Outcome, OrchError> {
    let project = ctx.project()?;
    let stack = ctx.stack()?;
    let rendered = render::render(&project, &stack)?;
    let dir = render::write(&project, &stack, &rendered)?;
    ctx.printer.progress(&format!(
        "rendered {} (program {})",
        dir.display(),
        &rendered.program_hash()[..12]
    ));
    ctx.printer.data(&dir.join("Pulumi.yaml").display().to_string());
    Ok(Outcome::Ok)
}
