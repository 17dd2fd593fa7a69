//! `orch completions SHELL`: shell completion scripts on stdout.
use clap::CommandFactory;

use crate::cli::Cli;
use crate::error::{OrchError, Outcome};

pub(crate) fn run(shell: clap_complete::Shell) -> Result<Outcome, OrchError> {
    clap_complete::generate(shell, &mut Cli::command(), "orch", &mut std::io::stdout());
    Ok(Outcome::Ok)
}
