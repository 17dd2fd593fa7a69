//! What AWS itself refuses, known offline: the documented cross-property rules of the resources the
//! program uses, each named after its source (the CloudFormation registry schemas pulumi-aws-native
//! is generated from, the CloudFormation and EC2 Auto Scaling references). Enums, ranges and
//! patterns of single properties come from the schema (see [`super::limits`]).
use serde_yaml::{Mapping, Value};

use super::expr;
use super::policy::{number, text};
use super::Finding;

/// Every rule: name and what AWS demands (docs/programs.md gives the sources).
pub const RULES: &[(&str, &str)] = &[
    (
        "asg-explicit-version",
        "an Auto Scaling group names an explicit launch template version, never $Latest or $Default",
    ),
    (
        "alb-after-gateway",
        "an internet-facing load balancer depends on the VPC's internet gateway attachment",
    ),
    (
        "ami-id",
        "a launch template's image is an AMI id (or config holding one), not a resolve:ssm: parameter",
    ),
    ("arn-wildcard-once", "no `:*` appended to an ARN that already ends in `:*` (log groups)"),
    ("health-check-timeout", "a target group's health-check timeout is below its interval"),
    ("asg-capacity-order", "an Auto Scaling group's minSize ≤ desiredCapacity ≤ maxSize"),
];

/// Resource types whose `arn` attribute already ends in `:*` (AWS::Logs::LogGroup's `Arn`).
const ARN_ENDS_IN_WILDCARD: &[&str] = &["aws-native:logs:LogGroup"];

struct Res<'a> {
    name: &'a str,
    token: &'a str,
    body: &'a Value,
}

impl Res<'_> {
    fn prop(&self, path: &str) -> Option<&Value> {
        path.split('.').try_fold(self.body.get("properties")?, |v, k| v.get(k))
    }
    fn path(&self, prop: &str) -> String {
        format!("resources.{}.properties.{prop}", self.name)
    }
}

/// Run every rule over the program.
pub(super) fn run(doc: &Mapping) -> Vec<Finding> {
    let mut out = vec![];
    let mut add =
        |rule: &str, path: String, msg: String| out.push(Finding::policy(rule, &path, msg));
    let resources: Vec<Res> = doc
        .get("resources")
        .and_then(Value::as_mapping)
        .into_iter()
        .flatten()
        .filter_map(|(k, body)| {
            Some(Res { name: k.as_str()?, token: body.get("type")?.as_str()?, body })
        })
        .collect();
    let of = |token: &'static str| resources.iter().filter(move |r| r.token == token);
    let config: Vec<&str> = doc
        .get("config")
        .and_then(Value::as_mapping)
        .map(|m| m.keys().filter_map(Value::as_str).collect())
        .unwrap_or_default();

    for r in of("aws-native:autoscaling:AutoScalingGroup") {
        let version = text(r.prop("launchTemplate.version")).unwrap_or_default();
        if version == "$Latest" || version == "$Default" {
            add("asg-explicit-version", r.path("launchTemplate.version"), format!("`{version}` is not supported here (AWS::AutoScaling::AutoScalingGroup LaunchTemplateSpecification.Version); use ${{<template>.latestVersionNumber}}"));
        }
        let (min, desired, max) = (
            number(r.prop("minSize")),
            number(r.prop("desiredCapacity")),
            number(r.prop("maxSize")),
        );
        if let (Some(min), Some(max)) = (min, max) {
            if min > max || desired.is_some_and(|d| d < min || d > max) {
                add(
                    "asg-capacity-order",
                    r.path("desiredCapacity"),
                    format!(
                        "need minSize ≤ desiredCapacity ≤ maxSize, got {min} ≤ {} ≤ {max}",
                        desired.map_or("-".into(), |d| d.to_string())
                    ),
                );
            }
        }
    }

    let attachments: Vec<&str> =
        of("aws-native:ec2:VpcGatewayAttachment").map(|r| r.name).collect();
    for r in of("aws-native:elasticloadbalancingv2:LoadBalancer") {
        let scheme = text(r.prop("scheme")).unwrap_or_else(|| "internet-facing".into());
        if scheme != "internet-facing" {
            continue;
        }
        let depends: Vec<String> = r
            .body
            .get("options")
            .and_then(|o| o.get("dependsOn"))
            .and_then(Value::as_sequence)
            .into_iter()
            .flatten()
            .filter_map(|v| v.as_str().and_then(expr::whole).map(|x| x.root))
            .collect();
        if !depends.iter().any(|d| attachments.contains(&d.as_str())) {
            add("alb-after-gateway", format!("resources.{}.options.dependsOn", r.name), "an internet-facing load balancer needs the gateway attachment first (CloudFormation DependsOn: \"VPC … has no internet gateway\"); add the VpcGatewayAttachment to options.dependsOn".into());
        }
    }

    for r in of("aws-native:ec2:LaunchTemplate") {
        let image = text(r.prop("launchTemplateData.imageId")).unwrap_or_default();
        let from_config = expr::whole(&image).is_some_and(|x| config.contains(&x.root.as_str()));
        if !from_config && !crate::config::is_ami_id(&image) {
            add("ami-id", r.path("launchTemplateData.imageId"), format!("`{image}` is not an AMI id: an instance refresh with AutoRollback refuses a resolve:ssm: image, and a rollback needs a concrete AMI; use config `amiId` (resolved by `orch up`)"));
        }
    }

    let wildcard: Vec<&str> = resources
        .iter()
        .filter(|r| ARN_ENDS_IN_WILDCARD.contains(&r.token))
        .map(|r| r.name)
        .collect();
    for r in &resources {
        walk(r.body.get("properties"), &r.path(""), &mut |path, s| {
            for name in &wildcard {
                if s.contains(&format!("${{{name}.arn}}:*")) {
                    add(
                        "arn-wildcard-once",
                        path.trim_end_matches('.').to_string(),
                        format!("`{s}`: the `arn` of {name} already ends in `:*`"),
                    );
                }
            }
        });
    }

    for r in of("aws-native:elasticloadbalancingv2:TargetGroup") {
        let (timeout, interval) = (
            number(r.prop("healthCheckTimeoutSeconds")),
            number(r.prop("healthCheckIntervalSeconds")),
        );
        if let (Some(t), Some(i)) = (timeout, interval) {
            if t >= i {
                add("health-check-timeout", r.path("healthCheckTimeoutSeconds"), format!("the timeout ({t} s) must be less than the interval ({i} s) (AWS::ElasticLoadBalancingV2::TargetGroup)"));
            }
        }
    }
    out
}

/// Call `f` with the path and text of every string under `v`.
fn walk(v: Option<&Value>, path: &str, f: &mut dyn FnMut(&str, &str)) {
    match v {
        Some(Value::String(s)) => f(path, s),
        Some(Value::Sequence(items)) => {
            for (i, item) in items.iter().enumerate() {
                walk(Some(item), &format!("{}[{i}]", path.trim_end_matches('.')), f);
            }
        }
        Some(Value::Mapping(m)) => {
            for (k, item) in m {
                let key = k.as_str().unwrap_or_default();
                let sep = if path.ends_with('.') || path.is_empty() { "" } else { "." };
                walk(Some(item), &format!("{path}{sep}{key}"), f);
            }
        }
        _ => {}
    }
}
