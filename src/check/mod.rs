//! `orch check`: the offline proof of a rendered program. Structural checks against the committed
//! aws-native schema (types, properties, references, cycles; see [`structure`]) and then named policy rules
//! (security and availability; see [`policy`]). Every finding is reported at once, each with its path.
mod contracts;
mod expr;
mod limits;
mod policy;
mod schema;
mod structure;

pub use contracts::RULES as CONTRACT_RULES;
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
}

impl Finding {
    pub fn error(rule: &str, path: &str, message: String) -> Self {
        Finding { category: "schema", rule: rule.into(), path: path.into(), message }
    }
    pub fn policy(rule: &str, path: &str, message: impl Into<String>) -> Self {
        Finding {
            category: "policy",
            rule: rule.into(),
            path: path.into(),
            message: message.into(),
        }
    }
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
    findings.iter().map(|f| format!("\n  - {} at {}: {}", f.rule, f.path, f.message)).collect()
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
    let report = check_program(&rendered.program, stack);
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
    Ok(check_program(&rendered.program, stack))
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
    report
}
