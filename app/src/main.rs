//! `app` binary: parse flags/env, set up logging, run the server.

use clap::Parser;

/// mimalloc: the request path allocates and frees many small buffers across threads, where glibc's
/// allocator showed up in profiles (scripts/bench-app.sh measures the difference).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let config = app::Config::parse();
    if let Some(url) = &config.probe {
        return match app::probe::run(url).await {
            Ok(status) => {
                println!("{status}");
                if status < 400 {
                    std::process::ExitCode::SUCCESS
                } else {
                    std::process::ExitCode::FAILURE
                }
            }
            Err(e) => {
                eprintln!("probe failed: {e}");
                std::process::ExitCode::FAILURE
            }
        };
    }
    app::logging::init(&config.log_level, config.log_queue_lines);
    match app::server::run(config).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "fatal");
            app::logging::flush();
            std::process::ExitCode::FAILURE
        }
    }
}
