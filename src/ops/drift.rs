//! `orch drift` for an environment: Pulumi's view (a preview-only refresh: what changed outside
//! Pulumi) plus what only orch knows — the NS delegation in the parent zone, the certificate wired
//! into the listener and its expiry, the image running against the one recorded, and the group's
//! launch-template version against the program's.
use crate::outputs::Output;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::Arc;

use super::cloud::Clients;
use super::observe::{self, Group};
use super::record;
use super::refresh::{self, Refresh};
use super::report::{Level, Report, Row};
use super::{checks, judge, OpsError};
use crate::config::Stack;
use crate::project::Project;
use crate::pulumi::Pulumi;
use crate::runner::Runner;
use crate::status::Verdict;

pub(super) async fn gather(
    project: &Project,
    stack: &Stack,
    clients: &Clients,
    runner: Arc<dyn Runner>,
    pulumi_program: Option<&str>,
) -> Result<Report, OpsError> {
    Pulumi::check_passphrase().map_err(OpsError::Pulumi)?;
    let rec = record::load(clients, stack)
        .await?
        .ok_or_else(|| OpsError::NoRecord(stack.name.clone()))?;
    // The program as the code says today, with the stack file of the recorded deployment: the
    // refresh runs with the deployed config even on a checkout whose build/ is empty.
    let rendered = crate::render::render(project, stack).map_err(OpsError::Render)?;
    // Into a private folder: drift runs beside a deploy without rewriting its build/<env>/.
    let private =
        crate::render::write_private(project, stack, &rendered, rec.run.stack_file.as_deref())
            .map_err(OpsError::Render)?;
    let build_dir = private.path().to_path_buf();
    let backend = stack.pulumi.as_ref().map(|p| p.pulumi_url(&stack.region)).unwrap_or_default();
    let pulumi = Pulumi::new(runner, pulumi_program, &build_dir, &backend, &stack.name);
    let engine = tokio::task::spawn_blocking(move || {
        (refresh::run(&pulumi), pulumi.outputs().map_err(|e| e.to_string()))
    });

    let cert = checks::certificate(clients, &rec, &build_dir, &stack.name);
    let delegation = checks::delegation(clients, stack, "no domain");
    let group = async {
        match rec.output(Output::AsgName) {
            Some(name) => Some(observe::group(clients, name).await),
            None => None,
        }
    };
    let (engine, cert, delegation, group) = tokio::join!(engine, cert, delegation, group);
    let (refresh, outputs) =
        engine.map_err(|e| OpsError::Internal(format!("the pulumi task failed: {e}")))?;

    let mut rows = vec![resources_row(&refresh), delegation];
    let (expiry, wiring) = cert;
    rows.extend([wiring, expiry]);
    rows.push(image_row(rec.digest(), &outputs, group.as_ref()));
    if let (Ok(outputs), Some(Ok(group))) = (&outputs, group.as_ref()) {
        rows.push(rollout_row(outputs, group));
    }
    let verdict = match Report::worst(&rows) {
        Level::Error => Verdict::Error,
        Level::Bad => Verdict::Drift,
        _ => Verdict::None,
    };
    Ok(Report { env: stack.name.clone(), kind: "drift", verdict, rows })
}

fn resources_row(refresh: &Refresh) -> Row {
    let row = match refresh {
        Refresh::Clean { resources } => {
            Row::ok("resources", format!("pulumi refresh: {resources} resources match the state"))
        }
        Refresh::Drift { resources } if resources.is_empty() => {
            Row::bad("resources", "pulumi refresh: changes found (no details in its output)")
        }
        Refresh::Drift { resources } => Row::bad(
            "resources",
            format!("pulumi refresh: {} resource(s) changed outside Pulumi", resources.len()),
        )
        .lines(
            resources
                .iter()
                .map(|d| {
                    let sign = if d.op == "delete" { "-" } else { "~" };
                    let props = if d.properties.is_empty() {
                        String::new()
                    } else {
                        format!(": {}", d.properties.join(", "))
                    };
                    format!("{sign} {} {} ({}){props}", d.kind, d.name, d.op)
                })
                .collect(),
        ),
        Refresh::Failed { code, message } => Row::error(
            "resources",
            format!(
                "pulumi refresh failed (exit {}): {message}",
                code.map(|c| c.to_string()).unwrap_or_else(|| "-".into())
            ),
        ),
    };
    row.data(refresh)
}

/// The image running against the one recorded: the live stack's `imageDigest` output must equal the
/// record's, and every instance must run the group's current launch template version.
pub(super) fn image_row(
    recorded: Option<&str>,
    outputs: &Result<BTreeMap<String, Value>, String>,
    group: Option<&Result<Group, String>>,
) -> Row {
    let live = match outputs {
        Err(e) => {
            let mut lines = e.lines().map(str::trim).filter(|l| !l.is_empty());
            let first = lines.next().unwrap_or("");
            return Row::error("image", format!("stack outputs unreadable: {first}"))
                .lines(lines.map(str::to_string).collect());
        }
        Ok(o) => crate::outputs::get(o, Output::ImageDigest),
    };
    let stale: Vec<String> = match group {
        Some(Ok(g)) => stale_instances(g),
        _ => vec![],
    };
    let mut problems = vec![];
    match (recorded, live) {
        (Some(r), Some(l)) if r != l => problems.push(format!(
            "stack runs {}, the record says {}",
            judge::short_digest(l),
            judge::short_digest(r)
        )),
        (None, _) => problems.push("the deployment record names no image".to_string()),
        _ => {}
    }
    if !stale.is_empty() {
        problems.push(format!(
            "{} instance(s) still run an older launch template: {}",
            stale.len(),
            stale.join(", ")
        ));
    }
    let data = json!({ "recorded": recorded, "stack": live, "stale_instances": stale });
    let row = if problems.is_empty() {
        Row::ok(
            "image",
            format!("{} recorded = running", recorded.map(judge::short_digest).unwrap_or_default()),
        )
    } else {
        Row::bad("image", problems.join("; "))
    };
    match group {
        Some(Err(e)) => row.lines(vec![format!("instances not checked: {e}")]),
        _ => row,
    }
    .data(data)
}

