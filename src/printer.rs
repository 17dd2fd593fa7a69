//! The one printer: data goes to stdout (plain or `--json`), progress and logs to stderr;
//! no colour or spinners when stderr is not a terminal or `NO_COLOR` is set.
use indicatif::{ProgressBar, ProgressStyle};
use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::error::OrchError;

#[derive(Debug, Clone)]
pub struct Printer {
    verbose: u8,
    quiet: bool,
    fancy: bool,
    /// Set once a write to stdout failed because its reader went away (`orch logs -f | head`).
    closed: Arc<AtomicBool>,
}

impl Printer {
    pub fn new(verbose: u8, quiet: bool) -> Self {
        let fancy = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
        Printer { verbose, quiet, fancy, closed: Arc::default() }
    }

    /// A printer for tests and non-interactive use: no spinners, no progress.
    pub fn plain() -> Self {
        Printer { verbose: 0, quiet: true, fancy: false, closed: Arc::default() }
    }

    /// Install the tracing subscriber on stderr; `-v` shows debug, `-vv` trace.
    pub fn init_tracing(&self) {
        let default = match self.verbose {
            // Only orch's own warnings by default: the SDK's log lines are for `-v`.
            0 => "orch=warn",
            1 => "orch=debug,info",
            _ => "trace",
        };
        let filter = tracing_subscriber::EnvFilter::try_from_env("ORCH_LOG")
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
        let _ = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(std::io::stderr)
            .with_ansi(self.fancy)
            .try_init();
    }

    pub fn is_fancy(&self) -> bool {
        self.fancy
    }

    /// A line of data on stdout.
    pub fn data(&self, text: &str) {
        if self.stdout_closed() {
            return;
        }
        let mut out = std::io::stdout().lock();
        if let Err(e) = writeln!(out, "{text}").and_then(|()| out.flush()) {
            if e.kind() == std::io::ErrorKind::BrokenPipe {
                self.closed.store(true, Ordering::Relaxed);
            }
        }
    }

    /// True once stdout's reader has gone away: whoever streams data (`--follow`) can stop.
    pub fn stdout_closed(&self) -> bool {
        self.closed.load(Ordering::Relaxed)
    }

    /// True when stdout is a terminal and `NO_COLOR` is not set: data lines may be coloured.
    pub fn data_is_terminal(&self) -> bool {
        std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none()
    }

    /// A JSON value on one line of stdout (JSON lines, for streams of records).
    pub fn json_line<T: serde::Serialize>(&self, value: &T) {
        if let Ok(text) = serde_json::to_string(value) {
            self.data(&text);
        }
    }

    /// A JSON document on stdout.
    pub fn json<T: serde::Serialize>(&self, value: &T) -> Result<(), OrchError> {
        let text = serde_json::to_string_pretty(value)
            .map_err(|e| OrchError::Internal(format!("cannot encode JSON output: {e}")))?;
        self.data(&text);
        Ok(())
    }

    /// A progress line on stderr (silenced by `-q`).
    pub fn progress(&self, text: &str) {
        if !self.quiet {
            eprintln!("{text}");
        }
    }

    /// A warning on stderr; never silenced.
    pub fn warn(&self, text: &str) {
        if self.fancy {
            eprintln!("\x1b[33mwarning\x1b[0m: {text}");
        } else {
            eprintln!("warning: {text}");
        }
    }

    /// A spinner on stderr, hidden when stderr is not a terminal.
    pub fn spinner(&self, message: impl Into<String>) -> ProgressBar {
        let message = message.into();
        if !self.fancy || self.quiet {
            self.progress(&message);
            return ProgressBar::hidden();
        }
        let bar = ProgressBar::new_spinner().with_message(message);
        bar.set_style(
            ProgressStyle::with_template("{spinner} {msg} [{elapsed}]")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        bar.enable_steady_tick(Duration::from_millis(120));
        bar
    }

    /// A byte-counting progress bar on stderr, hidden when stderr is not a terminal.
    pub fn bytes_bar(&self, message: impl Into<String>, total: u64) -> ProgressBar {
        let message = message.into();
        if !self.fancy || self.quiet {
            self.progress(&message);
            return ProgressBar::hidden();
        }
        let bar = ProgressBar::new(total).with_message(message);
        bar.set_style(
            ProgressStyle::with_template("{msg} {bar:30} {bytes}/{total_bytes} {bytes_per_sec}")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        bar
    }

    /// The one error report, printed at the top level.
    pub fn report(&self, err: &OrchError) {
        let label = if self.fancy { "\x1b[31merror\x1b[0m" } else { "error" };
        let mut said = err.to_string();
        eprintln!("{label}: {said}");
        // A cause whose text the report already carries (`{what}: {source}` variants) is not
        // printed twice.
        let mut source = std::error::Error::source(err);
        while let Some(cause) = source {
            let text = cause.to_string();
            if !said.contains(&text) {
                eprintln!("  caused by: {text}");
                said.push_str(&text);
            }
            source = cause.source();
        }
        if let Some(hint) = err.hint() {
            eprintln!("hint: {hint}");
        }
    }
}
