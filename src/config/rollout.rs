//! The `rollout:` section: how a new release replaces the running one. `rolling` (the default)
//! replaces instances one at a time behind health checks; `canary` first sends a growing share of
//! traffic (locally) or of instances (AWS) to the new release, watches each step for `bake_seconds`
//! and promotes or aborts it against the `slo:` objective (see [`crate::rollout::canary`]).
use serde::{Deserialize, Serialize};

/// How releases roll out.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RolloutSettings {
    #[serde(default)]
    pub strategy: Strategy,
    /// Percent of traffic (local) or of instances (AWS) per canary step, ascending; 100 follows.
    #[serde(default = "default_steps")]
    pub steps: Vec<u32>,
    /// How long each step is watched before it is judged, in seconds.
    #[serde(default = "default_bake_seconds")]
    pub bake_seconds: u32,
}

/// The rollout strategy.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Strategy {
    /// Instance by instance behind health checks (an instance refresh without checkpoints).
    #[default]
    Rolling,
    /// Steps of traffic judged against the objective before the rest is replaced.
    Canary,
}

impl Default for RolloutSettings {
    fn default() -> Self {
        RolloutSettings {
            strategy: Strategy::Rolling,
            steps: default_steps(),
            bake_seconds: default_bake_seconds(),
        }
    }
}

impl RolloutSettings {
    /// A canary rollout's steps, or `None` for a rolling one.
    pub fn canary_steps(&self) -> Option<&[u32]> {
        (self.strategy == Strategy::Canary).then_some(self.steps.as_slice())
    }
}

fn default_steps() -> Vec<u32> {
    vec![10, 50]
}

fn default_bake_seconds() -> u32 {
    120
}

/// The longest bake: Auto Scaling's `CheckpointDelay` maximum (RefreshPreferences, 172800 s).
pub(super) const MAX_BAKE_SECONDS: u32 = 172_800;
/// Steps at most (a canary of more steps than this is a slow rolling update).
pub(super) const MAX_STEPS: usize = 10;

/// The problems of `r` (key, message); empty when valid. `has_slo`: the stack has an objective,
/// which a canary is judged against.
pub(super) fn problems(r: &RolloutSettings, has_slo: bool) -> Vec<(&'static str, String)> {
    let mut out = vec![];
    if r.strategy == Strategy::Canary && !has_slo {
        out.push((
            "rollout.strategy",
            "a canary is judged against the service-level objective: add an `slo:` section".into(),
        ));
    }
    if r.steps.is_empty() || r.steps.len() > MAX_STEPS {
        out.push((
            "rollout.steps",
            format!("give 1 to {MAX_STEPS} steps (percent), e.g. [10, 50]"),
        ));
    }
    if let Some(bad) = r.steps.iter().find(|s| !(1..=99).contains(*s)) {
        out.push((
            "rollout.steps",
            format!("{bad} is not a percentage from 1 to 99 (100 follows the last step)"),
        ));
    }
    if r.steps.windows(2).any(|w| w[0] >= w[1]) {
        out.push(("rollout.steps", format!("{:?} must be strictly ascending", r.steps)));
    }
    if !(1..=MAX_BAKE_SECONDS).contains(&r.bake_seconds) {
        out.push(("rollout.bake_seconds", format!("must be 1–{MAX_BAKE_SECONDS} seconds")));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn canary(steps: Vec<u32>, bake_seconds: u32) -> RolloutSettings {
        RolloutSettings { strategy: Strategy::Canary, steps, bake_seconds }
    }

    #[test]
    fn valid_settings_have_no_problems() {
        assert!(problems(&RolloutSettings::default(), false).is_empty());
        assert!(problems(&canary(vec![10, 50], 120), true).is_empty());
        assert_eq!(canary(vec![5], 1).canary_steps(), Some(&[5][..]));
        assert_eq!(RolloutSettings::default().canary_steps(), None);
    }

    #[test]
    fn each_problem_names_its_key() {
        let keys = |r: &RolloutSettings, slo| -> Vec<&str> {
            problems(r, slo).into_iter().map(|(k, _)| k).collect()
        };
        assert_eq!(keys(&canary(vec![10], 60), false), ["rollout.strategy"]);
        assert_eq!(keys(&canary(vec![], 60), true), ["rollout.steps"]);
        assert_eq!(keys(&canary(vec![10, 100], 60), true), ["rollout.steps"]);
        assert_eq!(keys(&canary(vec![50, 10], 60), true), ["rollout.steps"]);
        assert_eq!(keys(&canary(vec![10, 10], 60), true), ["rollout.steps"]);
        assert_eq!(keys(&canary(vec![10], 0), true), ["rollout.bake_seconds"]);
        assert_eq!(keys(&canary(vec![10], MAX_BAKE_SECONDS + 1), true), ["rollout.bake_seconds"]);
    }
}
