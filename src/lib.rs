//! orch: renders, deploys and checks a load-balanced HTTPS web tier, on AWS
//! (through Pulumi YAML) or on one machine (`--env local`).
pub(crate) mod atomic;
pub mod aws;
pub mod check;
pub(crate) mod cli;
pub(crate) mod clock;
pub(crate) mod commands;
pub mod config;
pub(crate) mod context;
pub(crate) mod cost;
pub(crate) mod deploy;
pub(crate) mod error;
pub(crate) mod host;
pub mod image;
pub(crate) mod interrupt;
pub mod local;
pub mod logs;
pub(crate) mod ops;
pub(crate) mod outputs;
pub(crate) mod placement;
pub mod printer;
pub mod project;
pub mod pulumi;
pub mod release;
pub mod render;
pub mod rollout;
pub mod runner;
pub(crate) mod scaling;
pub(crate) mod settings;
pub mod slo;
pub mod state;
pub(crate) mod status;
pub mod verify;

use clap::Parser;
use std::process::ExitCode;

pub use error::{OrchError, Outcome};

/// Parse arguments, run the command, print one error report, and map the result to an exit code.
pub fn main_entry() -> ExitCode {
    let cli = match cli::Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let code = if e.use_stderr() { 2 } else { 0 };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    let printer = printer::Printer::new(cli.verbose, cli.quiet);
    printer.init_tracing();
    let settings = match settings::Settings::from_env() {
        Ok(settings) => settings,
        Err(e) => {
            let err = OrchError::from(e);
            printer.report(&err);
            return ExitCode::from(err.exit_code());
        }
    };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            printer.report(&OrchError::Io { what: "starting the async runtime".into(), source: e });
            return ExitCode::from(2);
        }
    };
    match runtime.block_on(commands::run(cli, &printer, &settings)) {
        Ok(outcome) => ExitCode::from(outcome.code()),
        Err(err) => {
            printer.report(&err);
            ExitCode::from(err.exit_code())
        }
    }
}
