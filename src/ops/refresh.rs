//! Drift's view from Pulumi: `refresh --preview-only --expect-no-changes --json` run through
//! [`crate::pulumi::Pulumi`] (so the backend, executable and [`crate::runner::Runner`] are deploy's),
//! and its reading. Current CLIs exit [`EXIT_NO_CHANGES`] when changes were found; older ones exit 1
//! with "no changes were expected", so the JSON (a preview digest, or engine events one per line,
//! both parsed by `crate::pulumi`) is read as well and decides on its own.
use serde::Serialize;
use std::collections::BTreeMap;

use crate::pulumi::events::{self, is_stack, is_unchanged, short_name, urn_type};
use crate::pulumi::preview::PreviewDigest;
use crate::pulumi::{Pulumi, EXIT_NO_CHANGES};
use crate::runner::Output;

/// One resource that differs from its recorded state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(super) struct Drifted {
    pub urn: String,
    pub kind: String,
    pub name: String,
    /// `update` (properties changed) or `delete` (gone).
    pub op: String,
    pub properties: Vec<String>,
}

/// What the refresh said.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "result", rename_all = "lowercase")]
pub(super) enum Refresh {
    Clean { resources: usize },
    Drift { resources: Vec<Drifted> },
    Failed { code: Option<i32>, message: String },
}

/// The refresh's arguments: preview-only (the state is never written), failing on changes.
pub(super) fn args(stack: &str) -> [&str; 7] {
    [
        "refresh",
        "--preview-only",
        "--expect-no-changes",
        "--json",
        "--stack",
        stack,
        "--non-interactive",
    ]
}

/// Run the refresh and read it.
pub(super) fn run(pulumi: &Pulumi) -> Refresh {
    match pulumi.run_any(&pulumi.cmd(args(&pulumi.stack))) {
        Ok(out) => interpret(&out),
        Err(e) => Refresh::Failed { code: None, message: e.to_string() },
    }
}

/// Judge a finished refresh from its exit code, its JSON and its diagnostics.
pub(super) fn interpret(out: &Output) -> Refresh {
    let parsed = parse(&out.stdout);
    let said_changes = out.stderr.contains("no changes were expected")
        || out.stdout.contains("no changes were expected");
    match (out.code, parsed) {
        (Some(0), Some((total, drifted))) if drifted.is_empty() => {
            Refresh::Clean { resources: total }
        }
        (Some(0), None) => Refresh::Clean { resources: 0 },
        (Some(0) | Some(EXIT_NO_CHANGES), Some((_, drifted))) => {
            Refresh::Drift { resources: drifted }
        }
        (Some(EXIT_NO_CHANGES), None) => Refresh::Drift { resources: vec![] },
        (_, Some((_, drifted))) if !drifted.is_empty() => Refresh::Drift { resources: drifted },
        (_, _) if said_changes => Refresh::Drift { resources: vec![] },
        (code, _) => Refresh::Failed { code, message: last_line(&out.stderr).to_string() },
    }
}

fn last_line(text: &str) -> &str {
    text.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("(no message)").trim()
}

/// `(resources seen, drifted ones)` from a preview digest or from a stream of engine events.
fn parse(stdout: &str) -> Option<(usize, Vec<Drifted>)> {
    if let Some(digest) = PreviewDigest::parse(stdout) {
        let steps = digest.steps.unwrap_or_default();
        let found: Vec<Drifted> =
            steps.iter().filter_map(|s| drifted(&s.op, &s.urn, s.properties())).collect();
        let total = steps.iter().filter(|s| !is_stack(&s.urn)).count();
        return Some((total, with_summary(found, digest.change_summary.as_ref())));
    }
    let events: Vec<events::EngineEvent> = stdout.lines().filter_map(events::parse_line).collect();
    if events.is_empty() {
        return None;
    }
    let mut found: BTreeMap<String, Drifted> = BTreeMap::new();
    let mut total = 0;
    let mut summary = None;
    for e in &events {
        // The pre-event names the step; for a refresh the outputs event carries the final verdict
        // (`update` with a detailed diff, or `delete`), so it replaces what the pre-event said.
        if let Some(m) = e.resource_pre_event.as_ref().map(|p| &p.metadata) {
            total += usize::from(!is_stack(&m.urn));
            if let Some(d) = drifted(&m.op, &m.urn, m.properties()) {
                found.insert(d.urn.clone(), d);
            }
        }
        if let Some(m) = e.res_outputs_event.as_ref().map(|o| &o.metadata) {
            match drifted(&m.op, &m.urn, m.properties()) {
                Some(d) => found.insert(d.urn.clone(), d),
                None => found.remove(&m.urn),
            };
        }
        if let Some(s) = &e.summary_event {
            summary = Some(s.resource_changes.clone());
        }
    }
    Some((total, with_summary(found.into_values().collect(), summary.as_ref())))
}

/// When the steps show nothing but the summary counts changes, report an anonymous drift.
fn with_summary(drifted: Vec<Drifted>, summary: Option<&BTreeMap<String, i64>>) -> Vec<Drifted> {
    if !drifted.is_empty() {
        return drifted;
    }
    let changed: i64 = summary
        .map(|m| m.iter().filter(|(op, n)| !is_unchanged(op) && **n > 0).map(|(_, n)| n).sum())
        .unwrap_or(0);
    if changed == 0 {
        return drifted;
    }
    vec![Drifted {
        urn: String::new(),
        kind: String::new(),
        name: format!("{changed} resource(s)"),
        op: "update".into(),
        properties: vec![],
    }]
}

