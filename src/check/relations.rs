//! Relations across resources that AWS refuses, or that deploy but do not work: subnets inside their
//! VPC and apart, an ALB over two zones, the target group on the app's port, NAT gateways in public
//! subnets and private routes through them, alarm dimensions that exist, the scaling resource label,
//! dualstack only over IPv6 subnets, an IMDS hop limit a container can use, port ranges in order.
//! Each rule names its source ([`RULES`]).
use serde_yaml::{Mapping, Value};
use std::collections::BTreeMap;

use super::balancing;
use super::expr;
use super::values::{cidr, literal, resources};
use super::{sourced, Finding};
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

/// The program's resources by name: (type, properties).
pub(super) struct Program<'a>(pub(super) BTreeMap<&'a str, (&'a str, &'a Value)>);

impl<'a> Program<'a> {
    pub(super) fn of(&self, token: &'a str) -> impl Iterator<Item = (&'a str, &'a Value)> + '_ {
        self.0.iter().filter(move |(_, (t, _))| *t == token).map(|(n, (_, p))| (*n, *p))
    }
    /// The resource a whole-string reference names, with its type.
    pub(super) fn target(&self, v: Option<&Value>) -> Option<(String, &'a str, &'a Value)> {
        let r = v.and_then(Value::as_str).and_then(expr::whole)?;
        let (t, p) = self.0.get(r.root.as_str())?;
        Some((r.root, t, p))
    }
    pub(super) fn is(&self, v: Option<&Value>, token: &str) -> bool {
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
pub(super) fn strings(v: Option<&Value>, out: &mut String) {
    match v {
        Some(Value::String(s)) => out.push_str(s),
        Some(Value::Mapping(m)) => m.values().for_each(|v| strings(Some(v), out)),
        Some(Value::Sequence(items)) => items.iter().for_each(|v| strings(Some(v), out)),
        _ => {}
    }
}

pub(super) fn text(v: Option<&Value>) -> Option<String> {
    v.and_then(literal)
}
fn refers(v: Option<&Value>, name: &str) -> bool {
    v.and_then(Value::as_str).and_then(expr::whole).is_some_and(|r| r.root == name)
}
pub(super) fn roots(v: Option<&Value>) -> Vec<String> {
    let items = v.and_then(Value::as_sequence).into_iter().flatten();
    items.filter_map(|x| x.as_str().and_then(expr::whole)).map(|r| r.root).collect()
}
pub(super) fn rp(name: &str, prop: &str) -> String {
    format!("resources.{name}.properties.{prop}")
}

/// Run every relation rule.
pub(super) fn run(doc: &Mapping, stack: &Stack) -> Vec<Finding> {
    let p = Program(resources(doc).map(|(n, t, props)| (n, (t, props))).collect());
    let mut out = vec![];
    let mut add = |rule: &str, path: String, msg: String| {
        out.push(sourced(RULES, rule, &path, msg));
    };
    network(&p, &mut add);
    balancing::run(&p, stack, &mut add);
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
