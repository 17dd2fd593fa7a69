//! The database's CloudWatch log groups. RDS creates `/aws/rds/instance/<id>/postgresql` itself the
//! first time it exports a log (`enableCloudwatchLogsExports`), with no retention, so the program
//! does not own it and `pulumi destroy` leaves it behind; naming it in the program would need a fixed
//! instance identifier, and changing the identifier of a deployed database replaces it. So `orch down`
//! deletes every group under the destroyed instance's prefix after the destroy.
use aws_sdk_cloudwatchlogs::Client;

use super::error::DeployError;
use crate::printer::Printer;

/// The prefix of the log groups RDS makes for instance `db` (RDS User Guide, "Publishing
/// database logs to Amazon CloudWatch Logs": `/aws/rds/instance/<id>/<log type>`).
pub(crate) fn prefix(db: &str) -> String {
    format!("/aws/rds/instance/{db}/")
}

/// Delete the log groups of instance `db`; returns their names.
pub(crate) async fn delete(
    region: &str,
    db: &str,
    p: &Printer,
) -> Result<Vec<String>, DeployError> {
    let logs = Client::new(&crate::aws::sdk_config(region).await);
    let mut names = vec![];
    let mut pages =
        logs.describe_log_groups().log_group_name_prefix(prefix(db)).into_paginator().send();
    while let Some(page) = pages.next().await {
        let page = page.map_err(DeployError::aws(format!("listing the log groups of {db}")))?;
        names
            .extend(page.log_groups().iter().filter_map(|g| g.log_group_name()).map(str::to_owned));
    }
    for name in &names {
        logs.delete_log_group()
            .log_group_name(name)
            .send()
            .await
            .map_err(DeployError::aws(format!("deleting the log group {name}")))?;
        p.progress(&format!("✓ log group {name} deleted"));
    }
    Ok(names)
}
