//! `orch status --env local`: the running tier's state file read back — instances by zone with
//! health, the URLs, the release (and a canary step in progress), scaling; exit 0 healthy, 1
//! degraded or down (a tier deployed before and stopped), 2 never deployed.
use super::{Envelope, Verdict};
use crate::config::{Stack, Target};
use crate::context::Ctx;
use crate::error::{OrchError, Outcome};
use crate::local::state::Paths;
use crate::local::{paths, running_state, LocalError};

pub(crate) async fn status(ctx: &Ctx<'_>, stack: &Stack, json: bool) -> Result<Outcome, OrchError> {
    let project = ctx.project()?;
    let paths = paths(&project, stack);
    let Some(state) = running_state(&project, stack) else {
        return down(ctx, stack, &paths, json);
    };
    let healthy = state.balanced
        && state.zones.iter().all(|z| z.healthy > 0)
        && state.in_service() >= state.desired;
    let verdict = if healthy { Verdict::Healthy } else { Verdict::Degraded };
    if json {
        ctx.printer.json(&envelope(
            stack,
            verdict,
            serde_json::json!({
                "running": true,
                "healthy": healthy,
                "http_url": state.http_url,
                "https_url": state.https_url,
                "desired": state.desired,
                "in_service": state.in_service(),
                "balanced": state.balanced,
                "zones": state.zones,
                "instances": state.instances,
                "release": state.release,
                "scaling": state.scaling,
                "events": state.events,
            }),
        ))?;
    } else {
        let p = ctx.printer;
        p.data(&format!(
            "local tier: {verdict} — {}/{} in service (supervisor pid {})",
            state.in_service(),
            state.desired,
            state.pid
        ));
        p.data(&format!("  {}  {}", state.http_url, state.https_url));
        let r = &state.release;
        p.data(&format!(
            "release {} ({}): {}{}",
            r.id,
            r.digest.chars().take(19).collect::<String>(),
            r.outcome.as_str(),
            r.reason.as_deref().map(|why| format!(" — {why}")).unwrap_or_default()
        ));
        if let Some(c) = &r.canary {
            p.data(&canary_line(c));
        }
        if let Some(sc) = &state.scaling {
            p.data(&scaling_line(sc));
        }
        for zone in &state.zones {
            let avail = if zone.available { "up" } else { "DOWN" };
            p.data(&format!(
                "zone {} ({avail}): {} instance(s), {} healthy",
                zone.name, zone.instances, zone.healthy
            ));
            if zone.launch_failures > 0 {
                p.data(&format!(
                    "  launches failing: {} in a row, next attempt in {:.1} s (backoff)",
                    zone.launch_failures, zone.backoff_seconds
                ));
            }
            for i in state.instances.iter().filter(|i| i.zone == zone.name) {
                let health = match (i.healthy, i.in_grace) {
                    (true, _) => "healthy",
                    (false, true) => "starting",
                    (false, false) => "UNHEALTHY",
                };
                let pid = i.pid.map(|p| p.to_string()).unwrap_or_else(|| "-".into());
                p.data(&format!(
                    "  {}  {:<21} {:<9} pid {:<7} up {:>4} s  {}",
                    i.id,
                    i.addr,
                    health,
                    pid,
                    i.age_seconds,
                    i.image_digest.chars().take(19).collect::<String>()
                ));
            }
        }
    }
    Ok(Outcome::finding_if(!healthy))
}

/// The envelope every `status --json` starts with (the same keys as on AWS), then `body`.
fn envelope(
    stack: &Stack,
    verdict: Verdict,
    body: serde_json::Value,
) -> Envelope<serde_json::Value> {
    Envelope { env: stack.name.clone(), target: Target::Local, kind: "status", verdict, body }
}

/// Status of a tier that is not running: `down` (exit 1, like a torn-down AWS environment) when it
/// was deployed before — `orch down`, or its supervisor is gone — else nothing to report on (exit 2).
fn down(ctx: &Ctx<'_>, stack: &Stack, paths: &Paths, json: bool) -> Result<Outcome, OrchError> {
    let Some(last) = crate::local::release::last_deployed(&paths.releases())? else {
        return Err(LocalError::NotRunning.into());
    };
    if json {
        ctx.printer.json(&envelope(
            stack,
            Verdict::Down,
            serde_json::json!({
                "running": false,
                "last_release": { "id": last.run.id, "time": last.time, "digest": last.digest,
                                  "revision": last.revision },
            }),
        ))?;
    } else {
        ctx.printer.data(&format!(
            "local tier: down — not running; last deployed: release {} ({}) at {}",
            last.run.id,
            last.digest.chars().take(19).collect::<String>(),
            crate::clock::show(&last.time)
        ));
        ctx.printer.data(&format!("  bring it back: orch up --env {} --detach", stack.name));
    }
    Ok(Outcome::Finding)
}

/// `scaling: 310/1200 requests/instance/min (min 2, max 6); last: out 2 → 4 at … (why)`.
fn scaling_line(sc: &crate::local::group::autoscale::ScalingView) -> String {
    let load = sc.load_per_instance.map_or_else(|| "measuring".into(), |l| format!("{l:.0}"));
    let last = sc.last.as_ref().map_or_else(
        || "no scaling yet".into(),
        |d| {
            let way = if d.direction == crate::scaling::Direction::Out { "out" } else { "in" };
            format!(
                "last: {way} {} → {} at {} ({})",
                d.from,
                d.to,
                crate::clock::show(&d.at),
                d.reason
            )
        },
    );
    format!(
        "scaling: {load}/{:.0} requests/instance/min (min {}, max {}); {last}",
        sc.target_per_instance, sc.min, sc.max
    )
}

/// The canary step in progress and its numbers so far.
fn canary_line(c: &crate::rollout::local::canary::CanaryProgress) -> String {
    let show = |s: &crate::rollout::canary::Sample| {
        format!(
            "{} requests, {:.2} % 5xx, p99 {}",
            s.requests,
            s.error_ratio() * 100.0,
            s.p99_ms.map(|v| format!("{v:.1} ms")).unwrap_or("-".into())
        )
    };
    format!(
        "canary step {}/{} at {} % of traffic, {:.0}/{} s ({}): canary {}; baseline {}",
        c.step,
        c.steps,
        c.percent,
        c.seconds,
        c.bake_seconds,
        c.state,
        show(&c.canary),
        show(&c.baseline)
    )
}
