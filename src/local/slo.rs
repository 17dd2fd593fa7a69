//! The local tier's error budget: the requests of the load balancer's access log (`access.log`
//! and its rotated files) as samples for [`crate::slo::budget`].
use std::io::BufRead;
use std::path::Path;

use crate::config::SloSettings;
use crate::slo::{Budget, Sample};

/// The tier's error budget of `slo` as of now.
pub(crate) fn budget(paths: &super::state::Paths, slo: &SloSettings) -> Budget {
    crate::slo::budget(slo, &samples(&paths.access_log()), std::time::SystemTime::now())
}

/// Every request the access log files under `paths` hold (unreadable lines skipped).
pub(crate) fn samples(live: &Path) -> Vec<Sample> {
    let files = (1..)
        .map(|n| super::lb::accesslog::rotated(live, n))
        .take_while(|p| p.exists())
        .chain([live.to_path_buf()]);
    let mut out = vec![];
    for path in files {
        let Ok(file) = std::fs::File::open(&path) else { continue };
        for line in std::io::BufReader::new(file).lines().map_while(Result::ok) {
            if let Some(s) = sample(&line) {
                out.push(s);
            }
        }
    }
    out
}

/// One access-log line (`{"ts": RFC 3339, "status": N, "ms": F, ...}`) as a sample.
fn sample(line: &str) -> Option<Sample> {
    #[derive(serde::Deserialize)]
    struct Line {
        ts: String,
        status: u16,
        ms: f64,
    }
    let l: Line = serde_json::from_str(line).ok()?;
    let at = humantime::parse_rfc3339_weak(&l.ts).ok()?;
    Some(Sample { at, status: l.status, ms: l.ms })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_of_every_file_become_samples_and_garbage_is_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let live = dir.path().join("access.log");
        let line = |status: u16| {
            format!("{{\"ts\":\"2026-12-06T10:00:00.123456Z\",\"client\":\"127.0.0.1\",\"method\":\"GET\",\"path\":\"/\",\"status\":{status},\"instance\":null,\"retried\":false,\"ms\":1.5}}\n")
        };
        std::fs::write(super::super::lb::accesslog::rotated(&live, 1), line(503)).unwrap();
        std::fs::write(&live, format!("{}not json\n{}", line(200), line(200))).unwrap();
        let s = samples(&live);
        assert_eq!(s.iter().map(|s| s.status).collect::<Vec<_>>(), [503, 200, 200]);
        assert_eq!(s[0].ms, 1.5);
    }
}
