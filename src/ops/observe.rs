//! Read-only AWS observations for status and drift: the Auto Scaling group, target health, the
//! certificate the HTTPS listener serves, the certificate itself, and the NS delegation. Each returns
//! a readable error string, so a failing call degrades one row and never the whole command.
use aws_sdk_autoscaling::types::LifecycleState;
use aws_sdk_elasticloadbalancingv2::types::TargetHealthStateEnum;
use aws_sdk_route53::types::RrType;
use serde::{Serialize, Serializer};

use super::cloud::{describe, Clients};

/// The Auto Scaling group as it is now.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Group {
    pub name: String,
    pub min: i32,
    pub desired: i32,
    pub max: i32,
    /// What new instances launch from: `lt-…@version`, `name@version` or `lc:name`.
    pub launch: Option<String>,
    pub instances: Vec<Member>,
}

/// One instance of the group.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Member {
    pub id: String,
    pub zone: String,
    /// The ASG's lifecycle state (`InService`, `Pending`, `Terminating`...), the SDK's enum.
    #[serde(serialize_with = "aws_name")]
    pub lifecycle: LifecycleState,
    /// The ASG's view: `Healthy` or `Unhealthy` (a plain string in the API too).
    pub health: String,
    pub launch: Option<String>,
    /// The target group's view (`healthy`, `unhealthy`, `initial`, `draining`...), when known.
    #[serde(serialize_with = "aws_name_opt")]
    pub target: Option<TargetHealthStateEnum>,
}

/// A target of the target group.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Target {
    pub id: String,
    /// The SDK's enum; `unavailable` when the answer names none.
    #[serde(serialize_with = "aws_name")]
    pub state: TargetHealthStateEnum,
    pub reason: Option<String>,
}

/// An SDK enum in `--json` as the API names it (`InService`, `healthy`...).
trait AwsName {
    fn aws_name(&self) -> &str;
}
impl AwsName for LifecycleState {
    fn aws_name(&self) -> &str {
        self.as_str()
    }
}
impl AwsName for TargetHealthStateEnum {
    fn aws_name(&self) -> &str {
        self.as_str()
    }
}
fn aws_name<S: Serializer>(value: &impl AwsName, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(value.aws_name())
}
fn aws_name_opt<S: Serializer>(value: &Option<impl AwsName>, s: S) -> Result<S::Ok, S::Error> {
    match value {
        Some(v) => s.serialize_str(v.aws_name()),
        None => s.serialize_none(),
    }
}

/// An ACM certificate.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Certificate {
    pub arn: String,
    pub domain: Option<String>,
    pub status: String,
    pub not_after: Option<chrono::DateTime<chrono::Utc>>,
}

/// The env zone's name servers against the NS record in the parent zone.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub(crate) struct Delegation {
    pub zone: String,
    /// Name servers of the env's hosted zone; `None` when the zone does not exist.
    pub zone_ns: Option<Vec<String>>,
    pub parent: String,
    /// Whether the parent zone is hosted in this account.
    pub parent_in_account: bool,
    /// The NS record for the env name in the parent zone; `None` when there is none.
    pub parent_ns: Option<Vec<String>>,
}

