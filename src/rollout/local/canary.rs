//! The canary phase of a rollout. The first new-release instance boots with 0 % of traffic; once it
//! passes its health checks the load balancer's split ([`crate::local::lb::split`]) sends it each
//! step's percentage while the instance it replaces keeps serving. Every tick the step's window is
//! judged ([`crate::rollout::canary::judge`]): a failure aborts at once (traffic back on the baseline, the
//! canary retired); at the end of the bake a pass moves to the next step, too little traffic
//! extends the bake (at most [`MAX_EXTENSIONS`] times, then aborts). After the last step the split
//! is lifted and the rollout replaces the remaining instances one at a time, as a rolling one does.
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::Rollout;
use crate::local::group::supervisor::Supervisor;
use crate::local::lb::split::Split;
use crate::rollout::canary::{judge, CanaryPlan, Sample, StepAnalysis, Verdict, MAX_EXTENSIONS};
use serde::{Deserialize, Serialize};

/// A canary in progress.
#[derive(Debug)]
pub(crate) struct CanaryRun {
    plan: CanaryPlan,
    split: Arc<Split>,
    /// Index of the current step.
    step: usize,
    /// When the current step's traffic began (None while the canary boots).
    since: Option<Instant>,
    extensions: u32,
}

impl CanaryRun {
    /// A canary of `plan` from `baseline` to `canary`, routed by a split set on the pool at once
    /// (0 % until the canary is healthy).
    pub(crate) fn start(plan: CanaryPlan, baseline: &str, canary: &str) -> Self {
        let split = Arc::new(Split::new(baseline, canary, plan.objective.latency_ms));
        CanaryRun { plan, split, step: 0, since: None, extensions: 0 }
    }

    /// The canary gets traffic (it passed its health checks once).
    pub(crate) fn serving(&self) -> bool {
        self.since.is_some()
    }

    pub(crate) fn split(&self) -> Arc<Split> {
        self.split.clone()
    }
}

/// Where a canary stands, as `state.json` (and `orch status`) show it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CanaryProgress {
    /// 1-based step, of `steps`.
    pub step: usize,
    pub steps: usize,
    pub percent: u32,
    /// Seconds watched so far, of `bake_seconds` (extended when traffic was too thin).
    pub seconds: f64,
    pub bake_seconds: u64,
    pub baseline: Sample,
    pub canary: Sample,
    /// booting, baking, or the reason the bake was extended.
    pub state: String,
}

/// What a canary tick decided.
pub(crate) enum Next {
    /// Keep watching.
    Watch,
    /// Every step passed: replace the rest.
    Promote,
    /// Stop: traffic back on the baseline, the canary retired.
    Abort(String),
}

impl Supervisor {
    /// One look at the canary of `r` (its instance is healthy).
    pub(crate) fn canary_tick(&mut self, r: &mut Rollout) -> Next {
        let Some(c) = r.canary.as_mut() else { return Next::Promote };
        let steps = c.plan.steps.len();
        let Some(since) = c.since else {
            let percent = c.plan.steps[c.step];
            c.split.step(percent);
            c.since = Some(Instant::now());
            self.event(format!(
                "canary step 1/{steps}: {percent} % of traffic to release {}",
                r.to.id
            ));
            return Next::Watch;
        };
        let bake =
            Duration::from_secs(u64::from(c.plan.bake_seconds) * u64::from(1 + c.extensions));
        let (baseline, canary) = c.split.samples();
        let end = since.elapsed() >= bake;
        let j = judge(&c.plan.objective, &baseline, &canary, end);
        let percent = c.split.percent();
        let record = |verdict, reason: &str| StepAnalysis {
            step: c.step + 1,
            percent,
            seconds: since.elapsed().as_secs_f64(),
            baseline,
            canary,
            verdict,
            reason: reason.to_string(),
        };
        self.release_view.canary = Some(CanaryProgress {
            step: c.step + 1,
            steps,
            percent,
            seconds: since.elapsed().as_secs_f64(),
            bake_seconds: bake.as_secs(),
            baseline,
            canary,
            state: if c.extensions == 0 { "baking".into() } else { j.reason.clone() },
        });
        match j.verdict {
            Verdict::Fail => {
                r.analysis.push(record(Verdict::Fail, &j.reason));
                Next::Abort(format!(
                    "canary step {}/{steps} ({percent} % of traffic) failed: {}",
                    c.step + 1,
                    j.reason
                ))
            }
            Verdict::Wait if end && c.extensions >= MAX_EXTENSIONS => {
                r.analysis.push(record(Verdict::Wait, &j.reason));
                Next::Abort(format!(
                    "canary step {}/{steps} could not be judged after {} s: {}",
                    c.step + 1,
                    bake.as_secs(),
                    j.reason
                ))
            }
            Verdict::Wait if end => {
                c.extensions += 1;
                let why = format!("bake of step {} extended: {}", c.step + 1, j.reason);
                self.event(why);
                Next::Watch
            }
            Verdict::Wait => Next::Watch,
            Verdict::Pass => {
                r.analysis.push(record(Verdict::Pass, &j.reason));
                c.step += 1;
                c.extensions = 0;
                if c.step == steps {
                    self.pool.set_split(None);
                    r.canary = None;
                    self.release_view.canary = None;
                    self.event(format!(
                        "canary of release {} promoted: replacing the rest",
                        r.to.id
                    ));
                    return Next::Promote;
                }
                let next = c.plan.steps[c.step];
                c.split.step(next);
                c.since = Some(Instant::now());
                self.event(format!("canary step {}/{steps}: {next} % of traffic", c.step + 1));
                Next::Watch
            }
        }
    }
}
