//! The two pulumi calls drift needs, run through the [`Runner`]: `refresh --preview-only
//! --expect-no-changes --json` (what changed outside Pulumi) and `stack output --json`.
//! Reading the refresh: current CLIs exit 7 (`ExitNoChanges`, pkg/cmd/pulumi/cmd/exit_codes.go)
//! when changes were found (since 3.227.0); older ones exit 1 with "no changes were expected", so the JSON (a
//! preview digest, or engine events one per line) is read as well and decides on its own.
use serde::Serialize;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;

use crate::runner::{Cmd, Output, Runner};

/// Exit code of `--expect-no-changes` when there were changes (pulumi ≥ 3.227.0).
pub const EXIT_NO_CHANGES: i32 = 7;

/// One resource that differs from its recorded state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Drifted {
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
pub enum Refresh {
    Clean { resources: usize },
    Drift { resources: Vec<Drifted> },
    Failed { code: Option<i32>, message: String },
}

/// The pulumi executable: `ORCH_PULUMI`, else `pulumi` on the PATH.
pub fn program() -> String {
    std::env::var("ORCH_PULUMI").ok().filter(|p| !p.is_empty()).unwrap_or_else(|| "pulumi".into())
}

fn base(args: &[&str], env: &str, dir: &Path, backend: &str) -> Cmd {
    let mut all: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    all.extend(["--stack".into(), env.into(), "--non-interactive".into()]);
    Cmd::new(program(), all).dir(dir).env("PULUMI_BACKEND_URL", backend).env("PULUMI_SKIP_UPDATE_CHECKS", "true")
}

pub fn refresh_cmd(env: &str, dir: &Path, backend: &str) -> Cmd {
    base(&["refresh", "--preview-only", "--expect-no-changes", "--json"], env, dir, backend)
}

pub fn outputs_cmd(env: &str, dir: &Path, backend: &str) -> Cmd {
    base(&["stack", "output", "--json"], env, dir, backend)
}

/// Run the refresh and read it.
pub fn refresh(runner: &dyn Runner, cmd: &Cmd) -> Refresh {
    match runner.run(cmd) {
        Ok(out) => interpret(&out),
        Err(e) => Refresh::Failed { code: None, message: format!("cannot run `{}`: {e}", cmd.program) },
    }
}

/// The stack outputs, or why not.
pub fn outputs(runner: &dyn Runner, cmd: &Cmd) -> Result<BTreeMap<String, Value>, String> {
    let out = runner.run(cmd).map_err(|e| format!("cannot run `{}`: {e}", cmd.program))?;
    if !out.success() {
        return Err(format!("`{}` exited {:?}: {}", cmd.display(), out.code, last_line(&out.stderr)));
    }
    serde_json::from_str(&out.stdout).map_err(|e| format!("`{}` printed no JSON object: {e}", cmd.display()))
}

