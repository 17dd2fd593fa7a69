//! What the Auto Scaling group actually runs, read before any rollout decision: the launch-template
//! version of the group and of each instance, and an instance refresh that is still active with the
//! version it moves the group to. [`decide`] turns that and the program's version into the refresh
//! decision — a pure function, so the plan, the executor and the tests share it.
//!
//! Sources (EC2 Auto Scaling API reference, as in botocore's `autoscaling/2011-01-01` model):
//! `DescribeAutoScalingGroups` gives the group's and each instance's `LaunchTemplate.Version`;
//! `DescribeInstanceRefreshes` gives each refresh's `Status` and `DesiredConfiguration`; a group
//! takes the desired configuration only "once the instance refresh succeeds"
//! (`StartInstanceRefresh.DesiredConfiguration`); one active refresh at a time
//! (`InstanceRefreshInProgress`).
use aws_sdk_autoscaling::types::InstanceRefreshStatus;
use serde::Serialize;

use super::error::DeployError;

/// An instance refresh that has not ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct Active {
    pub id: String,
    /// As the API names it: Pending, InProgress, Baking, Cancelling, RollbackInProgress.
    pub status: String,
    /// The launch-template version its desired configuration names (None: no desired configuration).
    pub version: Option<String>,
}

/// The group as DescribeAutoScalingGroups and DescribeInstanceRefreshes report it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct Observed {
    pub name: String,
    /// The launch-template version the group launches new instances from.
    pub version: Option<String>,
    /// Each instance with the version it was launched from.
    pub instances: Vec<(String, Option<String>)>,
    pub active: Option<Active>,
}

impl Observed {
    /// Instances launched from another version than `version`.
    pub(crate) fn stale(&self, version: &str) -> Vec<String> {
        self.instances
            .iter()
            .filter(|(_, v)| v.as_deref() != Some(version))
            .map(|(id, _)| id.clone())
            .collect()
    }
    /// One line of facts for plans and progress.
    pub(crate) fn facts(&self) -> String {
        let on = self.version.as_deref().unwrap_or("?");
        let active = match &self.active {
            Some(a) => format!(
                ", refresh {} {} towards v{}",
                a.id,
                a.status,
                a.version.as_deref().unwrap_or("?")
            ),
            None => String::new(),
        };
        format!("group {} on v{on} ({} instances){active}", self.name, self.instances.len())
    }
}

/// What the rollout does, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "decision")]
pub(crate) enum Decision {
    /// The group and every instance already run the program's version.
    Skip { why: String },
    /// Start a refresh to the program's version.
    Start { why: String },
    /// A refresh towards the program's version is running: follow it.
    Follow { id: String, why: String },
    /// Another refresh is active (another version, or cancelling / rolling back): wait for it to
    /// end, then observe again and decide afresh.
    Wait { id: String, why: String },
}

impl Decision {
    pub(crate) fn why(&self) -> &str {
        match self {
            Decision::Skip { why }
            | Decision::Start { why }
            | Decision::Follow { why, .. }
            | Decision::Wait { why, .. } => why,
        }
    }
}

/// The refresh decision for a group that should run launch-template version `want`. Pure.
pub(crate) fn decide(group: &Observed, want: &str) -> Decision {
    if let Some(a) = &group.active {
        let moving = matches!(a.status.as_str(), "Pending" | "InProgress" | "Baking");
        if moving && a.version.as_deref() == Some(want) {
            return Decision::Follow {
                id: a.id.clone(),
                why: format!("refresh {} is already moving the group to v{want}", a.id),
            };
        }
        return Decision::Wait {
            id: a.id.clone(),
            why: format!(
                "refresh {} is {} towards v{}, not v{want}: waiting for it to end",
                a.id,
                a.status,
                a.version.as_deref().unwrap_or("?")
            ),
        };
    }
    let on = group.version.as_deref().unwrap_or("?");
    if on != want {
        return Decision::Start {
            why: format!("the group launches v{on}, the program's launch template is v{want}"),
        };
    }
    let stale = group.stale(want);
    if stale.is_empty() {
        Decision::Skip { why: format!("the group and its instances run v{want}") }
    } else {
        Decision::Start {
            why: format!(
                "{} instance(s) still on another version: {}",
                stale.len(),
                stale.join(", ")
            ),
        }
    }
}

