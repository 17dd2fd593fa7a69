//! Target tracking, the rule that moves a group's desired capacity between its min and max on load:
//! requests per instance per minute, measured from a request counter over a sliding window, kept
//! near a target. Pure: [`Meter`] turns counter samples into a rate and [`decide`] turns a rate and
//! the time since the last scaling into a new desired capacity (or none). Like AWS target tracking,
//! it scales out proportionally and at once, and in only below the target with a margin, after a
//! longer cooldown.
use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Scale in only when the load per instance after the scale-in stays at most this share of the
/// target, so that a load just under the target does not make the group flap.
pub(crate) const SCALE_IN_MARGIN: f64 = 0.9;

/// What the group tracks and how fast it may move.
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    pub min: u32,
    pub max: u32,
    /// Requests per instance per minute to stay near.
    pub target: f64,
    pub scale_out_cooldown: Duration,
    pub scale_in_cooldown: Duration,
    pub window: Duration,
}

impl Policy {
    /// The policy of a stack with a `scaling` section.
    pub fn of(stack: &crate::config::Stack) -> Option<Policy> {
        let s = stack.scaling.as_ref()?;
        Some(Policy {
            min: stack.instances.min,
            max: stack.instances.max,
            target: f64::from(s.target_requests_per_minute.max(1)),
            scale_out_cooldown: Duration::from_secs(u64::from(s.scale_out_cooldown_seconds)),
            scale_in_cooldown: Duration::from_secs(u64::from(s.scale_in_cooldown_seconds)),
            window: Duration::from_secs(u64::from(s.window_seconds)),
        })
    }
}

/// Samples of a monotonic request counter within a window.
#[derive(Debug, Clone)]
pub(crate) struct Meter {
    window: Duration,
    samples: VecDeque<(Instant, u64)>,
}

impl Meter {
    pub(crate) fn new(window: Duration) -> Self {
        Meter { window, samples: VecDeque::new() }
    }

    /// Record the counter's value at `at`; samples older than the window are dropped (the newest
    /// one before the window is kept as its start).
    pub(crate) fn record(&mut self, at: Instant, total: u64) {
        self.samples.push_back((at, total));
        while self.samples.len() > 2
            && self.samples.get(1).is_some_and(|(t, _)| at.duration_since(*t) >= self.window)
        {
            self.samples.pop_front();
        }
    }

    /// Requests per minute over the window, once the samples span at least a second.
    pub(crate) fn per_minute(&self) -> Option<f64> {
        let (t0, n0) = *self.samples.front()?;
        let (t1, n1) = *self.samples.back()?;
        let span = t1.duration_since(t0).as_secs_f64();
        (span >= 1.0).then(|| n1.saturating_sub(n0) as f64 * 60.0 / span)
    }
}

/// Which way a decision moved the group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Direction {
    Out,
    In,
}

/// A change of desired capacity and why.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Decision {
    pub desired: u32,
    pub direction: Direction,
    pub reason: String,
}

/// How long ago the group last scaled out, and last changed in any way (or started).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Since {
    pub scale_out: Option<Duration>,
    pub change: Duration,
}

