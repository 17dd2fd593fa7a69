//! The zone drill (`orch local zone-down|zone-up ZONE`) and the verify options for the running
//! tier; `orch status --env local` is `crate::status::local`.
use std::time::{Duration, Instant};

use super::state::{self, Paths, State};
use super::{control, paths, LocalError};
use crate::config::Stack;
use crate::context::Ctx;
use crate::error::{OrchError, Outcome};
use crate::verify;

/// The running tier's state (read-only: status never stops anything).
fn running(paths: &Paths) -> Option<State> {
    state::read(paths).filter(|s| state::in_tier(s.pid, &paths.dir))
}
/// The zone drill: take `zone` down (its instances die, launches there fail) or bring it back.
pub async fn zone(
    ctx: &Ctx<'_>,
    stack: &Stack,
    zone: &str,
    down: bool,
) -> Result<Outcome, OrchError> {
    if !stack.zones.iter().any(|z| z == zone) {
        return Err(
            LocalError::UnknownZone { zone: zone.into(), zones: stack.zones.join(", ") }.into()
        );
    }
    let project = ctx.project()?;
    let paths = paths(&project, stack);
    if running(&paths).is_none() {
        return Err(LocalError::NotRunning.into());
    }
    // Under the tier's lock, like `up`: the drill never races a rollout on the control file.
    let what = if down { "orch local zone-down" } else { "orch local zone-up" };
    let lock = super::lock(ctx, stack, &paths, what, false).await?;
    let result = zone_locked(ctx, &paths, zone, down).await;
    lock.release().await.map_err(LocalError::from)?;
    result
}

async fn zone_locked(
    ctx: &Ctx<'_>,
    paths: &Paths,
    zone: &str,
    down: bool,
) -> Result<Outcome, OrchError> {
    let generation = control::update(&paths.control(), |c| {
        if down {
            c.zones_down.insert(zone.to_string());
        } else {
            c.zones_down.remove(zone);
        }
    })
    .map_err(|e| LocalError::io(paths.control(), e))?;
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(5) {
        if state::read(paths).is_some_and(|s| s.control_generation >= generation) {
            let what = if down {
                "down: its instances died, launches there fail"
            } else {
                "up: the supervisor rebalances onto it"
            };
            ctx.printer.progress(&format!("zone {zone} is {what}"));
            return Ok(Outcome::Ok);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Err(LocalError::NotAcknowledged { seconds: 5 }.into())
}

/// Verify options for the running tier: its HTTP URL, trusting its CA, and our 404 page's marker.
pub(super) fn verify_options(ctx: &Ctx<'_>, state: &State, requests: u32) -> verify::Options {
    let ca_pem = std::fs::read(&state.ca).ok();
    verify::Options {
        requests,
        insecure: false,
        ca_pem,
        http_url: Some(state.http_url.clone()),
        not_found_marker: ctx
            .project()
            .ok()
            .and_then(|p| verify::marker_from_page(&p.pages_dir().join("404.html"))),
    }
}
