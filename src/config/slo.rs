//! The `slo:` section: the service-level objective the error budget is counted against
//! (`orch slo`, and the gate `orch up` applies while the budget is exhausted).
use serde::{Deserialize, Serialize};

/// The objective: a share of requests answered without a 5xx over a window, and a latency bound.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SloSettings {
    /// Percent of requests answered without a 5xx over the window (e.g. 99.9).
    pub availability: f64,
    /// The 99th percentile of the time to serve a request, in milliseconds.
    pub latency_p99_ms: u64,
    /// The window the budget is counted over, in days.
    #[serde(default = "default_window_days")]
    pub window_days: u32,
}

fn default_window_days() -> u32 {
    30
}
