//! The error budget of a service-level objective, counted from the requests the load balancer
//! answered: how much of the window's budget of failed (5xx) requests is spent, how fast it burns
//! over the last hour and six hours (the error ratio over the budget's ratio: 1 spends the budget in
//! exactly the window), and the p99 latency against the objective. Pure: each target hands in its
//! samples: the local load balancer's access log (one request each), the ALB's CloudWatch sums
//! (requests and 5xx per period, [`crate::ops::slo`]).
use std::time::{Duration, SystemTime};

use serde::Serialize;

use crate::config::SloSettings;

/// Why an error budget cannot be counted.
#[derive(Debug, thiserror::Error)]
pub enum SloError {
    #[error("stacks/{env}.yaml has no `slo:` section")]
    NoObjective { env: String },
    #[error("`{env}` has no deployment record: there is no load balancer to measure")]
    NotDeployed { env: String },
    #[error("reading the deployment record of `{env}`: {why}")]
    Record { env: String, why: String },
    #[error("`{env}`: {why}")]
    NoBalancer { env: String, why: String },
    #[error("reading the load balancer's CloudWatch metrics: {0}")]
    Metrics(String),
}

impl SloError {
    /// The next command to run.
    pub(crate) fn hint(&self) -> String {
        match self {
            SloError::NoObjective { .. } => {
                "add `slo: {availability: 99.9, latency_p99_ms: 300}` (docs/configuration.md)"
                    .into()
            }
            SloError::NotDeployed { env } => format!("deploy it first: `orch up --env {env}`"),
            SloError::Record { env, .. } => {
                format!("check access to the state bucket, then `orch status --env {env}`")
            }
            SloError::NoBalancer { env, .. } => {
                format!("run `orch up --env {env}` once to record it")
            }
            SloError::Metrics(_) => {
                "check the credentials and the region (cloudwatch:GetMetricData)".into()
            }
        }
    }
}

/// One request as the load balancer logged it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Sample {
    pub at: SystemTime,
    pub status: u16,
    pub ms: f64,
}

/// Requests and failures counted over one period starting at `at`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Bucket {
    pub at: SystemTime,
    pub requests: u64,
    pub errors: u64,
}

/// The budget over the objective's window, as of `now`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct Budget {
    pub availability_objective: f64,
    pub latency_p99_objective_ms: u64,
    pub window_days: u32,
    /// The oldest request the samples hold inside the window (the log may not reach back as far).
    pub since: Option<String>,
    pub requests: u64,
    pub errors: u64,
    /// Percent of requests answered without a 5xx, over the window.
    pub availability: Option<f64>,
    /// Failed requests the objective allows for the requests seen.
    pub allowed_errors: f64,
    /// Percent of the budget spent (above 100: exhausted).
    pub spent_percent: f64,
    pub burn_rate_1h: Option<f64>,
    pub burn_rate_6h: Option<f64>,
    pub p99_ms: Option<f64>,
    pub exhausted: bool,
}

impl Budget {
    /// The one-line account `orch up` and `orch slo` print.
    pub(crate) fn summary(&self) -> String {
        format!(
            "{} of {} requests failed over the last {} days ({}), {:.1}% of the error budget of {:.1} requests spent (objective {}%)",
            self.errors,
            self.requests,
            self.window_days,
            self.availability.map_or("no requests".into(), |a| format!("{a:.3}% available")),
            self.spent_percent,
            self.allowed_errors,
            self.availability_objective,
        )
    }

    /// The table `orch slo` prints.
    pub(crate) fn lines(&self) -> Vec<String> {
        let opt = |v: Option<f64>, unit: &str| v.map_or("—".into(), |v| format!("{v:.2}{unit}"));
        vec![
            format!(
                "objective      {}% without a 5xx over {} days; p99 ≤ {} ms",
                self.availability_objective, self.window_days, self.latency_p99_objective_ms
            ),
            format!(
                "requests       {} since {}",
                self.requests,
                self.since.as_deref().unwrap_or("—")
            ),
            format!("failed (5xx)   {} (allowed {:.1})", self.errors, self.allowed_errors),
            format!("availability   {}", opt(self.availability, "%")),
            format!(
                "budget spent   {:.1}%{}",
                self.spent_percent,
                if self.exhausted { " — exhausted" } else { "" }
            ),
            format!(
                "burn rate      1 h {}, 6 h {}",
                opt(self.burn_rate_1h, "×"),
                opt(self.burn_rate_6h, "×")
            ),
            format!("p99 latency    {}", opt(self.p99_ms, " ms")),
        ]
    }
}

