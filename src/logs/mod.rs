//! `orch logs`: the instances' logs (or the load balancer's access log), merged in time order and
//! printed one line each, prefixed with instance and zone — from the files of the local tier
//! ([`local`]) or from the environment's CloudWatch log group ([`aws`]). [`merge`] holds the pure
//! part both share: parsing a line, filtering and ordering. Whatever an instance wrote reaches the
//! terminal with its control characters escaped ([`escape_controls`], [`escape_json`]): an escape
//! sequence in a log line is shown, never obeyed.
pub mod aws;
pub mod local;
pub mod merge;

use chrono::{DateTime, Utc};
use serde::Serialize;
use std::borrow::Cow;
use std::fmt::Write as _;
use std::time::Duration;
use tokio::signal::unix::{signal, Signal, SignalKind};

use crate::printer::Printer;
pub use merge::{Filter, Line, Source};

/// Failures of `orch logs`; all exit 2.
#[derive(Debug, thiserror::Error)]
pub enum LogsError {
    #[error("--since `{value}`: {reason}")]
    Since { value: String, reason: String },
    #[error("unknown zone `{zone}`; the zones are: {zones}")]
    UnknownZone { zone: String, zones: String },
    #[error("{what}: {source}")]
    Io { what: String, source: std::io::Error },
    #[error("the log group `{group}` does not exist")]
    NoGroup { group: String },
    #[error("reading the log group `{group}`: {message}")]
    Aws { group: String, message: String },
}

impl LogsError {
    /// The next thing to try.
    pub fn hint(&self) -> String {
        match self {
            LogsError::Since { .. } => {
                "give a duration (`10m`, `1h30m`, `2days`) or an RFC 3339 time (`2026-11-30T12:00:00Z`)"
                    .into()
            }
            LogsError::UnknownZone { .. } => "use one of the zones of the stack file".into(),
            LogsError::Io { .. } => "check the permissions of the tier's state directory".into(),
            LogsError::NoGroup { .. } => {
                "deploy the environment first (`orch up`); its program creates the log group".into()
            }
            LogsError::Aws { .. } => {
                "check AWS credentials and region (`aws sts get-caller-identity`), and that the role may call logs:FilterLogEvents".into()
            }
        }
    }
}

/// The start of `--since`: a duration back from `now` (`10m`, `1h30m`) or an RFC 3339 time.
pub fn parse_since(value: &str, now: DateTime<Utc>) -> Result<DateTime<Utc>, LogsError> {
    let bad = |reason: String| LogsError::Since { value: value.into(), reason };
    if let Ok(time) = humantime::parse_rfc3339_weak(value) {
        return Ok(time.into());
    }
    let back = humantime::parse_duration(value).map_err(|e| bad(e.to_string()))?;
    let back = chrono::Duration::from_std(back).map_err(|e| bad(e.to_string()))?;
    now.checked_sub_signed(back).ok_or_else(|| bad("too far back".into()))
}

/// Where the lines go: the printer's stdout, as text (coloured on a terminal) or JSON lines.
pub struct Sink<'a> {
    printer: &'a Printer,
    json: bool,
    colour: bool,
    /// The stack's zones, in order: each gets its own colour.
    zones: Vec<String>,
}

impl<'a> Sink<'a> {
    pub fn new(printer: &'a Printer, json: bool, zones: Vec<String>) -> Self {
        Sink { printer, json, colour: !json && printer.data_is_terminal(), zones }
    }

    /// True once stdout's reader has gone away (`orch logs -f | head`): following can stop.
    pub fn closed(&self) -> bool {
        self.printer.stdout_closed()
    }

    pub fn emit(&self, line: &Line) {
        if self.json {
            if let Ok(text) = serde_json::to_string(&JsonLine::from(line)) {
                self.printer.data(&escape_json(&text));
            }
        } else {
            let colour = self.colour.then(|| zone_colour(&self.zones, line.zone.as_deref()));
            self.printer.data(&merge::render(line, colour));
        }
    }
}

/// Is `c` a character a terminal may act on (C0 but tab, DEL, C1)?
fn unsafe_control(c: char) -> bool {
    c.is_control() && c != '\t'
}

/// `text` with every control character but tab written out (`\x1b`, `\n`, `\u{9b}`); borrowed
/// when there is none.
pub fn escape_controls(text: &str) -> Cow<'_, str> {
    if !text.contains(unsafe_control) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c if (c as u32) < 0x80 && unsafe_control(c) => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c if unsafe_control(c) => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// A serialised JSON text with the control characters serde_json leaves raw (DEL and C1; it
