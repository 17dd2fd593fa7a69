//! Weighted traffic between two releases during a canary, and what each served. While a split is
//! set, the pool sends the canary's percentage of requests to the canary's instances — spread
//! evenly (the n-th request goes to the canary when ⌊n·p⌋ moves past ⌊(n−1)·p⌋), not in bursts — and
//! the rest to the baseline's. Each response is counted per release over the current window
//! (requests, 5xx, slower than the objective's bound, a latency histogram), which the supervisor
//! reads to judge the step ([`crate::rollout::canary`]) and restarts for the next one.
use hdrhistogram::Histogram;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use crate::rollout::canary::Sample;

/// Latencies above this (an hour, in microseconds) are recorded as this.
const MAX_MICROS: u64 = 3_600_000_000;

/// What one release served over a window.
#[derive(Debug)]
pub struct Counters {
    requests: AtomicU64,
    errors: AtomicU64,
    slow: AtomicU64,
    latency: Mutex<Histogram<u64>>,
}

impl Counters {
    fn new() -> Self {
        Counters {
            requests: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            slow: AtomicU64::new(0),
            // Three significant digits from 1 µs to an hour: a few tens of KiB.
            latency: Mutex::new(
                Histogram::new_with_bounds(1, MAX_MICROS, 3).expect("valid histogram bounds"),
            ),
        }
    }

    fn record(&self, status: u16, micros: u64, slow_micros: u64) {
        self.requests.fetch_add(1, Ordering::Relaxed);
        if status >= 500 {
            self.errors.fetch_add(1, Ordering::Relaxed);
        }
        if micros > slow_micros {
            self.slow.fetch_add(1, Ordering::Relaxed);
        }
        let mut h = match self.latency.lock() {
            Ok(h) => h,
            Err(poisoned) => poisoned.into_inner(),
        };
        h.saturating_record(micros.clamp(1, MAX_MICROS));
    }

    fn sample(&self) -> Sample {
        let h = match self.latency.lock() {
            Ok(h) => h,
            Err(poisoned) => poisoned.into_inner(),
        };
        Sample {
            requests: self.requests.load(Ordering::Relaxed),
            errors: self.errors.load(Ordering::Relaxed),
            slow: self.slow.load(Ordering::Relaxed),
            p99_ms: (!h.is_empty()).then(|| h.value_at_quantile(0.99) as f64 / 1000.0),
        }
    }
}

/// The two releases' counters over the current window.
#[derive(Debug)]
struct Window {
    baseline: Counters,
    canary: Counters,
}

/// A canary's traffic split.
#[derive(Debug)]
pub struct Split {
    pub baseline: String,
    pub canary: String,
    /// Percent of requests the canary gets (0 while its instance boots).
    percent: AtomicU32,
    /// Requests slower than this count as slow.
    slow_micros: u64,
    sent: AtomicU64,
    window: RwLock<Arc<Window>>,
}

impl Split {
    pub fn new(baseline: &str, canary: &str, slow_ms: u64) -> Self {
        Split {
            baseline: baseline.into(),
            canary: canary.into(),
            percent: AtomicU32::new(0),
            slow_micros: slow_ms.saturating_mul(1000),
            sent: AtomicU64::new(0),
            window: RwLock::new(Arc::new(Window {
                baseline: Counters::new(),
                canary: Counters::new(),
            })),
        }
    }

    /// Send `percent` of requests to the canary from now on, and start a new window.
    pub fn step(&self, percent: u32) {
        self.percent.store(percent.min(100), Ordering::Relaxed);
        let fresh = Arc::new(Window { baseline: Counters::new(), canary: Counters::new() });
        match self.window.write() {
            Ok(mut w) => *w = fresh,
            Err(poisoned) => *poisoned.into_inner() = fresh,
        }
    }

    pub fn percent(&self) -> u32 {
        self.percent.load(Ordering::Relaxed)
    }

    /// Whether the next request goes to the canary.
    pub fn to_canary(&self) -> bool {
        let p = u64::from(self.percent());
        let n = self.sent.fetch_add(1, Ordering::Relaxed) + 1;
        n * p / 100 > (n - 1) * p / 100
    }

    fn window(&self) -> Arc<Window> {
        match self.window.read() {
            Ok(w) => w.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Count a response of an instance of `release`.
    pub fn record(&self, release: &str, status: u16, micros: u64) {
        let w = self.window();
        if release == self.canary {
            w.canary.record(status, micros, self.slow_micros);
        } else if release == self.baseline {
            w.baseline.record(status, micros, self.slow_micros);
        }
    }

    /// (baseline, canary) over the current window.
    pub fn samples(&self) -> (Sample, Sample) {
        let w = self.window();
        (w.baseline.sample(), w.canary.sample())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_canary_gets_its_share_spread_evenly() {
        let s = Split::new("old", "new", 100);
        assert!((0..50).all(|_| !s.to_canary()), "nothing before the first step");
        s.step(10);
        let picks: Vec<bool> = (0..100).map(|_| s.to_canary()).collect();
        assert_eq!(picks.iter().filter(|c| **c).count(), 10);
        let gaps: Vec<usize> =
            picks.iter().enumerate().filter(|(_, c)| **c).map(|(i, _)| i).collect();
        assert!(gaps.windows(2).all(|w| w[1] - w[0] == 10), "{gaps:?}");
    }

    #[test]
    fn responses_are_counted_per_release_per_window() {
        let s = Split::new("old", "new", 100);
        s.step(50);
        s.record("new", 500, 2_000);
        s.record("new", 200, 250_000);
        s.record("old", 200, 1_000);
        s.record("other", 500, 1_000);
        let (base, can) = s.samples();
        assert_eq!((base.requests, base.errors, base.slow), (1, 0, 0));
        assert_eq!((can.requests, can.errors, can.slow), (2, 1, 1));
        assert!(can.p99_ms.unwrap() > 249.0, "{can:?}");
        s.step(60);
        assert_eq!(s.samples().1.requests, 0, "a new step starts a new window");
    }
}