/// The budget of `slo` over single requests (`samples`), as of `now`; the p99 is theirs.
pub(crate) fn budget(slo: &SloSettings, samples: &[Sample], now: SystemTime) -> Budget {
    let from = now.checked_sub(window(slo)).unwrap_or(SystemTime::UNIX_EPOCH);
    let mut ms: Vec<f64> =
        samples.iter().filter(|s| s.at >= from && s.at <= now).map(|s| s.ms).collect();
    ms.sort_by(f64::total_cmp);
    let p99_ms = (!ms.is_empty())
        .then(|| ms[((ms.len() as f64 * 0.99).ceil() as usize).clamp(1, ms.len()) - 1]);
    let buckets: Vec<Bucket> = samples
        .iter()
        .map(|s| Bucket { at: s.at, requests: 1, errors: u64::from(s.status >= 500) })
        .collect();
    budget_of(slo, &buckets, p99_ms, now)
}

fn window(slo: &SloSettings) -> Duration {
    Duration::from_secs(86_400) * slo.window_days
}

/// The budget of `slo` over counted periods, with the window's p99 as measured, as of `now`.
pub(crate) fn budget_of(
    slo: &SloSettings,
    buckets: &[Bucket],
    p99_ms: Option<f64>,
    now: SystemTime,
) -> Budget {
    let within = |period: Duration| {
        let from = now.checked_sub(period).unwrap_or(SystemTime::UNIX_EPOCH);
        buckets.iter().filter(move |s| s.at >= from && s.at <= now)
    };
    let window: Vec<&Bucket> = within(window(slo)).filter(|b| b.requests + b.errors > 0).collect();
    let allowed_ratio = 1.0 - slo.availability / 100.0;
    let requests: u64 = window.iter().map(|b| b.requests).sum();
    let errors: u64 = window.iter().map(|b| b.errors).sum();
    let allowed_errors = allowed_ratio * requests as f64;
    let spent_percent = match (errors, allowed_errors > 0.0) {
        (0, _) => 0.0,
        (_, true) => errors as f64 / allowed_errors * 100.0,
        (_, false) => f64::INFINITY,
    };
    let burn = |period: Duration| {
        let (n, bad) =
            within(period).fold((0u64, 0u64), |(n, bad), b| (n + b.requests, bad + b.errors));
        (n > 0).then(|| bad as f64 / n as f64 / allowed_ratio)
    };
    let since =
        window.iter().map(|s| s.at).min().map(|t| humantime::format_rfc3339_seconds(t).to_string());
    Budget {
        availability_objective: slo.availability,
        latency_p99_objective_ms: slo.latency_p99_ms,
        window_days: slo.window_days,
        since,
        requests,
        errors,
        availability: (requests > 0)
            .then(|| requests.saturating_sub(errors) as f64 / requests as f64 * 100.0),
        allowed_errors,
        spent_percent,
        burn_rate_1h: burn(Duration::from_secs(3600)),
        burn_rate_6h: burn(Duration::from_secs(6 * 3600)),
        p99_ms,
        exhausted: requests > 0 && errors as f64 > allowed_errors,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slo() -> SloSettings {
        SloSettings { availability: 99.0, latency_p99_ms: 300, window_days: 30 }
    }

    fn at(now: SystemTime, secs_ago: u64, status: u16, ms: f64) -> Sample {
        Sample { at: now - Duration::from_secs(secs_ago), status, ms }
    }

    #[test]
    fn the_budget_is_the_objectives_share_of_the_requests_seen() {
        let now = SystemTime::now();
        // 1000 requests in the last hour, 5 of them 5xx: 1% allows 10, so half is spent.
        let mut samples: Vec<Sample> = (0..995).map(|i| at(now, i % 3000, 200, 10.0)).collect();
        samples.extend((0..5).map(|_| at(now, 60, 503, 1.0)));
        // Older than the window: not counted.
        samples.push(at(now, 31 * 86_400, 500, 1.0));
        let b = budget(&slo(), &samples, now);
        assert_eq!((b.requests, b.errors), (1000, 5));
        assert!((b.allowed_errors - 10.0).abs() < 1e-9, "{b:?}");
        assert!((b.spent_percent - 50.0).abs() < 1e-9, "{b:?}");
        assert!(!b.exhausted);
        // 0.5% failing over the hour burns at half the budget's rate.
        assert!((b.burn_rate_1h.unwrap() - 0.5).abs() < 1e-9, "{b:?}");
        assert_eq!(b.p99_ms, Some(10.0));
        assert!(b.summary().contains("5 of 1000 requests failed"), "{}", b.summary());
    }

    #[test]
    fn more_failures_than_allowed_exhaust_it_and_no_requests_spend_nothing() {
        let now = SystemTime::now();
        let samples: Vec<Sample> =
            (0..100).map(|i| at(now, 10, if i < 2 { 500 } else { 200 }, 5.0)).collect();
        let b = budget(&slo(), &samples, now);
        assert!(b.exhausted && b.spent_percent > 100.0, "{b:?}");
        let empty = budget(&slo(), &[], now);
        assert!(!empty.exhausted && empty.spent_percent == 0.0 && empty.burn_rate_1h.is_none());
        assert!(empty.lines().join("\n").contains("requests       0 since —"));
    }
}
