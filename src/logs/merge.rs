//! The pure part of `orch logs`: a [`Line`] parsed from what an instance or the load balancer
//! wrote, the [`Filter`] of `--since`/`--instance`/`--zone`, [`merge`] into time order, zones learned
//! from the app's own "identity resolved" line, the text rendering, and the [`Holdback`] that keeps
//! `--follow` output in order across files written at slightly different moments.
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use std::collections::BTreeMap;

use super::LogsError;

/// Where a line comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    /// An instance's own output (the app's JSON log lines).
    Instance,
    /// The load balancer's access log.
    Access,
}

/// One log line, whatever its source.
#[derive(Debug, Clone, PartialEq)]
pub struct Line {
    pub time: DateTime<Utc>,
    pub instance: Option<String>,
    pub zone: Option<String>,
    pub source: Source,
    /// The line as text (a JSON line rendered as `LEVEL message key=value…`).
    pub message: String,
    /// The line's JSON object, when it was one.
    pub fields: Option<Value>,
}

/// The app's fields that the prefix or the message already show.
const SHOWN: [&str; 5] = ["timestamp", "level", "message", "target", "instance_id"];

impl Line {
    /// A line an instance wrote: the app's JSON (its time from `timestamp`), or plain text at `at`.
    pub fn from_instance(raw: &str, instance: Option<&str>, at: DateTime<Utc>) -> Line {
        let fields = serde_json::from_str::<Value>(raw).ok().filter(Value::is_object);
        let time = fields.as_ref().and_then(|f| time_of(&f["timestamp"])).unwrap_or(at);
        let message = match &fields {
            Some(f) => {
                let mut text = [&f["level"], &f["message"]]
                    .iter()
                    .filter_map(|v| v.as_str())
                    .collect::<Vec<_>>()
                    .join(" ");
                for (k, v) in f.as_object().into_iter().flatten() {
                    if !SHOWN.contains(&k.as_str()) {
                        text.push_str(&format!(" {k}={}", plain(v)));
                    }
                }
                text
            }
            None => raw.to_string(),
        };
        Line {
            time,
            instance: instance.map(str::to_string),
            zone: None,
            source: Source::Instance,
            message,
            fields,
        }
    }

    /// A line of the load balancer's access log (`src/local/lb/accesslog.rs`); `None` if it is not one.
    pub fn from_access(raw: &str) -> Option<Line> {
        let f: Value = serde_json::from_str(raw).ok()?;
        let time = time_of(&f["ts"])?;
        let mut message = format!(
            "{} {} {} {}ms client={}",
            f["method"].as_str().unwrap_or("-"),
            f["path"].as_str().unwrap_or("-"),
            f["status"],
            f["ms"],
            f["client"].as_str().unwrap_or("-"),
        );
        if f["retried"] == Value::Bool(true) {
            message.push_str(" retried");
        }
        Some(Line {
            time,
            instance: f["instance"].as_str().map(str::to_string),
            zone: None,
            source: Source::Access,
            message,
            fields: Some(f),
        })
    }

    /// The zone the app announced in this line (its "identity resolved" line), if any.
    pub fn announced_zone(&self) -> Option<&str> {
        self.fields.as_ref()?.get("availability_zone")?.as_str()
    }

    /// Is this the app's own per-request line (target `app::access`)?
    pub fn is_request(&self) -> bool {
        self.fields.as_ref().is_some_and(|f| f["target"] == "app::access")
    }
}

fn time_of(v: &Value) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(v.as_str()?).ok().map(|t| t.with_timezone(&Utc))
}

/// A JSON value as it reads in `key=value`: strings without quotes unless they hold a space.
fn plain(v: &Value) -> String {
    match v.as_str() {
        Some(s) if !s.is_empty() && !s.contains(char::is_whitespace) => s.to_string(),
        _ => v.to_string(),
    }
}

/// `--since`, `--instance` and `--zone`.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub since: Option<DateTime<Utc>>,
    pub instance: Option<String>,
    pub zone: Option<String>,
}

impl Filter {
    /// The filter, refusing a zone that is not one of `zones`.
    pub fn new(
        since: Option<DateTime<Utc>>,
        instance: Option<String>,
        zone: Option<String>,
        zones: &[String],
    ) -> Result<Filter, LogsError> {
        if let Some(z) = zone.as_ref().filter(|z| !zones.contains(z)) {
            return Err(LogsError::UnknownZone { zone: z.clone(), zones: zones.join(", ") });
        }
        Ok(Filter { since, instance, zone })
    }

