//! The load balancer's access log: one JSON object per request, appended to
//! `.orch/local/access.log` by a writer thread so the request path never waits on the disk. The
//! request path only queues an entry (no formatting, no wake-up); the thread drains the queue every
//! 20 ms, formats the lines into a buffer and writes them with one system call. The queue is
//! bounded in entries and in bytes ([`QUEUE`], [`QUEUE_BYTES`]): when the writer lags, entries
//! are dropped and counted (a warning names the count). The file rotates at [`Rotation`]'s size:
//! `access.log` becomes `access.log.1`, `.1` becomes `.2`…, and only `keep` old files are kept
//! (`orch logs --access` reads them oldest first, `src/logs/local.rs`).
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{self, SyncSender, TryRecvError};
use std::sync::Arc;
use std::time::Duration;

use super::pool::Target;

/// Entries the queue holds; when the writer lags this far behind, further entries are dropped.
const QUEUE: usize = 65_536;
/// Bytes the queued entries may hold (an entry and its path); beyond, entries are dropped.
pub const QUEUE_BYTES: usize = 16 << 20;
/// How often the writer thread drains the queue.
const PERIOD: Duration = Duration::from_millis(20);

/// When the log file rotates, and how many rotated files are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rotation {
    /// `access.log` is rotated before it would grow beyond this.
    pub max_bytes: u64,
    /// Rotated files kept: `access.log.1` (the newest) to `access.log.<keep>`.
    pub keep: usize,
}

impl Default for Rotation {
    fn default() -> Self {
        Rotation { max_bytes: 64 << 20, keep: 4 }
    }
}

/// The `n`th rotated file of `path` (`access.log.n`).
pub fn rotated(path: &Path, n: usize) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(format!(".{n}"));
    PathBuf::from(name)
}

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

impl Entry {
    /// Append the entry's line: `{"ts","client","method","path","status","instance","retried","ms"}`.
    /// Written field by field — the strings escaped by `serde_json`, the numbers by `itoa`, the date
    /// and time formatted once per second and the client's address once per address in a row
    /// (`Formatter`) — rather than through a `serde` struct with a `chrono` timestamp and an address
    /// string made per line: the writer runs on the cores the request path needs.
    fn write_line(&self, out: &mut Vec<u8>, f: &mut Formatter) {
        let mut n = itoa::Buffer::new();
        out.extend_from_slice(b"{\"ts\":\"");
        f.timestamp(self.at, out);
        out.extend_from_slice(b"\",\"client\":\"");
        out.extend_from_slice(f.client(self.client).as_bytes());
        out.extend_from_slice(b"\",\"method\":");
        let _ = serde_json::to_writer(&mut *out, self.method.as_str());
        out.extend_from_slice(b",\"path\":");
        let _ = serde_json::to_writer(&mut *out, &self.path);
        out.extend_from_slice(b",\"status\":");
        out.extend_from_slice(n.format(self.status).as_bytes());
        out.extend_from_slice(b",\"instance\":");
        match &self.instance {
            Some(t) => {
                let _ = serde_json::to_writer(&mut *out, t.id.as_str());
            }
            None => out.extend_from_slice(b"null"),
        }
        out.extend_from_slice(if self.retried {
            b",\"retried\":true"
        } else {
            b",\"retried\":false"
        });
        out.extend_from_slice(b",\"ms\":");
        out.extend_from_slice(n.format(self.micros / 1000).as_bytes());
        let frac = self.micros % 1000;
        let digit = |d: u64| b'0' + (d % 10) as u8;
        out.extend_from_slice(&[
            b'.',
            digit(frac / 100),
            digit(frac / 10),
            digit(frac),
            b'}',
            b'\n',
        ]);
    }
}

/// What the writer keeps between lines: the current second's `YYYY-MM-DDTHH:MM:SS.` and the last
/// client address with its text.
#[derive(Default)]
struct Formatter {
    second: Option<(u64, String)>,
    client: Option<(std::net::IpAddr, String)>,
}