/// The desired capacity for `rate` requests per minute over the whole group, or None to hold.
pub(crate) fn decide(policy: &Policy, desired: u32, rate: f64, since: Since) -> Option<Decision> {
    let (min, max) = (policy.min, policy.max.max(policy.min));
    let clamped = desired.clamp(min, max);
    if clamped != desired {
        let direction = if clamped > desired { Direction::Out } else { Direction::In };
        return Some(Decision {
            desired: clamped,
            direction,
            reason: format!("desired {desired} outside min {min} / max {max}"),
        });
    }
    let per_instance = rate / f64::from(desired.max(1));
    let needed = |target: f64| ((rate / target).ceil() as u32).clamp(min, max);
    let out = needed(policy.target);
    if out > desired {
        if since.scale_out.is_some_and(|s| s < policy.scale_out_cooldown) {
            return None;
        }
        return Some(Decision {
            desired: out,
            direction: Direction::Out,
            reason: format!(
                "{per_instance:.0} requests/instance/min above the target {:.0}",
                policy.target
            ),
        });
    }
    let to = needed(policy.target * SCALE_IN_MARGIN);
    if to < desired && since.change >= policy.scale_in_cooldown {
        return Some(Decision {
            desired: to,
            direction: Direction::In,
            reason: format!(
                "{per_instance:.0} requests/instance/min below the target {:.0}",
                policy.target
            ),
        });
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> Policy {
        Policy {
            min: 2,
            max: 6,
            target: 600.0,
            scale_out_cooldown: Duration::from_secs(10),
            scale_in_cooldown: Duration::from_secs(60),
            window: Duration::from_secs(20),
        }
    }
    const LONG_AGO: Since =
        Since { scale_out: Some(Duration::from_secs(3600)), change: Duration::from_secs(3600) };

    #[test]
    fn scales_out_to_what_the_rate_needs_at_once_and_no_further_than_max() {
        let d = decide(&policy(), 2, 2000.0, LONG_AGO).unwrap();
        assert_eq!((d.desired, d.direction), (4, Direction::Out));
        assert!(
            d.reason.contains("1000 requests/instance/min above the target 600"),
            "{}",
            d.reason
        );
        assert_eq!(decide(&policy(), 2, 100_000.0, LONG_AGO).unwrap().desired, 6);
        assert_eq!(decide(&policy(), 6, 100_000.0, LONG_AGO), None, "already at max");
    }

    #[test]
    fn cooldowns_hold_scale_out_after_scale_out_and_scale_in_after_any_change() {
        let recent =
            Since { scale_out: Some(Duration::from_secs(3)), change: Duration::from_secs(3) };
        assert_eq!(decide(&policy(), 2, 2000.0, recent), None);
        // A scale-out is not held by a recent scale-in.
        let after_in = Since { scale_out: None, change: Duration::from_secs(1) };
        assert_eq!(decide(&policy(), 2, 2000.0, after_in).unwrap().desired, 4);
        assert_eq!(decide(&policy(), 6, 0.0, after_in), None);
        let d = decide(&policy(), 6, 0.0, LONG_AGO).unwrap();
        assert_eq!((d.desired, d.direction), (2, Direction::In));
    }

    #[test]
    fn holds_near_the_target_and_scales_in_only_with_margin() {
        // 4 instances at 580/min each: needs 4 at the target; at 90 % of it, still 5 → hold.
        assert_eq!(decide(&policy(), 4, 2320.0, LONG_AGO), None);
        // 4 instances at 250/min each: 1000/540 → 2.
        assert_eq!(decide(&policy(), 4, 1000.0, LONG_AGO).unwrap().desired, 2);
    }

    #[test]
    fn a_desired_outside_the_bounds_is_brought_inside() {
        assert_eq!(decide(&policy(), 9, 0.0, LONG_AGO).unwrap().desired, 6);
        assert_eq!(decide(&policy(), 1, 0.0, LONG_AGO).unwrap().desired, 2);
    }

    #[test]
    fn the_meter_averages_over_its_window() {
        let t0 = Instant::now();
        let mut m = Meter::new(Duration::from_secs(10));
        m.record(t0, 0);
        assert_eq!(m.per_minute(), None, "one sample is no rate");
        m.record(t0 + Duration::from_millis(500), 5);
        assert_eq!(m.per_minute(), None, "half a second is too short");
        for s in 1..=30u64 {
            m.record(t0 + Duration::from_secs(s), s * 10);
        }
        assert_eq!(m.per_minute(), Some(600.0));
        // The load stops: within one window the rate falls to zero.
        for s in 31..=41u64 {
            m.record(t0 + Duration::from_secs(s), 300);
        }
        assert_eq!(m.per_minute(), Some(0.0));
    }
}
