//! What an environment costs a month, from its rendered Pulumi program, before anything exists:
//! every resource of the program is priced from the region's price table (`data/prices/<region>.json`,
//! see [`prices`]) or listed as free with its reason ([`resources::FREE`]); a type that is neither
//! stops with [`CostError::UnknownType`]. Usage-driven prices (LCUs, NAT data, data out, logs) come
//! from the stack's `cost:` assumptions. [`delta`] compares two estimates (`orch up --dry-run`
//! against the live release), [`over_budget`] is `orch check`'s budget rule. See docs/cost.md.
pub(crate) mod prices;
mod report;
pub(crate) mod resources;
mod running;
#[cfg(test)]
mod tests;

pub(crate) use prices::PriceTable;
pub(crate) use report::{delta, Delta};

use serde::Serialize;
use std::path::PathBuf;

use crate::config::Stack;
use crate::project::Project;

/// Hours in a month, as AWS's own calculator counts them.
pub(crate) const HOURS: f64 = 730.0;

/// The usage the usage-driven prices assume (the stack's `cost:` section or its defaults).
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Assumptions {
    pub hours_per_month: f64,
    pub requests_per_month: u64,
    pub gb_out_per_month: f64,
    pub log_gb_per_month: f64,
}

/// One priced item: a resource's instances, hours, storage or usage.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct Line {
    /// The AWS service the charge shows under (`EC2`, `VPC`, `ELB`, `RDS`, `CloudWatch`, `Data transfer`).
    pub service: &'static str,
    pub resource: String,
    pub resource_type: String,
    /// A stable name of the item within its resource (`instances`, `hours`, `storage`, ...).
    pub kind: &'static str,
    pub item: String,
    pub quantity: f64,
    pub unit: String,
    pub unit_usd: f64,
    pub monthly_usd: f64,
    /// The key in the price table.
    pub price: String,
    /// Offer, usage type and the date the price was taken.
    pub source: String,
    /// The Price List bulk offer file it comes from.
    pub source_url: String,
    /// The usage assumed, for usage-driven items.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub assumption: Option<String>,
}

/// A resource that costs nothing itself.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Free {
    pub resource: String,
    pub resource_type: String,
    pub reason: String,
}

/// The monthly cost of one rendered program.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Estimate {
    pub env: String,
    pub region: String,
    pub currency: &'static str,
    pub prices_taken: String,
    pub price_table: String,
    pub assumptions: Assumptions,
    pub lines: Vec<Line>,
    pub free: Vec<Free>,
    pub total_usd: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub budget_usd: Option<f64>,
}

