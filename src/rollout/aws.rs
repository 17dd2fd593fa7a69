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

use crate::deploy::error::DeployError;
use crate::deploy::group;
use crate::printer::Printer;

/// What a refresh rolls the group to: the launch template and its explicit version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Target {
    pub group: String,
    pub template_id: String,
    pub version: String,
    /// The CloudWatch alarms that roll the refresh back when one fires (target 5xx, and the
    /// objective's: 5xx ratios, p99).
    pub alarms: Vec<String>,
    /// A canary: checkpoints at these percentages of the group (100 follows), each held for
    /// `bake_seconds`, and the same bake after the last replacement.
    pub canary: Option<Checkpoints>,
}

/// An instance refresh's canary checkpoints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Checkpoints {
    pub percentages: Vec<u32>,
    pub bake_seconds: u32,
}

impl Checkpoints {
    /// The stack's canary as checkpoints (None for a rolling rollout).
    pub(crate) fn of(stack: &crate::config::Stack) -> Option<Self> {
        let steps = stack.rollout.canary_steps()?;
        Some(Checkpoints { percentages: steps.to_vec(), bake_seconds: stack.rollout.bake_seconds })
    }
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
    if !target.alarms.is_empty() {
        prefs = prefs.alarm_specification(
            AlarmSpecification::builder().set_alarms(Some(target.alarms.clone())).build(),
        );
    }
    if let Some(c) = &target.canary {
        // CheckpointPercentages must end at 100 for every instance to be replaced; CheckpointDelay
        // holds each checkpoint and BakeTime the end (RefreshPreferences, 0–172800 s each).
        let mut at: Vec<i32> = c.percentages.iter().map(|p| *p as i32).collect();
        at.push(100);
        let bake = c.bake_seconds as i32;
        prefs = prefs.set_checkpoint_percentages(Some(at)).checkpoint_delay(bake).bake_time(bake);
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

#[cfg(test)]
mod tests {
    use super::*;

    fn target(canary: Option<Checkpoints>) -> Target {
        Target {
            group: "g".into(),
            template_id: "lt-1".into(),
            version: "3".into(),
            alarms: vec!["a-5xx".into(), "a-p99".into()],
            canary,
        }
    }

    #[test]
    fn a_canary_refresh_carries_checkpoints_ending_at_100_the_bake_and_every_alarm() {
        let c = Checkpoints { percentages: vec![10, 50], bake_seconds: 120 };
        let (desired, prefs) = request(&target(Some(c)));
        assert_eq!(desired.launch_template().and_then(|l| l.version()), Some("3"));
        assert_eq!(prefs.checkpoint_percentages(), [10, 50, 100]);
        assert_eq!((prefs.checkpoint_delay(), prefs.bake_time()), (Some(120), Some(120)));
        assert_eq!(
            prefs.alarm_specification().map(|a| a.alarms()),
            Some(&["a-5xx".to_string(), "a-p99".to_string()][..])
        );
        assert_eq!(
            (prefs.auto_rollback(), prefs.min_healthy_percentage()),
            (Some(true), Some(100))
        );
    }

    #[test]
    fn a_rolling_refresh_has_no_checkpoints() {
        let (_, prefs) = request(&target(None));
        assert!(prefs.checkpoint_percentages().is_empty());
        assert_eq!((prefs.checkpoint_delay(), prefs.bake_time()), (None, None));
    }
}
