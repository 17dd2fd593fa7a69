//! Judging a canary against the release it would replace, over the same interval: the share of
//! requests answered with a 5xx and the share slower than the objective's latency bound (a p99
//! objective allows 1 % above it). Each is compared with Fisher's exact test (one-sided: is the
//! canary worse?), which is exact for small samples. A step fails when the canary is worse with
//! significance *and* beyond what the objective allows; it passes only at the end of its bake, and
//! only once the canary served enough requests that zero failures would have shown it within the
//! objective at 95 % confidence — until then the bake is extended, never passed silently. Looks
//! before the end of the bake use a stricter threshold (Haybittle–Peto: 0.001, then 0.05 at the
//! end), so watching all along barely raises the false-abort rate. Pure: the local load balancer
//! feeds it samples; the verdicts and the table go into the release record.
use serde::{Deserialize, Serialize};
use statrs::distribution::{DiscreteCDF, Hypergeometric};

use crate::config::SloSettings;

/// Significance at the end of a bake.
pub const ALPHA: f64 = 0.05;
/// Significance of a look before the end of the bake.
pub const ALPHA_INTERIM: f64 = 0.001;
/// The share of requests a p99 objective allows above its bound.
const SLOW_ALLOWANCE: f64 = 0.01;

/// What one release served over an interval.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    pub requests: u64,
    /// Answered with a 5xx (by the instance, or by the balancer for it: a reset, a timeout).
    pub errors: u64,
    /// Slower than the objective's latency bound.
    pub slow: u64,
    /// The 99th percentile of the time to serve, in milliseconds (None without requests).
    #[serde(default)]
    pub p99_ms: Option<f64>,
}

impl Sample {
    fn ratio(n: u64, of: u64) -> f64 {
        if of == 0 {
            0.0
        } else {
            n as f64 / of as f64
        }
    }
    pub fn error_ratio(&self) -> f64 {
        Self::ratio(self.errors, self.requests)
    }
    pub fn slow_ratio(&self) -> f64 {
        Self::ratio(self.slow, self.requests)
    }
}

/// What a canary is held to, from the stack's `slo:`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Objective {
    /// The share of requests that may fail (1 − availability).
    pub error_allowance: f64,
    /// The latency bound: a request slower than this counts as slow.
    pub latency_ms: u64,
}

impl Objective {
    pub fn from_slo(slo: &SloSettings) -> Self {
        Objective {
            error_allowance: (100.0 - slo.availability) / 100.0,
            latency_ms: slo.latency_p99_ms,
        }
    }

    /// Canary requests needed before a step can pass: the n for which zero failures put the
    /// 95 % upper bound of the failure rate at the tighter allowance ((1 − a)^n ≤ 0.05).
    pub fn needed(&self) -> u64 {
        let a = self.error_allowance.min(SLOW_ALLOWANCE).clamp(1e-6, 0.5);
        (ALPHA.ln() / (1.0 - a).ln()).ceil() as u64
    }
}

/// A canary rollout as the stack asks for it: the steps, the bake and the objective.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CanaryPlan {
    /// Percent of traffic per step, ascending; 100 follows.
    pub steps: Vec<u32>,
    pub bake_seconds: u32,
    pub objective: Objective,
}

impl CanaryPlan {
    /// The stack's canary, or None for a rolling rollout (or without an objective).
    pub fn of(stack: &crate::config::Stack) -> Option<Self> {
        let steps = stack.rollout.canary_steps()?;
        let slo = stack.slo.as_ref()?;
        Some(CanaryPlan {
            steps: steps.to_vec(),
            bake_seconds: stack.rollout.bake_seconds,
            objective: Objective::from_slo(slo),
        })
    }

    /// The longest a canary may take: every step baked and extended [`MAX_EXTENSIONS`] times.
    pub fn longest(&self) -> std::time::Duration {
        let per_step = u64::from(self.bake_seconds) * (1 + u64::from(MAX_EXTENSIONS));
        std::time::Duration::from_secs(per_step * self.steps.len() as u64)
    }
}

/// How many times a step's bake is extended for too little traffic before the canary is aborted.
pub const MAX_EXTENSIONS: u32 = 3;

/// A judgement's outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// Not worse, with enough requests: the next step.
    Pass,
    /// Worse than the baseline beyond what the objective allows: abort.
    Fail,
    /// Not enough evidence yet: keep watching.
    Wait,
}

