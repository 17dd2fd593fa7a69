//! The report `status` and `drift` print: one row per check with a level, a one-line summary,
//! detail lines for humans and structured data for `--json`; and the verdict the exit code follows.
use serde::Serialize;
use serde_json::Value;

use crate::config::Target;
use crate::status::{Envelope, Verdict};

/// How a check came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Level {
    /// As it should be.
    Ok,
    /// Worth knowing, not a problem (e.g. a newer image is built but not deployed).
    Note,
    /// Not checked, and why (e.g. the URL is not probed against an emulated cloud).
    Skipped,
    /// Something is wrong: unhealthy (status) or drifted (drift).
    Bad,
    /// The check itself failed (an API call or a command), so the answer is unknown.
    Error,
}

impl Level {
    fn label(self) -> &'static str {
        match self {
            Level::Ok => "ok",
            Level::Note => "note",
            Level::Skipped => "skipped",
            Level::Bad => "BAD",
            Level::Error => "ERROR",
        }
    }
}

/// One check.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Row {
    pub check: &'static str,
    pub level: Level,
    pub summary: String,
    /// Extra lines for the human table (one per instance, per drifted resource...).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub lines: Vec<String>,
    /// Structured data for machines.
    #[serde(skip_serializing_if = "Value::is_null")]
    pub data: Value,
}

impl Row {
    pub(crate) fn new(check: &'static str, level: Level, summary: impl Into<String>) -> Self {
        Row { check, level, summary: summary.into(), lines: vec![], data: Value::Null }
    }
    pub(crate) fn ok(check: &'static str, summary: impl Into<String>) -> Self {
        Row::new(check, Level::Ok, summary)
    }
    pub(crate) fn bad(check: &'static str, summary: impl Into<String>) -> Self {
        Row::new(check, Level::Bad, summary)
    }
    pub(crate) fn error(check: &'static str, summary: impl Into<String>) -> Self {
        Row::new(check, Level::Error, summary)
    }
    pub(crate) fn skipped(check: &'static str, summary: impl Into<String>) -> Self {
        Row::new(check, Level::Skipped, summary)
    }
    pub(crate) fn lines(mut self, lines: Vec<String>) -> Self {
        self.lines = lines;
        self
    }
    pub(crate) fn data(mut self, data: impl Serialize) -> Self {
        self.data = serde_json::to_value(data).unwrap_or(Value::Null);
        self
    }
}

/// A whole report.
#[derive(Debug, Clone)]
pub(crate) struct Report {
    pub env: String,
    /// `status` or `drift`.
    pub kind: &'static str,
    /// `healthy`/`degraded`/`down` for status, `none`/`drift`/`error` for drift.
    pub verdict: Verdict,
    pub rows: Vec<Row>,
}

/// What follows the envelope in an AWS report's `--json`.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Rows<'a> {
    pub rows: &'a [Row],
}

impl Report {
    /// The `--json` document: the envelope every `status --json` starts with, then the rows.
    pub(crate) fn document(&self) -> Envelope<Rows<'_>> {
        Envelope {
            env: self.env.clone(),
            target: Target::Aws,
            kind: self.kind,
            verdict: self.verdict,
            body: Rows { rows: &self.rows },
        }
    }

    /// The worst level among the rows.
    pub(crate) fn worst(rows: &[Row]) -> Level {
        rows.iter().map(|r| r.level).max().unwrap_or(Level::Ok)
    }

    /// The human table: `CHECK  STATE  SUMMARY`, then indented detail lines.
    pub(crate) fn table(&self) -> String {
        let width = self.rows.iter().map(|r| r.check.len()).max().unwrap_or(5).max(5);
        let mut out = format!("{} {}: {}\n", self.kind, self.env, self.verdict);
        for row in &self.rows {
            out.push_str(&format!(
                "  {:width$}  {:7}  {}\n",
                row.check,
                row.level.label(),
                row.summary
            ));
            for line in &row.lines {
                out.push_str(&format!("  {:width$}           {}\n", "", line));
            }
        }
        out.trim_end().to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn worst_level_orders_error_above_bad_above_ok() {
        let rows =
            vec![Row::ok("a", "fine"), Row::bad("b", "drifted"), Row::skipped("c", "not here")];
        assert_eq!(Report::worst(&rows), Level::Bad);
        assert_eq!(Report::worst(&[Row::bad("b", "x"), Row::error("e", "y")]), Level::Error);
        assert_eq!(Report::worst(&[]), Level::Ok);
    }

    #[test]
    fn table_aligns_checks_and_indents_lines() {
        let report = Report {
            env: "dev".into(),
            kind: "status",
            verdict: Verdict::Degraded,
            rows: vec![
                Row::ok("url", "200 in 3 ms"),
                Row::bad("zones", "eu-west-1b has no healthy instance")
                    .lines(vec!["i-1 eu-west-1a".into()]),
            ],
        };
        let text = report.table();
        assert!(text.starts_with("status dev: degraded\n"), "{text}");
        assert!(text.contains("  url    ok       200 in 3 ms"), "{text}");
        assert!(text.contains("  zones  BAD      eu-west-1b"), "{text}");
        assert!(text.ends_with("                 i-1 eu-west-1a"), "{text}");
    }
}
