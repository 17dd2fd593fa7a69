//! The pulumi CLI behind the [`Runner`]: stack select/create, config, `up`/`destroy` with the engine event log
//! followed live, `stack output --json`, and any other command against the stack's backend for
//! callers that read the exit code themselves (drift's refresh). Exit codes (0–9, 255, per
//! `cmdutil/exit.go`) and diagnostics become a [`PulumiError`] that names what failed; a failure is
//! never swallowed.
pub mod events;
pub mod lock;
pub mod preview;
mod update;

pub use update::UpResult;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::runner::{Cmd, Output, Runner};
use events::Tally;

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
    Spawn {
        command: String,
        #[source]
        source: std::io::Error,
    },
    #[error("`{command}` exited {code} ({meaning}){}", details(.errors, .stderr))]
    Command {
        command: String,
        code: i32,
        meaning: &'static str,
        errors: Vec<String>,
        stderr: String,
    },
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

/// One stack in one backend, driven through the CLI.
pub struct Pulumi {
    pub runner: Arc<dyn Runner>,
    /// The executable: `ORCH_PULUMI` or `pulumi`.
    pub program: String,
    /// The folder holding the rendered `Pulumi.yaml`.
    pub dir: PathBuf,
    pub backend: String,
    pub stack: String,
    /// The deploy lock this run took over because its lease had expired: what may prove a stack
    /// lock of pulumi's stale ([`lock::proven_stale`]).
    pub expired_run: Option<crate::state::lock::LockInfo>,
}

impl Pulumi {
    /// The CLI `program` (`ORCH_PULUMI`; `None`: `pulumi` on PATH) for `stack` of `backend`, run in
    /// `dir`.
    pub fn new(
        runner: Arc<dyn Runner>,
        program: Option<&str>,
        dir: &Path,
        backend: &str,
        stack: &str,
    ) -> Self {
        Pulumi {
            runner,
            program: program.unwrap_or("pulumi").into(),
            dir: dir.to_path_buf(),
            backend: backend.into(),
            stack: stack.into(),
            expired_run: None,
        }
    }

    /// The same CLI, run under a deploy lock that took over `expired` (see [`Pulumi::expired_run`]).
    pub fn after_expired(mut self, expired: Option<crate::state::lock::LockInfo>) -> Self {
        self.expired_run = expired;
        self
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
        Err(PulumiError::Command {
            command: cmd.display(),
            code,
            meaning: exit_meaning(code),
            errors: vec![],
            stderr: out.stderr,
        })
    }

    /// A DIY backend's passphrase secrets provider needs a passphrase for every update, refresh
    /// and destroy; refuse early rather than let pulumi fail. As pulumi's `readPassphrase`
    /// (pkg/secrets/passphrase/manager.go): PULUMI_CONFIG_PASSPHRASE counts when set, even empty;
    /// PULUMI_CONFIG_PASSPHRASE_FILE when it names a file.
    pub fn check_passphrase() -> Result<(), PulumiError> {
        let file = std::env::var_os("PULUMI_CONFIG_PASSPHRASE_FILE").is_some_and(|v| !v.is_empty());
        if std::env::var_os("PULUMI_CONFIG_PASSPHRASE").is_some() || file {
            Ok(())
        } else {
            Err(PulumiError::NoPassphrase)
        }
    }

    /// `pulumi stack select --create`: select the stack, creating it the first time.
    pub fn select_stack(&self) -> Result<(), PulumiError> {
        self.run(self.cmd([
            "stack",
            "select",
            "--create",
            "--non-interactive",
            self.stack.as_str(),
        ]))
        .map(drop)
    }

    /// Set plain values in one `config set-all`, then each secret through stdin (never on a command line).
    pub fn set_config(
        &self,
        plain: &BTreeMap<String, String>,
        secrets: &BTreeMap<String, String>,
    ) -> Result<(), PulumiError> {
        if !plain.is_empty() {
            let pairs: Vec<String> = plain.iter().map(|(k, v)| format!("{k}={v}")).collect();
            let mut args = vec!["config", "set-all", "--stack", self.stack.as_str()];
            for p in &pairs {
                args.extend(["--plaintext", p.as_str()]);
            }
            self.run(self.cmd(args))?;
        }
        for (key, value) in secrets {
            self.run(
                self.cmd([
                    "config",
                    "set",
                    "--stack",
                    self.stack.as_str(),
                    "--secret",
                    key.as_str(),
                ])
                .stdin(value.as_bytes()),
            )?;
        }
        Ok(())
    }

    /// `pulumi stack output --json`: the stack's outputs (secrets stay masked).
    pub fn outputs(&self) -> Result<BTreeMap<String, serde_json::Value>, PulumiError> {
        let cmd = self.cmd(["stack", "output", "--json", "--stack", self.stack.as_str()]);
        let shown = cmd.display();
        let out = self.run(cmd)?;
        serde_json::from_str(&out.stdout)
            .map_err(|e| PulumiError::Output { command: shown, message: e.to_string() })
    }

    /// `pulumi stack select` without creating: false when the backend has no such stack.
    pub fn select_existing(&self) -> Result<bool, PulumiError> {
        match self.run(self.cmd(["stack", "select", "--non-interactive", self.stack.as_str()])) {
            Ok(_) => Ok(true),
            Err(PulumiError::Command { code, stderr, .. })
                if code == 6 || stderr.contains("no stack named") =>
            {
                Ok(false)
            }
            Err(e) => Err(e),
        }
    }
}