/// A verdict and its reason (the numbers it rests on).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Judgement {
    pub verdict: Verdict,
    pub reason: String,
    /// One-sided p-values: is the canary's 5xx share / slow share higher than the baseline's?
    pub p_errors: f64,
    pub p_slow: f64,
}

/// Fisher's exact test, one-sided: the probability that the canary gets at least `a` of the
/// `a + b` failures if both releases fail alike (`n_a`, `n_b` requests).
pub fn fisher_greater(a: u64, n_a: u64, b: u64, n_b: u64) -> f64 {
    if a == 0 {
        return 1.0;
    }
    match Hypergeometric::new(n_a + n_b, a + b, n_a) {
        Ok(h) => h.sf(a - 1),
        Err(_) => 1.0,
    }
}

/// Judge `canary` against `baseline` (same interval). `end`: the bake is over (the final look).
pub fn judge(objective: &Objective, baseline: &Sample, canary: &Sample, end: bool) -> Judgement {
    let alpha = if end { ALPHA } else { ALPHA_INTERIM };
    let p_errors =
        fisher_greater(canary.errors, canary.requests, baseline.errors, baseline.requests);
    let p_slow = fisher_greater(canary.slow, canary.requests, baseline.slow, baseline.requests);
    let pct = |x: f64| format!("{:.2} %", x * 100.0);
    let verdict = |verdict, reason| Judgement { verdict, reason, p_errors, p_slow };
    if p_errors < alpha && canary.error_ratio() > objective.error_allowance {
        return verdict(
            Verdict::Fail,
            format!(
                "5xx: canary {} of {} ({}) vs baseline {} of {} ({}), p = {p_errors:.4}; the objective allows {}",
                canary.errors,
                canary.requests,
                pct(canary.error_ratio()),
                baseline.errors,
                baseline.requests,
                pct(baseline.error_ratio()),
                pct(objective.error_allowance)
            ),
        );
    }
    if p_slow < alpha && canary.slow_ratio() > SLOW_ALLOWANCE {
        let p99 = |s: &Sample| s.p99_ms.map(|v| format!("{v:.0} ms")).unwrap_or("-".into());
        return verdict(
            Verdict::Fail,
            format!(
                "latency: canary p99 {} ({} over {} ms) vs baseline p99 {} ({}), p = {p_slow:.4}; the objective allows 1 % over",
                p99(canary),
                pct(canary.slow_ratio()),
                objective.latency_ms,
                p99(baseline),
                pct(baseline.slow_ratio())
            ),
        );
    }
    if !end {
        return verdict(Verdict::Wait, "baking".into());
    }
    let needed = objective.needed();
    if canary.requests < needed {
        return verdict(
            Verdict::Wait,
            format!(
                "too little traffic: the canary served {} request(s), {needed} are needed to tell it from the objective",
                canary.requests
            ),
        );
    }
    verdict(
        Verdict::Pass,
        format!(
            "5xx {} vs {} (p = {p_errors:.2}), over {} ms {} vs {} (p = {p_slow:.2})",
            pct(canary.error_ratio()),
            pct(baseline.error_ratio()),
            objective.latency_ms,
            pct(canary.slow_ratio()),
            pct(baseline.slow_ratio())
        ),
    )
}

/// One step of a canary as the release record keeps it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepAnalysis {
    /// 1-based.
    pub step: usize,
    /// Percent of traffic (local) the canary got.
    pub percent: u32,
    /// How long the step was watched.
    pub seconds: f64,
    pub baseline: Sample,
    pub canary: Sample,
    pub verdict: Verdict,
    pub reason: String,
}

