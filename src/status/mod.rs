//! `orch status`: where an environment stands (exit 0 healthy, 1 degraded or down, 2 error or
//! never deployed). The shared core is here: the one answer a report gives — `status` on either
//! target, `drift` on AWS — with its name in `--json` and the exit code it maps to ([`Verdict`]),
//! and the envelope every `status --json` document starts with: `env`, `target`, `kind`, `verdict`
//! ([`Envelope`]). One module per target observes and prints: [`local`] (the tier's state file:
//! instances by zone, the release, a canary step, scaling) and [`aws`] (the deployment record, then
//! the group, targets, certificate, delegation, URL, rollout and cost, each its own row).
pub(crate) mod aws;
pub(crate) mod local;

use serde::Serialize;

use crate::config::Target;
use crate::error::Outcome;

/// How a report came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Verdict {
    /// status: every check passed (exit 0).
    Healthy,
    /// status: something is wrong (exit 1).
    Degraded,
    /// status: the environment was taken down with `orch down` and not brought back (exit 1).
    Down,
    /// drift: reality matches the code and the last deployment (exit 0).
    None,
    /// drift: found (exit 1).
    Drift,
    /// drift: a check could not run, so the answer is unknown (exit 2, never 0).
    Error,
}

impl Verdict {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Verdict::Healthy => "healthy",
            Verdict::Degraded => "degraded",
            Verdict::Down => "down",
            Verdict::None => "none",
            Verdict::Drift => "drift",
            Verdict::Error => "error",
        }
    }

    /// The outcome of a verdict that is an answer; `None` for [`Verdict::Error`] (an orch failure).
    pub(crate) fn outcome(self) -> Option<Outcome> {
        match self {
            Verdict::Healthy | Verdict::None => Some(Outcome::Ok),
            Verdict::Degraded | Verdict::Down | Verdict::Drift => Some(Outcome::Finding),
            Verdict::Error => None,
        }
    }
}

impl std::fmt::Display for Verdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The first keys of every `status --json` (and `drift --json`) document, whatever the target;
/// the rest (`rows` on AWS, the tier's own fields locally) follows, flattened.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Envelope<T: Serialize> {
    pub env: String,
    pub target: Target,
    /// `status` or `drift`.
    pub kind: &'static str,
    pub verdict: Verdict,
    #[serde(flatten)]
    pub body: T,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verdicts_map_to_the_exit_code_contract() {
        let code = |v: Verdict| v.outcome().map(Outcome::code);
        assert_eq!(code(Verdict::Healthy), Some(0));
        assert_eq!(code(Verdict::None), Some(0));
        assert_eq!(code(Verdict::Degraded), Some(1));
        assert_eq!(code(Verdict::Down), Some(1));
        assert_eq!(code(Verdict::Drift), Some(1));
        assert_eq!(code(Verdict::Error), None);
    }

    #[test]
    fn the_envelope_comes_first_and_the_body_is_flattened() {
        let doc = Envelope {
            env: "dev".into(),
            target: Target::Aws,
            kind: "status",
            verdict: Verdict::Down,
            body: serde_json::json!({ "rows": [] }),
        };
        let text = serde_json::to_string(&doc).unwrap();
        assert_eq!(
            text,
            r#"{"env":"dev","target":"aws","kind":"status","verdict":"down","rows":[]}"#
        );
    }
}
