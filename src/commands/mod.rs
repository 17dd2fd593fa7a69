//! One module per subcommand; [`run`] holds the only `match` on the command.
pub mod completions;

use crate::cli::{Cli, Command};
use crate::config::{self, Stack};
use crate::error::{OrchError, Outcome};
use crate::printer::Printer;
use crate::project::Project;

/// What every command gets: the project, the chosen environment, and the printer.
pub struct Ctx<'a> {
    root: Option<std::path::PathBuf>,
    pub env: String,
    pub printer: &'a Printer,
}

impl Ctx<'_> {
    /// The project (found from `--root` or the working directory).
    pub fn project(&self) -> Result<Project, OrchError> {
        Project::discover(self.root.as_deref())
    }
    /// The environment's validated stack.
    pub fn stack(&self) -> Result<Stack, OrchError> {
        Ok(config::load(&self.project()?, &self.env)?)
    }
}

/// Run the parsed command line.
pub async fn run(cli: Cli, printer: &Printer) -> Result<Outcome, OrchError> {
    let ctx = Ctx { root: cli.root, env: cli.env, printer };
    match cli.command {
        Command::Up(_) => not_built(&ctx, "up"),
        Command::Status(_) => not_built(&ctx, "status"),
        Command::Drift(_) => not_built(&ctx, "drift"),
        Command::Render => not_built(&ctx, "render"),
        Command::Check(_) => not_built(&ctx, "check"),
        Command::Build(_) => not_built(&ctx, "build"),
        Command::Verify(_) => not_built(&ctx, "verify"),
        Command::Down(_) => not_built(&ctx, "down"),
        Command::Local(_) => not_built(&ctx, "local"),
        Command::Completions { shell } => completions::run(shell),
    }
}

/// Validate the stack (so config errors surface first), then refuse honestly.
fn not_built(ctx: &Ctx<'_>, command: &'static str) -> Result<Outcome, OrchError> {
    let stack = ctx.stack()?;
    Err(OrchError::NotBuilt { command, what: format!("the {:?} target (environment `{}`)", stack.target, stack.name).to_lowercase() })
}
