//! The relation rules around load balancing (see [`super::relations`] for the list and sources): an
//! ALB over two zones, dualstack only over IPv6 subnets, the target group on the app's port, alarm
//! dimensions that exist for the namespace, and the scaling policy's resource label.
use serde_yaml::Value;

use super::expr;
use super::relations::{roots, rp, strings, text, Program};
use crate::config::Stack;

/// The dimensions CloudWatch publishes per namespace (others never receive data, so the alarm never fires).
const DIMENSIONS: &[(&str, &[&str])] =
    &[("AWS/ApplicationELB", &["LoadBalancer", "TargetGroup", "AvailabilityZone"])];

pub(super) fn run(p: &Program, stack: &Stack, add: &mut dyn FnMut(&str, String, String)) {
    for (name, lb) in p.of("aws-native:elasticloadbalancingv2:LoadBalancer") {
        let subnets = roots(lb.get("subnets"));
        let zones: std::collections::BTreeSet<String> = subnets
            .iter()
            .filter_map(|s| {
                p.0.get(s.as_str()).and_then(|(_, sp)| text(sp.get("availabilityZone")))
            })
            .collect();
        let kind = text(lb.get("type")).unwrap_or_else(|| "application".into());
        if kind == "application" && zones.len() < 2 {
            add(
                "alb-two-zones",
                rp(name, "subnets"),
                format!(
                    "an Application Load Balancer needs subnets in two zones; these are in {}",
                    zones.len()
                ),
            );
        }
        if text(lb.get("ipAddressType")).is_some_and(|t| t.starts_with("dualstack")) {
            for s in &subnets {
                let ipv6 = p.0.get(s.as_str()).is_some_and(|(_, sp)| {
                    ["ipv6CidrBlock", "ipv6CidrBlocks", "ipv6Native", "ipv6IpamPoolId"]
                        .iter()
                        .any(|k| sp.get(k).is_some())
                });
                if !ipv6 {
                    add(
                        "dualstack-needs-ipv6",
                        rp(name, "ipAddressType"),
                        format!("dualstack needs IPv6 subnets; {s} has no IPv6 CIDR block"),
                    );
                }
            }
        }
    }
    let attached: Vec<String> = p
        .of("aws-native:autoscaling:AutoScalingGroup")
        .flat_map(|(_, a)| roots(a.get("targetGroupArns")))
        .collect();
    for (name, tg) in p.of("aws-native:elasticloadbalancingv2:TargetGroup") {
        let port = text(tg.get("port"));
        if attached.iter().any(|a| a == name) && port != Some(stack.instances.port.to_string()) {
            add(
                "target-group-port",
                rp(name, "port"),
                format!(
                    "the instances serve on {} (instances.port), the target group sends to {}",
                    stack.instances.port,
                    port.unwrap_or_else(|| "-".into())
                ),
            );
        }
    }
    for (name, alarm) in p.of("aws-native:cloudwatch:Alarm") {
        let namespace = text(alarm.get("namespace")).unwrap_or_default();
        let Some((_, known)) = DIMENSIONS.iter().find(|(n, _)| *n == namespace) else { continue };
        let dims = alarm.get("dimensions").and_then(Value::as_sequence).into_iter().flatten();
        for (i, d) in dims.enumerate() {
            let dim = text(d.get("name")).unwrap_or_default();
            let path = rp(name, &format!("dimensions[{i}]"));
            if !known.contains(&dim.as_str()) {
                add("alarm-dimensions", format!("{path}.name"), format!("{namespace} has no dimension `{dim}` (only {}): the alarm would never fire", known.join(", ")));
            }
            let want = match dim.as_str() {
                "LoadBalancer" => {
                    Some(("aws-native:elasticloadbalancingv2:LoadBalancer", "loadBalancerFullName"))
                }
                "TargetGroup" => {
                    Some(("aws-native:elasticloadbalancingv2:TargetGroup", "targetGroupFullName"))
                }
                _ => None,
            };
            let value = d.get("value").and_then(Value::as_str).and_then(expr::whole);
            if let (Some((token, attr)), Some(v)) = (want, value) {
                let ok =
                    p.0.get(v.root.as_str()).is_some_and(|(t, _)| *t == token) && v.path == [attr];
                if !ok {
                    add("alarm-dimensions", format!("{path}.value"), format!("`${{{}}}`: {dim} takes the {attr} of a {} (what CloudWatch publishes), not an ARN or another attribute", v.text, token.rsplit(':').next().unwrap_or(token)));
                }
            }
        }
    }
    scaling_labels(p, add);
}

fn scaling_labels(p: &Program, add: &mut dyn FnMut(&str, String, String)) {
    let spec = "targetTrackingConfiguration.predefinedMetricSpecification";
    for (name, sp) in p.of("aws-native:autoscaling:ScalingPolicy") {
        let Some(m) = spec.split('.').try_fold(sp, |v, k| v.get(k)) else { continue };
        if text(m.get("predefinedMetricType")).as_deref() != Some("ALBRequestCountPerTarget") {
            continue;
        }
        let mut label = String::new();
        strings(m.get("resourceLabel"), &mut label);
        let group_tgs: Vec<String> = p
            .target(sp.get("autoScalingGroupName"))
            .map(|(_, _, a)| roots(a.get("targetGroupArns")))
            .unwrap_or_default();
        let refs = expr::references(&label);
        let ok = if refs.is_empty() {
            regex_label(&label)
        } else {
            let rest = label
                .replace(&format!("${{{}}}", refs[0].text), "")
                .replace(&refs.get(1).map_or(String::new(), |r| format!("${{{}}}", r.text)), "");
            refs.len() == 2
                && rest == "/"
                && p.0
                    .get(refs[0].root.as_str())
                    .is_some_and(|(t, _)| *t == "aws-native:elasticloadbalancingv2:LoadBalancer")
                && refs[0].path == ["loadBalancerFullName"]
                && p.0
                    .get(refs[1].root.as_str())
                    .is_some_and(|(t, _)| *t == "aws-native:elasticloadbalancingv2:TargetGroup")
                && refs[1].path == ["targetGroupFullName"]
                && group_tgs.contains(&refs[1].root)
        };
        if !ok {
            add("scaling-resource-label", rp(name, &format!("{spec}.resourceLabel")), format!("`{label}` is not `<load balancer full name>/<full name of the group's target group>` (app/<lb>/<id>/targetgroup/<tg>/<id>): use ${{alb.loadBalancerFullName}}/${{targetGroup.targetGroupFullName}}"));
        }
    }
}

fn regex_label(label: &str) -> bool {
    let parts: Vec<&str> = label.split('/').collect();
    parts.len() == 6
        && parts[0] == "app"
        && parts[3] == "targetgroup"
        && parts.iter().all(|p| !p.is_empty())
}
