//! The local target's releases: the history the supervisor and `up` keep in `releases.json` as
//! [`Row`]s (the live one is the release the running tier serves), and `orch rollback`: an earlier
//! release rolled out again — its unpacked program and environment, no build.
use super::release::{self, Release, Status};
use super::state::{self, Tier};
use super::{lifecycle, paths, LocalError};
use crate::config::Stack;
use crate::context::Ctx;
use crate::error::{OrchError, Outcome};
use crate::history::RollbackError;
use crate::history::Row;

/// The releases, newest first; the live one is what the running tier serves.
pub(super) fn list(paths: &state::Paths) -> Result<Vec<Row>, LocalError> {
    let entries = release::history(&paths.releases())?;
    let last_deployed =
        || entries.iter().rev().find(|e| e.outcome == Status::Deployed).map(|e| e.id.clone());
    let live = state::read(paths)
        .filter(|s| state::in_tier(s.pid, &paths.dir))
        .filter(|s| s.release.outcome != Status::Rolling)
        .map(|s| {
            if s.release.outcome == Status::Deployed {
                s.release.id
            } else {
                last_deployed().unwrap_or_default()
            }
        });
    let newest_live = entries
        .iter()
        .rposition(|e| e.outcome == Status::Deployed && live.as_deref() == Some(e.id.as_str()));
    Ok(entries
        .iter()
        .enumerate()
        .rev()
        .map(|(i, e)| Row {
            id: e.id.clone(),
            time: e.time,
            revision: e.revision.clone(),
            digest: e.digest.clone(),
            ami: None,
            outcome: match e.outcome {
                Status::Deployed => "deployed",
                Status::RolledBack => "rolled_back",
                Status::Rolling => "rolling",
                Status::Aborted => "aborted",
            }
            .into(),
            by: e.by.clone(),
            live: Some(i) == newest_live,
            image_present: None,
            canary: e.analysis.clone(),
            forced: e.forced.clone(),
            runs: e.id.clone(),
        })
        .collect())
}

/// Roll the running tier back to the release `to` names (default: the one before the live one).
pub(super) async fn rollback(
    ctx: &Ctx<'_>,
    stack: &Stack,
    to: Option<&str>,
) -> Result<Outcome, OrchError> {
    let project = ctx.project()?;
    let paths = paths(&project, stack);
    std::fs::create_dir_all(&paths.dir).map_err(|e| LocalError::io(&paths.dir, e))?;
    let lock = super::lock(ctx, stack, &paths, "orch rollback", false).await?;
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
    let target = crate::history::target(&rows, to)
        .map_err(|why| RollbackError::NoTarget { env: stack.name.clone(), why })?;
    let entry = release::history(&paths.releases())?
        .into_iter()
        .rev()
        .find(|e| e.id == target.id)
        .ok_or_else(|| RollbackError::Vanished {
            what: format!("release {} in releases.json", target.id),
        })?;
    if !entry.program.is_file() {
        return Err(RollbackError::ProgramGone { id: entry.id, path: entry.program }.into());
    }
    let wanted = Release::new(&entry.digest, entry.program, entry.env);
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
