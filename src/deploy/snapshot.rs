//! The final database snapshot `orch down --unprotect` takes before a protected environment is
//! destroyed: `CreateDBSnapshot`, then polled until `available` (a snapshot still `creating` when
//! the instance is deleted would be lost with it). An existing snapshot of that name is reused.
use std::time::{Duration, Instant};

use super::error::DeployError;
use crate::printer::Printer;

/// How long the snapshot may take (`ORCH_SNAPSHOT_TIMEOUT` seconds, default 3600).
fn timeout() -> Duration {
    crate::settings::get().snapshot_timeout.unwrap_or(Duration::from_secs(3600))
}

/// Snapshot `db` as `id` and wait until it is available.
pub async fn take(
    rds: &aws_sdk_rds::Client,
    db: &str,
    id: &str,
    poll: Duration,
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
        if start.elapsed() > timeout() {
            spinner.finish_and_clear();
            return Err(DeployError::Timeout {
                what: format!("final snapshot {id} of {db} (nothing was destroyed)"),
                seconds: timeout().as_secs(),
            });
        }
        tokio::time::sleep(poll.min(Duration::from_secs(15))).await;
    }
}
