//! `orch render`: write the environment's Pulumi YAML program into build/<env>/.
use super::Ctx;
use crate::error::{OrchError, Outcome};
pub async fn run(ctx: &Ctx<'_>) -> Result<Outcome, OrchError> {
    let stack = ctx.stack()?;
    Err(OrchError::NotBuilt { command: "render", what: format!("environment `{}`", stack.name) })
}
