//! The local target's releases: the history the supervisor and `up` keep in `releases.json` as
//! [`Row`]s (the live one is the release the running tier serves), and `orch rollback`: an earlier
//! release rolled out again — its unpacked program and environment, no build.
use super::{RollbackError, Row, State};
use crate::config::Stack;
use crate::context::Ctx;
use crate::error::{OrchError, Outcome};
use crate::local::release::{self, Release};
use crate::local::state::{self, Tier};
use crate::local::{lifecycle, paths, LocalError};

/// The releases, newest first; the live one is what the running tier serves.
pub(crate) fn list(paths: &state::Paths) -> Result<Vec<Row>, LocalError> {
    let entries = release::history(&paths.releases())?;
    let last_deployed =
        || entries.iter().rev().find(|e| e.state == State::Deployed).map(|e| e.run.id.clone());
    let live = state::read(paths)
        .filter(|s| state::in_tier(s.pid, &paths.dir))
        .filter(|s| s.release.outcome != State::Rolling)
        .map(|s| {
            if s.release.outcome == State::Deployed {
                s.release.id
            } else {
                last_deployed().unwrap_or_default()
            }
        });
    let newest_live = entries
        .iter()
        .rposition(|e| e.state == State::Deployed && live.as_deref() == Some(e.run.id.as_str()));
    Ok(entries
        .iter()
        .enumerate()
        .rev()
        .map(|(i, e)| e.row(e.run.id.clone(), e.state.as_str(), Some(i) == newest_live))
        .collect())
}

/// Roll the running tier back to the release `to` names (default: the one before the live one).
pub(crate) async fn rollback(
    ctx: &Ctx<'_>,
    stack: &Stack,
    to: Option<&str>,
) -> Result<Outcome, OrchError> {
    let project = ctx.project()?;
    let paths = paths(&project, stack);
    std::fs::create_dir_all(&paths.dir).map_err(|e| LocalError::io(&paths.dir, e))?;
    let lock = crate::local::lock(ctx, stack, &paths, "orch rollback", false).await?;
    let result = rollback_locked(ctx, stack, &paths, to).await;
    lock.release().await.map_err(LocalError::from)?;
    result
}

async fn rollback_locked(
    ctx: &Ctx<'_>,
    stack: &Stack,
    paths: &state::Paths,
    to: Option<&str>,
) -> Result<Outcome, OrchError> {
    let Tier::Running(_) = state::inspect(paths) else {
        return Err(LocalError::NotRunning.into());
    };
    let rows = list(paths)?;
    let target = super::history::target(&rows, to)
        .map_err(|why| RollbackError::NoTarget { env: stack.name.clone(), why })?;
    let entry = release::history(&paths.releases())?
        .into_iter()
        .rev()
        .find(|e| e.run.id == target.id)
        .ok_or_else(|| RollbackError::Vanished {
            what: format!("release {} in releases.json", target.id),
        })?;
    let run = entry.run;
    if !run.program.is_file() {
        return Err(RollbackError::ProgramGone { id: run.id, path: run.program }.into());
    }
    let wanted = Release::new(&entry.digest, run.program, run.env);
    ctx.printer.progress(&format!(
        "rolling `{}` back to release {} ({}, revision {})",
        stack.name,
        wanted.id,
        wanted.short_digest(),
        entry.revision
    ));
    // Back to a release that ran: no canary, and the history says why it ran then.
    lifecycle::roll_out(ctx, stack, paths, wanted, lifecycle::How::default()).await?;
    Ok(Outcome::Ok)
}
