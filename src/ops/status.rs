//! `orch status` for an AWS environment: read the deployment record, then observe the group,
//! targets, certificate, delegation and URL concurrently; each failure degrades only its own row.
use chrono::Utc;

use super::cloud::{emulated, Clients};
use super::observe;
use super::record;
use super::report::{Level, Report, Row};
use super::{judge, probe, OpsError};
use crate::config::Stack;
use crate::deploy::record::Record;
use crate::project::Project;

/// Gather the status report of `stack`. Errors only when there is nothing to report on.
pub async fn gather(project: &Project, stack: &Stack, clients: &Clients) -> Result<Report, OpsError> {
    let rec = record::load(clients, stack).await?.ok_or_else(|| OpsError::NoRecord(stack.name.clone()))?;
    let build_dir = project.build_dir(&stack.name);

    let asg_name = rec.output("asgName").map(str::to_string);
    let tg_arn = rec.output("targetGroupArn").map(str::to_string);
    let fleet = async {
        let (group, targets) = tokio::join!(
            async { match &asg_name { Some(n) => Some(observe::group(clients, n).await), None => None } },
            async { match &tg_arn { Some(a) => Some(observe::targets(clients, a).await), None => None } },
        );
        fleet_rows(stack, group, targets)
    };
    let cert = async {
        let serving = match &tg_arn {
            Some(a) => observe::listener_certificates(clients, a).await,
            None => Err("no targetGroupArn output recorded".to_string()),
        };
        let configured = rec.certificate().map(str::to_string).or_else(|| record::configured_certificate(&build_dir, &stack.name));
        certificate_rows(clients, configured.as_deref(), serving).await
    };
    let delegation = async {
        match &stack.domain {
            None => Row::skipped("delegation", "no domain: the load balancer's own name is used"),
            Some(d) => match observe::delegation(clients, &d.name, &d.parent_zone).await {
                Ok(found) => judge::delegation(&found),
                Err(e) => Row::error("delegation", e),
            },
        }
    };
    let live = async {
        match rec.output("url") {
            None => Row::error("probe", "no url output recorded"),
            Some(url) if !probe::allowed(url, emulated()) => Row::skipped("probe", format!("{url} not probed: against an emulated cloud only loopback URLs are")),
            Some(url) => probe::row(&probe::get(url).await),
        }
    };
    let (fleet, cert, delegation, live) = tokio::join!(fleet, cert, delegation, live);

    let mut rows = vec![deployment_row(&rec)];
    rows.extend(fleet);
    rows.extend(cert);
    rows.push(delegation);
    rows.push(judge::image(rec.digest(), record::latest_built(&build_dir).as_deref()));
    rows.push(live);
    let verdict = if Report::worst(&rows) >= Level::Bad { "degraded" } else { "healthy" };
    Ok(Report { env: stack.name.clone(), kind: "status", verdict, rows })
}

fn deployment_row(rec: &Record) -> Row {
    let mut lines: Vec<String> = rec.outputs.iter().map(|(k, v)| format!("{k} = {}", v.as_str().map(str::to_string).unwrap_or_else(|| v.to_string()))).collect();
    lines.sort();
    let known = |s: &str| if s.is_empty() { "?".to_string() } else { s.to_string() };
    let summary = format!("revision {} image {} at {}", known(&rec.revision), rec.digest().map(judge::short_digest).unwrap_or_else(|| "?".into()), known(&rec.time));
    // The config hash covers secrets: it stays in the state store, out of reports.
    let mut data = serde_json::to_value(rec).unwrap_or_default();
    if let Some(fields) = data.as_object_mut() {
        fields.remove("config_hash");
    }
    Row::ok("deployment", summary).lines(lines).data(data)
}

type Observed<T> = Option<Result<T, String>>;

fn fleet_rows(stack: &Stack, group: Observed<observe::Group>, targets: Observed<Vec<observe::Target>>) -> Vec<Row> {
    let (targets_row, targets) = match targets {
        None => (Row::error("targets", "no targetGroupArn output recorded"), vec![]),
        Some(Err(e)) => (Row::error("targets", e), vec![]),
        Some(Ok(t)) => (judge::targets(&t), t),
    };
    let mut rows = match group {
        None => vec![Row::error("instances", "no asgName output recorded"), Row::error("zones", "unknown: no Auto Scaling group")],
        Some(Err(e)) => vec![Row::error("instances", e), Row::error("zones", "unknown: the Auto Scaling group could not be read")],
        Some(Ok(mut g)) => {
            judge::merge_targets(&mut g, &targets);
            vec![judge::instances(&g), judge::zones(&stack.zones, &g)]
        }
    };
    rows.push(targets_row);
    rows
}

/// The certificate in use (what the listener serves, else what the stack was given), and its wiring.
async fn certificate_rows(clients: &Clients, configured: Option<&str>, serving: Result<Vec<String>, String>) -> Vec<Row> {
    let (wiring, in_use) = match &serving {
        Ok(arns) => (judge::wiring(configured, arns), arns.first().map(String::as_str).or(configured)),
        Err(e) => (Row::error("cert-wiring", e.clone()), configured),
    };
    let cert = match in_use {
        None => Row::skipped("certificate", "no certificate ARN known"),
        Some(arn) => match observe::certificate(clients, arn).await {
            Ok(c) => judge::certificate(&c, Utc::now()),
            Err(e) => Row::error("certificate", e),
        },
    };
    vec![cert, wiring]
}