/// escapes C0 itself) written as `\u` escapes: the same JSON value, nothing a terminal acts on.
pub fn escape_json(json: &str) -> Cow<'_, str> {
    if !json.contains(unsafe_control) {
        return Cow::Borrowed(json);
    }
    let mut out = String::with_capacity(json.len() + 8);
    for c in json.chars() {
        if unsafe_control(c) {
            // Outside strings JSON has only ASCII punctuation and whitespace: c is in a string.
            let _ = write!(out, "\\u{:04x}", c as u32);
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// ANSI colours for the zones, by their position in the stack file (none for an unknown zone).
fn zone_colour(zones: &[String], zone: Option<&str>) -> &'static str {
    const COLOURS: [&str; 4] = ["\x1b[36m", "\x1b[35m", "\x1b[33m", "\x1b[32m"];
    zone.and_then(|z| zones.iter().position(|k| k == z))
        .map(|i| COLOURS[i % COLOURS.len()])
        .unwrap_or("\x1b[37m")
}

/// One line of `--json` output.
#[derive(Serialize)]
struct JsonLine<'a> {
    time: String,
    instance: Option<&'a str>,
    zone: Option<&'a str>,
    source: Source,
    message: &'a str,
    /// The line's own JSON object, when it was one.
    #[serde(skip_serializing_if = "Option::is_none")]
    fields: Option<&'a serde_json::Value>,
}

impl<'a> From<&'a Line> for JsonLine<'a> {
    fn from(l: &'a Line) -> Self {
        JsonLine {
            time: merge::timestamp(l.time),
            instance: l.instance.as_deref(),
            zone: l.zone.as_deref(),
            source: l.source,
            message: &l.message,
            fields: l.fields.as_ref(),
        }
    }
}

/// Ctrl-C (SIGINT) or SIGTERM, listened for from the start of `--follow` so none is missed
/// between two polls.
pub struct Interrupt {
    int: Signal,
    term: Signal,
}

impl Interrupt {
    pub fn new() -> Result<Self, LogsError> {
        let io = |source| LogsError::Io { what: "listening for Ctrl-C".into(), source };
        Ok(Interrupt {
            int: signal(SignalKind::interrupt()).map_err(io)?,
            term: signal(SignalKind::terminate()).map_err(io)?,
        })
    }

    /// Wait `period`; true if interrupted meanwhile.
    pub async fn within(&mut self, period: Duration) -> bool {
        tokio::select! {
            _ = self.int.recv() => true,
            _ = self.term.recv() => true,
            () = tokio::time::sleep(period) => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_takes_a_duration_or_a_time() {
        let now: DateTime<Utc> = "2026-11-30T12:00:00Z".parse().unwrap();
        assert_eq!(parse_since("10m", now).unwrap().to_rfc3339(), "2026-11-30T11:50:00+00:00");
        assert_eq!(parse_since("1h30m", now).unwrap(), parse_since("1h 30m", now).unwrap());
        assert_eq!(parse_since("2days", now).unwrap().to_rfc3339(), "2026-11-28T12:00:00+00:00");
        assert_eq!(parse_since("1h 30m", now).unwrap().to_rfc3339(), "2026-11-30T10:30:00+00:00");
        assert_eq!(
            parse_since("2026-11-29T08:00:00Z", now).unwrap().to_rfc3339(),
            "2026-11-29T08:00:00+00:00"
        );
        let err = parse_since("10x", now).unwrap_err();
        assert!(matches!(err, LogsError::Since { .. }), "{err}");
        assert!(err.to_string().contains("10x"), "{err}");
    }

    #[test]
    fn control_characters_are_written_out() {
        assert!(matches!(escape_controls("plain\ttext é"), Cow::Borrowed(_)));
        assert_eq!(
            escape_controls("a\x1b]0;pwned\x07b\r\nc\u{9b}31md\x7f"),
            "a\\x1b]0;pwned\\x07b\\r\\nc\\u{9b}31md\\x7f"
        );
        let value = serde_json::json!({"message": "x\u{9b}2J\x1b[31m\x7fy", "k": ["\u{85}"]});
        let json = serde_json::to_string(&value).unwrap();
        let safe = escape_json(&json);
        assert!(!safe.contains(unsafe_control), "{safe}");
        assert_eq!(serde_json::from_str::<serde_json::Value>(&safe).unwrap(), value);
    }

    #[test]
    fn zones_get_colours_by_position() {
        let zones = vec!["a".to_string(), "b".to_string()];
        assert_ne!(zone_colour(&zones, Some("a")), zone_colour(&zones, Some("b")));
        assert_eq!(zone_colour(&zones, None), zone_colour(&zones, Some("c")));
    }
}
