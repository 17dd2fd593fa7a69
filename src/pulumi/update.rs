//! `pulumi up` and `pulumi destroy` with the engine event log followed live (one line per
//! resource, a summary at the end), and `pulumi cancel` for a stack lock proven stale
//! ([`lock::proven_stale`]). A failed, partial or cancelled update becomes a [`PulumiError`]; it is never swallowed.
use std::collections::BTreeMap;
use std::io::{Read, Seek, SeekFrom};
use std::path::PathBuf;
use std::time::Duration;

use super::events::{self, Show, Tally};
use super::{lock, Pulumi, PulumiError};
use crate::printer::Printer;

/// The outcome of a successful `pulumi up`.
#[derive(Debug, Clone)]
pub struct UpResult {
    pub tally: Tally,
    pub code: i32,
}

impl Pulumi {
    /// `pulumi up`, following the engine event log as it is written: one line per resource.
    pub async fn up(&self, printer: &Printer) -> Result<UpResult, PulumiError> {
        self.update("up", &[], printer).await
    }

    /// `pulumi up --target URN…`: only these resources change; every other one keeps its state.
    pub async fn up_targets(
        &self,
        targets: &[String],
        printer: &Printer,
    ) -> Result<UpResult, PulumiError> {
        self.update("up", targets, printer).await
    }

    /// `pulumi destroy`: every resource of the stack deleted, followed like `up`.
    pub async fn destroy(&self, printer: &Printer) -> Result<UpResult, PulumiError> {
        self.update("destroy", &[], printer).await
    }

    /// `pulumi cancel`: remove the stack's lock (DIY backends: the lock files).
    pub fn cancel(&self) -> Result<(), PulumiError> {
        self.run(self.cmd(["cancel", "--yes", "--non-interactive", "--stack", self.stack.as_str()]))
            .map(drop)
    }

    /// An update; when pulumi's own stack lock is proven stale (left by a pulumi of the run whose
    /// expired deploy lock this run took over, and gone), `pulumi cancel` removes it and the update
    /// runs once more.
    async fn update(
        &self,
        op: &'static str,
        targets: &[String],
        printer: &Printer,
    ) -> Result<UpResult, PulumiError> {
        let err = match self.update_once(op, targets, printer).await {
            Err(PulumiError::Up { stderr, code, tally, op }) => match lock::locks_in(&stderr) {
                Some(locks) if lock::proven_stale(&locks, self.expired_run.as_ref()) => {
                    let holders: Vec<String> =
                        locks.iter().map(lock::StateLock::describe).collect();
                    printer.warn(&format!("pulumi's lock on `{}` is held by {}, a process of the run whose lease expired, gone from this host: `pulumi cancel`, then `pulumi {op}` again", self.stack, holders.join(", ")));
                    self.cancel()?;
                    return self.update_once(op, targets, printer).await;
                }
                Some(locks) => {
                    let holders: Vec<String> =
                        locks.iter().map(lock::StateLock::describe).collect();
                    let holders = if holders.is_empty() {
                        "a holder pulumi did not name".into()
                    } else {
                        holders.join(", ")
                    };
                    PulumiError::Locked { stack: self.stack.clone(), holders }
                }
                None => PulumiError::Up { stderr, code, tally, op },
            },
            other => return other,
        };
        Err(err)
    }

    async fn update_once(
        &self,
        op: &'static str,
        targets: &[String],
        printer: &Printer,
    ) -> Result<UpResult, PulumiError> {
        let log = self.dir.join(format!(".orch-events-{}.jsonl", std::process::id()));
        let _ = std::fs::remove_file(&log);
        let log_arg = log.display().to_string();
        let mut args = vec![
            op,
            "--yes",
            "--non-interactive",
            "--skip-preview",
            "--stack",
            self.stack.as_str(),
            "--event-log",
            log_arg.as_str(),
        ];
        for t in targets {
            args.extend(["--target", t.as_str()]);
        }
        let cmd = self
            .cmd(args)
            // `--event-log` is registered only when PULUMI_DEBUG_COMMANDS is true (pkg/cmd/pulumi/
            // operations/up.go and destroy.go); pulumi's Automation API sets it the same way.
            .env("PULUMI_DEBUG_COMMANDS", "true");
        let shown = cmd.display();
        let runner = self.runner.clone();
        let task = tokio::task::spawn_blocking(move || runner.run(&cmd));
        let mut view = View::new(printer);
        let mut tail = Tail { path: log.clone(), offset: 0, partial: String::new() };
        while !task.is_finished() {
            tokio::time::sleep(Duration::from_millis(100)).await;
            tail.drain(&mut view);
        }
        let out = task.await.map_err(|e| PulumiError::Spawn {
            command: shown.clone(),
            source: std::io::Error::other(e),
        })?;
        tail.drain(&mut view);
        let _ = std::fs::remove_file(&log);
        let out = out.map_err(|source| PulumiError::Spawn { command: shown, source })?;
        view.finish();
        let code = out.code.unwrap_or(-1);
        let tally = view.tally;
        let failed = code != 0
            || tally.cancelled
            || tally.result.as_deref().is_some_and(|r| r != "succeeded")
            || !tally.failed.is_empty();
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
                    bar.set_style(
                        indicatif::ProgressStyle::with_template("  {spinner} {msg} [{elapsed}]")
                            .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
                    );
                    bar.set_message(format!("{op} {} ({type_})", events::short_name(&urn)));
                    bar.enable_steady_tick(Duration::from_millis(120));
                    self.bars.insert(urn, bar);
                }
            }
            Show::Done { urn, op } => {
                self.end(&urn, format!("  ✓ {op} {}", events::short_name(&urn)));
            }
            Show::Failed { urn, partial } => {
                let what = if partial { "partially applied" } else { "failed" };
                self.end(&urn, format!("  ✗ {what} {}", events::short_name(&urn)));
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
