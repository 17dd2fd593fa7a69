//! External processes behind one small trait: [`Duct`] runs them for real, [`Recording`] records
//! the calls and answers from a script, so plans and executors are tested without spawning anything.
use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::Mutex;

/// One command line to run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cmd {
    pub program: String,
    pub args: Vec<String>,
    /// Extra environment variables (values are never logged: they may be secrets).
    pub env: Vec<(String, String)>,
    /// Inherited environment variables the process must not see.
    pub env_remove: Vec<String>,
    pub dir: Option<PathBuf>,
    pub stdin: Option<Vec<u8>>,
}

impl Cmd {
    pub fn new(
        program: impl Into<String>,
        args: impl IntoIterator<Item = impl Into<String>>,
    ) -> Self {
        Cmd {
            program: program.into(),
            args: args.into_iter().map(Into::into).collect(),
            env: vec![],
            env_remove: vec![],
            dir: None,
            stdin: None,
        }
    }
    pub fn env(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }
    pub fn env_remove(mut self, key: impl Into<String>) -> Self {
        self.env_remove.push(key.into());
        self
    }
    pub fn dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.dir = Some(dir.into());
        self
    }
    pub fn stdin(mut self, bytes: impl Into<Vec<u8>>) -> Self {
        self.stdin = Some(bytes.into());
        self
    }
    /// The command line for messages: program and arguments, never environment values.
    pub fn display(&self) -> String {
        std::iter::once(self.program.as_str())
            .chain(self.args.iter().map(String::as_str))
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// What a finished process left behind.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Output {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    pub fn success(&self) -> bool {
        self.code == Some(0)
    }
}

/// Runs external processes.
pub trait Runner: Send + Sync {
    /// Run to completion and capture stdout and stderr; a non-zero exit is an `Ok` output, not an error.
    fn run(&self, cmd: &Cmd) -> std::io::Result<Output>;
}

/// The real runner, on top of `duct`.
#[derive(Debug, Default, Clone, Copy)]
pub struct Duct;

impl Runner for Duct {
    fn run(&self, cmd: &Cmd) -> std::io::Result<Output> {
        let mut expr =
            duct::cmd(&cmd.program, &cmd.args).stdout_capture().stderr_capture().unchecked();
        for k in &cmd.env_remove {
            expr = expr.env_remove(k);
        }
        for (k, v) in &cmd.env {
            expr = expr.env(k, v);
        }
        if let Some(dir) = &cmd.dir {
            expr = expr.dir(dir);
        }
        if let Some(input) = &cmd.stdin {
            expr = expr.stdin_bytes(input.clone());
        } else {
            expr = expr.stdin_null();
        }
        if let Some(sig) = crate::interrupt::received() {
            return Err(std::io::Error::other(format!("not started: orch received {sig}")));
        }
        // Started, then waited for in this same thread, tracked meanwhile so that a SIGINT or
        // SIGTERM orch receives reaches it as SIGINT (crate::interrupt).
        let handle = expr.start()?;
        let tracked = crate::interrupt::track(handle.pids());
        let out = handle.into_output();
        drop(tracked);
        let out = out?;
        Ok(Output {
            code: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        })
    }
}

/// A runner for tests: records every command and answers with scripted outputs, in order.
#[derive(Debug, Default)]
pub struct Recording {
    calls: Mutex<Vec<Cmd>>,
    answers: Mutex<VecDeque<Output>>,
}

impl Recording {
    pub fn new(answers: impl IntoIterator<Item = Output>) -> Self {
        Recording { calls: Mutex::new(vec![]), answers: Mutex::new(answers.into_iter().collect()) }
    }
    /// The commands run so far.
    pub fn calls(&self) -> Vec<Cmd> {
        self.calls.lock().map(|c| c.clone()).unwrap_or_default()
    }
}

impl Runner for Recording {
    fn run(&self, cmd: &Cmd) -> std::io::Result<Output> {
        if let Ok(mut calls) = self.calls.lock() {
            calls.push(cmd.clone());
        }
        let next = self.answers.lock().ok().and_then(|mut a| a.pop_front());
        Ok(next.unwrap_or(Output { code: Some(0), ..Output::default() }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duct_captures_output_and_exit_code() {
        let out = Duct.run(&Cmd::new("sh", ["-c", "echo hi; echo err >&2; exit 3"])).unwrap();
        assert_eq!(
            (out.code, out.stdout.as_str(), out.stderr.as_str()),
            (Some(3), "hi\n", "err\n")
        );
    }

    #[test]
    fn recording_records_and_answers_in_order() {
        let rec = Recording::new([Output { code: Some(7), ..Default::default() }]);
        assert_eq!(rec.run(&Cmd::new("pulumi", ["up"])).unwrap().code, Some(7));
        assert!(rec.run(&Cmd::new("pulumi", ["whoami"])).unwrap().success());
        assert_eq!(
            rec.calls().iter().map(Cmd::display).collect::<Vec<_>>(),
            ["pulumi up", "pulumi whoami"]
        );
    }
}
