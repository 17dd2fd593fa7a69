//! Structured JSON logs on stdout, one object per line, that never block the server.
//!
//! Every line — a `tracing` event formatted by `tracing-subscriber`'s JSON formatter, or an access-log
//! line (target `app::access`) — is put on a bounded queue ([`init`]'s `queue_lines`) that one writer
//! thread drains into a 64 KiB buffer on stdout. When stdout stalls (a full pipe, a log driver that
//! stopped reading) the queue fills and further lines are **dropped and counted** instead of
//! blocking a request: [`dropped_lines`] is the total, and once the writer moves again it writes a
//! `log lines dropped` warning with the count (at most one per second). The writer flushes at once
//! after a line that is not an access-log line (or is WARN and above), else every 100 ms, so a busy
//! instance makes a few `write(2)` calls per 100 ms instead of one per request. Nor is the writer
//! woken per line: it drains the queue every 10 ms and is woken at once only for a line to flush
//! now, so a request costs no thread wake-up (a futex wake and a context switch each, measured
//! as a quarter of the app's CPU under `scripts/bench-app.sh` when every line woke it).
//!
//! The access log is the hot path, so a request only queues an [`Access`] record — its time,
//! method, path, status and latency, and a reference to whatever names the instance — and the
//! writer thread formats it, serializing a borrowed struct with `serde_json` straight into its
//! buffer (no field visitors, no intermediate map or line buffer; the timestamp by `humantime`). It
//! honours `LOG_LEVEL` through `tracing::enabled!` ([`access_enabled`]).

use std::io::{self, BufWriter, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TryRecvError, TrySendError};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant, SystemTime};

use tracing_subscriber::fmt::MakeWriter;

/// Target of the per-request access log.
pub const ACCESS_TARGET: &str = "app::access";
/// Lines the queue holds by default before it drops.
pub const DEFAULT_QUEUE_LINES: usize = 16_384;
/// How often buffered access-log lines are written out.
const FLUSH_EVERY: Duration = Duration::from_millis(100);
/// How often the writer drains the queue when nobody wakes it.
const DRAIN_EVERY: Duration = Duration::from_millis(10);
/// At most one `log lines dropped` warning per this interval.
const REPORT_EVERY: Duration = Duration::from_secs(1);

enum Msg {
    /// A complete line (with its newline); `immediate`: flush right after it.
    Line { bytes: Vec<u8>, immediate: bool },
    /// An access-log line, formatted by the writer.
    Access(Access),
    /// Write out everything queued before this, then answer.
    Flush(SyncSender<()>),
}

struct Queue {
    tx: SyncSender<Msg>,
    dropped: Arc<AtomicU64>,
    /// The writer thread, unparked for lines to flush now and for [`Queue::flush`].
    writer: Option<std::thread::Thread>,
}

impl Queue {
    /// A queue of `lines` lines and its writer thread, writing to `out`.
    fn start(lines: usize, out: impl Write + Send + 'static) -> Queue {
        let (tx, rx) = mpsc::sync_channel(lines.max(1));
        let dropped = Arc::new(AtomicU64::new(0));
        let counter = dropped.clone();
        let spawned = std::thread::Builder::new()
            .name("log-writer".into())
            .spawn(move || writer(rx, out, &counter));
        let writer = match spawned {
            Ok(handle) => Some(handle.thread().clone()),
            Err(e) => {
                eprintln!("app: cannot start the log writer thread: {e}");
                None
            }
        };
        Queue { tx, dropped, writer }
    }

    fn wake(&self) {
        if let Some(t) = &self.writer {
            t.unpark();
        }
    }

    /// Queue one line; drop and count it when the queue is full. Only a line to flush now wakes
    /// the writer; the others wait for its next drain (at most [`DRAIN_EVERY`]).
    fn push(&self, bytes: Vec<u8>, immediate: bool) {
        if self.tx.try_send(Msg::Line { bytes, immediate }).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        } else if immediate {
            self.wake();
        }
    }

    /// Queue one access record (never flushed at once); drop and count it when the queue is full.
    fn push_access(&self, record: Access) {
        if self.tx.try_send(Msg::Access(record)).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Wait until everything queued before is written out, at most `limit`.
    fn flush(&self, limit: Duration) {
        let (ack_tx, ack_rx) = mpsc::sync_channel(1);
        let deadline = Instant::now() + limit;
        let mut msg = Msg::Flush(ack_tx);
        loop {
            match self.tx.try_send(msg) {
                Ok(()) => break,
                Err(TrySendError::Full(m)) if Instant::now() < deadline => {
                    msg = m;
                    self.wake();
                    std::thread::sleep(Duration::from_millis(10));
                }
                Err(_) => return,
            }
        }
        self.wake();
        let _ = ack_rx.recv_timeout(deadline.saturating_duration_since(Instant::now()));
    }
}

