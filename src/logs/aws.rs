//! An AWS environment's logs: the program's CloudWatch log group [`log_group`] (created by
//! `pulumi/partials/compute.hbs`; the user data runs the container's awslogs driver with the
//! instance id as `awslogs-stream`, so there is one stream per instance, named after it),
//! read with `FilterLogEvents` (startTime in epoch milliseconds, at most 100 `logStreamNames`, pages
//! followed through `nextToken`, which may come with an empty page). The stream name stands for the
//! instance; its zone is known when the app's "identity resolved" line (which names it) is in the
//! group. `--follow` polls every [`POLL`], starting each read [`OVERLAP`] before the newest event
//! seen, and skips events already printed by their `eventId`.
use aws_sdk_cloudwatchlogs::error::DisplayErrorContext;
use aws_sdk_cloudwatchlogs::Client;
use chrono::DateTime;
use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use super::merge::{self, Filter, Line};
use super::{Interrupt, LogsError, Sink};

/// How often `--follow` asks for new events.
pub const POLL: Duration = Duration::from_secs(2);
/// How far before the newest event seen `--follow` asks again: events reach CloudWatch Logs late.
const OVERLAP: i64 = 30_000;

/// The program's log group for `env` (`logGroupName` in pulumi/partials/compute.hbs).
pub fn log_group(env: &str) -> String {
    format!("/orch/{env}/app")
}

/// One event as read: its id, its CloudWatch timestamp (ms) and the line it holds.
struct Event {
    id: String,
    millis: i64,
    line: Line,
}

/// The log group of one environment.
pub struct Group {
    client: Client,
    name: String,
    /// Read only this stream (`--instance`).
    stream: Option<String>,
    zones: BTreeMap<String, String>,
}

impl Group {
    pub fn new(sdk: &aws_config::SdkConfig, env: &str, instance: Option<&str>) -> Self {
        Group {
            client: Client::new(sdk),
            name: log_group(env),
            stream: instance.map(str::to_string),
            zones: BTreeMap::new(),
        }
    }

    /// Every event from `start_ms` on (matching `pattern`, a CloudWatch filter pattern), all pages.
    async fn read(
        &self,
        start_ms: Option<i64>,
        pattern: Option<&str>,
    ) -> Result<Vec<Event>, LogsError> {
        let (mut events, mut token) = (vec![], None::<String>);
        loop {
            let page = self
                .client
                .filter_log_events()
                .log_group_name(&self.name)
                .set_log_stream_names(self.stream.clone().map(|s| vec![s]))
                .set_start_time(start_ms.map(|ms| ms.max(0)))
                .set_filter_pattern(pattern.map(str::to_string))
                .set_next_token(token.clone())
                .send()
                .await
                .map_err(|e| {
                    if e.as_service_error().is_some_and(|s| s.is_resource_not_found_exception()) {
                        LogsError::NoGroup { group: self.name.clone() }
                    } else {
                        LogsError::Aws {
                            group: self.name.clone(),
                            message: DisplayErrorContext(e).to_string(),
                        }
                    }
                })?;
            for e in page.events() {
                let millis = e.timestamp().unwrap_or_default();
                let at = DateTime::from_timestamp_millis(millis).unwrap_or_default();
                let mut line = Line::from_instance(
                    e.message().unwrap_or_default().trim_end(),
                    e.log_stream_name(),
                    at,
                );
                if line.fields.is_none() {
                    line.time = at;
                }
                events.push(Event {
                    id: e.event_id().unwrap_or_default().to_string(),
                    millis,
                    line,
                });
            }
            match page.next_token() {
                Some(t) if token.as_deref() != Some(t) => token = Some(t.to_string()),
                _ => return Ok(events),
            }
        }
    }

    /// Learn the zones the streams' instances announced (their "identity resolved" lines).
    async fn learn_zones(&mut self) -> Result<(), LogsError> {
        let announced = self.read(None, Some("\"identity resolved\"")).await?;
        merge::learn_zones(announced.iter().map(|e| &e.line), &mut self.zones);
        Ok(())
    }
}

/// Print the group's lines that pass `filter` (with `requests`, only the app's per-request lines),
/// in time order; with `follow`, keep printing new ones until Ctrl-C.
pub async fn show(
    mut group: Group,
    filter: &Filter,
    requests: bool,
    follow: bool,
    sink: &Sink<'_>,
) -> Result<(), LogsError> {
    group.learn_zones().await?;
    let since = filter.since.map(|t| t.timestamp_millis());
    let mut seen: HashMap<String, i64> = HashMap::new();
    let mut start = since;
    let mut interrupt = if follow { Some(Interrupt::new()?) } else { None };
    loop {
        let events: Vec<Event> = group
            .read(start, None)
            .await?
            .into_iter()
            .filter(|e| !seen.contains_key(&e.id))
            .collect();
        let newest = events.iter().map(|e| e.millis).max();
        seen.extend(events.iter().map(|e| (e.id.clone(), e.millis)));
        let mut lines: Vec<Line> = events.into_iter().map(|e| e.line).collect();
        merge::learn_zones(&lines, &mut group.zones);
        merge::fill_zones(&mut lines, &group.zones);
        lines.retain(|l| !requests || l.is_request());
        merge::merge(vec![lines], filter).iter().for_each(|l| sink.emit(l));
        let Some(interrupt) = interrupt.as_mut() else { return Ok(()) };
        if let Some(newest) = newest {
            let from = (newest - OVERLAP).max(since.unwrap_or(0));
            seen.retain(|_, ms| *ms >= from);
            start = Some(from);
        }
        if sink.closed() || interrupt.within(POLL).await {
            return Ok(());
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_group_is_the_programs() {
        let template = std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("pulumi/partials/compute.hbs"),
        )
        .unwrap();
        let name = super::log_group("{{env}}");
        assert!(template.contains(&format!("logGroupName: {name}")), "{name} not in compute.hbs");
    }
}
