//! `orch status` for an AWS environment: read the deployment record, then observe the group,
//! targets, certificate, delegation and URL concurrently; each failure degrades only its own row.
//! What it observes with and how rows are judged is `crate::ops`, shared with `orch drift`.
use super::Verdict;
use crate::aws::emulated;
use crate::config::Stack;
use crate::context::Ctx;
use crate::error::{OrchError, Outcome};
use crate::ops::cloud::Clients;
use crate::ops::report::{Level, Report, Row};
use crate::ops::{checks, judge, observe, probe, record, OpsError};
use crate::outputs::Output;
use crate::project::Project;
use crate::state::record::Record;

/// `orch status` for the aws target.
pub(crate) async fn status(ctx: &Ctx<'_>, stack: &Stack, json: bool) -> Result<Outcome, OrchError> {
    let project = ctx.project()?;
    let spinner = ctx.printer.spinner(format!("reading the state of {}", stack.name));
    let clients = Clients::new(&stack.region).await;
    let report = gather(&project, stack, &clients).await;
    spinner.finish_and_clear();
    let report = report?;
    crate::ops::emit(ctx, &report, json)?;
    Ok(Outcome::finding_if(report.verdict != Verdict::Healthy))
}

/// Gather the status report of `stack`. Errors only when there is nothing to report on.
async fn gather(project: &Project, stack: &Stack, clients: &Clients) -> Result<Report, OpsError> {
    let Some(rec) = record::load(clients, stack).await? else {
        return match record::down(clients, stack).await? {
            Some(down) => Ok(torn_down(stack, &down)),
            None => Err(OpsError::NoRecord(stack.name.clone())),
        };
    };
    let build_dir = project.build_dir(&stack.name);

    let asg_name = rec.output(Output::AsgName).map(str::to_string);
    let tg_arn = rec.output(Output::TargetGroupArn).map(str::to_string);
    let fleet = async {
        let (group, targets) = tokio::join!(
            async {
                match &asg_name {
                    Some(n) => Some(observe::group(clients, n).await),
                    None => None,
                }
            },
            async {
                match &tg_arn {
                    Some(a) => Some(observe::targets(clients, a).await),
                    None => None,
                }
            },
        );
        fleet_rows(stack, group, targets)
    };
    let cert = checks::certificate(clients, &rec, &build_dir, &stack.name);
    let delegation =
        checks::delegation(clients, stack, "no domain: the load balancer's own name is used");
    let live = async {
        match rec.output(Output::Url) {
            None => Row::error("probe", "no url output recorded"),
            Some(url) if !probe::allowed(url, emulated()) => Row::skipped(
                "probe",
                format!("{url} not probed: against an emulated cloud only loopback URLs are"),
            ),
            Some(url) => probe::row(&probe::get(url).await),
        }
    };
    let database = async {
        match rec.output(Output::Url) {
            None => Row::error("database", "no url output recorded"),
            Some(url) if !probe::allowed(url, emulated()) => {
                Row::skipped("database", format!("{url}readyz not probed (emulated cloud)"))
            }
            Some(url) => probe::database_row(&probe::readiness(url).await),
        }
    };
    let rollout = async {
        match &asg_name {
            Some(n) => rollout_row(&observe::refresh(clients, n).await),
            None => Row::error("rollout", "no asgName output recorded"),
        }
    };
    let (fleet, cert, delegation, live, database, rollout) =
        tokio::join!(fleet, cert, delegation, live, database, rollout);

    let mut rows = vec![deployment_row(&rec)];
    rows.extend(fleet);
    rows.push(rollout);
    let (cert, wiring) = cert;
    rows.extend([cert, wiring]);
    rows.push(delegation);
    rows.push(judge::image(rec.digest(), record::latest_built(&build_dir).as_deref()));
    rows.push(live);
    rows.push(database);
    rows.push(cost_row(project, stack, &rec));
    let verdict =
        if Report::worst(&rows) >= Level::Bad { Verdict::Degraded } else { Verdict::Healthy };
    Ok(Report { env: stack.name.clone(), kind: "status", verdict, rows })
}