    /// Does `line` pass? (A line of an unknown zone never passes `--zone`.)
    pub fn keeps(&self, line: &Line) -> bool {
        self.since.is_none_or(|s| line.time >= s)
            && self.instance.as_ref().is_none_or(|i| line.instance.as_ref() == Some(i))
            && self.zone.as_ref().is_none_or(|z| line.zone.as_ref() == Some(z))
    }
}

/// The zone each instance announced, learned from `lines`.
pub fn learn_zones<'a>(
    lines: impl IntoIterator<Item = &'a Line>,
    zones: &mut BTreeMap<String, String>,
) {
    for l in lines {
        if let (Some(i), Some(z)) = (&l.instance, l.announced_zone()) {
            zones.insert(i.clone(), z.to_string());
        }
    }
}

/// Give each line without a zone the zone of its instance, when known.
pub fn fill_zones(lines: &mut [Line], zones: &BTreeMap<String, String>) {
    for l in lines.iter_mut().filter(|l| l.zone.is_none()) {
        l.zone = l.instance.as_ref().and_then(|i| zones.get(i)).cloned();
    }
}

/// The lines of every source that pass `filter`, in time order (lines of the same instant keep
/// their order within their source).
pub fn merge(sources: Vec<Vec<Line>>, filter: &Filter) -> Vec<Line> {
    let mut all: Vec<Line> = sources.into_iter().flatten().filter(|l| filter.keeps(l)).collect();
    all.sort_by_key(|l| l.time);
    all
}

