//! The load balancer's access log: one JSON object per request, appended to
//! `.orch/local/access.log` by a writer thread so the request path never waits on the disk. The
//! request path only queues an entry (no formatting, no wake-up); the thread drains the queue every
//! 20 ms, formats the lines into a buffer and writes them with one system call.
use serde::Serialize;
use std::io::Write;
use std::path::Path;
use std::sync::mpsc::{self, SyncSender, TryRecvError};
use std::sync::Arc;
use std::time::Duration;

use super::pool::Target;

/// Entries the queue holds; when the writer lags this far behind, further entries are dropped.
const QUEUE: usize = 65_536;
/// How often the writer thread drains the queue.
const PERIOD: Duration = Duration::from_millis(20);

/// One request, as the request path hands it over (formatting happens in the writer thread).
#[derive(Debug)]
pub struct Entry {
    pub at: std::time::SystemTime,
    pub client: std::net::IpAddr,
    pub method: hyper::Method,
    pub path: String,
    pub status: u16,
    /// The instance that answered (none when the balancer answered itself).
    pub instance: Option<Arc<Target>>,
    pub retried: bool,
    pub micros: u64,
}

/// One line of the log.
#[derive(Debug, Serialize)]
struct Line<'a> {
    ts: String,
    client: String,
    method: &'a str,
    path: &'a str,
    status: u16,
    instance: Option<&'a str>,
    retried: bool,
    ms: f64,
}

impl Entry {
    fn line(&self) -> Line<'_> {
        Line {
            ts: chrono::DateTime::<chrono::Utc>::from(self.at)
                .to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            client: self.client.to_string(),
            method: self.method.as_str(),
            path: &self.path,
            status: self.status,
            instance: self.instance.as_deref().map(|t| t.id.as_str()),
            retried: self.retried,
            ms: self.micros as f64 / 1e3,
        }
    }
}

/// A cheap handle for the request path; entries are dropped (never blocking) if the writer lags.
#[derive(Debug, Clone)]
pub struct AccessLog {
    tx: Option<SyncSender<Entry>>,
}

impl AccessLog {
    /// No log at all (tests, benchmarks of the bare proxy).
    pub fn disabled() -> Self {
        AccessLog { tx: None }
    }

    /// Append to `path`, creating it; the writer thread ends (after writing what is queued) when
    /// every handle is dropped.
    pub async fn open(path: &Path) -> std::io::Result<Self> {
        let mut file = std::fs::OpenOptions::new().create(true).append(true).open(path)?;
        let (tx, rx) = mpsc::sync_channel::<Entry>(QUEUE);
        std::thread::Builder::new().name("access-log".into()).spawn(move || {
            let mut buf = Vec::with_capacity(64 * 1024);
            loop {
                std::thread::sleep(PERIOD);
                let done = loop {
                    match rx.try_recv() {
                        Ok(e) => {
                            if serde_json::to_writer(&mut buf, &e.line()).is_ok() {
                                buf.push(b'\n');
                            }
                        }
                        Err(TryRecvError::Empty) => break false,
                        Err(TryRecvError::Disconnected) => break true,
                    }
                };
                if !buf.is_empty() && file.write_all(&buf).is_err() {
                    return;
                }
                buf.clear();
                if done {
                    return;
                }
            }
        })?;
        Ok(AccessLog { tx: Some(tx) })
    }

    pub fn log(&self, entry: Entry) {
        if let Some(tx) = &self.tx {
            let _ = tx.try_send(entry);
        }
    }

    pub fn enabled(&self) -> bool {
        self.tx.is_some()
    }
}