impl Formatter {
    /// `YYYY-MM-DDTHH:MM:SS.mmmZ` (UTC, milliseconds).
    fn timestamp(&mut self, at: std::time::SystemTime, out: &mut Vec<u8>) {
        let since = at.duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        let secs = since.as_secs();
        if self.second.as_ref().is_none_or(|(s, _)| *s != secs) {
            let whole = chrono::DateTime::<chrono::Utc>::from(
                std::time::UNIX_EPOCH + Duration::from_secs(secs),
            );
            self.second = Some((secs, whole.format("%Y-%m-%dT%H:%M:%S.").to_string()));
        }
        if let Some((_, prefix)) = &self.second {
            out.extend_from_slice(prefix.as_bytes());
        }
        let ms = since.subsec_millis();
        let digit = |d: u32| b'0' + (d % 10) as u8;
        out.extend_from_slice(&[digit(ms / 100), digit(ms / 10), digit(ms), b'Z']);
    }

    fn client(&mut self, ip: std::net::IpAddr) -> &str {
        if self.client.as_ref().is_none_or(|(last, _)| *last != ip) {
            self.client = Some((ip, ip.to_string()));
        }
        self.client.as_ref().map_or("", |(_, text)| text.as_str())
    }
}

/// What the request path and the writer share: the bytes queued and the entries dropped.
#[derive(Debug, Default)]
struct Shared {
    queued: AtomicUsize,
    dropped: AtomicU64,
}

impl Shared {
    /// Room for an entry of `cost` bytes? (It is counted if so, as dropped if not.)
    fn admit(&self, cost: usize, bound: usize) -> bool {
        if self.queued.fetch_add(cost, Ordering::Relaxed) + cost > bound {
            self.queued.fetch_sub(cost, Ordering::Relaxed);
            self.dropped.fetch_add(1, Ordering::Relaxed);
            return false;
        }
        true
    }
}

/// The bytes an entry holds while queued.
fn cost(e: &Entry) -> usize {
    size_of::<Entry>() + e.path.len()
}

/// The log file, rotated at its size.
struct Writer {
    path: PathBuf,
    file: File,
    size: u64,
    rotation: Rotation,
}

impl Writer {
    fn open(path: &Path, rotation: Rotation) -> std::io::Result<Writer> {
        let file = std::fs::OpenOptions::new().create(true).append(true).open(path)?;
        let size = file.metadata()?.len();
        Ok(Writer { path: path.to_path_buf(), file, size, rotation })
    }

    /// Append `buf` (whole lines), rotating first if it would take the file beyond its size.
    fn write(&mut self, buf: &[u8]) -> std::io::Result<()> {
        if self.size > 0 && self.size + buf.len() as u64 > self.rotation.max_bytes {
            self.rotate()?;
        }
        self.file.write_all(buf)?;
        self.size += buf.len() as u64;
        Ok(())
    }

    /// `access.log.k` → `.k+1` (the oldest removed), `access.log` → `.1`, a new `access.log`.
    fn rotate(&mut self) -> std::io::Result<()> {
        let keep = self.rotation.keep;
        if keep == 0 {
            self.file.set_len(0)?;
        } else {
            let _ = std::fs::remove_file(rotated(&self.path, keep));
            for k in (1..keep).rev() {
                let _ = std::fs::rename(rotated(&self.path, k), rotated(&self.path, k + 1));
            }
            std::fs::rename(&self.path, rotated(&self.path, 1))?;
            self.file = std::fs::OpenOptions::new().create(true).append(true).open(&self.path)?;
        }
        self.size = 0;
        Ok(())
    }
}

/// A cheap handle for the request path; entries are dropped (never blocking) if the writer lags.
#[derive(Debug, Clone)]
pub struct AccessLog {
    tx: Option<SyncSender<Entry>>,
    shared: Arc<Shared>,
}

impl AccessLog {
    /// No log at all (tests, benchmarks of the bare proxy).
    pub fn disabled() -> Self {
        AccessLog { tx: None, shared: Arc::default() }
    }

    /// Append to `path`, creating it, rotated at the default size.
    pub async fn open(path: &Path) -> std::io::Result<Self> {
        Self::open_with(path, Rotation::default())
    }

