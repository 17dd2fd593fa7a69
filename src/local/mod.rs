//! The local target: the whole tier on this machine (instances in two zones, a TLS load balancer,
//! a supervisor). Not built yet.
use crate::cli::{DownArgs, LocalCommand, ReportArgs, UpArgs};
use crate::commands::Ctx;
use crate::config::Stack;
use crate::error::{OrchError, Outcome};

fn not_built(command: &'static str, stack: &Stack) -> Result<Outcome, OrchError> {
    Err(OrchError::NotBuilt { command, what: format!("the local target (environment `{}`)", stack.name) })
}

pub async fn up(_ctx: &Ctx<'_>, stack: &Stack, _args: &UpArgs) -> Result<Outcome, OrchError> {
    not_built("up", stack)
}
pub async fn down(_ctx: &Ctx<'_>, stack: &Stack, _args: &DownArgs) -> Result<Outcome, OrchError> {
    not_built("down", stack)
}
pub async fn status(_ctx: &Ctx<'_>, stack: &Stack, _args: &ReportArgs) -> Result<Outcome, OrchError> {
    not_built("status", stack)
}
pub async fn command(_ctx: &Ctx<'_>, stack: &Stack, _command: LocalCommand) -> Result<Outcome, OrchError> {
    not_built("local", stack)
}
