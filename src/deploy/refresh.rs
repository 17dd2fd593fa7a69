//! The rolling replacement after a launch-template change: an ASG instance refresh whose desired
//! configuration names the template and its explicit new version, launching before terminating
//! (MinHealthyPercentage 100, MaxHealthyPercentage 200: with one instance per zone,
//! terminate-then-launch would leave a zone empty), SkipMatching and AutoRollback — which the API
//! refuses without a desired configuration or with `$Latest`/`$Default` (RefreshPreferences
//! reference). Whether to start one, follow one or wait for another is decided from the group as it
//! runs ([`super::group`]), never from a record; followed to its end with progress.
use aws_sdk_autoscaling::types::{
    AlarmSpecification, DesiredConfiguration, InstanceRefreshStatus, LaunchTemplateSpecification,
    RefreshPreferences,
};
use std::time::{Duration, Instant};

use super::error::DeployError;
use super::group;
use crate::printer::Printer;

/// What a refresh rolls the group to: the launch template and its explicit version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Target {
    pub group: String,
    pub template_id: String,
    pub version: String,
    /// The CloudWatch alarm that rolls the refresh back when it fires (target 5xx), if any.
    pub alarm: Option<String>,
}

/// The refresh request's desired configuration and preferences (a pure function, so tests check it).
pub(crate) fn request(target: &Target) -> (DesiredConfiguration, RefreshPreferences) {
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

/// Roll the group to the target version, deciding from what the group runs ([`group::decide`]):
/// skip when it already runs it, follow a refresh already going there, wait for any other active
/// refresh to end (then observe again), else start one. After success the group is read again and
/// must launch the target version. Returns the refresh followed to success, if any.
pub(crate) async fn roll(
    asg: &aws_sdk_autoscaling::Client,
    target: &Target,
    poll: Duration,
    timeout: Duration,
    printer: &Printer,
) -> Result<Option<String>, DeployError> {
    let group = target.group.as_str();
    let start = Instant::now();
    let mut done = None;
    loop {
        let observed = group::observe(asg, group).await?.ok_or_else(|| {
            DeployError::step("instance refresh", format!("no Auto Scaling group named {group}"))
        })?;
        let decision = group::decide(&observed, &target.version);
        if let Some(id) = done.take() {
            // The refresh we followed succeeded: the group must now launch the target version.
            if observed.version.as_deref() != Some(target.version.as_str()) {
                return Err(DeployError::step(
                    format!("instance refresh {id} of {group}"),
                    format!(
                        "ended Successful, but the group launches v{} instead of v{}",
                        observed.version.as_deref().unwrap_or("?"),
                        target.version
                    ),
                ));
            }
            printer.progress(&format!("  {}: the target version", observed.facts()));
            return Ok(Some(id));
        }
        printer.progress(&format!("  {}: {}", observed.facts(), decision.why()));
        let id = match decision {
            group::Decision::Skip { .. } => return Ok(None),
            group::Decision::Wait { id, .. } => {
                let ended =
                    follow(asg, group, &id, poll, remaining(start, timeout)?, printer).await?;
                printer.progress(&format!("  refresh {id} ended {}; deciding again", ended.0));
                continue;
            }
            group::Decision::Follow { id, .. } => id,
            group::Decision::Start { .. } => match start_refresh(asg, target).await? {
                Some(id) => id,
                // Another refresh started between the observation and the request: observe again.
                None => continue,
            },
        };
        let (status, reason) =
            follow(asg, group, &id, poll, remaining(start, timeout)?, printer).await?;
        if status != InstanceRefreshStatus::Successful {
            return Err(DeployError::RefreshEnded {
                what: format!("instance refresh {id} of {group}"),
                status: status.as_str().to_string(),
                reason,
            });
        }
        printer.progress(&format!("  instance refresh {id}: successful"));
        done = Some(id);
    }
}

fn remaining(start: Instant, timeout: Duration) -> Result<Duration, DeployError> {
    timeout.checked_sub(start.elapsed()).ok_or(DeployError::Timeout {
        what: "the instance refresh".into(),
        seconds: timeout.as_secs(),
    })
}

/// StartInstanceRefresh; `None` when another refresh is already active (InstanceRefreshInProgress).
async fn start_refresh(
    asg: &aws_sdk_autoscaling::Client,
    target: &Target,
) -> Result<Option<String>, DeployError> {
    let (desired, prefs) = request(target);
    match asg
        .start_instance_refresh()
        .auto_scaling_group_name(&target.group)
        .desired_configuration(desired)
        .preferences(prefs)
        .send()
        .await
    {
        Ok(out) => Ok(Some(out.instance_refresh_id().unwrap_or_default().to_string())),
        Err(e)
            if e.as_service_error().is_some_and(|s| s.is_instance_refresh_in_progress_fault()) =>
        {
            Ok(None)
        }
        Err(e) => {
            Err(DeployError::aws(format!("starting an instance refresh of {}", target.group))(e))
        }
    }
}

/// Follow refresh `id` until it ends; its final status and reason.
async fn follow(
    asg: &aws_sdk_autoscaling::Client,
    group: &str,
    id: &str,
    poll: Duration,
    timeout: Duration,
    printer: &Printer,
) -> Result<(InstanceRefreshStatus, String), DeployError> {
    let bar = printer.spinner(format!("instance refresh {id} of {group}"));
    let start = Instant::now();
    loop {
        let out = asg
            .describe_instance_refreshes()
            .auto_scaling_group_name(group)
            .instance_refresh_ids(id)
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
            "instance refresh {id} of {group}: {} {}%",
            status.as_str(),
            r.percentage_complete().unwrap_or(0)
        ));
        use InstanceRefreshStatus as S;
        if !matches!(
            status,
            S::Pending | S::InProgress | S::Cancelling | S::RollbackInProgress | S::Baking
        ) {
            bar.finish_and_clear();
            return Ok((status, r.status_reason().unwrap_or("no reason given").to_string()));
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
