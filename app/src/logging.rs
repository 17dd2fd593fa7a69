//! Structured JSON logs on stdout, one object per line.
//!
//! Regular events go through `tracing-subscriber`'s JSON formatter and are
//! written through immediately. The per-request access log (target
//! `app::access`, same JSON shape) is the hot path, so [`access`] formats
//! it by hand (no field visitors, no intermediate map) into a 64 KiB buffer
//! that a background thread flushes every 100 ms and at shutdown: a busy
//! instance makes a few `write(2)` calls per 100 ms instead of one per
//! request. It honours `LOG_LEVEL` through `tracing::enabled!`.

use std::fmt::Write as _;
use std::io::{self, BufWriter, Stdout, Write};
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

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

/// Append one access-log line (caller checks [`access_enabled`]).
pub fn access(instance_id: &str, method: &str, path: &str, status: u16, latency_ms: f64) {
    let mut line = String::with_capacity(256);
    line.push_str("{\"timestamp\":\"");
    push_rfc3339(&mut line, SystemTime::now());
    line.push_str("\",\"level\":\"INFO\",\"message\":\"request\",\"instance_id\":");
    push_json_str(&mut line, instance_id);
    line.push_str(",\"method\":");
    push_json_str(&mut line, method);
    line.push_str(",\"path\":");
    push_json_str(&mut line, path);
    let _ = writeln!(
        line,
        ",\"status\":{status},\"latency_ms\":{latency_ms:.3},\"target\":\"{ACCESS_TARGET}\"}}"
    );
    let _ = lock().write_all(line.as_bytes());
}

fn push_json_str(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// `YYYY-MM-DDTHH:MM:SS.ffffffZ` (UTC), without a date-time dependency.
fn push_rfc3339(out: &mut String, t: SystemTime) {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs();
    let (days, rem) = ((secs / 86_400) as i64, secs % 86_400);
    // Howard Hinnant's days-to-civil algorithm.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let _ = write!(
        out,
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:06}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        d.subsec_micros()
    );
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

    #[test]
    fn formats_timestamps() {
        let mut s = String::new();
        push_rfc3339(&mut s, UNIX_EPOCH + Duration::from_micros(1_795_000_000_123_456));
        assert_eq!(s, "2026-11-18T11:06:40.123456Z");
        s.clear();
        push_rfc3339(&mut s, UNIX_EPOCH + Duration::from_secs(951_782_400)); // leap day
        assert_eq!(s, "2000-02-29T00:00:00.000000Z");
    }

    #[test]
    fn escapes_json_strings() {
        let mut s = String::new();
        push_json_str(&mut s, "a\"b\\c\n");
        assert_eq!(s, r#""a\"b\\c\u000a""#);
        let v: serde_json::Value = serde_json::from_str(&s).unwrap();
        assert_eq!(v, "a\"b\\c\n");
    }
}
