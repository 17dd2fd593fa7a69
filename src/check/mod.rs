//! `orch check`: the offline proof of a rendered program. Structural checks against the committed
//! aws-native schema (types, properties, references, cycles; see [`structure`]), the value limits of the
//! registry schemas and the API references ([`limits`], [`api_limits`]), relations across resources
//! ([`relations`], [`balancing`]), who may do what ([`access`]) and named policy rules (security and
//! availability; see [`policy`], [`contracts`]). Every finding is reported at once, each with its path
//! and, where the rule comes from AWS, its source.
mod access;
mod api_limits;
mod balancing;
mod contracts;
mod expr;
mod idle;
mod limits;
mod policy;
mod relations;
mod schema;
mod structure;
mod values;

pub use access::RULES as ACCESS_RULES;
pub use api_limits::rules as api_rules;
pub use relations::RULES as RELATION_RULES;
pub use values::schema_regex;

pub use contracts::RULES as CONTRACT_RULES;
pub use idle::RULE as IDLE_RULE;
pub use policy::RULES;
pub use schema::Schema;

use serde::Serialize;

use crate::config::Stack;
use crate::project::Project;
use crate::render::{self, RenderError};

/// The structural error kinds (policy findings carry the rule's name instead).
pub const ERROR_KINDS: &[&str] = &[
    "invalid-yaml",
    "invalid-value",
    "unknown-type",
    "unknown-property",
    "missing-required",
    "wrong-type",
    "unknown-output",
    "dangling-reference",
    "cycle",
];

/// One thing wrong with the program.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// `schema` (structure and references) or `policy`.
    pub category: &'static str,
    /// The error kind (`unknown-property`, ...) or the policy rule (`no-ssh-ingress`, ...).
    pub rule: String,
    /// Where: `resources.<name>.properties.<prop...>`.
    pub path: String,
    pub message: String,
    /// Where the rule comes from (a schema, an API reference URL); empty for orch's own policy.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub source: String,
}

impl Finding {
    pub fn error(rule: &str, path: &str, message: String) -> Self {
        Finding {
            category: "schema",
            rule: rule.into(),
            path: path.into(),
            message,
            source: String::new(),
        }
    }
    pub fn policy(rule: &str, path: &str, message: impl Into<String>) -> Self {
        Finding {
            category: "policy",
            rule: rule.into(),
            path: path.into(),
            message: message.into(),
            source: String::new(),
        }
    }
    /// The same finding, naming where its rule comes from.
    pub fn with_source(mut self, source: &str) -> Self {
        self.source = source.into();
        self
    }
    /// The message, followed by the source when there is one.
    pub fn explained(&self) -> String {
        match self.source.as_str() {
            "" => self.message.clone(),
            source => format!("{} (source: {source})", self.message),
        }
    }
}

/// A policy finding for `rule` of `rules` (name, demand, source), naming the rule's source.
fn sourced(
    rules: &[(&str, &str, &'static str)],
    rule: &str,
    path: &str,
    message: String,
) -> Finding {
    let source = rules.iter().find(|(r, _, _)| *r == rule).map_or("", |(_, _, s)| *s);
    Finding::policy(rule, path, message).with_source(source)
}

/// The result of checking one environment.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub env: String,
    pub provider_version: String,
    pub resources: usize,
    pub findings: Vec<Finding>,
}

#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    #[error(transparent)]
    Render(#[from] RenderError),
    /// The gate `orch up` runs: the program has findings, so nothing was changed.
    #[error("the program for `{env}` has {} finding(s) AWS or our policy would refuse; nothing was changed:{}", findings.len(), list(findings))]
    Findings { env: String, findings: Vec<Finding> },
}

fn list(findings: &[Finding]) -> String {
    findings.iter().map(|f| format!("\n  - {} at {}: {}", f.rule, f.path, f.explained())).collect()
}

impl CheckError {
    pub fn hint(&self) -> String {
        match self {
            CheckError::Render(e) => e.hint(),
            CheckError::Findings { env, .. } => format!(
                "fix stacks/{env}.yaml or the templates under pulumi/, then run `orch check --env {env}`"
            ),
        }
    }
}

/// The gate before any change: render (in memory: `up` and `rollback` run it before they hold
/// the deploy lock, so it writes nothing under build/), check, and refuse on any finding.
pub fn gate(project: &Project, stack: &Stack) -> Result<Report, CheckError> {
    let rendered = render::render(project, stack)?;
    let mut report = check_program(&rendered.program, stack);
    report.findings.extend(budget(project, stack, &rendered.program));
    if report.findings.is_empty() {
        Ok(report)
    } else {
        Err(CheckError::Findings { env: stack.name.clone(), findings: report.findings })
    }
}

/// Render `stack` (writing `build/<env>/`, so the checked files can be read) and check the program.
pub fn check(project: &Project, stack: &Stack) -> Result<Report, CheckError> {
    let rendered = render::render(project, stack)?;
    render::write(project, stack, &rendered)?;
    let mut report = check_program(&rendered.program, stack);
    report.findings.extend(budget(project, stack, &rendered.program));
    Ok(report)
}

/// The stack's `cost.budget_monthly_usd` (docs/cost.md): a finding when the program costs more a
/// month, or when it cannot be priced to tell.
fn budget(project: &Project, stack: &Stack, program: &str) -> Option<Finding> {
    let message = match crate::cost::over_budget(project, stack, program) {
        Ok(over) => over?,
        Err(e) => format!("cannot tell whether the program stays within the budget: {e}"),
    };
    Some(Finding {
        category: "cost",
        rule: "budget".into(),
        path: "cost.budget_monthly_usd".into(),
        message,
        source: format!("data/prices/{}.json (docs/cost.md)", stack.region),
    })
}

/// Check a program's text (as rendered for `stack`): structure first, then policy.
pub fn check_program(program: &str, stack: &Stack) -> Report {
    let schema = Schema::get();
    let mut report = Report {
        env: stack.name.clone(),
        provider_version: schema.version.clone(),
        resources: 0,
        findings: vec![],
    };
    let doc: serde_yaml::Mapping = match serde_yaml::from_str(program) {
        Ok(doc) => doc,
        Err(e) => {
            let at = e
                .location()
                .map(|l| format!("line {}", l.line()))
                .unwrap_or_else(|| "Pulumi.yaml".into());
            report.findings.push(Finding::error("invalid-yaml", &at, e.to_string()));
            return report;
        }
    };
    report.resources = doc.get("resources").and_then(|r| r.as_mapping()).map_or(0, |m| m.len());
    let mut checker = structure::Checker::new(schema, &doc);
    checker.run(&doc);
    report.findings = checker.findings;
    report.findings.extend(policy::run(&doc, stack, schema));
    report.findings.extend(limits::run(&doc));
    report.findings.extend(contracts::run(&doc));
    report.findings.extend(api_limits::run(&doc));
    report.findings.extend(relations::run(&doc, stack));
    report.findings.extend(access::run(&doc));
    report.findings.extend(idle::run(&doc));
    // The registry schema's `required` repeats the provider's: one finding per (rule, path).
    let mut seen = std::collections::BTreeSet::new();
    report.findings.retain(|f| seen.insert((f.rule.clone(), f.path.clone())));
    report
}