/// The step as a drifted resource, unless it changes nothing (or is the stack itself).
fn drifted(op: &str, urn: &str, properties: Vec<String>) -> Option<Drifted> {
    if op.is_empty() || is_unchanged(op) || is_stack(urn) {
        return None;
    }
    Some(Drifted {
        urn: urn.to_string(),
        kind: urn_type(urn).to_string(),
        name: short_name(urn).to_string(),
        op: op.to_string(),
        properties,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn out(code: i32, stdout: &str, stderr: &str) -> Output {
        Output { code: Some(code), stdout: stdout.into(), stderr: stderr.into() }
    }
    const STACK: &str = "urn:pulumi:dev::orch::pulumi:pulumi:Stack::orch-dev";
    const SG: &str = "urn:pulumi:dev::orch::aws-native:ec2:SecurityGroup::albSg";

    fn digest(op: &str) -> String {
        serde_json::json!({
            "steps": [
                {"op": "refresh", "urn": STACK},
                {"op": op, "urn": SG, "detailedDiff": {"securityGroupIngress[1]": {"kind": "add", "inputDiff": false}}, "diffReasons": ["securityGroupIngress"]},
                {"op": "refresh", "urn": "urn:pulumi:dev::orch::aws-native:ec2:Vpc::vpc"}
            ],
            "changeSummary": {"same": 2, op: 1}
        })
        .to_string()
    }

    #[test]
    fn exit_7_with_a_digest_lists_resources_and_properties() {
        let Refresh::Drift { resources } =
            interpret(&out(7, &digest("update"), "error: no changes were expected"))
        else {
            panic!()
        };
        assert_eq!(resources.len(), 1);
        assert_eq!(
            (resources[0].kind.as_str(), resources[0].name.as_str()),
            ("aws-native:ec2:SecurityGroup", "albSg")
        );
        assert_eq!(resources[0].properties, ["securityGroupIngress[1]"]);
    }

    #[test]
    fn exit_0_with_only_refresh_steps_is_clean() {
        assert_eq!(interpret(&out(0, &digest("refresh"), "")), Refresh::Clean { resources: 2 });
    }

    #[test]
    fn older_cli_exit_1_with_changes_is_drift_not_failure() {
        assert!(matches!(
            interpret(&out(
                1,
                &digest("delete"),
                "error: no changes were expected but changes were proposed"
            )),
            Refresh::Drift { .. }
        ));
    }

    #[test]
    fn other_failures_carry_the_last_error_line() {
        let r = interpret(&out(6, "", "warning: x\nerror: no stack named 'dev' found\n"));
        assert_eq!(
            r,
            Refresh::Failed { code: Some(6), message: "error: no stack named 'dev' found".into() }
        );
    }

    #[test]
    fn engine_event_stream_is_read_too() {
        let lines = [
            serde_json::json!({"sequence": 1, "resourcePreEvent": {"metadata": {"op": "refresh", "urn": SG}}}),
            serde_json::json!({"sequence": 2, "resOutputsEvent": {"metadata": {"op": "update", "urn": SG, "diffs": ["tags"]}}}),
            serde_json::json!({"sequence": 3, "summaryEvent": {"resourceChanges": {"update": 1}}}),
        ]
        .map(|v| v.to_string())
        .join("\n");
        let Refresh::Drift { resources } = interpret(&out(7, &lines, "")) else { panic!() };
        assert_eq!(resources[0].properties, ["tags"]);
        // A pre-event alone (no outputs event) still names the resource.
        let pre = serde_json::json!({"resourcePreEvent": {"metadata": {"op": "update", "urn": SG, "type": "aws-native:ec2:SecurityGroup"}}}).to_string();
        let Refresh::Drift { resources } = interpret(&out(7, &pre, "")) else { panic!() };
        assert_eq!(resources[0].name, "albSg");
        // A refresh that ends `same` clears what its pre-event said.
        let cleared = [
            serde_json::json!({"resourcePreEvent": {"metadata": {"op": "update", "urn": SG}}}),
            serde_json::json!({"resOutputsEvent": {"metadata": {"op": "same", "urn": SG}}}),
        ]
        .map(|v| v.to_string())
        .join("\n");
        assert_eq!(interpret(&out(0, &cleared, "")), Refresh::Clean { resources: 1 });
    }

    #[test]
    fn summary_counts_alone_still_mean_drift() {
        let doc = serde_json::json!({"changeSummary": {"same": 3, "update": 2}}).to_string();
        let Refresh::Drift { resources } = interpret(&out(7, &doc, "")) else { panic!() };
        assert_eq!(resources[0].name, "2 resource(s)");
    }

    #[test]
    fn the_refresh_runs_through_the_runner_against_the_stack_backend_without_login() {
        let runner =
            std::sync::Arc::new(crate::runner::Recording::new([out(7, &digest("update"), "")]));
        let pulumi = Pulumi::new(
            runner.clone(),
            None,
            std::path::Path::new("/p/build/dev"),
            "s3://b",
            "dev",
        );
        assert!(matches!(run(&pulumi), Refresh::Drift { .. }));
        let calls = runner.calls();
        assert_eq!(calls.len(), 1);
        assert!(
            calls[0].display().ends_with(
                "refresh --preview-only --expect-no-changes --json --stack dev --non-interactive"
            ),
            "{}",
            calls[0].display()
        );
        assert!(calls[0].env.contains(&("PULUMI_BACKEND_URL".into(), "s3://b".into())));
        assert_eq!(calls[0].dir.as_deref(), Some(std::path::Path::new("/p/build/dev")));
    }
}