/// The group against the program: the launch-template version the stack's program has (its
/// `launchTemplateVersion` output) must be the one the group launches — a refresh that never ran,
/// failed or was rolled back leaves the group behind, and pulumi cannot see it
/// (`ignoreChanges: launchTemplate.version`).
pub(super) fn rollout_row(outputs: &BTreeMap<String, Value>, g: &Group) -> Row {
    let program = crate::outputs::get(outputs, Output::LaunchTemplateVersion);
    let group = g.launch.as_deref().and_then(|l| l.rsplit_once('@')).map(|(_, v)| v);
    let data = json!({ "program": program, "group": group });
    match (program, group) {
        (Some(p), Some(g)) if p == g => {
            Row::ok("rollout", format!("the group launches the program's launch template v{p}"))
        }
        (Some(p), Some(gv)) => Row::bad(
            "rollout",
            format!("the group {} launches v{gv}, the program's launch template is v{p}: run `orch up` to roll it out", g.name),
        ),
        _ => Row::ok("rollout", "no launch-template version to compare (launch configuration or no output)"),
    }
    .data(data)
}

/// Instances launched from something other than the group's launch template version (only when
/// that is a concrete version or a launch configuration: `$Latest` cannot be compared without EC2).
fn stale_instances(g: &Group) -> Vec<String> {
    let Some(current) = &g.launch else { return vec![] };
    let concrete = current.starts_with("lc:")
        || current.rsplit('@').next().is_some_and(|v| v.chars().all(|c| c.is_ascii_digit()));
    if !concrete {
        return vec![];
    }
    g.instances
        .iter()
        .filter(|m| m.launch.as_ref().is_some_and(|l| l != current))
        .map(|m| m.id.clone())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::observe::Member;

    fn group(current: &str, launches: &[&str]) -> Group {
        let instances = launches
            .iter()
            .enumerate()
            .map(|(i, l)| Member {
                id: format!("i-{i}"),
                zone: "a".into(),
                lifecycle: aws_sdk_autoscaling::types::LifecycleState::InService,
                health: "Healthy".into(),
                launch: Some(l.to_string()),
                target: None,
            })
            .collect();
        Group {
            name: "g".into(),
            min: 1,
            desired: 1,
            max: 2,
            launch: Some(current.into()),
            instances,
        }
    }

    #[test]
    fn image_matches_when_stack_output_and_record_agree() {
        let outputs = Ok(BTreeMap::from([("imageDigest".to_string(), json!("sha256:aa"))]));
        assert_eq!(
            image_row(Some("sha256:aa"), &outputs, Some(&Ok(group("lt-1@3", &["lt-1@3"])))).level,
            Level::Ok
        );
    }

    #[test]
    fn image_drift_on_digest_mismatch_or_stale_instances() {
        let outputs = Ok(BTreeMap::from([("imageDigest".to_string(), json!("sha256:bb"))]));
        assert_eq!(image_row(Some("sha256:aa"), &outputs, None).level, Level::Bad);
        let same = Ok(BTreeMap::from([("imageDigest".to_string(), json!("sha256:aa"))]));
        let row =
            image_row(Some("sha256:aa"), &same, Some(&Ok(group("lt-1@4", &["lt-1@4", "lt-1@3"]))));
        assert_eq!(row.level, Level::Bad, "{}", row.summary);
        assert!(row.summary.contains("i-1"), "{}", row.summary);
        // `$Latest` cannot be compared with a concrete version without EC2: not judged.
        assert_eq!(
            image_row(Some("sha256:aa"), &same, Some(&Ok(group("lt-1@$Latest", &["lt-1@3"]))))
                .level,
            Level::Ok
        );
        assert_eq!(image_row(Some("sha256:aa"), &Err("boom".into()), None).level, Level::Error);
    }

    #[test]
    fn a_group_behind_the_program_is_drift() {
        let outputs = BTreeMap::from([("launchTemplateVersion".to_string(), json!("2"))]);
        let row = rollout_row(&outputs, &group("lt-1@1", &["lt-1@1", "lt-1@1"]));
        assert_eq!(row.level, Level::Bad, "{}", row.summary);
        assert!(row.summary.contains("v1") && row.summary.contains("v2"), "{}", row.summary);
        assert_eq!(rollout_row(&outputs, &group("lt-1@2", &["lt-1@2"])).level, Level::Ok);
    }

    #[test]
    fn refresh_rows_name_resources_and_properties() {
        let d = refresh::Drifted {
            urn: "u".into(),
            kind: "aws-native:ec2:SecurityGroup".into(),
            name: "albSg".into(),
            op: "update".into(),
            properties: vec!["tags".into()],
        };
        let row = resources_row(&Refresh::Drift { resources: vec![d] });
        assert_eq!(
            (row.level, row.lines[0].as_str()),
            (Level::Bad, "~ aws-native:ec2:SecurityGroup albSg (update): tags")
        );
        assert_eq!(
            resources_row(&Refresh::Failed { code: Some(3), message: "login".into() }).level,
            Level::Error
        );
    }
}
