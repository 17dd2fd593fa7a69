//! The AWS target's deployment: lock, state bucket, image, DNS, certificate, `pulumi up`, refresh,
//! verify, record. Not built yet.
use crate::cli::{DownArgs, UpArgs};
use crate::commands::Ctx;
use crate::config::Stack;
use crate::error::{OrchError, Outcome};

pub async fn up(_ctx: &Ctx<'_>, stack: &Stack, _args: &UpArgs) -> Result<Outcome, OrchError> {
    Err(OrchError::NotBuilt { command: "up", what: format!("the aws target (environment `{}`)", stack.name) })
}
pub async fn down(_ctx: &Ctx<'_>, stack: &Stack, _args: &DownArgs) -> Result<Outcome, OrchError> {
    Err(OrchError::NotBuilt { command: "down", what: format!("the aws target (environment `{}`)", stack.name) })
}
