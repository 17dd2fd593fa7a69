//! The final database snapshot `orch down --unprotect` takes before a protected environment is
//! destroyed: `CreateDBSnapshot`, then polled until `available` (a snapshot still `creating` when
//! the instance is deleted would be lost with it). An existing snapshot of that name is reused.
use std::time::{Duration, Instant};

use super::error::DeployError;
use crate::printer::Printer;

/// How long the snapshot may take (`ORCH_SNAPSHOT_TIMEOUT` seconds, default 3600).
pub(crate) fn timeout(settings: &crate::settings::Settings) -> Duration {
    settings.snapshot_timeout.unwrap_or(Duration::from_secs(3600))
}

/// Snapshot `db` as `id` and wait until it is available, at most `timeout` (see [`timeout`]).
pub(crate) async fn take(
    rds: &aws_sdk_rds::Client,
    db: &str,
    id: &str,
    poll: Duration,
    timeout: Duration,
    p: &Printer,
) -> Result<(), DeployError> {
    let exists = rds
        .describe_db_snapshots()
        .db_snapshot_identifier(id)
        .send()
        .await
        .is_ok_and(|out| !out.db_snapshots().is_empty());
    if !exists {
        rds.create_db_snapshot()
            .db_instance_identifier(db)
            .db_snapshot_identifier(id)
            .send()
            .await
            .map_err(DeployError::aws(format!("creating the final snapshot {id} of {db}")))?;
    }
    let spinner = p.spinner(format!("final snapshot {id} of {db}"));
    let start = Instant::now();
    loop {
        let out = rds
            .describe_db_snapshots()
            .db_snapshot_identifier(id)
            .send()
            .await
            .map_err(DeployError::aws(format!("reading the snapshot {id}")))?;
        let status =
            out.db_snapshots().first().and_then(|s| s.status()).unwrap_or("unknown").to_string();
        spinner.set_message(format!("final snapshot {id} of {db}: {status}"));
        match status.as_str() {
            "available" => {
                spinner.finish_and_clear();
                p.progress(&format!("✓ final snapshot {id} of {db} available"));
                return Ok(());
            }
            "creating" | "unknown" => {}
            other => {
                spinner.finish_and_clear();
                return Err(DeployError::step(
                    format!("final snapshot {id}"),
                    format!("ended `{other}`; nothing was destroyed"),
                ));
            }
        }
        if start.elapsed() > timeout {
            spinner.finish_and_clear();
            return Err(DeployError::Timeout {
                what: format!("final snapshot {id} of {db} (nothing was destroyed)"),
                seconds: timeout.as_secs(),
            });
        }
        tokio::time::sleep(poll.min(Duration::from_secs(15))).await;
    }
}

/// After the destroy: the manual snapshots of `db` created since `since` other than orch's own
/// `ours` — the RDS delete handler takes one when the delete request asks for it (its
/// `DeleteHandler`: `request.getSnapshotRequested()`), named by nobody and expired by nothing —
/// are deleted and returned, so the final snapshot orch named is the only one the teardown leaves.
pub(crate) async fn delete_unnamed(
    rds: &aws_sdk_rds::Client,
    db: &str,
    ours: &str,
    since: aws_sdk_rds::primitives::DateTime,
    p: &Printer,
) -> Result<Vec<String>, DeployError> {
    let out = rds
        .describe_db_snapshots()
        .db_instance_identifier(db)
        .snapshot_type("manual")
        .send()
        .await
        .map_err(DeployError::aws(format!("listing the snapshots of {db}")))?;
    let mut deleted = vec![];
    for s in out.db_snapshots() {
        let Some(id) = s.db_snapshot_identifier() else { continue };
        let new = s.snapshot_create_time().is_some_and(|t| t.secs() >= since.secs());
        if id == ours || !new {
            continue;
        }
        rds.delete_db_snapshot()
            .db_snapshot_identifier(id)
            .send()
            .await
            .map_err(DeployError::aws(format!("deleting the snapshot {id} the destroy left")))?;
        p.progress(&format!(
            "✓ deleted {id}: a snapshot of {db} the destroy made (not orch's final snapshot {ours})"
        ));
        deleted.push(id.to_string());
    }
    Ok(deleted)
}