static QUEUE: OnceLock<Queue> = OnceLock::new();

fn queue() -> &'static Queue {
    QUEUE.get_or_init(|| Queue::start(DEFAULT_QUEUE_LINES, io::stdout()))
}

/// Log lines dropped since start because the queue was full.
pub fn dropped_lines() -> u64 {
    QUEUE.get().map_or(0, |q| q.dropped.load(Ordering::Relaxed))
}

/// The writer thread: drain the queue into `out` every [`DRAIN_EVERY`] (or when woken), flush as
/// documented above, report drops.
fn writer(rx: Receiver<Msg>, out: impl Write, dropped: &AtomicU64) {
    let mut out = BufWriter::with_capacity(64 * 1024, out);
    let mut last_flush = Instant::now();
    let mut reported = 0u64;
    let mut last_report: Option<Instant> = None;
    let mut stamp = Stamp::default();
    loop {
        let mut flush_now = false;
        let mut closed = false;
        loop {
            match rx.try_recv() {
                Ok(Msg::Line { bytes, immediate }) => {
                    let _ = out.write_all(&bytes);
                    if immediate {
                        // Right after it, before the rest of the queue (a stalled stdout then
                        // holds the writer here and the queue's bound applies at once).
                        let _ = out.flush();
                        last_flush = Instant::now();
                    }
                }
                Ok(Msg::Access(record)) => {
                    let _ = record.write_line(&mut out, &mut stamp);
                }
                Ok(Msg::Flush(ack)) => {
                    let _ = out.flush();
                    last_flush = Instant::now();
                    let _ = ack.try_send(());
                }
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => {
                    closed = true;
                    break;
                }
            }
        }
        let total = dropped.load(Ordering::Relaxed);
        if total > reported && last_report.is_none_or(|t| t.elapsed() >= REPORT_EVERY) {
            let _ = out.write_all(&dropped_line(total - reported, total));
            (reported, last_report, flush_now) = (total, Some(Instant::now()), true);
        }
        if flush_now || last_flush.elapsed() >= FLUSH_EVERY {
            let _ = out.flush();
            last_flush = Instant::now();
        }
        if closed {
            break;
        }
        std::thread::park_timeout(DRAIN_EVERY);
    }
    let _ = out.flush();
}

/// The warning line about `n` dropped lines (`total` since start).
fn dropped_line(n: u64, total: u64) -> Vec<u8> {
    let line = serde_json::json!({
        "timestamp": humantime::format_rfc3339_micros(SystemTime::now()).to_string(),
        "level": "WARN",
        "message": "log lines dropped: stdout did not keep up and the log queue was full",
        "dropped": n,
        "dropped_total": total,
        "target": "app::logging",
    });
    let mut bytes = line.to_string().into_bytes();
    bytes.push(b'\n');
    bytes
}

/// Write out queued log lines now, waiting at most 2 s (called at shutdown; a stalled stdout
/// must not hold the exit).
pub fn flush() {
    if let Some(q) = QUEUE.get() {
        q.flush(Duration::from_secs(2));
    }
}

/// `MakeWriter` over the log queue.
#[derive(Debug, Clone, Copy, Default)]
pub struct QueuedStdout;

/// One log line being formatted; queued when dropped.
pub struct LineWriter {
    bytes: Vec<u8>,
    immediate: bool,
}

impl Write for LineWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.bytes.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for LineWriter {
    fn drop(&mut self) {
        if !self.bytes.is_empty() {
            queue().push(std::mem::take(&mut self.bytes), self.immediate);
        }
    }
}

impl<'a> MakeWriter<'a> for QueuedStdout {
    type Writer = LineWriter;

    fn make_writer(&'a self) -> Self::Writer {
        LineWriter { bytes: Vec::with_capacity(256), immediate: true }
    }

    fn make_writer_for(&'a self, meta: &tracing::Metadata<'_>) -> Self::Writer {
        let immediate = meta.target() != ACCESS_TARGET || *meta.level() <= tracing::Level::WARN;
        LineWriter { bytes: Vec::with_capacity(256), immediate }
    }
}