/// RFC 3339 in UTC to the millisecond, as every line prints its time.
pub fn timestamp(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// `time instance zone message`; `-` for what is unknown; instance and zone in `colour` if given.
/// What the line carries has its control characters written out (`super::escape_controls`).
pub fn render(line: &Line, colour: Option<&str>) -> String {
    use super::escape_controls as esc;
    let instance = esc(line.instance.as_deref().unwrap_or("-"));
    let zone = esc(line.zone.as_deref().unwrap_or("-"));
    let (time, message) = (timestamp(line.time), esc(&line.message));
    match colour {
        Some(c) => format!("\x1b[2m{time}\x1b[0m {c}{instance:<19} {zone}\x1b[0m {message}"),
        None => format!("{time} {instance:<19} {zone} {message}"),
    }
}

/// Lines read by `--follow` wait here until they are `hold` old, so that a line another file
/// received a moment later but stamped earlier is still printed before them.
#[derive(Debug, Default)]
pub struct Holdback {
    pending: Vec<Line>,
}

impl Holdback {
    pub fn push(&mut self, lines: impl IntoIterator<Item = Line>) {
        self.pending.extend(lines);
    }

    /// The lines stamped at least `hold` before `now`, in time order; the rest stay.
    pub fn ready(&mut self, now: DateTime<Utc>, hold: chrono::Duration) -> Vec<Line> {
        let cut = now - hold;
        let (mut out, keep): (Vec<Line>, Vec<Line>) =
            std::mem::take(&mut self.pending).into_iter().partition(|l| l.time <= cut);
        self.pending = keep;
        out.sort_by_key(|l| l.time);
        out
    }

    /// Everything left, in time order.
    pub fn drain(&mut self) -> Vec<Line> {
        let mut out = std::mem::take(&mut self.pending);
        out.sort_by_key(|l| l.time);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    fn app(ts: &str, instance: &str, message: &str) -> Line {
        let raw = format!(
            r#"{{"timestamp":"{ts}","level":"INFO","message":"{message}","target":"app"}}"#
        );
        Line::from_instance(&raw, Some(instance), at("2000-01-01T00:00:00Z"))
    }

    #[test]
    fn app_lines_take_their_time_and_read_as_text() {
        let raw = r#"{"timestamp":"2026-11-30T12:00:00.123456Z","level":"INFO","message":"identity resolved","instance_id":"i-1","availability_zone":"local-a","source":"env","target":"app::identity"}"#;
        let l = Line::from_instance(raw, Some("i-1"), at("2000-01-01T00:00:00Z"));
        assert_eq!(l.time, at("2026-11-30T12:00:00.123456Z"));
        assert_eq!(l.message, "INFO identity resolved availability_zone=local-a source=env");
        assert_eq!(l.announced_zone(), Some("local-a"));
        assert!(!l.is_request());
        // Plain text (a panic, say) keeps its text and takes the time it is given.
        let p =
            Line::from_instance("thread 'main' panicked", Some("i-1"), at("2026-01-01T00:00:00Z"));
        assert_eq!(
            (p.time, p.message.as_str()),
            (at("2026-01-01T00:00:00Z"), "thread 'main' panicked")
        );
        assert!(p.fields.is_none());
    }

    #[test]
    fn access_lines_name_request_and_instance() {
        let raw = r#"{"ts":"2026-11-30T12:00:01.000Z","client":"127.0.0.1","method":"GET","path":"/x?y=1","status":200,"instance":"i-2","retried":false,"ms":1.5}"#;
        let l = Line::from_access(raw).unwrap();
        assert_eq!(l.message, "GET /x?y=1 200 1.5ms client=127.0.0.1");
        assert_eq!((l.instance.as_deref(), l.source), (Some("i-2"), Source::Access));
        assert!(Line::from_access("not json").is_none());
    }

    #[test]
    fn merge_orders_filters_and_fills_zones() {
        let mut a = vec![
            app("2026-11-30T12:00:00Z", "i-a", "identity resolved"),
            app("2026-11-30T12:00:03Z", "i-a", "three"),
        ];
        a[0].fields.as_mut().unwrap()["availability_zone"] = "za".into();
        let b = vec![
            app("2026-11-30T12:00:01Z", "i-b", "one"),
            app("2026-11-30T12:00:02Z", "i-b", "two"),
        ];
        let mut zones = BTreeMap::new();
        learn_zones(a.iter().chain(&b), &mut zones);
        let mut all = vec![a, b];
        for source in &mut all {
            fill_zones(source, &zones);
        }
        let text = |ls: &[Line]| ls.iter().map(|l| l.message.clone()).collect::<Vec<_>>();
        let merged = merge(all.clone(), &Filter::default());
        assert_eq!(text(&merged), ["INFO identity resolved", "INFO one", "INFO two", "INFO three"]);
        let zones_known = vec!["za".to_string(), "zb".to_string()];
        let only_a = Filter::new(None, None, Some("za".into()), &zones_known).unwrap();
        assert_eq!(text(&merge(all.clone(), &only_a)), ["INFO identity resolved", "INFO three"]);
        // i-b never announced its zone: it does not pass --zone zb.
        let only_b = Filter::new(None, None, Some("zb".into()), &zones_known).unwrap();
        assert!(merge(all.clone(), &only_b).is_empty());
        let since = Filter { since: Some(at("2026-11-30T12:00:02Z")), ..Filter::default() };
        assert_eq!(text(&merge(all.clone(), &since)), ["INFO two", "INFO three"]);
        let one = Filter { instance: Some("i-b".into()), ..Filter::default() };
        assert_eq!(text(&merge(all, &one)), ["INFO one", "INFO two"]);
        assert!(matches!(
            Filter::new(None, None, Some("zz".into()), &zones_known),
            Err(LogsError::UnknownZone { .. })
        ));
    }

    #[test]
    fn render_prefixes_instance_and_zone() {
        let mut l = app("2026-11-30T12:00:00Z", "i-0123456789abcdef0", "hello");
        assert_eq!(render(&l, None), "2026-11-30T12:00:00.000Z i-0123456789abcdef0 - INFO hello");
        l.zone = Some("local-a".into());
        assert!(render(&l, Some("\x1b[36m")).contains("\x1b[36mi-0123456789abcdef0 local-a\x1b[0m"));
        // What an instance wrote cannot colour (or retitle, or clear) the terminal.
        let evil = Line::from_instance("\x1b[2J\x1b]0;x\x07", Some("i-\x1b[31m"), l.time);
        let text = render(&evil, None);
        assert!(!text.contains('\x1b') && !text.contains('\x07'), "{text:?}");
        let expected = format!("{:<19} - \\x1b[2J\\x1b]0;x\\x07", "i-\\x1b[31m");
        assert!(text.ends_with(&expected), "{text:?}");
    }

    #[test]
    fn holdback_releases_old_lines_in_order() {
        let mut h = Holdback::default();
        h.push([
            app("2026-11-30T12:00:02Z", "i-a", "late"),
            app("2026-11-30T12:00:01Z", "i-b", "early"),
        ]);
        h.push([app("2026-11-30T12:00:05Z", "i-a", "new")]);
        let ready = h.ready(at("2026-11-30T12:00:04Z"), chrono::Duration::seconds(1));
        assert_eq!(
            ready.iter().map(|l| l.message.as_str()).collect::<Vec<_>>(),
            ["INFO early", "INFO late"]
        );
        assert_eq!(h.drain().len(), 1);
    }
}
