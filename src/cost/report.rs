//! How an estimate reads: the table `orch cost` prints, and the change between two estimates that
//! `orch up --dry-run` prints ("+$32.85/month: natGatewayB NAT gateway").
use serde::Serialize;
use std::collections::BTreeMap;

use super::resources::round6;
use super::Estimate;

/// Dollars with cents: `$1,234.50`-style without the thousands separator (`$1234.50`).
pub(super) fn usd(x: f64) -> String {
    if x < 0.0 {
        format!("-${:.2}", -x)
    } else {
        format!("${x:.2}")
    }
}

/// A change in dollars, always signed: `+$32.85`, `-$16.64`.
pub(super) fn signed(x: f64) -> String {
    if x < 0.0 {
        usd(x)
    } else {
        format!("+{}", usd(x))
    }
}

fn qty(x: f64) -> String {
    if x.fract() == 0.0 {
        format!("{x}")
    } else {
        let s = format!("{x:.3}");
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    }
}

/// The order services are shown in: what runs first, then its network, then the metered rest.
const SERVICES: [&str; 6] = ["EC2", "RDS", "VPC", "ELB", "CloudWatch", "Data transfer"];

/// A unit price with at least cents (`$0.10`, `$0.0228`).
fn unit_price(x: f64) -> String {
    let plain = format!("{x}");
    match plain.split_once('.') {
        Some((_, decimals)) if decimals.len() >= 2 => format!("${plain}"),
        _ => format!("${x:.2}"),
    }
}

pub(super) fn table(e: &Estimate) -> Vec<String> {
    let mut out = vec![format!(
        "monthly cost of `{}` in {}: on-demand list prices taken {} ({}), {} h a month",
        e.env, e.region, e.prices_taken, e.price_table, e.assumptions.hours_per_month
    )];
    let mut services: Vec<&str> = SERVICES.to_vec();
    services.extend(e.lines.iter().map(|l| l.service).filter(|s| !SERVICES.contains(s)));
    for service in services {
        let lines: Vec<_> = e.lines.iter().filter(|l| l.service == service).collect();
        if lines.is_empty() {
            continue;
        }
        out.push(service.to_string());
        for l in &lines {
            out.push(format!(
                "  {:<22} {:<44} {:>9} {:<12} × {:<8} {:>9}  {}",
                l.resource,
                l.item,
                qty(l.quantity),
                l.unit,
                unit_price(l.unit_usd),
                usd(l.monthly_usd),
                l.source
            ));
        }
        let subtotal: f64 = lines.iter().map(|l| l.monthly_usd).sum();
        out.push(format!("  {:<102}{:>9}", "subtotal", usd(subtotal)));
    }
    out.push(format!("total {}/month", usd(e.total_usd)));
    if let Some(budget) = e.budget_usd {
        let verdict = if e.total_usd > budget { "OVER" } else { "within" };
        out.push(format!("budget {}/month: {verdict}", usd(budget)));
    }
    out.push(format!("free ({}):", e.free.len()));
    out.extend(
        e.free.iter().map(|f| format!("  {:<22} {}: {}", f.resource, f.resource_type, f.reason)),
    );
    let a = &e.assumptions;
    out.push(format!(
        "assumed (stack `cost:`): {} requests, {} GB out to the internet, {} GB of logs a month; the Auto Scaling group at its minSize; no free tier",
        a.requests_per_month, a.gb_out_per_month, a.log_gb_per_month
    ));
    out
}

/// One item whose monthly cost differs between two estimates.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct Change {
    pub resource: String,
    pub kind: String,
    pub item: String,
    pub before_usd: f64,
    pub after_usd: f64,
    pub delta_usd: f64,
}

/// The monthly cost of a plan against what runs now.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct Delta {
    pub monthly_usd: f64,
    /// What the live release's program costs (at today's prices), when it is known.
    pub live_usd: Option<f64>,
    pub delta_usd: Option<f64>,
    /// Biggest change first.
    pub changes: Vec<Change>,
}

/// `after` against `before` (`None`: nothing recorded to compare with), item by item.
pub(crate) fn delta(before: Option<&Estimate>, after: &Estimate) -> Delta {
    let Some(before) = before else {
        return Delta {
            monthly_usd: after.total_usd,
            live_usd: None,
            delta_usd: None,
            changes: vec![],
        };
    };
    let mut items: BTreeMap<(String, String), Change> = BTreeMap::new();
    for (side, e) in [(0, before), (1, after)] {
        for l in &e.lines {
            let c = items.entry((l.resource.clone(), l.kind.to_string())).or_insert(Change {
                resource: l.resource.clone(),
                kind: l.kind.to_string(),
                item: l.item.clone(),
                before_usd: 0.0,
                after_usd: 0.0,
                delta_usd: 0.0,
            });
            if side == 0 {
                c.before_usd += l.monthly_usd;
            } else {
                c.after_usd += l.monthly_usd;
                c.item = l.item.clone();
            }
        }
    }
    let mut changes: Vec<Change> = items
        .into_values()
        .map(|mut c| {
            c.delta_usd = round6(c.after_usd - c.before_usd);
            c
        })
        .filter(|c| c.delta_usd != 0.0)
        .collect();
    changes.sort_by(|a, b| b.delta_usd.abs().total_cmp(&a.delta_usd.abs()));
    Delta {
        monthly_usd: after.total_usd,
        live_usd: Some(before.total_usd),
        delta_usd: Some(round6(after.total_usd - before.total_usd)),
        changes,
    }
}

impl Delta {
    /// The lines `orch up --dry-run` prints.
    pub(crate) fn lines(&self) -> Vec<String> {
        let mut out = vec![match (self.live_usd, self.delta_usd) {
            (Some(live), Some(d)) => format!(
                "monthly cost: {} ({}/month against the live release's {})",
                usd(self.monthly_usd),
                signed(d),
                usd(live)
            ),
            _ => format!(
                "monthly cost: {} (no program recorded for a live release to compare with)",
                usd(self.monthly_usd)
            ),
        }];
        out.extend(
            self.changes
                .iter()
                .map(|c| format!("  {}/month: {} {}", signed(c.delta_usd), c.resource, c.item)),
        );
        out
    }
}
