//! `app` binary: parse flags/env, set up logging, run the server.

use clap::Parser;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let config = app::Config::parse();
    app::logging::init(&config.log_level);
    match app::server::run(config).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "fatal");
            app::logging::flush();
            std::process::ExitCode::FAILURE
        }
    }
}