/// What the environment costs a month (docs/cost.md); never a health problem, so a Note at worst.
fn cost_row(project: &Project, stack: &Stack, rec: &Record) -> Row {
    match crate::cost::running(project, stack, rec.run.program.as_deref()) {
        Ok((e, live)) => {
            let total = crate::cost::usd(e.total_usd);
            let data = serde_json::json!({ "monthly_usd": e.total_usd, "prices_taken": e.prices_taken, "from_live_release": live });
            if live {
                Row::ok("cost", format!("{total}/month: the live release's program at the prices of {} (`orch cost` itemizes)", e.prices_taken)).data(data)
            } else {
                Row::new("cost", Level::Note, format!("{total}/month: the current program; the live release recorded none (orch before `orch cost`)")).data(data)
            }
        }
        Err(e) => Row::new("cost", Level::Note, format!("unknown: {e}")),
    }
}

/// A torn-down environment: one row saying since when, and what ran before (exit 1: not serving).
fn torn_down(stack: &Stack, down: &crate::state::record::Down) -> Report {
    let last = &down.last;
    let summary = format!(
        "down since {} (`orch down`); last deployed: image {} at {}",
        crate::clock::show(&down.since),
        judge::short_digest(&last.digest),
        crate::clock::show(&last.time)
    );
    let row = Row::bad("deployment", summary).lines(vec![format!("bring it back: orch up --env {}", stack.name)]).data(serde_json::json!({ "since": down.since, "image_digest": last.digest, "revision": last.revision }));
    Report { env: stack.name.clone(), kind: "status", verdict: Verdict::Down, rows: vec![row] }
}

fn deployment_row(rec: &Record) -> Row {
    let mut lines: Vec<String> = rec
        .run
        .outputs
        .iter()
        .map(|(k, v)| {
            format!("{k} = {}", v.as_str().map(str::to_string).unwrap_or_else(|| v.to_string()))
        })
        .collect();
    lines.sort();
    let known = |s: &str| if s.is_empty() { "?".to_string() } else { s.to_string() };
    let summary = format!(
        "revision {} image {} at {}",
        known(&rec.revision),
        rec.digest().map(judge::short_digest).unwrap_or_else(|| "?".into()),
        crate::clock::show(&rec.time)
    );
    // Out of reports (they end up in CI logs): the config hash covers secrets, and the recorded
    // stack file holds the secrets provider's `encryptionsalt` (an offline check of a guessed
    // passphrase) and pulumi's ciphertext of any secret config. Both stay in the state store.
    let mut data = serde_json::to_value(rec).unwrap_or_default();
    if let Some(fields) = data.as_object_mut() {
        for secret_adjacent in ["config_hash", "stack_file"] {
            fields.remove(secret_adjacent);
        }
    }
    Row::ok("deployment", summary).lines(lines).data(data)
}

type Observed<T> = Option<Result<T, String>>;

fn fleet_rows(
    stack: &Stack,
    group: Observed<observe::Group>,
    targets: Observed<Vec<observe::Target>>,
) -> Vec<Row> {
    let (targets_row, targets) = match targets {
        None => (Row::error("targets", "no targetGroupArn output recorded"), vec![]),
        Some(Err(e)) => (Row::error("targets", e), vec![]),
        Some(Ok(t)) => (judge::targets(&t), t),
    };
    let mut rows = match group {
        None => vec![
            Row::error("instances", "no asgName output recorded"),
            Row::error("zones", "unknown: no Auto Scaling group"),
        ],
        Some(Err(e)) => vec![
            Row::error("instances", e),
            Row::error("zones", "unknown: the Auto Scaling group could not be read"),
        ],
        Some(Ok(mut g)) => {
            judge::merge_targets(&mut g, &targets);
            vec![judge::instances(&g), judge::zones(&stack.zones, &g)]
        }
    };
    rows.push(targets_row);
    rows
}

/// The group's newest instance refresh: a canary at a checkpoint or baking shows where it is.
fn rollout_row(r: &Result<Option<observe::Refresh>, String>) -> Row {
    match r {
        // Where a rollout stands is information, not health: an unreadable one is not checked.
        Err(e) => Row::skipped("rollout", format!("instance refreshes unreadable: {e}")),
        Ok(None) => Row::ok("rollout", "no instance refresh"),
        Ok(Some(r)) if r.active => Row::new(
            "rollout",
            Level::Note,
            format!(
                "instance refresh {} {}, {} % complete: {}",
                r.id, r.status, r.percent, r.reason
            ),
        ),
        Ok(Some(r)) => {
            Row::ok("rollout", format!("last instance refresh {} ended {}", r.id, r.status))
        }
    }
}