fn is_active(s: &InstanceRefreshStatus) -> bool {
    use InstanceRefreshStatus as S;
    matches!(s, S::Pending | S::InProgress | S::Baking | S::Cancelling | S::RollbackInProgress)
}

/// Read the group and its active refresh; `Ok(None)` when the group does not exist (yet).
pub(crate) async fn observe(
    asg: &aws_sdk_autoscaling::Client,
    name: &str,
) -> Result<Option<Observed>, DeployError> {
    let out = asg
        .describe_auto_scaling_groups()
        .auto_scaling_group_names(name)
        .send()
        .await
        .map_err(DeployError::aws(format!("reading the Auto Scaling group {name}")))?;
    let Some(g) = out.auto_scaling_groups().first() else { return Ok(None) };
    let version = |lt: Option<&aws_sdk_autoscaling::types::LaunchTemplateSpecification>| {
        lt.and_then(|l| l.version()).map(str::to_string)
    };
    let instances = g
        .instances()
        .iter()
        .map(|i| (i.instance_id().unwrap_or("?").to_string(), version(i.launch_template())))
        .collect();
    let refreshes = asg
        .describe_instance_refreshes()
        .auto_scaling_group_name(name)
        .send()
        .await
        .map_err(DeployError::aws(format!("reading the instance refreshes of {name}")))?;
    let active = refreshes.instance_refreshes().iter().find(|r| r.status().is_some_and(is_active));
    Ok(Some(Observed {
        name: name.to_string(),
        version: version(g.launch_template()),
        instances,
        active: active.map(|r| Active {
            id: r.instance_refresh_id().unwrap_or_default().to_string(),
            status: r.status().map(|s| s.as_str().to_string()).unwrap_or_default(),
            version: r
                .desired_configuration()
                .and_then(|d| d.launch_template())
                .and_then(|l| l.version())
                .map(str::to_string),
        }),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn group(on: &str, instances: &[&str], active: Option<(&str, &str)>) -> Observed {
        Observed {
            name: "g".into(),
            version: Some(on.into()),
            instances: instances
                .iter()
                .enumerate()
                .map(|(i, v)| (format!("i-{i}"), Some(v.to_string())))
                .collect(),
            active: active.map(|(status, v)| Active {
                id: "ir-9".into(),
                status: status.into(),
                version: Some(v.into()),
            }),
        }
    }

    #[test]
    fn a_group_behind_the_program_is_refreshed_whatever_any_record_says() {
        assert!(matches!(decide(&group("1", &["1", "1"], None), "2"), Decision::Start { .. }));
        assert!(matches!(decide(&group("2", &["2", "2"], None), "2"), Decision::Skip { .. }));
        let d = decide(&group("2", &["2", "1"], None), "2");
        assert!(matches!(&d, Decision::Start { why } if why.contains("i-1")), "{d:?}");
    }

    #[test]
    fn an_active_refresh_is_followed_only_when_it_goes_where_the_program_goes() {
        let d = decide(&group("1", &["1"], Some(("InProgress", "2"))), "2");
        assert_eq!(d, Decision::Follow { id: "ir-9".into(), why: d.why().into() });
        for (status, v) in [("InProgress", "3"), ("Cancelling", "2"), ("RollbackInProgress", "2")] {
            let d = decide(&group("1", &["1"], Some((status, v))), "2");
            assert!(matches!(&d, Decision::Wait { why, .. } if why.contains(status)), "{d:?}");
        }
    }
}
