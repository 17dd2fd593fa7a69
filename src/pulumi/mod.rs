//! The pulumi CLI behind the [`Runner`]: stack select/create, config, `up`/`destroy` with the engine event log
//! followed live, `stack output --json`, and any other command against the stack's backend for
//! callers that read the exit code themselves (drift's refresh). Exit codes (0–9, 255, per
//! `cmdutil/exit.go`) and diagnostics become a [`PulumiError`] that names what failed; a failure is
//! never swallowed.
pub mod events;
pub mod lock;
pub mod preview;

use std::collections::BTreeMap;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::printer::Printer;
use crate::runner::{Cmd, Output, Runner};
use events::{Show, Tally};

/// Exit code of `--expect-no-changes` when there were changes (`ExitNoChanges`, pulumi ≥ 3.227.0;
/// older CLIs exit 1 and say "no changes were expected").
pub const EXIT_NO_CHANGES: i32 = 7;

/// What pulumi's exit code means (pulumi's documented taxonomy).
pub fn exit_meaning(code: i32) -> &'static str {
    match code {
        0 => "success",
        1 => "error",
        2 => "configuration error (invalid flags, config or invocation)",
        3 => "authentication error",
        4 => "resource error",
        5 => "policy violation",
        6 => "stack not found",
        7 => "changes found where none were expected",
        8 => "cancelled",
        9 => "timed out",
        255 => "internal error",
        _ => "unknown exit code",
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PulumiError {
    #[error("cannot run `{command}`: {source}")]
    Spawn { command: String, #[source] source: std::io::Error },
    #[error("`{command}` exited {code} ({meaning}){}", details(.errors, .stderr))]
    Command { command: String, code: i32, meaning: &'static str, errors: Vec<String>, stderr: String },
    #[error("`pulumi {op}` {}: {}{}", up_verb(.tally, *.code), up_what(.tally), details(&.tally.errors, .stderr))]
    Up { op: &'static str, code: i32, tally: Box<Tally>, stderr: String },
    #[error("pulumi's state of stack `{stack}` is locked by {holders}: another update is running, or crashed on another host")]
    Locked { stack: String, holders: String },
    #[error("cannot read `{command}` output: {message}")]
    Output { command: String, message: String },
    #[error("no passphrase for the stack's secrets: set PULUMI_CONFIG_PASSPHRASE or PULUMI_CONFIG_PASSPHRASE_FILE")]
    NoPassphrase,
}

fn details(errors: &[String], stderr: &str) -> String {
    let mut lines: Vec<String> = errors.iter().map(|e| format!("\n  - {e}")).collect();
    if lines.is_empty() {
        let tail: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
        lines = tail[tail.len().saturating_sub(8)..].iter().map(|l| format!("\n  | {l}")).collect();
    }
    lines.concat()
}

fn up_verb(t: &Tally, code: i32) -> String {
    if t.cancelled || code == 8 {
        "was cancelled".into()
    } else {
        format!("failed (exit {code}: {})", exit_meaning(code))
    }
}

fn up_what(t: &Tally) -> String {
    let mut parts = vec![];
    if !t.failed.is_empty() {
        parts.push(format!("failed: {}", t.failed.join(", ")));
    }
    if !t.partial.is_empty() {
        parts.push(format!("partially applied: {}", t.partial.join(", ")));
    }
    parts.push(format!("done before stopping: {}", t.summary_line()));
    if t.maybe_corrupt {
        parts.push("pulumi says the state may be corrupt".into());
    }
    parts.join("; ")
}

impl PulumiError {
    pub fn hint(&self) -> String {
        match self {
            PulumiError::Spawn { .. } => "install the pulumi CLI (https://www.pulumi.com/docs/install/) or point ORCH_PULUMI at it".into(),
            PulumiError::NoPassphrase => "export PULUMI_CONFIG_PASSPHRASE (or _FILE) — keep it in your secret store, never in the repo".into(),
            PulumiError::Command { code: 3, .. } | PulumiError::Up { code: 3, .. } => "check the AWS credentials (AWS_PROFILE) and rerun `orch up`".into(),
            PulumiError::Locked { stack, .. } => {
                format!("wait for it to finish; if that process is gone, run `pulumi cancel --yes --stack {stack}` in build/{stack} with PULUMI_BACKEND_URL set to the stack's backend, then rerun")
            }
            PulumiError::Up { op: "destroy", .. } => "fix the cause above and rerun `orch down`; what was deleted stays deleted".into(),
            PulumiError::Up { tally, code, .. } if tally.cancelled || *code == 8 => {
                "pulumi kept the state of what completed; rerun `orch up` to finish (use `orch up --force-unlock` only if a crashed run left a lock)".into()
            }
            PulumiError::Up { tally, .. } if !tally.partial.is_empty() => {
                "partially applied resources are recorded in the state; fix the cause above and rerun `orch up` — pulumi retries them".into()
            }
            _ => "fix the cause above and rerun `orch up`; finished steps are skipped".into(),
        }
    }
}

/// The outcome of a successful `pulumi up`.
#[derive(Debug, Clone)]
pub struct UpResult {
    pub tally: Tally,
    pub code: i32,
}

/// One stack in one backend, driven through the CLI.
pub struct Pulumi {
    pub runner: Arc<dyn Runner>,
    /// The executable: `ORCH_PULUMI` or `pulumi`.
    pub program: String,
    /// The folder holding the rendered `Pulumi.yaml`.
    pub dir: PathBuf,
    pub backend: String,
    pub stack: String,
}

impl Pulumi {
    pub fn new(runner: Arc<dyn Runner>, dir: &Path, backend: &str, stack: &str) -> Self {
        let program = std::env::var("ORCH_PULUMI").ok().filter(|p| !p.is_empty()).unwrap_or_else(|| "pulumi".into());
        Pulumi { runner, program, dir: dir.to_path_buf(), backend: backend.into(), stack: stack.into() }
    }

    /// A command in the program folder, against our backend (PULUMI_BACKEND_URL: the user's own
    /// `pulumi login` is left untouched), never prompting.
    pub fn cmd<'a>(&self, args: impl IntoIterator<Item = &'a str>) -> Cmd {
        Cmd::new(self.program.clone(), args)
            .dir(&self.dir)
            .env("PULUMI_BACKEND_URL", &self.backend)
            .env("PULUMI_SKIP_UPDATE_CHECK", "true")
            .env("PULUMI_DIY_BACKEND_NO_LEGACY_WARNING", "true")
    }

    /// Run `cmd` and hand back its output whatever the exit code; only failing to start is an error.
    pub fn run_any(&self, cmd: &Cmd) -> Result<Output, PulumiError> {
        self.runner.run(cmd).map_err(|source| PulumiError::Spawn { command: cmd.display(), source })
    }

    fn run(&self, cmd: Cmd) -> Result<Output, PulumiError> {
        let out = self.run_any(&cmd)?;
        if out.success() {
            return Ok(out);
        }
        let code = out.code.unwrap_or(-1);
        Err(PulumiError::Command { command: cmd.display(), code, meaning: exit_meaning(code), errors: vec![], stderr: out.stderr })
    }

    /// Secrets in a DIY backend need a passphrase; refuse early rather than let pulumi prompt.
    pub fn check_passphrase() -> Result<(), PulumiError> {
        let set = |k: &str| std::env::var_os(k).is_some_and(|v| !v.is_empty());
        if set("PULUMI_CONFIG_PASSPHRASE") || set("PULUMI_CONFIG_PASSPHRASE_FILE") {
            Ok(())
        } else {
            Err(PulumiError::NoPassphrase)
        }
    }

    /// `pulumi stack select --create`: select the stack, creating it the first time.
    pub fn select_stack(&self) -> Result<(), PulumiError> {
        self.run(self.cmd(["stack", "select", "--create", "--non-interactive", self.stack.as_str()])).map(drop)
    }

    /// Set plain values in one `config set-all`, then each secret through stdin (never on a command line).
    pub fn set_config(&self, plain: &BTreeMap<String, String>, secrets: &BTreeMap<String, String>) -> Result<(), PulumiError> {
        if !plain.is_empty() {
            let pairs: Vec<String> = plain.iter().map(|(k, v)| format!("{k}={v}")).collect();
            let mut args = vec!["config", "set-all", "--stack", self.stack.as_str()];
            for p in &pairs {
                args.extend(["--plaintext", p.as_str()]);
            }
            self.run(self.cmd(args))?;
        }
        for (key, value) in secrets {
            self.run(self.cmd(["config", "set", "--stack", self.stack.as_str(), "--secret", key.as_str()]).stdin(value.as_bytes()))?;
        }
        Ok(())
    }

    /// `pulumi stack output --json`: the stack's outputs (secrets stay masked).
    pub fn outputs(&self) -> Result<BTreeMap<String, serde_json::Value>, PulumiError> {
        let cmd = self.cmd(["stack", "output", "--json", "--stack", self.stack.as_str()]);
        let shown = cmd.display();
        let out = self.run(cmd)?;
        serde_json::from_str(&out.stdout).map_err(|e| PulumiError::Output { command: shown, message: e.to_string() })
    }

    /// `pulumi stack select` without creating: false when the backend has no such stack.
    pub fn select_existing(&self) -> Result<bool, PulumiError> {
        match self.run(self.cmd(["stack", "select", "--non-interactive", self.stack.as_str()])) {
            Ok(_) => Ok(true),
            Err(PulumiError::Command { code, stderr, .. }) if code == 6 || stderr.contains("no stack named") => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// `pulumi up`, following the engine event log as it is written: one line per resource.
    pub async fn up(&self, printer: &Printer) -> Result<UpResult, PulumiError> {
        self.update("up", printer).await
    }

    /// `pulumi destroy`: every resource of the stack deleted, followed like `up`.
    pub async fn destroy(&self, printer: &Printer) -> Result<UpResult, PulumiError> {
        self.update("destroy", printer).await
    }

    /// `pulumi cancel`: remove the stack's lock (DIY backends: the lock files).
    pub fn cancel(&self) -> Result<(), PulumiError> {
        self.run(self.cmd(["cancel", "--yes", "--non-interactive", "--stack", self.stack.as_str()])).map(drop)
    }

    /// An update; when pulumi's own stack lock was left by a process gone from this host (a run
    /// killed mid-update), `pulumi cancel` removes it and the update runs once more.
    async fn update(&self, op: &'static str, printer: &Printer) -> Result<UpResult, PulumiError> {
        let err = match self.update_once(op, printer).await {
            Err(PulumiError::Up { stderr, code, tally, op }) => match lock::locks_in(&stderr) {
                Some(locks) if lock::all_stale(&locks) => {
                    let holders: Vec<String> = locks.iter().map(lock::StateLock::describe).collect();
                    printer.warn(&format!("pulumi's lock on `{}` is held by {}, gone from this host: `pulumi cancel`, then `pulumi {op}` again", self.stack, holders.join(", ")));
                    self.cancel()?;
                    return self.update_once(op, printer).await;
                }
                Some(locks) => {
                    let holders: Vec<String> = locks.iter().map(lock::StateLock::describe).collect();
                    let holders = if holders.is_empty() { "a holder pulumi did not name".into() } else { holders.join(", ") };
                    PulumiError::Locked { stack: self.stack.clone(), holders }
                }
                None => PulumiError::Up { stderr, code, tally, op },
            },
            other => return other,
        };
        Err(err)
    }

    async fn update_once(&self, op: &'static str, printer: &Printer) -> Result<UpResult, PulumiError> {
        let log = self.dir.join(format!(".orch-events-{}.jsonl", std::process::id()));
        let _ = std::fs::remove_file(&log);
        let log_arg = log.display().to_string();
        let cmd = self.cmd([op, "--yes", "--non-interactive", "--skip-preview", "--stack", self.stack.as_str(), "--event-log", log_arg.as_str()]);
        let shown = cmd.display();
        let runner = self.runner.clone();
        let task = tokio::task::spawn_blocking(move || runner.run(&cmd));
        let mut view = View::new(printer);
        let mut tail = Tail { path: log.clone(), offset: 0, partial: String::new() };
        while !task.is_finished() {
            tokio::time::sleep(Duration::from_millis(100)).await;
            tail.drain(&mut view);
        }
        let out = task.await.map_err(|e| PulumiError::Spawn { command: shown.clone(), source: std::io::Error::other(e) })?;
        tail.drain(&mut view);
        let _ = std::fs::remove_file(&log);
        let out = out.map_err(|source| PulumiError::Spawn { command: shown, source })?;
        view.finish();
        let code = out.code.unwrap_or(-1);
        let tally = view.tally;
        let failed = code != 0 || tally.cancelled || tally.result.as_deref().is_some_and(|r| r != "succeeded") || !tally.failed.is_empty();
        if failed {
            return Err(PulumiError::Up { op, code, tally: Box::new(tally), stderr: out.stderr });
        }
        Ok(UpResult { tally, code })
    }
}

/// Reads the lines appended to the event log since the last call.
struct Tail {
    path: PathBuf,
    offset: u64,
    partial: String,
}

impl Tail {
    fn drain(&mut self, view: &mut View) {
        let Ok(mut file) = std::fs::File::open(&self.path) else { return };
        if file.seek(SeekFrom::Start(self.offset)).is_err() {
            return;
        }
        let mut buf = String::new();
        let Ok(n) = file.read_to_string(&mut buf) else { return };
        self.offset += n as u64;
        self.partial.push_str(&buf);
        while let Some(pos) = self.partial.find('\n') {
            let line: String = self.partial.drain(..=pos).collect();
            if let Some(event) = events::parse_line(&line) {
                view.on(&event);
            }
        }
    }
}

/// One progress line per resource while it changes; a plain line per finished resource otherwise.
struct View<'p> {
    printer: &'p Printer,
    multi: Option<indicatif::MultiProgress>,
    bars: BTreeMap<String, indicatif::ProgressBar>,
    tally: Tally,
}

impl<'p> View<'p> {
    fn new(printer: &'p Printer) -> Self {
        let multi = printer.is_fancy().then(indicatif::MultiProgress::new);
        View { printer, multi, bars: BTreeMap::new(), tally: Tally::default() }
    }

    fn on(&mut self, event: &events::EngineEvent) {
        let Some(show) = self.tally.absorb(event) else { return };
        match show {
            Show::Started { urn, op, type_ } => {
                if let Some(multi) = &self.multi {
                    let bar = multi.add(indicatif::ProgressBar::new_spinner());
                    bar.set_style(indicatif::ProgressStyle::with_template("  {spinner} {msg} [{elapsed}]").unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()));
                    bar.set_message(format!("{op} {} ({type_})", events::short_name(&urn)));
                    bar.enable_steady_tick(Duration::from_millis(120));
                    self.bars.insert(urn, bar);
                }
            }
            Show::Done { urn, op } => self.end(&urn, format!("  ✓ {op} {}", events::short_name(&urn))),
            Show::Failed { urn, partial } => {
                let what = if partial { "partially applied" } else { "failed" };
                self.end(&urn, format!("  ✗ {what} {}", events::short_name(&urn)))
            }
            Show::Warning(text) => self.printer.warn(&text),
        }
    }

    fn end(&mut self, urn: &str, line: String) {
        match self.bars.remove(urn) {
            Some(bar) => bar.finish_with_message(line.trim_start().to_string()),
            None => self.printer.progress(&line),
        }
    }

    fn finish(&mut self) {
        for (_, bar) in std::mem::take(&mut self.bars) {
            bar.abandon();
        }
        self.printer.progress(&format!("  pulumi: {}", self.tally.summary_line()));
    }
}