/// The analysis as a table, one row per release per step.
pub fn table(steps: &[StepAnalysis]) -> String {
    let mut out = format!(
        "{:<5} {:>7} {:>7}  {:<8} {:>8} {:>6} {:>7} {:>7} {:>8}  {}\n",
        "step",
        "traffic",
        "seconds",
        "release",
        "requests",
        "5xx",
        "5xx %",
        "slow %",
        "p99 ms",
        "verdict"
    );
    for s in steps {
        for (name, sample, verdict) in [
            ("baseline", &s.baseline, String::new()),
            ("canary", &s.canary, format!("{:?}: {}", s.verdict, s.reason).to_lowercase()),
        ] {
            let first = name == "baseline";
            let line = format!(
                "{:<5} {:>7} {:>7}  {:<8} {:>8} {:>6} {:>7.2} {:>7.2} {:>8}  {}",
                if first { s.step.to_string() } else { String::new() },
                if first { format!("{} %", s.percent) } else { String::new() },
                if first { format!("{:.1}", s.seconds) } else { String::new() },
                name,
                sample.requests,
                sample.errors,
                sample.error_ratio() * 100.0,
                sample.slow_ratio() * 100.0,
                sample.p99_ms.map(|v| format!("{v:.1}")).unwrap_or("-".into()),
                verdict
            );
            out.push_str(line.trim_end());
            out.push('\n');
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(requests: u64, errors: u64, slow: u64) -> Sample {
        Sample { requests, errors, slow, p99_ms: Some(5.0) }
    }

    const OBJ: Objective = Objective { error_allowance: 0.01, latency_ms: 100 };

    #[test]
    fn fisher_matches_known_values() {
        // 3 of 3 failures in a group of 10 out of 20: C(10,3)/C(20,3) = 120/1140.
        assert!((fisher_greater(3, 10, 0, 10) - 120.0 / 1140.0).abs() < 1e-9);
        assert_eq!(fisher_greater(0, 10, 5, 10), 1.0);
        // Lady tasting tea: 3 of 4 right, one-sided p = 17/70.
        assert!((fisher_greater(3, 4, 1, 4) - 17.0 / 70.0).abs() < 1e-9);
    }

    #[test]
    fn needed_follows_the_tighter_allowance() {
        assert_eq!(OBJ.needed(), 299);
        assert_eq!(Objective { error_allowance: 0.001, latency_ms: 100 }.needed(), 2995);
    }

    #[test]
    fn a_worse_canary_fails_even_before_the_end_and_names_the_numbers() {
        // 5 % errors on 200 requests against none of 1800.
        let j = judge(&OBJ, &s(1800, 0, 0), &s(200, 10, 0), false);
        assert_eq!(j.verdict, Verdict::Fail, "{j:?}");
        assert!(j.reason.contains("5xx: canary 10 of 200 (5.00 %)"), "{}", j.reason);
        let slow = judge(&OBJ, &s(1800, 0, 9), &s(50, 0, 50), false);
        assert_eq!(slow.verdict, Verdict::Fail);
        assert!(slow.reason.starts_with("latency:"), "{}", slow.reason);
    }

    #[test]
    fn small_samples_wait_rather_than_pass_or_fail() {
        // One error in three requests: alarming, not significant.
        assert_eq!(judge(&OBJ, &s(300, 0, 0), &s(3, 1, 0), false).verdict, Verdict::Wait);
        let j = judge(&OBJ, &s(900, 0, 0), &s(100, 0, 0), true);
        assert_eq!(j.verdict, Verdict::Wait);
        assert!(j.reason.contains("too little traffic: the canary served 100"), "{}", j.reason);
        assert_eq!(judge(&OBJ, &s(2700, 0, 0), &s(300, 0, 0), true).verdict, Verdict::Pass);
    }

    #[test]
    fn worse_within_the_objective_or_like_the_baseline_passes() {
        // Significantly worse than a perfect baseline, yet within the 1 % allowed.
        assert_eq!(judge(&OBJ, &s(20000, 0, 0), &s(2000, 16, 0), true).verdict, Verdict::Pass);
        // As bad as the baseline: not the canary's doing.
        assert_eq!(judge(&OBJ, &s(3000, 150, 0), &s(300, 15, 0), true).verdict, Verdict::Pass);
    }

    #[test]
    fn the_table_has_a_row_per_release_per_step() {
        let step = StepAnalysis {
            step: 1,
            percent: 10,
            seconds: 5.0,
            baseline: s(2700, 0, 0),
            canary: s(300, 15, 0),
            verdict: Verdict::Fail,
            reason: "5xx".into(),
        };
        let t = table(&[step]);
        assert_eq!(t.lines().count(), 3, "{t}");
        let row: Vec<&str> = t.lines().nth(2).unwrap().split_whitespace().take(4).collect();
        assert_eq!(row, ["canary", "300", "15", "5.00"], "{t}");
        assert!(t.lines().all(|l| l == l.trim_end()), "no trailing blanks: {t:?}");
        assert!(t.contains("fail: 5xx"), "{t}");
    }
}
