//! One module per subcommand; [`run`] holds the only `match` on the command.
pub(crate) mod build;
pub(crate) mod check;
pub(crate) mod completions;
pub(crate) mod cost;
pub(crate) mod down;
pub(crate) mod drift;
pub(crate) mod local;
pub(crate) mod logs;
pub(crate) mod releases;
pub(crate) mod render;
pub(crate) mod rollback;
pub(crate) mod slo;
pub(crate) mod status;
pub(crate) mod up;
pub(crate) mod verify;

use crate::cli::{Cli, Command};
pub(crate) use crate::context::Ctx;
use crate::error::{OrchError, Outcome};
use crate::printer::Printer;
use crate::settings::Settings;

/// Run the parsed command line with the settings read at start.
pub(crate) async fn run(
    cli: Cli,
    printer: &Printer,
    settings: &Settings,
) -> Result<Outcome, OrchError> {
    let ctx = Ctx::new(cli.root, cli.env, printer, settings);
    match cli.command {
        Command::Up(args) => up::run(&ctx, args).await,
        Command::Status(args) => status::run(&ctx, args).await,
        Command::Drift(args) => drift::run(&ctx, args).await,
        Command::Render => render::run(&ctx).await,
        Command::Check(args) => check::run(&ctx, args).await,
        Command::Cost(args) => cost::run(&ctx, args).await,
        Command::Slo(args) => slo::run(&ctx, args).await,
        Command::Build(args) => build::run(&ctx, args).await,
        Command::Verify(args) => verify::run(&ctx, args).await,
        Command::Down(args) => down::run(&ctx, args).await,
        Command::Releases(args) => releases::run(&ctx, args).await,
        Command::Rollback(args) => rollback::run(&ctx, args).await,
        Command::Logs(args) => logs::run(&ctx, args).await,
        Command::Local(command) => local::run(&ctx, command).await,
        Command::Completions { shell } => completions::run(shell),
    }
}
