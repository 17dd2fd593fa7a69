//! Injected faults for release drills: a share of `GET /` answered with 500 and a delay added to
//! each `GET /`, set by `FAULT_ERROR_PERCENT` and `FAULT_DELAY_MS` (both off by default). They let a
//! drill ship a release that passes its health checks (`/healthz`, `/readyz` are never touched)
//! yet fails real requests or answers slowly, to show a canary catching it. The failing requests
//! are spread evenly: exactly one in twenty at 5 %, not in bursts.
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// The faults to inject (none by default).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct FaultSettings {
    /// Percent of `GET /` answered with 500 (0–100).
    pub error_percent: f64,
    /// Added to every `GET /` before it is answered.
    pub delay: Duration,
}

/// The faults and the count of requests they were applied to.
#[derive(Debug, Default)]
pub struct Faults {
    settings: FaultSettings,
    seen: AtomicU64,
}

impl Faults {
    pub fn new(settings: FaultSettings) -> Self {
        Faults { settings, seen: AtomicU64::new(0) }
    }

    /// Apply the faults to one request: wait the delay, then say whether to answer 500 — the
    /// n-th request fails when ⌊n·p⌋ moves past ⌊(n−1)·p⌋, p the share.
    pub async fn apply(&self) -> bool {
        if !self.settings.delay.is_zero() {
            // Boxed: only a drill pays for the timer's size in the request's future.
            Box::pin(tokio::time::sleep(self.settings.delay)).await;
        }
        let p = self.settings.error_percent.clamp(0.0, 100.0) / 100.0;
        if p <= 0.0 {
            return false;
        }
        let n = self.seen.fetch_add(1, Ordering::Relaxed) + 1;
        (n as f64 * p).floor() > ((n - 1) as f64 * p).floor()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn five_percent_is_one_in_twenty_spread_evenly() {
        let f = Faults::new(FaultSettings { error_percent: 5.0, delay: Duration::ZERO });
        let mut failed = vec![];
        for n in 1..=100 {
            if f.apply().await {
                failed.push(n);
            }
        }
        assert_eq!(failed, [20, 40, 60, 80, 100]);
        assert!(!Faults::default().apply().await);
    }
}