/// Judge a finished refresh from its exit code, its JSON and its diagnostics.
pub fn interpret(out: &Output) -> Refresh {
    let parsed = parse(&out.stdout);
    let said_changes = out.stderr.contains("no changes were expected") || out.stdout.contains("no changes were expected");
    match (out.code, parsed) {
        (Some(0), Some((total, drifted))) if drifted.is_empty() => Refresh::Clean { resources: total },
        (Some(0), None) => Refresh::Clean { resources: 0 },
        (Some(0) | Some(EXIT_NO_CHANGES), Some((_, drifted))) => Refresh::Drift { resources: drifted },
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
    let text = stdout.trim();
    if let Ok(doc) = serde_json::from_str::<Value>(text) {
        if doc.get("steps").is_some() || doc.get("changeSummary").is_some() {
            let steps = doc.get("steps").and_then(Value::as_array).cloned().unwrap_or_default();
            let drifted: Vec<Drifted> = steps.iter().filter_map(|s| drifted(s, "diffReasons")).collect();
            let total = steps.iter().filter(|s| !is_stack(s)).count();
            return Some((total, with_summary(drifted, doc.get("changeSummary"))));
        }
    }
    let events: Vec<Value> = text.lines().filter_map(|l| serde_json::from_str(l).ok()).collect();
    if events.is_empty() {
        return None;
    }
    let mut found: BTreeMap<String, Drifted> = BTreeMap::new();
    let mut total = 0;
    let mut summary = None;
    for e in &events {
        // The pre-event names the step; for a refresh the outputs event carries the final verdict
        // (`update` with a detailed diff, or `delete`), so it replaces what the pre-event said.
        if let Some(m) = e.pointer("/resourcePreEvent/metadata") {
            total += usize::from(!is_stack(m));
            if let Some(d) = drifted(m, "diffs") {
                found.insert(d.urn.clone(), d);
            }
        }
        if let Some(m) = e.pointer("/resOutputsEvent/metadata") {
            match drifted(m, "diffs") {
                Some(d) => found.insert(d.urn.clone(), d),
                None => m.get("urn").and_then(Value::as_str).and_then(|u| found.remove(u)),
            };
        }
        if let Some(s) = e.pointer("/summaryEvent/resourceChanges") {
            summary = Some(s.clone());
        }
    }
    Some((total, with_summary(found.into_values().collect(), summary.as_ref())))
}

/// When the steps show nothing but the summary counts changes, report an anonymous drift.
fn with_summary(drifted: Vec<Drifted>, summary: Option<&Value>) -> Vec<Drifted> {
    if !drifted.is_empty() {
        return drifted;
    }
    let changed: u64 = summary
        .and_then(Value::as_object)
        .map(|m| m.iter().filter(|(op, _)| !unchanged(op)).filter_map(|(_, n)| n.as_u64()).sum())
        .unwrap_or(0);
    if changed == 0 {
        return drifted;
    }
    vec![Drifted { urn: String::new(), kind: String::new(), name: format!("{changed} resource(s)"), op: "update".into(), properties: vec![] }]
}

fn unchanged(op: &str) -> bool {
    matches!(op, "same" | "refresh" | "read" | "read-discard" | "discard")
}

fn is_stack(step: &Value) -> bool {
    step.get("urn").and_then(Value::as_str).is_some_and(|u| u.contains("::pulumi:pulumi:Stack::"))
}

fn drifted(step: &Value, diffs_key: &str) -> Option<Drifted> {
    let op = step.get("op").and_then(Value::as_str)?;
    if unchanged(op) || is_stack(step) {
        return None;
    }
    let urn = step.get("urn").and_then(Value::as_str).unwrap_or("").to_string();
    let mut properties: Vec<String> = step.get("detailedDiff").and_then(Value::as_object).map(|m| m.keys().cloned().collect()).unwrap_or_default();
    if properties.is_empty() {
        properties = step.get(diffs_key).and_then(Value::as_array).map(|a| a.iter().filter_map(|v| v.as_str().map(str::to_string)).collect()).unwrap_or_default();
    }
    properties.sort();
    let parts: Vec<&str> = urn.split("::").collect();
    let kind = parts.get(2).map(|t| t.rsplit('$').next().unwrap_or(t)).unwrap_or("").to_string();
    let name = parts.get(3).unwrap_or(&"").to_string();
    Some(Drifted { urn, kind, name, op: op.to_string(), properties })
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
        let Refresh::Drift { resources } = interpret(&out(7, &digest("update"), "error: no changes were expected")) else { panic!() };
        assert_eq!(resources.len(), 1);
        assert_eq!((resources[0].kind.as_str(), resources[0].name.as_str()), ("aws-native:ec2:SecurityGroup", "albSg"));
        assert_eq!(resources[0].properties, ["securityGroupIngress[1]"]);
    }

    #[test]
    fn exit_0_with_only_refresh_steps_is_clean() {
        assert_eq!(interpret(&out(0, &digest("refresh"), "")), Refresh::Clean { resources: 2 });
    }

    #[test]
    fn older_cli_exit_1_with_changes_is_drift_not_failure() {
        assert!(matches!(interpret(&out(1, &digest("delete"), "error: no changes were expected but changes were proposed")), Refresh::Drift { .. }));
    }

    #[test]
    fn other_failures_carry_the_last_error_line() {
        let r = interpret(&out(6, "", "warning: x\nerror: no stack named 'dev' found\n"));
        assert_eq!(r, Refresh::Failed { code: Some(6), message: "error: no stack named 'dev' found".into() });
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
    fn commands_name_the_stack_and_backend_without_login() {
        let cmd = refresh_cmd("dev", Path::new("/p/build/dev"), "s3://b");
        assert!(cmd.display().ends_with("refresh --preview-only --expect-no-changes --json --stack dev --non-interactive"), "{}", cmd.display());
        assert!(cmd.env.contains(&("PULUMI_BACKEND_URL".into(), "s3://b".into())));
    }
}
