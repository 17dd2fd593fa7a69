//! Relations across resources that AWS refuses, or that deploy but do not work: subnets inside their
//! VPC and apart, an ALB over two zones, the target group on the app's port, NAT gateways in public
//! subnets and private routes through them, alarm dimensions that exist, the scaling resource label,
//! dualstack only over IPv6 subnets, an IMDS hop limit a container can use, port ranges in order.
//! Each rule names its source ([`RULES`]).
use serde_yaml::{Mapping, Value};
use std::collections::BTreeMap;

use super::expr;
use super::limits::{cidr, literal, resources};
use super::Finding;
use crate::config::Stack;

/// Every rule: name, what it demands, and its source.
pub const RULES: &[(&str, &str, &str)] = &[
    ("subnet-in-vpc", "every subnet's CIDR block lies inside its VPC's and overlaps no other subnet",
     "https://docs.aws.amazon.com/vpc/latest/userguide/subnet-sizing.html"),
    ("alb-two-zones", "an Application Load Balancer has subnets in at least two Availability Zones",
     "https://docs.aws.amazon.com/elasticloadbalancing/latest/APIReference/API_CreateLoadBalancer.html (Subnets)"),
    ("target-group-port", "the instances' target group sends to the app's port (stack `instances.port`)",
     "https://docs.aws.amazon.com/elasticloadbalancing/latest/application/target-group-register-targets.html (Auto Scaling registers instances on the target group's port)"),
    ("nat-in-public-subnet", "a public NAT gateway sits in a subnet whose route table sends 0.0.0.0/0 to the internet gateway",
     "https://docs.aws.amazon.com/vpc/latest/userguide/vpc-nat-gateway.html (public NAT gateways are created in a public subnet)"),
    ("private-route-via-nat", "the subnets of the instances and the database route 0.0.0.0/0 through a NAT gateway, never the internet gateway",
     "https://docs.aws.amazon.com/vpc/latest/userguide/nat-gateway-scenarios.html"),
    ("alarm-dimensions", "an alarm uses dimensions its namespace has for the metric, with the values CloudWatch publishes",
     "https://docs.aws.amazon.com/elasticloadbalancing/latest/application/load-balancer-cloudwatch-metrics.html (LoadBalancer, TargetGroup, AvailabilityZone; full names)"),
    ("scaling-resource-label", "ALBRequestCountPerTarget's resource label is the LB's full name / the group's target group's full name",
     "https://docs.aws.amazon.com/autoscaling/ec2/APIReference/API_PredefinedMetricSpecification.html (ResourceLabel)"),
    ("dualstack-needs-ipv6", "a dualstack load balancer is only over subnets with IPv6 CIDR blocks",
     "https://docs.aws.amazon.com/elasticloadbalancing/latest/application/application-load-balancers.html (IP address type: dualstack needs IPv6 subnets)"),
    ("imds-hop-limit", "instances that run containers allow an IMDSv2 response hop limit of at least 2",
     "https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/instancedata-data-retrieval.html (containers need a hop limit of 2)"),
    ("port-range-order", "a security group rule's fromPort is not above its toPort",
     "https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_IpPermission.html (FromPort/ToPort)"),
];

/// The dimensions CloudWatch publishes per namespace (others never receive data, so the alarm never fires).
const DIMENSIONS: &[(&str, &[&str])] =
    &[("AWS/ApplicationELB", &["LoadBalancer", "TargetGroup", "AvailabilityZone"])];

fn source(rule: &str) -> &'static str {
    RULES.iter().find(|(r, _, _)| *r == rule).map_or("", |(_, _, s)| s)
}

/// The program's resources by name: (type, properties).
struct Program<'a>(BTreeMap<&'a str, (&'a str, &'a Value)>);

