//! The load balancer's access log: one JSON object per request, appended to
//! `.orch/local/access.log` by a background task so the request path never waits on the disk.
use serde::Serialize;
use std::path::Path;
use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;

/// One request, as the request path hands it over (formatting happens in the writer task).
#[derive(Debug)]
pub struct Entry {
    pub at: std::time::SystemTime,
    pub client: std::net::IpAddr,
    pub method: hyper::Method,
    pub path: String,
    pub status: u16,
    /// The instance that answered (none when the balancer answered itself).
    pub instance: Option<String>,
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
            ts: chrono::DateTime::<chrono::Utc>::from(self.at).to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            client: self.client.to_string(),
            method: self.method.as_str(),
            path: &self.path,
            status: self.status,
            instance: self.instance.as_deref(),
            retried: self.retried,
            ms: self.micros as f64 / 1e3,
        }
    }
}

/// A cheap handle for the request path; entries are dropped (never blocking) if the writer lags.
#[derive(Debug, Clone)]
pub struct AccessLog {
    tx: Option<mpsc::Sender<Entry>>,
}

impl AccessLog {
    /// No log at all (tests, benchmarks of the bare proxy).
    pub fn disabled() -> Self {
        AccessLog { tx: None }
    }

    /// Append to `path`, creating it; the writer task ends when every handle is dropped.
    pub async fn open(path: &Path) -> std::io::Result<Self> {
        let file = tokio::fs::OpenOptions::new().create(true).append(true).open(path).await?;
        let (tx, mut rx) = mpsc::channel::<Entry>(16_384);
        tokio::spawn(async move {
            let mut out = tokio::io::BufWriter::new(file);
            while let Some(first) = rx.recv().await {
                let mut entry = Some(first);
                while let Some(e) = entry {
                    if let Ok(mut line) = serde_json::to_vec(&e.line()) {
                        line.push(b'\n');
                        if out.write_all(&line).await.is_err() {
                            return;
                        }
                    }
                    entry = rx.try_recv().ok();
                }
                if out.flush().await.is_err() {
                    return;
                }
            }
        });
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
