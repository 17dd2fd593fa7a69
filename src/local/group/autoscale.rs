//! The local tier's scaling on load: every supervisor tick, the load balancer's request counter goes
//! into a [`Meter`] and [`crate::scaling::decide`] may move the desired capacity between the
//! stack's min and max; the placement function then spreads the new instances over the zones.
//! Holds while a rollout owns the capacity. What it measured and decided is shown by `orch status`.
use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::scaling::{self, Direction, Meter, Policy, Since};

/// What `state.json` (and so `orch status`) shows of scaling.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScalingView {
    pub min: u32,
    pub max: u32,
    /// Requests per instance per minute the group is kept near.
    pub target_per_instance: f64,
    /// Measured requests per instance (in service) per minute, once the window has samples.
    pub load_per_instance: Option<f64>,
    /// The last decision: when (UTC), which way, from and to, and why.
    pub last: Option<LastDecision>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LastDecision {
    pub at: crate::clock::Time,
    pub direction: Direction,
    pub from: u32,
    pub to: u32,
    pub reason: String,
}

/// The scaler of a running tier.
pub struct Autoscaler {
    policy: Policy,
    meter: Meter,
    last_out: Option<Instant>,
    last_change: Instant,
    load: Option<f64>,
    last: Option<LastDecision>,
}

impl Autoscaler {
    /// A scaler that starts now: a scale-in waits a cooldown from the start.
    pub fn new(policy: Policy, now: Instant) -> Self {
        let meter = Meter::new(policy.window);
        Autoscaler { policy, meter, last_out: None, last_change: now, load: None, last: None }
    }

    /// Record the counter; the new desired capacity when it should change. `busy`: a rollout owns
    /// the capacity, so measure but do not decide.
    pub fn tick(
        &mut self,
        now: Instant,
        requests: u64,
        in_service: u32,
        desired: u32,
        busy: bool,
    ) -> Option<LastDecision> {
        self.meter.record(now, requests);
        let rate = self.meter.per_minute()?;
        self.load = Some(rate / f64::from(in_service.max(1)));
        if busy {
            return None;
        }
        let since = Since {
            scale_out: self.last_out.map(|t| now.duration_since(t)),
            change: now.duration_since(self.last_change),
        };
        let d = scaling::decide(&self.policy, desired, rate, since)?;
        if d.direction == Direction::Out {
            self.last_out = Some(now);
        }
        self.last_change = now;
        let decision = LastDecision {
            at: crate::clock::now(),
            direction: d.direction,
            from: desired,
            to: d.desired,
            reason: d.reason,
        };
        self.last = Some(decision.clone());
        Some(decision)
    }

    pub fn view(&self) -> ScalingView {
        ScalingView {
            min: self.policy.min,
            max: self.policy.max,
            target_per_instance: self.policy.target,
            load_per_instance: self.load,
            last: self.last.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn load_moves_desired_out_then_back_in_after_the_cooldown() {
        let policy = Policy {
            min: 2,
            max: 6,
            target: 600.0,
            scale_out_cooldown: Duration::from_secs(2),
            scale_in_cooldown: Duration::from_secs(5),
            window: Duration::from_secs(2),
        };
        let t0 = Instant::now();
        let mut a = Autoscaler::new(policy, t0);
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        assert_eq!(a.tick(at(0), 0, 2, 2, false), None);
        // 40 requests a second = 2400 a minute: 4 instances at the 600 target.
        let d = a.tick(at(1000), 40, 2, 2, false).unwrap();
        assert_eq!((d.from, d.to, d.direction), (2, 4, Direction::Out));
        assert_eq!(a.view().load_per_instance, Some(1200.0));
        // A rollout holds decisions but keeps measuring.
        assert_eq!(a.tick(at(4000), 200, 4, 4, true), None);
        // The load stops; the scale-in waits its cooldown from the scale-out.
        assert_eq!(a.tick(at(5000), 200, 4, 4, false), None);
        assert_eq!(a.tick(at(5500), 200, 4, 4, false), None);
        let d = a.tick(at(7000), 200, 4, 4, false).unwrap();
        assert_eq!((d.to, d.direction), (2, Direction::In));
        assert_eq!(a.view().last.unwrap().to, 2);
    }
}