impl<'a> Program<'a> {
    fn of(&self, token: &'a str) -> impl Iterator<Item = (&'a str, &'a Value)> + '_ {
        self.0.iter().filter(move |(_, (t, _))| *t == token).map(|(n, (_, p))| (*n, *p))
    }
    /// The resource a whole-string reference names, with its type.
    fn target(&self, v: Option<&Value>) -> Option<(String, &'a str, &'a Value)> {
        let r = v.and_then(Value::as_str).and_then(expr::whole)?;
        let (t, p) = self.0.get(r.root.as_str())?;
        Some((r.root, t, p))
    }
    fn is(&self, v: Option<&Value>, token: &str) -> bool {
        self.target(v).is_some_and(|(_, t, _)| t == token)
    }
    /// The route tables associated with `subnet`.
    fn tables(&self, subnet: &str) -> Vec<String> {
        self.of("aws-native:ec2:SubnetRouteTableAssociation")
            .filter(|(_, p)| refers(p.get("subnetId"), subnet))
            .filter_map(|(_, p)| self.target(p.get("routeTableId")).map(|(n, _, _)| n))
            .collect()
    }
    /// `(name, properties)` of the routes of table `table` to 0.0.0.0/0.
    fn default_routes(&self, table: &str) -> Vec<(&'a str, &'a Value)> {
        self.of("aws-native:ec2:Route")
            .filter(|(_, p)| refers(p.get("routeTableId"), table))
            .filter(|(_, p)| text(p.get("destinationCidrBlock")).as_deref() == Some("0.0.0.0/0"))
            .collect()
    }
}

/// Every string under `v`, appended to `out`.
fn strings(v: Option<&Value>, out: &mut String) {
    match v {
        Some(Value::String(s)) => out.push_str(s),
        Some(Value::Mapping(m)) => m.values().for_each(|v| strings(Some(v), out)),
        Some(Value::Sequence(items)) => items.iter().for_each(|v| strings(Some(v), out)),
        _ => {}
    }
}

fn text(v: Option<&Value>) -> Option<String> {
    v.and_then(literal)
}
fn refers(v: Option<&Value>, name: &str) -> bool {
    v.and_then(Value::as_str).and_then(expr::whole).is_some_and(|r| r.root == name)
}
fn roots(v: Option<&Value>) -> Vec<String> {
    let items = v.and_then(Value::as_sequence).into_iter().flatten();
    items.filter_map(|x| x.as_str().and_then(expr::whole)).map(|r| r.root).collect()
}
fn rp(name: &str, prop: &str) -> String {
    format!("resources.{name}.properties.{prop}")
}

/// Run every relation rule.
pub(super) fn run(doc: &Mapping, stack: &Stack) -> Vec<Finding> {
    let p = Program(resources(doc).map(|(n, t, props)| (n, (t, props))).collect());
    let mut out = vec![];
    let mut add = |rule: &str, path: String, msg: String| {
        out.push(Finding::policy(rule, &path, msg).with_source(source(rule)));
    };
    network(&p, &mut add);
    load_balancing(&p, stack, &mut add);
    for (name, lt) in p.of("aws-native:ec2:LaunchTemplate") {
        let data = lt.get("launchTemplateData");
        let mut script = String::new();
        strings(data.and_then(|d| d.get("userData")), &mut script);
        let md = data.and_then(|d| d.get("metadataOptions"));
        let hops = text(md.and_then(|m| m.get("httpPutResponseHopLimit")));
        let hops_n = hops.as_deref().map_or(Some(1), |h| h.parse::<i64>().ok());
        if ["docker run", "podman run", "nerdctl run"].iter().any(|c| script.contains(c))
            && hops_n.is_some_and(|h| h < 2)
        {
            add("imds-hop-limit", rp(name, "launchTemplateData.metadataOptions.httpPutResponseHopLimit"), format!("the user data runs a container, which is one hop further from IMDSv2; a hop limit of {} (default 1) leaves it without the instance's credentials and identity: use 2", hops.as_deref().unwrap_or("unset")));
        }
    }
    let mut rules: Vec<(String, &Value)> = vec![];
    for (name, g) in p.of("aws-native:ec2:SecurityGroup") {
        for list in ["securityGroupIngress", "securityGroupEgress"] {
            for (i, r) in g.get(list).and_then(Value::as_sequence).into_iter().flatten().enumerate()
            {
                rules.push((rp(name, &format!("{list}[{i}]")), r));
            }
        }
    }
    for token in ["aws-native:ec2:SecurityGroupIngress", "aws-native:ec2:SecurityGroupEgress"] {
        rules.extend(p.of(token).map(|(n, r)| (format!("resources.{n}.properties"), r)));
    }
    for (path, r) in rules {
        let protocol = text(r.get("ipProtocol")).unwrap_or_default().to_ascii_lowercase();
        let port = |k: &str| text(r.get(k)).and_then(|v| v.parse::<i64>().ok());
        if let (Some(from), Some(to)) = (port("fromPort"), port("toPort")) {
            if from > to && !["icmp", "icmpv6", "1", "58"].contains(&protocol.as_str()) {
                add(
                    "port-range-order",
                    format!("{path}.fromPort"),
                    format!("the range {from}..{to} is inverted"),
                );
            }
        }
    }
    out
}

fn network(p: &Program, add: &mut dyn FnMut(&str, String, String)) {
    let mut seen: Vec<(&str, String, ipnet::Ipv4Net)> = vec![];
    for (name, s) in p.of("aws-native:ec2:Subnet") {
        let Some(block) = text(s.get("cidrBlock")).and_then(|c| cidr(&c)) else { continue };
        let vpc = p.target(s.get("vpcId"));
        if let Some((vpc_name, _, v)) = &vpc {
            if let Some(outer) = text(v.get("cidrBlock")).and_then(|c| cidr(&c)) {
                if !outer.contains(&block) {
                    add(
                        "subnet-in-vpc",
                        rp(name, "cidrBlock"),
                        format!("{block} is not inside the VPC {vpc_name}'s {outer}"),
                    );
                }
            }
            for (other, other_vpc, b) in &seen {
                if other_vpc == vpc_name && (b.contains(&block) || block.contains(b)) {
                    add(
                        "subnet-in-vpc",
                        rp(name, "cidrBlock"),
                        format!("{block} overlaps {other}'s {b}"),
                    );
                    add(
                        "subnet-in-vpc",
                        rp(other, "cidrBlock"),
                        format!("{b} overlaps {name}'s {block}"),
                    );
                }
            }
            seen.push((name, vpc_name.clone(), block));
        }
    }
    let routes_to_igw = |subnet: &str| {
        p.tables(subnet).iter().any(|t| {
            p.default_routes(t)
                .iter()
                .any(|(_, r)| p.is(r.get("gatewayId"), "aws-native:ec2:InternetGateway"))
        })
    };
    for (name, nat) in p.of("aws-native:ec2:NatGateway") {
        if text(nat.get("connectivityType")).as_deref() == Some("private") {
            continue;
        }
        match p.target(nat.get("subnetId")) {
            Some((subnet, _, _)) if routes_to_igw(&subnet) => {}
            Some((subnet, _, _)) => add("nat-in-public-subnet", rp(name, "subnetId"), format!("{subnet} has no default route to the internet gateway, so this NAT gateway cannot reach the internet")),
            None => {}
        }
    }
    let mut private: Vec<(String, String)> = vec![];
    for (name, asg) in p.of("aws-native:autoscaling:AutoScalingGroup") {
        private
            .extend(roots(asg.get("vpcZoneIdentifier")).into_iter().map(|s| (s, name.to_string())));
    }
    for (name, g) in p.of("aws-native:rds:DbSubnetGroup") {
        private.extend(roots(g.get("subnetIds")).into_iter().map(|s| (s, name.to_string())));
    }
    private.sort();
    private.dedup_by(|a, b| a.0 == b.0);
    for (subnet, user) in private {
        let tables = p.tables(&subnet);
        for t in &tables {
            for (route, r) in p.default_routes(t) {
                if p.is(r.get("gatewayId"), "aws-native:ec2:InternetGateway") {
                    add("private-route-via-nat", rp(route, "gatewayId"), format!("{subnet} (used by {user}) is private: its default route must go through a NAT gateway, not the internet gateway"));
                } else if !p.is(r.get("natGatewayId"), "aws-native:ec2:NatGateway") {
                    add("private-route-via-nat", format!("resources.{route}.properties"), format!("{subnet} (used by {user}) needs its default route through a NAT gateway"));
                }
            }
        }
        let defaults = tables.iter().map(|t| p.default_routes(t).len()).sum::<usize>();
        if !tables.is_empty() && defaults == 0 {
            add("private-route-via-nat", format!("resources.{subnet}"), format!("{subnet} (used by {user}) has no default route through a NAT gateway: no egress to ECR, Secrets Manager or CloudWatch"));
        }
    }
}

fn load_balancing(p: &Program, stack: &Stack, add: &mut dyn FnMut(&str, String, String)) {
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