#[derive(Debug, thiserror::Error)]
pub enum CostError {
    #[error("no price table for region `{region}`: {} does not exist", path.display())]
    NoTable { region: String, path: PathBuf },
    #[error("price table {}: {message}", path.display())]
    Table { path: PathBuf, message: String },
    #[error("resource `{resource}` has type `{resource_type}`, which orch cannot price: it is neither priced nor listed as free")]
    UnknownType { resource: String, resource_type: String },
    #[error("no price `{key}` (for resource `{resource}`) in {}", path.display())]
    NoPrice { key: String, resource: String, path: PathBuf },
    #[error("resource `{resource}` cannot be priced: {what}")]
    Unpriced { resource: String, what: String },
    #[error("the rendered program is not YAML with a `resources` mapping: {0}")]
    Program(String),
    #[error(transparent)]
    Render(#[from] crate::render::RenderError),
}

impl CostError {
    fn table(path: &std::path::Path, message: String) -> Self {
        CostError::Table { path: path.into(), message }
    }
    fn unpriced(resource: &str, what: &str) -> Self {
        CostError::Unpriced { resource: resource.into(), what: what.into() }
    }
    /// The next thing to do.
    pub fn hint(&self) -> String {
        match self {
            CostError::NoTable { .. } | CostError::NoPrice { .. } | CostError::Table { .. } => {
                "run `scripts/prices-refresh.py --region <region>` where the AWS Price List is reachable, or add the entry by hand with its source (docs/cost.md)".into()
            }
            CostError::UnknownType { .. } => {
                "price the type in src/cost/resources.rs, or list it in FREE with the reason it costs nothing".into()
            }
            CostError::Unpriced { .. } | CostError::Program(_) => {
                "fix the template under pulumi/ and run `orch render`, then `orch cost` again".into()
            }
            CostError::Render(e) => e.hint(),
        }
    }
}

/// The monthly cost of `program` (rendered for `stack`), with the project's price table.
pub(crate) fn estimate(
    project: &Project,
    stack: &Stack,
    program: &str,
) -> Result<Estimate, CostError> {
    let table = PriceTable::load(&project.price_table(&stack.region), &stack.region)?;
    estimate_with(&table, stack, program)
}

/// [`estimate`] with a table already loaded.
pub(crate) fn estimate_with(
    table: &PriceTable,
    stack: &Stack,
    program: &str,
) -> Result<Estimate, CostError> {
    let doc: serde_yaml::Value =
        serde_yaml::from_str(program).map_err(|e| CostError::Program(e.to_string()))?;
    let resources = doc
        .get("resources")
        .and_then(serde_yaml::Value::as_mapping)
        .ok_or_else(|| CostError::Program("no `resources` mapping".into()))?;
    let settings = stack.cost_settings();
    let usage = Assumptions {
        hours_per_month: HOURS,
        requests_per_month: settings.requests_per_month,
        gb_out_per_month: settings.gb_out_per_month,
        log_gb_per_month: settings.log_gb_per_month,
    };
    let mut pricer =
        resources::Pricer { table, usage: &usage, resources, lines: vec![], free: vec![] };
    for (name, resource) in resources {
        let name = name.as_str().unwrap_or_default();
        let ty = resource.get("type").and_then(serde_yaml::Value::as_str).unwrap_or_default();
        let empty = serde_yaml::Value::Mapping(Default::default());
        pricer.price(name, ty, resource.get("properties").unwrap_or(&empty))?;
    }
    let (lines, free) = (pricer.lines, pricer.free);
    let total = resources::round6(lines.iter().map(|l| l.monthly_usd).sum());
    Ok(Estimate {
        env: stack.name.clone(),
        region: table.region.clone(),
        currency: "USD",
        prices_taken: table.taken.clone(),
        price_table: table.path.display().to_string(),
        assumptions: usage,
        lines,
        free,
        total_usd: total,
        budget_usd: settings.budget_monthly_usd,
    })
}

/// `orch check`'s budget rule: when the stack sets `cost.budget_monthly_usd` and the program costs
/// more, the message naming the total and the biggest items. Nothing is priced without a budget.
pub(crate) fn over_budget(
    project: &Project,
    stack: &Stack,
    program: &str,
) -> Result<Option<String>, CostError> {
    let Some(budget) = stack.cost.as_ref().and_then(|c| c.budget_monthly_usd) else {
        return Ok(None);
    };
    let estimate = estimate(project, stack, program)?;
    if estimate.total_usd <= budget {
        return Ok(None);
    }
    let mut biggest = estimate.lines.clone();
    biggest.sort_by(|a, b| b.monthly_usd.total_cmp(&a.monthly_usd));
    let items: Vec<String> = biggest
        .iter()
        .take(3)
        .map(|l| format!("{} {} {}", l.resource, l.item, report::usd(l.monthly_usd)))
        .collect();
    Ok(Some(format!(
        "the program costs {}/month, above the budget of {}/month; biggest items: {} (`orch cost --env {}` lists every line)",
        report::usd(estimate.total_usd),
        report::usd(budget),
        items.join(", "),
        stack.name
    )))
}

/// The cost `orch up --dry-run` shows: the stack's rendered program against the live release's
/// recorded one (`live`), both at today's prices. A live program that no longer prices (a type
/// since dropped) is left out of the comparison rather than guessed.
pub(crate) fn for_plan(
    project: &Project,
    stack: &Stack,
    live: Option<&str>,
) -> Result<Delta, CostError> {
    let table = PriceTable::load(&project.price_table(&stack.region), &stack.region)?;
    let rendered = crate::render::render(project, stack)?;
    let now = estimate_with(&table, stack, &rendered.program)?;
    let before = live.and_then(|program| estimate_with(&table, stack, program).ok());
    Ok(delta(before.as_ref(), &now))
}

/// What the running environment costs a month (`orch status`): the live release's recorded program
/// at today's prices, or, when the release recorded none (older orch), the current rendered program;
/// the flag says which.
pub(crate) fn running(
    project: &Project,
    stack: &Stack,
    recorded: Option<&str>,
) -> Result<(Estimate, bool), CostError> {
    match recorded {
        Some(program) => Ok((estimate(project, stack, program)?, true)),
        None => {
            let rendered = crate::render::render(project, stack)?;
            Ok((estimate(project, stack, &rendered.program)?, false))
        }
    }
}

/// `$12.34`: how the reports show an amount.
pub(crate) fn usd(x: f64) -> String {
    report::usd(x)
}

impl Estimate {
    /// The human table: lines grouped by service with subtotals, the total, the free resources and
    /// the assumptions.
    pub(crate) fn text(&self) -> Vec<String> {
        report::table(self)
    }
}