/// Whether access-log lines are enabled by the current filter.
pub fn access_enabled() -> bool {
    tracing::enabled!(target: "app::access", tracing::Level::INFO)
}

/// What an access-log line names as the instance; read when the line is written.
pub trait InstanceName: Send + Sync {
    fn instance_name(&self) -> &str;
}

/// One request as the access log records it, queued by the request and formatted by the writer.
pub struct Access {
    pub at: SystemTime,
    pub instance: Arc<dyn InstanceName>,
    pub method: axum::http::Method,
    pub path: Box<str>,
    pub status: u16,
    pub latency: Duration,
}

impl Access {
    /// The record as one JSON line, in the shape of the subscriber's own events: `timestamp`,
    /// `level`, `message`, the request's fields, `target`. Written field by field (the strings
    /// escaped by `serde_json`, the numbers by `itoa`, the date and time formatted by `humantime`
    /// once per second in `stamp`): a `serde` struct took ~2 700 instructions a line (callgrind).
    fn write_line(&self, out: &mut impl Write, stamp: &mut Stamp) -> io::Result<()> {
        let mut n = itoa::Buffer::new();
        out.write_all(b"{\"timestamp\":\"")?;
        stamp.write(self.at, out)?;
        out.write_all(b"\",\"level\":\"INFO\",\"message\":\"request\",\"instance_id\":")?;
        serde_json::to_writer(&mut *out, self.instance.instance_name())?;
        out.write_all(b",\"method\":")?;
        serde_json::to_writer(&mut *out, self.method.as_str())?;
        out.write_all(b",\"path\":")?;
        serde_json::to_writer(&mut *out, &*self.path)?;
        out.write_all(b",\"status\":")?;
        out.write_all(n.format(self.status).as_bytes())?;
        // Milliseconds with microsecond resolution: all a latency needs, and short.
        let micros = self.latency.as_micros();
        out.write_all(b",\"latency_ms\":")?;
        out.write_all(n.format(micros / 1000).as_bytes())?;
        let frac = (micros % 1000) as u16;
        let digit = |d: u16| b'0' + (d % 10) as u8;
        out.write_all(&[b'.', digit(frac / 100), digit(frac / 10), digit(frac)])?;
        out.write_all(b",\"target\":\"")?;
        out.write_all(ACCESS_TARGET.as_bytes())?;
        out.write_all(b"\"}\n")
    }
}

/// RFC 3339 timestamps with microseconds (`YYYY-MM-DDTHH:MM:SS.ffffffZ`), the date and time
/// formatted once per second.
#[derive(Default)]
struct Stamp {
    second: Option<u64>,
    /// `YYYY-MM-DDTHH:MM:SS.` of `second`.
    prefix: String,
}

impl Stamp {
    fn write(&mut self, at: SystemTime, out: &mut impl Write) -> io::Result<()> {
        let since = at.duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        if self.second != Some(since.as_secs()) {
            let whole = std::time::UNIX_EPOCH + Duration::from_secs(since.as_secs());
            let text = humantime::format_rfc3339_seconds(whole).to_string();
            self.prefix = format!("{}.", text.trim_end_matches('Z'));
            self.second = Some(since.as_secs());
        }
        out.write_all(self.prefix.as_bytes())?;
        let mut digits = [b'0'; 6];
        let mut micros = since.subsec_micros();
        for d in digits.iter_mut().rev() {
            *d = b'0' + (micros % 10) as u8;
            micros /= 10;
        }
        out.write_all(&digits)?;
        out.write_all(b"Z")
    }
}

/// Queue one access-log line (caller checks [`access_enabled`]).
pub fn access(record: Access) {
    queue().push_access(record);
}