fn err(what: &str, e: &(dyn std::error::Error + 'static)) -> String {
    format!("{what}: {}", describe(e))
}

fn launch_of(
    lt: Option<&aws_sdk_autoscaling::types::LaunchTemplateSpecification>,
    lc: Option<&str>,
) -> Option<String> {
    if let Some(lt) = lt {
        let id = lt.launch_template_id().or(lt.launch_template_name()).unwrap_or("?");
        return Some(format!("{id}@{}", lt.version().unwrap_or("$Default")));
    }
    lc.map(|name| format!("lc:{name}"))
}

pub(crate) async fn group(c: &Clients, name: &str) -> Result<Group, String> {
    let out = c
        .asg
        .describe_auto_scaling_groups()
        .auto_scaling_group_names(name)
        .send()
        .await
        .map_err(|e| err("DescribeAutoScalingGroups", &e))?;
    let g = out
        .auto_scaling_groups()
        .first()
        .ok_or_else(|| format!("no Auto Scaling group named `{name}`"))?;
    let instances = g
        .instances()
        .iter()
        .map(|i| Member {
            id: i.instance_id().unwrap_or("?").to_string(),
            zone: i.availability_zone().unwrap_or("?").to_string(),
            lifecycle: i.lifecycle_state().cloned().unwrap_or_else(|| LifecycleState::from("")),
            health: i.health_status().unwrap_or("").to_string(),
            launch: launch_of(i.launch_template(), i.launch_configuration_name()),
            target: None,
        })
        .collect();
    Ok(Group {
        name: name.to_string(),
        min: g.min_size().unwrap_or(0),
        desired: g.desired_capacity().unwrap_or(0),
        max: g.max_size().unwrap_or(0),
        launch: launch_of(g.launch_template(), g.launch_configuration_name()),
        instances,
    })
}

pub(crate) async fn targets(c: &Clients, target_group: &str) -> Result<Vec<Target>, String> {
    let out = c
        .elb
        .describe_target_health()
        .target_group_arn(target_group)
        .send()
        .await
        .map_err(|e| err("DescribeTargetHealth", &e))?;
    Ok(out
        .target_health_descriptions()
        .iter()
        .map(|d| Target {
            id: d.target().and_then(|t| t.id()).unwrap_or("?").to_string(),
            state: d
                .target_health()
                .and_then(|h| h.state())
                .cloned()
                .unwrap_or(TargetHealthStateEnum::Unavailable),
            reason: d
                .target_health()
                .and_then(|h| h.description().or(h.reason().map(|r| r.as_str())))
                .map(str::to_string),
        })
        .collect())
}

/// The certificate ARNs served by the HTTPS listener(s) of the load balancer behind `target_group`.
pub(crate) async fn listener_certificates(
    c: &Clients,
    target_group: &str,
) -> Result<Vec<String>, String> {
    let tgs = c
        .elb
        .describe_target_groups()
        .target_group_arns(target_group)
        .send()
        .await
        .map_err(|e| err("DescribeTargetGroups", &e))?;
    let lbs: Vec<String> =
        tgs.target_groups().iter().flat_map(|t| t.load_balancer_arns().iter().cloned()).collect();
    if lbs.is_empty() {
        return Err("the target group is not attached to a load balancer".into());
    }
    let mut arns = vec![];
    for lb in lbs {
        let ls = c
            .elb
            .describe_listeners()
            .load_balancer_arn(&lb)
            .send()
            .await
            .map_err(|e| err("DescribeListeners", &e))?;
        for l in ls.listeners() {
            let https =
                l.protocol().is_some_and(|p| p.as_str() == "HTTPS") || l.port() == Some(443);
            if https {
                arns.extend(
                    l.certificates().iter().filter_map(|c| c.certificate_arn()).map(str::to_string),
                );
            }
        }
    }
    Ok(arns)
}

pub(crate) async fn certificate(c: &Clients, arn: &str) -> Result<Certificate, String> {
    let out = c
        .acm
        .describe_certificate()
        .certificate_arn(arn)
        .send()
        .await
        .map_err(|e| err("DescribeCertificate", &e))?;
    let d = out.certificate().ok_or("DescribeCertificate returned no certificate")?;
    Ok(Certificate {
        arn: arn.to_string(),
        domain: d.domain_name().map(str::to_string),
        status: d.status().map(|s| s.as_str().to_string()).unwrap_or_default(),
        not_after: d.not_after().and_then(|t| chrono::DateTime::from_timestamp(t.secs(), 0)),
    })
}

fn fqdn(name: &str) -> String {
    format!("{}.", name.trim_end_matches('.').to_ascii_lowercase())
}

/// Name servers compared without case or trailing dot, sorted.
pub(crate) fn normalize(ns: &[String]) -> Vec<String> {
    let mut v: Vec<String> =
        ns.iter().map(|n| n.trim_end_matches('.').to_ascii_lowercase()).collect();
    v.sort();
    v.dedup();
    v
}

async fn public_zone(c: &Clients, name: &str) -> Result<Option<String>, String> {
    let want = fqdn(name);
    let out = c
        .route53
        .list_hosted_zones_by_name()
        .dns_name(&want)
        .send()
        .await
        .map_err(|e| err("ListHostedZonesByName", &e))?;
    Ok(out
        .hosted_zones()
        .iter()
        .find(|z| fqdn(z.name()) == want && !z.config().is_some_and(|c| c.private_zone()))
        .map(|z| z.id().to_string()))
}

pub(crate) async fn delegation(
    c: &Clients,
    zone: &str,
    parent: &str,
) -> Result<Delegation, String> {
    let mut d = Delegation {
        zone: zone.into(),
        zone_ns: None,
        parent: parent.into(),
        parent_in_account: false,
        parent_ns: None,
    };
    if let Some(id) = public_zone(c, zone).await? {
        let z = c
            .route53
            .get_hosted_zone()
            .id(&id)
            .send()
            .await
            .map_err(|e| err("GetHostedZone", &e))?;
        d.zone_ns =
            Some(normalize(z.delegation_set().map(|s| s.name_servers()).unwrap_or_default()));
    }
    if let Some(pid) = public_zone(c, parent).await? {
        d.parent_in_account = true;
        let want = fqdn(zone);
        let rr = c
            .route53
            .list_resource_record_sets()
            .hosted_zone_id(&pid)
            .start_record_name(&want)
            .start_record_type(RrType::Ns)
            .send()
            .await
            .map_err(|e| err("ListResourceRecordSets", &e))?;
        d.parent_ns = rr
            .resource_record_sets()
            .iter()
            .find(|r| fqdn(r.name()) == want && *r.r#type() == RrType::Ns)
            .map(|r| {
                normalize(
                    &r.resource_records().iter().map(|v| v.value().to_string()).collect::<Vec<_>>(),
                )
            });
    }
    Ok(d)
}

/// A group's newest instance refresh as DescribeInstanceRefreshes reports it.
#[derive(Debug, Clone)]
pub(crate) struct Refresh {
    pub id: String,
    pub status: String,
    pub active: bool,
    pub percent: i32,
    pub reason: String,
}

/// The newest instance refresh of group `name` (None: never refreshed).
pub(crate) async fn refresh(c: &Clients, name: &str) -> Result<Option<Refresh>, String> {
    use aws_sdk_autoscaling::types::InstanceRefreshStatus as S;
    let out = c
        .asg
        .describe_instance_refreshes()
        .auto_scaling_group_name(name)
        .max_records(1)
        .send()
        .await
        .map_err(|e| err("DescribeInstanceRefreshes", &e))?;
    Ok(out.instance_refreshes().first().map(|r| {
        let status = r.status().cloned().unwrap_or(S::Pending);
        Refresh {
            id: r.instance_refresh_id().unwrap_or("?").to_string(),
            active: matches!(
                status,
                S::Pending | S::InProgress | S::Baking | S::Cancelling | S::RollbackInProgress
            ),
            status: status.as_str().to_string(),
            percent: r.percentage_complete().unwrap_or(0),
            reason: r.status_reason().unwrap_or("").to_string(),
        }
    }))
}
