//! The AWS target's releases: every release record under `deployments/<env>/history/` as a
//! [`Row`] with its state (verified, unverified, failed, rolled back, interrupted, applying); the live
//! one is `latest.json`, the last release that changed the stack whatever its state. `orch rollback`:
//! an earlier verified release redeployed by digest — no build — with the AMI it ran on, through the
//! same lock, plan, rollout and verify as `orch up`.
use std::sync::Arc;

use super::{RollbackError, Row};
use crate::config::Stack;
use crate::deploy::{execute, observe, steps};
use crate::error::{OrchError, Outcome};
use crate::printer::Printer;
use crate::project::Project;
use crate::state::record::{self, Record};
use crate::state::store::Store;

/// The releases of an AWS environment, newest first, each marked when its image is gone
/// (`orch releases`).
pub(crate) async fn releases(stack: &Stack) -> Result<Vec<Row>, OrchError> {
    let aws = observe::Aws::new(&stack.region).await;
    let store = observe::store_for(&crate::deploy::backend(stack)?, &aws);
    let mut rows = list(&store, &stack.name).await?;
    mark_images(&aws.ecr, &store, &stack.name, &mut rows).await?;
    Ok(rows)
}

/// The releases of `env`, newest first.
pub(crate) async fn list(store: &Store, env: &str) -> Result<Vec<Row>, OrchError> {
    let live = record::latest(store, env).await?;
    let mut rows = vec![];
    for key in store.list(&format!("deployments/{env}/history/")).await? {
        let Some(bytes) = store.get(&key).await? else { continue };
        let Ok(rec) = serde_json::from_slice::<Record>(&bytes) else { continue };
        let name = key.rsplit('/').next().unwrap_or(&key).trim_end_matches(".json").to_string();
        let destroyed = name.ends_with("-destroyed");
        let is_live = !destroyed
            && live.as_ref().is_some_and(|l| l.time == rec.time && l.digest == rec.digest);
        // Ordered by the instant, not the name: records from before millisecond stamps sort too.
        let outcome = if destroyed { "destroyed" } else { rec.state.as_str() };
        rows.push((rec.time, rec.row(name, outcome, is_live)));
    }
    rows.sort_by_key(|r| std::cmp::Reverse(r.0));
    Ok(rows.into_iter().map(|(_, r)| r).collect())
}

/// Mark each release whose image (an ECR image by digest) is gone from its repository.
async fn mark_images(
    ecr: &aws_sdk_ecr::Client,
    store: &Store,
    env: &str,
    rows: &mut [Row],
) -> Result<(), OrchError> {
    for row in rows.iter_mut() {
        let key = format!("deployments/{env}/history/{}.json", row.id);
        let Some(bytes) = store.get(&key).await? else { continue };
        let Ok(rec) = serde_json::from_slice::<Record>(&bytes) else { continue };
        if let Some(image) = crate::image::retention::ecr_image(&rec.run.image_uri) {
            row.image_present = Some(crate::image::retention::exists(ecr, &image).await?);
        }
    }
    Ok(())
}

/// Redeploy the release `to` names (default: the one before the live one).
pub(crate) async fn rollback(
    project: &Project,
    stack: &Stack,
    to: Option<&str>,
    settings: &crate::settings::Settings,
    printer: &Printer,
) -> Result<Outcome, OrchError> {
    let backend = crate::deploy::backend(stack)?;
    let aws = observe::Aws::new(&stack.region).await;
    let store = observe::store_for(&backend, &aws);
    let rows = list(&store, &stack.name).await?;
    let target = super::history::target(&rows, to)
        .map_err(|why| RollbackError::NoTarget { env: stack.name.clone(), why })?;
    let key = format!("deployments/{}/history/{}.json", stack.name, target.id);
    let rec: Record = match store.get(&key).await? {
        Some(bytes) => serde_json::from_slice(&bytes)
            .map_err(|e| RollbackError::BadRecord { key: key.clone(), why: e.to_string() })?,
        None => return Err(RollbackError::Vanished { what: key }.into()),
    };
    printer.progress(&format!(
        "rolling `{}` back to {} ({} of {}, revision {})",
        stack.name,
        target.id,
        record::short(&rec.digest),
        crate::clock::show(&rec.time),
        rec.revision
    ));
    // The release as it ran: its image by digest (no build) and its AMI.
    let mut pinned = stack.clone();
    if let Some(ami) = &rec.run.ami {
        pinned.instances.ami = Some(ami.clone());
    }
    // The record is data from the state bucket: its image goes into the program and the user data
    // only once it parses as a digest-pinned reference naming the recorded digest.
    let uri = crate::image::uri::parse(&rec.run.image_uri)
        .ok()
        .filter(|u| u.digest.as_ref() == rec.digest)
        .ok_or_else(|| RollbackError::BadRecord {
            key: key.clone(),
            why: format!(
                "image_uri `{}` is not <registry>/<repository>@{}",
                rec.run.image_uri, rec.digest
            ),
        })?;
    let image = steps::ImageRef { uri: uri.whole(), digest: uri.digest.clone(), prebuilt: true };
    let steps = steps::Wired::pinned(image, settings);
    let run = execute::Run {
        project,
        stack: &pinned,
        printer,
        aws: &aws,
        store: &store,
        runner: Arc::new(crate::runner::Duct),
        settings,
        force: false,
        force_unlock: false,
    };
    execute::up(&run, &steps).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn two_releases_within_one_second_keep_their_order() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::Dir(dir.path().to_path_buf());
        // The second sorts first by key ("…-aaaa" < "…-bbbb" is not the order they ran in).
        for (time, digest) in [
            ("2026-01-01T00:00:00.900Z", "sha256:bbbb"),
            ("2026-01-01T00:00:00Z", "sha256:cccc"),
            ("2026-01-01T00:00:01.100Z", "sha256:aaaa"),
        ] {
            let mut r = record::tests::rec();
            r.time = time.parse().unwrap();
            r.digest = digest.into();
            record::save(&store, &r).await.unwrap();
        }
        let rows = list(&store, "dev").await.unwrap();
        let digests: Vec<_> = rows.iter().map(|r| r.digest.as_str()).collect();
        assert_eq!(digests, ["sha256:aaaa", "sha256:bbbb", "sha256:cccc"]);
        assert!(rows[0].live && !rows[1].live);
    }
}
