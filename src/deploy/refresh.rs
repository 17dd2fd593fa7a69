//! The rolling replacement after a launch-template change: an ASG instance refresh whose desired
//! configuration names the template and its explicit new version, launching before terminating
//! (MinHealthyPercentage 100, MaxHealthyPercentage 200: with one instance per zone,
//! terminate-then-launch would leave a zone empty), SkipMatching and AutoRollback — which the API
//! refuses without a desired configuration or with `$Latest`/`$Default` (RefreshPreferences
//! reference). Followed to its end with progress.
use aws_sdk_autoscaling::types::{
    AlarmSpecification, DesiredConfiguration, InstanceRefreshStatus, LaunchTemplateSpecification,
    RefreshPreferences,
};
use std::time::{Duration, Instant};

use super::error::DeployError;
use crate::printer::Printer;

/// What a refresh rolls the group to: the launch template and its explicit version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub group: String,
    pub template_id: String,
    pub version: String,
    /// The CloudWatch alarm that rolls the refresh back when it fires (target 5xx), if any.
    pub alarm: Option<String>,
}

/// The refresh request's desired configuration and preferences (a pure function, so tests check it).
pub fn request(target: &Target) -> (DesiredConfiguration, RefreshPreferences) {
    let desired = DesiredConfiguration::builder()
        .launch_template(
            LaunchTemplateSpecification::builder()
                .launch_template_id(&target.template_id)
                .version(&target.version)
                .build(),
        )
        .build();
    let mut prefs = RefreshPreferences::builder()
        .min_healthy_percentage(100)
        .max_healthy_percentage(200)
        .skip_matching(true)
        .auto_rollback(true);
    if let Some(alarm) = &target.alarm {
        prefs = prefs.alarm_specification(AlarmSpecification::builder().alarms(alarm).build());
    }
    let prefs = prefs.build();
    (desired, prefs)
}

/// Start a refresh (or join the one already running) and wait for it to end; Ok only on success.
pub async fn run(
    asg: &aws_sdk_autoscaling::Client,
    target: &Target,
    poll: Duration,
    timeout: Duration,
    printer: &Printer,
) -> Result<String, DeployError> {
    let group = target.group.as_str();
    let (desired, prefs) = request(target);
    let id = match asg
        .start_instance_refresh()
        .auto_scaling_group_name(group)
        .desired_configuration(desired)
        .preferences(prefs)
        .send()
        .await
    {
        Ok(out) => out.instance_refresh_id().unwrap_or_default().to_string(),
        Err(e)
            if e.as_service_error().is_some_and(|s| s.is_instance_refresh_in_progress_fault()) =>
        {
            let now = asg
                .describe_instance_refreshes()
                .auto_scaling_group_name(group)
                .send()
                .await
                .map_err(DeployError::aws("reading instance refreshes"))?;
            let running = now.instance_refreshes().iter().find(|r| {
                matches!(
                    r.status(),
                    Some(InstanceRefreshStatus::InProgress | InstanceRefreshStatus::Pending)
                )
            });
            printer.progress("  an instance refresh is already running; following it");
            running.and_then(|r| r.instance_refresh_id()).unwrap_or_default().to_string()
        }
        Err(e) => {
            return Err(DeployError::aws(format!("starting an instance refresh of {group}"))(e))
        }
    };
    let bar = printer.spinner(format!("instance refresh {id} of {group}"));
    let start = Instant::now();
    loop {
        let out = asg
            .describe_instance_refreshes()
            .auto_scaling_group_name(group)
            .instance_refresh_ids(&id)
            .send()
            .await
            .map_err(DeployError::aws("following the instance refresh"))?;
        let Some(r) = out.instance_refreshes().first() else {
            bar.finish_and_clear();
            return Err(DeployError::step(
                "instance refresh",
                format!("refresh {id} of {group} is not listed"),
            ));
        };
        let status = r.status().cloned().unwrap_or(InstanceRefreshStatus::Pending);
        bar.set_message(format!(
            "instance refresh of {group}: {} {}%",
            status.as_str(),
            r.percentage_complete().unwrap_or(0)
        ));
        match status {
            InstanceRefreshStatus::Successful => {
                bar.finish_and_clear();
                printer.progress(&format!("  instance refresh {id}: successful"));
                return Ok(id);
            }
            InstanceRefreshStatus::Pending
            | InstanceRefreshStatus::InProgress
            | InstanceRefreshStatus::Cancelling
            | InstanceRefreshStatus::RollbackInProgress
            | InstanceRefreshStatus::Baking => {}
            other => {
                bar.finish_and_clear();
                return Err(DeployError::step(
                    format!("instance refresh {id} of {group}"),
                    format!(
                        "ended {}: {}",
                        other.as_str(),
                        r.status_reason().unwrap_or("no reason given")
                    ),
                ));
            }
        }
        if start.elapsed() > timeout {
            bar.finish_and_clear();
            return Err(DeployError::Timeout {
                what: format!("instance refresh {id} of {group}"),
                seconds: timeout.as_secs(),
            });
        }
        tokio::time::sleep(poll).await;
    }
}
