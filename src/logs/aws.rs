//! An AWS environment's logs: the program's CloudWatch log group [`log_group`] (created by
//! `pulumi/partials/compute.hbs`; the user data runs the container's awslogs driver with the
//! instance id as `awslogs-stream`, so there is one stream per instance, named after it),
//! read with `FilterLogEvents` (startTime in epoch milliseconds, at most 100 `logStreamNames`, pages
//! followed through `nextToken`, which may come with an empty page). Without `--since` the read
//! starts [`DEFAULT_WINDOW`] back, and every page is printed as it arrives (events come in time
//! order), so memory never holds more than a page, whatever the group holds. The stream name
//! stands for the instance; its zone is known when the app's "identity resolved" line (which names
//! it) is in the group. `--follow` polls every [`POLL`], starting each read [`OVERLAP`] before the
//! newest event seen, and skips events already printed by their `eventId` (only those of the last
//! [`OVERLAP`] are remembered).
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
/// How far back the read starts without `--since`.
pub const DEFAULT_WINDOW: chrono::TimeDelta = chrono::TimeDelta::hours(1);

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
}

impl Group {
    pub fn new(sdk: &aws_config::SdkConfig, env: &str, instance: Option<&str>) -> Self {
        Group {
            client: Client::new(sdk),
            name: log_group(env),
            stream: instance.map(str::to_string),
        }
    }

    /// Every event from `start_ms` on (matching `pattern`, a CloudWatch filter pattern), page by
    /// page: `each` gets a page's events as soon as it arrives.
    async fn read(
        &self,
        start_ms: Option<i64>,
        pattern: Option<&str>,
        mut each: impl FnMut(Vec<Event>),
    ) -> Result<(), LogsError> {
        let mut token = None::<String>;
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
            let mut events = Vec::with_capacity(page.events().len());
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
            if !events.is_empty() {
                each(events);
            }
            match page.next_token() {
                Some(t) if token.as_deref() != Some(t) => token = Some(t.to_string()),
                _ => return Ok(()),
            }
        }
    }

    /// The zones the streams' instances announced (their "identity resolved" lines, over the
    /// whole group: an instance may have started long before the window).
    async fn zones(&self) -> Result<BTreeMap<String, String>, LogsError> {
        let mut zones = BTreeMap::new();
        self.read(None, Some("\"identity resolved\""), |page| {
            merge::learn_zones(page.iter().map(|e| &e.line), &mut zones);
        })
        .await?;
        Ok(zones)
    }
}

/// Print the group's lines that pass `filter` (with `requests`, only the app's per-request lines)
/// from `--since` on, or the last [`DEFAULT_WINDOW`], page by page in time order; with `follow`,
/// keep printing new ones until Ctrl-C.
pub async fn show(
    group: Group,
    filter: &Filter,
    requests: bool,
    follow: bool,
    sink: &Sink<'_>,
) -> Result<(), LogsError> {
    let mut zones = group.zones().await?;
    let since = filter.since.unwrap_or_else(|| chrono::Utc::now() - DEFAULT_WINDOW);
    let since = since.timestamp_millis();
    // Follow: the ids printed in the last OVERLAP, not to print them twice.
    let mut seen: HashMap<String, i64> = HashMap::new();
    let mut start = since;
    let mut interrupt = if follow { Some(Interrupt::new()?) } else { None };
    loop {
        let mut newest = None;
        group
            .read(Some(start), None, |page| {
                let mut fresh = Vec::with_capacity(page.len());
                for e in page {
                    if follow {
                        if seen.contains_key(&e.id) {
                            continue;
                        }
                        seen.insert(e.id, e.millis);
                    }
                    newest = newest.max(Some(e.millis));
                    fresh.push(e.line);
                }
                if let Some(newest) = newest.filter(|_| follow) {
                    seen.retain(|_, ms| *ms >= newest - OVERLAP);
                }
                merge::learn_zones(&fresh, &mut zones);
                merge::fill_zones(&mut fresh, &zones);
                fresh.retain(|l| !requests || l.is_request());
                merge::merge(vec![fresh], filter).iter().for_each(|l| sink.emit(l));
            })
            .await?;
        let Some(interrupt) = interrupt.as_mut() else { return Ok(()) };
        if let Some(newest) = newest {
            start = (newest - OVERLAP).max(since);
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
