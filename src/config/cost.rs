//! The stack keys about money: the `profile` (how much of the tier is duplicated per zone) and the
//! `cost:` section (the usage `orch cost` assumes, and the budget `orch check` holds the program to).
use serde::{Deserialize, Serialize};

/// What an AWS environment pays for zone independence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Profile {
    /// A NAT gateway per zone: losing a zone never cuts the other zone's egress.
    Standard,
    /// One NAT gateway (the first zone's) shared by both zones: cheaper, and a first-zone outage
    /// cuts the other zone's egress.
    Economy,
}

/// Usage assumptions for the usage-driven prices, and the budget (docs/cost.md).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CostSettings {
    /// Requests the load balancer answers a month (its LCUs).
    #[serde(default = "default_requests_per_month")]
    pub requests_per_month: u64,
    /// GB sent to the internet a month (data transfer out, the load balancer's processed bytes).
    #[serde(default = "default_gb_out_per_month")]
    pub gb_out_per_month: f64,
    /// GB of logs ingested into CloudWatch Logs a month (also what crosses the NAT gateways).
    #[serde(default = "default_log_gb_per_month")]
    pub log_gb_per_month: f64,
    /// `orch check` reports a finding when the program's monthly cost is above it.
    #[serde(default)]
    pub budget_monthly_usd: Option<f64>,
}

impl Default for CostSettings {
    fn default() -> Self {
        CostSettings {
            requests_per_month: default_requests_per_month(),
            gb_out_per_month: default_gb_out_per_month(),
            log_gb_per_month: default_log_gb_per_month(),
            budget_monthly_usd: None,
        }
    }
}

fn default_requests_per_month() -> u64 {
    10_000_000
}
fn default_gb_out_per_month() -> f64 {
    50.0
}
fn default_log_gb_per_month() -> f64 {
    5.0
}
