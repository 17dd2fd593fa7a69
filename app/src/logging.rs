//! Structured JSON logs on stdout, one object per line.
//!
//! Regular events go through `tracing-subscriber`'s JSON formatter and are
//! written through immediately. The per-request access log (target
//! `app::access`, same JSON shape) is the hot path, so [`access`] serializes
//! a borrowed struct with `serde_json` (no field visitors, no intermediate
//! map; the timestamp by `humantime`) into a 64 KiB buffer
//! that a background thread flushes every 100 ms and at shutdown: a busy
//! instance makes a few `write(2)` calls per 100 ms instead of one per
//! request. It honours `LOG_LEVEL` through `tracing::enabled!`.

use std::io::{self, BufWriter, Stdout, Write};
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::{Duration, SystemTime};

use tracing_subscriber::fmt::MakeWriter;

/// Target of the per-request access log.
pub const ACCESS_TARGET: &str = "app::access";

static STDOUT: OnceLock<Mutex<BufWriter<Stdout>>> = OnceLock::new();

fn buffer() -> &'static Mutex<BufWriter<Stdout>> {
    STDOUT.get_or_init(|| Mutex::new(BufWriter::with_capacity(64 * 1024, io::stdout())))
}

fn lock() -> MutexGuard<'static, BufWriter<Stdout>> {
    buffer().lock().unwrap_or_else(|e| e.into_inner())
}

/// Write out buffered log lines now (called at shutdown).
pub fn flush() {
    let _ = lock().flush();
}

/// `MakeWriter` over the shared, buffered stdout.
#[derive(Debug, Clone, Copy, Default)]
pub struct BufferedStdout;

/// One log line's writer; flushes on drop unless it is an access-log line.
pub struct LineWriter {
    guard: MutexGuard<'static, BufWriter<Stdout>>,
    immediate: bool,
}

impl Write for LineWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.guard.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.guard.flush()
    }
}

impl Drop for LineWriter {
    fn drop(&mut self) {
        if self.immediate {
            let _ = self.guard.flush();
        }
    }
}

impl<'a> MakeWriter<'a> for BufferedStdout {
    type Writer = LineWriter;

    fn make_writer(&'a self) -> Self::Writer {
        LineWriter { guard: lock(), immediate: true }
    }

    fn make_writer_for(&'a self, meta: &tracing::Metadata<'_>) -> Self::Writer {
        let immediate = meta.target() != ACCESS_TARGET || *meta.level() <= tracing::Level::WARN;
        LineWriter { guard: lock(), immediate }
    }
}

/// Whether access-log lines are enabled by the current filter.
pub fn access_enabled() -> bool {
    tracing::enabled!(target: "app::access", tracing::Level::INFO)
}

/// One access-log line: the JSON shape of the subscriber's own events, with the request's fields.
#[derive(serde::Serialize)]
struct AccessLine<'a> {
    #[serde(serialize_with = "rfc3339_micros")]
    timestamp: SystemTime,
    level: &'static str,
    message: &'static str,
    instance_id: &'a str,
    method: &'a str,
    path: &'a str,
    status: u16,
    latency_ms: f64,
    target: &'static str,
}

/// `YYYY-MM-DDTHH:MM:SS.ffffffZ`, written straight into the line (no intermediate string).
fn rfc3339_micros<S: serde::Serializer>(t: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(&humantime::format_rfc3339_micros(*t))
}

/// Append one access-log line (caller checks [`access_enabled`]).
pub fn access(instance_id: &str, method: &str, path: &str, status: u16, latency_ms: f64) {
    let line = AccessLine {
        timestamp: SystemTime::now(),
        level: "INFO",
        message: "request",
        instance_id,
        method,
        path,
        status,
        // Microsecond resolution is all a latency needs, and keeps the lines short.
        latency_ms: (latency_ms * 1000.0).round() / 1000.0,
        target: ACCESS_TARGET,
    };
    let mut bytes = Vec::with_capacity(256);
    if serde_json::to_writer(&mut bytes, &line).is_ok() {
        bytes.push(b'\n');
        let _ = lock().write_all(&bytes);
    }
}

/// Install the JSON subscriber with filter `level` (e.g. `info`,
/// `app=debug,sqlx=warn`) and start the periodic flusher.
pub fn init(level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_new(level)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let installed = tracing_subscriber::fmt()
        .json()
        .flatten_event(true)
        .with_current_span(false)
        .with_span_list(false)
        .with_env_filter(filter)
        .with_writer(BufferedStdout)
        .try_init()
        .is_ok();
    if installed {
        let _ = std::thread::Builder::new().name("log-flush".into()).spawn(|| loop {
            std::thread::sleep(Duration::from_millis(100));
            flush();
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::UNIX_EPOCH;

    #[test]
    fn access_lines_are_json_with_rfc3339_timestamps() {
        let line = AccessLine {
            timestamp: UNIX_EPOCH + Duration::from_micros(1_795_000_000_123_456),
            level: "INFO",
            message: "request",
            instance_id: "i-0abc",
            method: "GET",
            path: "/a\"b\\c\n",
            status: 200,
            latency_ms: 0.25,
            target: ACCESS_TARGET,
        };
        let text = serde_json::to_string(&line).unwrap();
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
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