    /// Append to `path`, creating it, rotated as `rotation` says; the writer thread ends (after
    /// writing what is queued) when every handle is dropped.
    pub fn open_with(path: &Path, rotation: Rotation) -> std::io::Result<Self> {
        let mut writer = Writer::open(path, rotation)?;
        let (tx, rx) = mpsc::sync_channel::<Entry>(QUEUE);
        let shared = Arc::new(Shared::default());
        let theirs = shared.clone();
        std::thread::Builder::new().name("access-log".into()).spawn(move || {
            let (mut buf, mut reported) = (Vec::with_capacity(64 * 1024), 0);
            let mut formatter = Formatter::default();
            loop {
                std::thread::sleep(PERIOD);
                let done = loop {
                    match rx.try_recv() {
                        Ok(e) => {
                            theirs.queued.fetch_sub(cost(&e), Ordering::Relaxed);
                            e.write_line(&mut buf, &mut formatter);
                        }
                        Err(TryRecvError::Empty) => break false,
                        Err(TryRecvError::Disconnected) => break true,
                    }
                };
                let dropped = theirs.dropped.load(Ordering::Relaxed);
                if dropped != reported {
                    tracing::warn!(dropped, "access log: the writer lagged, entries dropped");
                    reported = dropped;
                }
                if !buf.is_empty() {
                    if let Err(e) = writer.write(&buf) {
                        tracing::warn!("access log {}: {e}; no more lines", writer.path.display());
                        return;
                    }
                }
                buf.clear();
                if done {
                    return;
                }
            }
        })?;
        Ok(AccessLog { tx: Some(tx), shared })
    }

    pub fn log(&self, entry: Entry) {
        if let Some(tx) = &self.tx {
            let cost = cost(&entry);
            if !self.shared.admit(cost, QUEUE_BYTES) {
                return;
            }
            if tx.try_send(entry).is_err() {
                self.shared.queued.fetch_sub(cost, Ordering::Relaxed);
                self.shared.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    pub fn enabled(&self) -> bool {
        self.tx.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_is_one_json_object_with_the_entrys_fields() {
        let mut f = Formatter::default();
        let at = std::time::UNIX_EPOCH + Duration::from_micros(1_795_000_000_123_456);
        let entry = |path: &str, micros, instance: Option<Arc<Target>>| Entry {
            at,
            client: "10.1.2.3".parse().unwrap(),
            method: hyper::Method::GET,
            path: path.into(),
            status: 200,
            instance,
            retried: false,
            micros,
        };
        let mut out = Vec::new();
        entry("/a\"b\\c\u{1}", 1_234_567, None).write_line(&mut out, &mut f);
        let ip6 = Entry { client: "::1".parse().unwrap(), retried: true, ..entry("/", 7, None) };
        ip6.write_line(&mut out, &mut f);
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<serde_json::Value> =
            text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        assert_eq!(
            lines[0],
            serde_json::json!({"ts": "2026-11-18T11:06:40.123Z", "client": "10.1.2.3",
                "method": "GET", "path": "/a\"b\\c\u{1}", "status": 200, "instance": null,
                "retried": false, "ms": 1234.567})
        );
        assert_eq!(lines[1]["client"], "::1");
        assert_eq!(lines[1]["retried"], true);
        assert_eq!(lines[1]["ms"], 0.007);
        assert!(text.contains(r#""ms":0.007}"#), "{text}");
    }

    #[test]
    fn the_queue_is_bounded_in_bytes_and_counts_drops() {
        let shared = Shared::default();
        assert!(shared.admit(600, 1000));
        assert!(!shared.admit(500, 1000), "600 + 500 > 1000");
        assert!(shared.admit(400, 1000));
        assert_eq!(shared.queued.load(Ordering::Relaxed), 1000);
        assert_eq!(shared.dropped.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn the_file_rotates_at_its_size_and_keeps_a_count() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("access.log");
        std::fs::write(&path, "old\n").unwrap();
        let mut w = Writer::open(&path, Rotation { max_bytes: 10, keep: 2 }).unwrap();
        for line in ["a1234\n", "b1234\n", "c1234\n", "d1234\n", "e12\n", "f\n"] {
            w.write(line.as_bytes()).unwrap();
        }
        let read = |p: &Path| std::fs::read_to_string(p).unwrap();
        assert_eq!(read(&path), "f\n");
        assert_eq!(read(&rotated(&path, 1)), "d1234\ne12\n");
        assert_eq!(read(&rotated(&path, 2)), "c1234\n");
        assert!(!rotated(&path, 3).exists(), "only 2 rotated files are kept");
        // A line larger than the size still goes in whole.
        w.write(&[b'x'; 20]).unwrap();
        assert_eq!(read(&path).len(), 20);
        assert_eq!(read(&rotated(&path, 1)), "f\n");
    }
}
