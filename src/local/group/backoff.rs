//! The brakes on a crash-looping launch: per zone, every failed launch (the launch itself failed,
//! or the instance exited before it ever passed a health check) doubles the wait before the next
//! launch there — 1 s, 2 s, 4 s... up to 60 s, like the Auto Scaling group's backoff of failing
//! launches — and an instance of the zone passing its checks resets it. `status` shows it.
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// The wait after the first failure.
pub const BASE: Duration = Duration::from_secs(1);
/// The longest wait.
pub const MAX: Duration = Duration::from_secs(60);

#[derive(Debug, Clone, Copy)]
struct ZoneBackoff {
    failures: u32,
    until: Instant,
}

/// Launch backoff of every zone.
#[derive(Debug, Default)]
pub struct Backoff {
    zones: BTreeMap<String, ZoneBackoff>,
}

impl Backoff {
    /// A launch in `zone` failed: wait longer before the next one. Returns the wait.
    pub fn failed(&mut self, zone: &str) -> Duration {
        let failures = self.zones.get(zone).map_or(0, |z| z.failures).saturating_add(1);
        let wait = delay(failures);
        self.zones.insert(zone.to_string(), ZoneBackoff { failures, until: Instant::now() + wait });
        wait
    }

    /// An instance of `zone` passed its checks: launches there are no longer braked.
    pub fn succeeded(&mut self, zone: &str) {
        self.zones.remove(zone);
    }

    /// May the supervisor launch in `zone` now?
    pub fn ready(&self, zone: &str) -> bool {
        self.zones.get(zone).is_none_or(|z| Instant::now() >= z.until)
    }

    /// Failed launches in a row, and the seconds left before the next launch, for `status`.
    pub fn view(&self, zone: &str) -> (u32, f64) {
        match self.zones.get(zone) {
            Some(z) => {
                (z.failures, z.until.saturating_duration_since(Instant::now()).as_secs_f64())
            }
            None => (0, 0.0),
        }
    }
}

/// The wait after `failures` failed launches in a row: BASE · 2^(failures − 1), at most MAX.
pub fn delay(failures: u32) -> Duration {
    let doublings = failures.saturating_sub(1).min(16);
    BASE.saturating_mul(1 << doublings).min(MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exponential_capped_and_reset_by_success() {
        assert_eq!(delay(1), Duration::from_secs(1));
        assert_eq!(delay(2), Duration::from_secs(2));
        assert_eq!(delay(4), Duration::from_secs(8));
        assert_eq!(delay(7), MAX);
        assert_eq!(delay(1000), MAX);
        let mut b = Backoff::default();
        assert!(b.ready("a"));
        b.failed("a");
        assert_eq!(b.failed("a"), Duration::from_secs(2));
        assert!(!b.ready("a") && b.ready("b"));
        assert_eq!(b.view("a").0, 2);
        b.succeeded("a");
        assert!(b.ready("a"));
        assert_eq!(b.view("a"), (0, 0.0));
    }
}