/// Install the JSON subscriber with filter `level` (e.g. `info`, `app=debug,sqlx=warn`) and start
/// the writer thread with a queue of `queue_lines` lines.
pub fn init(level: &str, queue_lines: usize) {
    let _ = QUEUE.set(Queue::start(queue_lines, io::stdout()));
    let filter = tracing_subscriber::EnvFilter::try_new(level)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .json()
        .flatten_event(true)
        .with_current_span(false)
        .with_span_list(false)
        .with_env_filter(filter)
        .with_writer(QueuedStdout)
        .try_init();
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Condvar, Mutex};
    use std::time::UNIX_EPOCH;

    /// Whether writes may proceed, and what was written.
    type Gate = Mutex<(bool, Vec<u8>)>;

    /// Stdout that blocks every write until opened (a pipe nobody reads), then collects.
    #[derive(Clone, Default)]
    struct Stalled(Arc<(Gate, Condvar)>);

    impl Write for Stalled {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            let (lock, open) = &*self.0;
            let mut st = open.wait_while(lock.lock().unwrap(), |st| !st.0).unwrap();
            st.1.extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_stalled_stdout_drops_and_counts_lines_instead_of_blocking() {
        let out = Stalled::default();
        let q = Queue::start(8, out.clone());
        // An immediate line: the writer flushes it and blocks in write(2).
        q.push(b"first\n".to_vec(), true);
        let started = Instant::now();
        for i in 0..1000 {
            q.push(format!("line {i}\n").into_bytes(), false);
        }
        assert!(started.elapsed() < Duration::from_millis(500), "pushing blocked");
        let dropped = q.dropped.load(Ordering::Relaxed);
        assert!(dropped >= 1000 - 10, "dropped {dropped}");

        *out.0 .0.lock().unwrap() = (true, Vec::new());
        out.0 .1.notify_all();
        q.flush(Duration::from_secs(5));
        q.push(b"after\n".to_vec(), false);
        q.flush(Duration::from_secs(5));
        let text = String::from_utf8(out.0 .0.lock().unwrap().1.clone()).unwrap();
        assert!(text.contains("after\n"), "{text}");
        let report = text
            .lines()
            .find(|l| l.contains("log lines dropped"))
            .unwrap_or_else(|| panic!("no report of the dropped lines in {text}"));
        let v: serde_json::Value = serde_json::from_str(report).unwrap();
        // The writer may report while the pushes still drop (a busy machine schedules it in the
        // middle of the loop): the report names a running total, never more than was dropped.
        let reported = v["dropped_total"].as_u64().unwrap_or_default();
        assert!(reported > 0 && reported <= dropped, "reported {reported} of {dropped}");
        assert_eq!(v["level"], "WARN");
    }

    #[test]
    fn access_lines_are_json_with_rfc3339_timestamps() {
        // The per-second part is formatted again when the second changes; micros are padded.
        let mut stamp = Stamp::default();
        let mut out = Vec::new();
        for micros in [1_795_000_000_000_007u64, 1_795_000_000_999_999, 1_795_000_001_000_000] {
            stamp.write(UNIX_EPOCH + Duration::from_micros(micros), &mut out).unwrap();
            out.push(b' ');
        }
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "2026-11-18T11:06:40.000007Z 2026-11-18T11:06:40.999999Z 2026-11-18T11:06:41.000000Z "
        );
        struct Named;
        impl InstanceName for Named {
            fn instance_name(&self) -> &str {
                "i-0abc"
            }
        }
        let record = Access {
            at: UNIX_EPOCH + Duration::from_micros(1_795_000_000_123_456),
            instance: Arc::new(Named),
            method: axum::http::Method::GET,
            path: "/a\"b\\c\n".into(),
            status: 200,
            latency: Duration::from_nanos(250_400),
        };
        let mut text = Vec::new();
        record.write_line(&mut text, &mut Stamp::default()).unwrap();
        assert_eq!(
            String::from_utf8_lossy(&text),
            concat!(
                r#"{"timestamp":"2026-11-18T11:06:40.123456Z","level":"INFO","message":"request","#,
                r#""instance_id":"i-0abc","method":"GET","path":"/a\"b\\c\n","status":200,"#,
                r#""latency_ms":0.250,"target":"app::access"}"#,
                "\n"
            )
        );
        assert_eq!(text.iter().filter(|b| **b == b'\n').count(), 1, "one line");
        let v: serde_json::Value = serde_json::from_slice(&text).unwrap();
        assert_eq!(v["instance_id"], "i-0abc");
        assert_eq!(v["method"], "GET");
        assert_eq!(v["timestamp"], "2026-11-18T11:06:40.123456Z");
        assert_eq!(v["path"], "/a\"b\\c\n");
        assert_eq!(v["status"], 200);
        assert_eq!(v["latency_ms"], 0.25);
        assert_eq!(v["target"], "app::access");
        let leap = UNIX_EPOCH + Duration::from_secs(951_782_400);
        assert_eq!(
            humantime::format_rfc3339_micros(leap).to_string(),
            "2000-02-29T00:00:00.000000Z"
        );
    }
}
