//! Named policy rules over a parsed program: the security and availability rules of the tier (docs/programs.md
//! lists them with their reasons). Each rule looks at the resources by type and reports with a path.
use serde_yaml::{Mapping, Value};

use super::expr;
use super::schema::Schema;
use super::Finding;
use crate::config::Stack;
use crate::render::{PAGE_404_MAX, TLS_POLICY};

/// Every rule: name and what it demands.
pub const RULES: &[(&str, &str)] = &[
    ("program-outputs", "the program defines every stack output orch reads (`outputs::Output`)"),
    (
        "provider-pinned",
        "every aws-native resource pins the provider version of schema/aws-native.json",
    ),
    (
        "alb-http-redirects",
        "HTTP listeners only redirect to HTTPS with a 301, keeping host, path and query",
    ),
    ("tls-policy", "HTTPS listeners use a TLS 1.3/1.2 policy and a certificate"),
    ("alb-drops-invalid-headers", "load balancers drop invalid HTTP header fields"),
    (
        "404-body-size",
        "the HTTPS listener answers unmatched requests with a fixed 404 of at most 1024 bytes",
    ),
    ("no-ssh-ingress", "no security group rule opens port 22"),
    (
        "instances-only-from-alb",
        "instances accept traffic only from the load balancer's group, on the app port",
    ),
    (
        "db-only-from-instances",
        "the database accepts traffic only from the instances' group, on 5432",
    ),
    ("db-encrypted-not-public", "the database is encrypted at rest and not publicly accessible"),
    (
        "db-password-managed",
        "the master password is managed by RDS in Secrets Manager; never in config or outputs",
    ),
    ("imdsv2-required", "instances require IMDSv2 tokens with a hop limit of at most 2"),
    ("root-volume-encrypted", "every instance volume is encrypted"),
    ("asg-two-zones", "the Auto Scaling group spans subnets in at least two zones"),
    ("asg-min-2", "the Auto Scaling group keeps at least 2 instances"),
    (
        "asg-elb-health-check",
        "the group uses ELB health checks with a grace period and is attached to a target group",
    ),
    ("capacity-rebalance", "the group has capacity rebalancing on"),
    (
        "asg-scaling-policy",
        "a group whose max exceeds its min has a target tracking policy on ALBRequestCountPerTarget",
    ),
    (
        "target-health-check",
        "the target group probes the stack's liveness path at its interval and thresholds",
    ),
    ("prod-multi-az", "a protected (production) stack runs a Multi-AZ database"),
    (
        "prod-deletion-protection",
        "a protected stack has deletion protection on the database and load balancer",
    ),
];

struct Ctx<'a> {
    resources: Vec<(String, String, &'a Value)>,
    findings: Vec<Finding>,
}

impl<'a> Ctx<'a> {
    /// `(name, properties)` of every resource of type `token`.
    fn of(&self, token: &str) -> Vec<(String, &'a Value)> {
        self.resources
            .iter()
            .filter(|(_, t, _)| t == token)
            .map(|(n, _, p)| (n.clone(), *p))
            .collect()
    }
    fn add(&mut self, rule: &str, path: String, message: impl Into<String>) {
        self.findings.push(Finding::policy(rule, &path, message));
    }
}

fn get<'v>(v: &'v Value, path: &str) -> Option<&'v Value> {
    path.split('.').try_fold(v, |v, key| v.get(key))
}
pub(super) fn text(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}
fn is_true(v: Option<&Value>) -> bool {
    text(v).is_some_and(|s| s == "true")
}
pub(super) fn number(v: Option<&Value>) -> Option<i64> {
    text(v)?.parse().ok()
}
fn list(v: Option<&Value>) -> Vec<&Value> {
    v.and_then(Value::as_sequence).map(|s| s.iter().collect()).unwrap_or_default()
}
/// The resource names referenced (as whole `${name.prop}` strings) by the items of a list.
fn ref_roots(v: Option<&Value>) -> Vec<String> {
    list(v).into_iter().filter_map(|x| x.as_str().and_then(expr::whole)).map(|r| r.root).collect()
}
fn ref_root(v: Option<&Value>) -> Option<String> {
    v.and_then(Value::as_str).and_then(expr::whole).map(|r| r.root)
}
fn rp(name: &str, prop: &str) -> String {
    format!("resources.{name}.properties.{prop}")
}

/// Run every rule.
pub(super) fn run(doc: &Mapping, stack: &Stack, schema: &Schema) -> Vec<Finding> {
    let empty = Value::Mapping(Mapping::new());
    let mut resources = vec![];
    if let Some(map) = doc.get("resources").and_then(Value::as_mapping) {
        for (name, body) in map {
            let (Some(name), Some(token)) =
                (name.as_str(), body.get("type").and_then(Value::as_str))
            else {
                continue;
            };
            resources.push((
                name.to_string(),
                token.to_string(),
                body.get("properties").unwrap_or(&empty),
            ));
            if token.starts_with("aws-native:")
                && text(body.get("options").and_then(|o| o.get("version"))).as_deref()
                    != Some(&schema.version)
            {
                resources.push((name.to_string(), "!unpinned".into(), &empty));
            }
        }
    }
    let mut cx = Ctx { resources, findings: vec![] };
    let outputs = doc.get("outputs").and_then(Value::as_mapping);
    for o in crate::outputs::Output::REQUIRED {
        if !outputs.is_some_and(|m| m.contains_key(o.key())) {
            cx.add(
                "program-outputs",
                format!("outputs.{o}"),
                format!("orch reads the `{o}` output after `pulumi up`; define it"),
            );
        }
    }
    for (name, _) in cx.of("!unpinned") {
        cx.add(
            "provider-pinned",
            format!("resources.{name}.options.version"),
            format!("pin the aws-native version the schema was generated from: {}", schema.version),
        );
    }
    listeners(&mut cx);
    ingress(&mut cx, stack);
    database(&mut cx, doc, stack);
    compute(&mut cx, stack);
    cx.findings
}

fn listeners(cx: &mut Ctx) {
    for (name, p) in cx.of("aws-native:elasticloadbalancingv2:Listener") {
        let protocol = text(p.get("protocol")).unwrap_or_default();
        let actions = list(p.get("defaultActions"));
        if protocol == "HTTP" {
            let ok = actions.len() == 1
                && text(actions[0].get("type")).as_deref() == Some("redirect")
                && text(get(actions[0], "redirectConfig.protocol")).as_deref() == Some("HTTPS")
                && text(get(actions[0], "redirectConfig.statusCode")).as_deref()
                    == Some("HTTP_301")
                && [("host", "#{host}"), ("path", "/#{path}"), ("query", "#{query}")].iter().all(
                    |(k, want)| {
                        text(get(actions[0], &format!("redirectConfig.{k}")))
                            .is_none_or(|v| v == *want)
                    },
                );
            if !ok {
                cx.add("alb-http-redirects", rp(&name, "defaultActions"), "an HTTP listener must only redirect to HTTPS (HTTP_301, keeping #{host}, /#{path} and #{query})");
            }
        }
        if protocol == "HTTPS" {
            let policy = text(p.get("sslPolicy")).unwrap_or_default();
            if !policy.starts_with("ELBSecurityPolicy-TLS13-1-2-")
                && !policy.starts_with("ELBSecurityPolicy-TLS13-1-3-")
            {
                cx.add(
                    "tls-policy",
                    rp(&name, "sslPolicy"),
                    format!("`{policy}` allows protocols older than TLS 1.2; use {TLS_POLICY}"),
                );
            }
            if list(p.get("certificates")).is_empty() {
                cx.add(
                    "tls-policy",
                    rp(&name, "certificates"),
                    "an HTTPS listener needs the certificate ARN from config",
                );
            }
            let fixed = actions
                .first()
                .filter(|a| text(a.get("type")).as_deref() == Some("fixed-response"));
            match fixed {
                Some(a)
                    if text(get(a, "fixedResponseConfig.statusCode")).as_deref() == Some("404") => {
                }
                _ => cx.add(
                    "404-body-size",
                    rp(&name, "defaultActions"),
                    "unmatched HTTPS requests must get the fixed 404 response",
                ),
            }
        }
        for (i, a) in actions.iter().enumerate() {
            body_size(
                cx,
                a,
                rp(&name, &format!("defaultActions[{i}].fixedResponseConfig.messageBody")),
            );
        }
    }
    for (name, p) in cx.of("aws-native:elasticloadbalancingv2:ListenerRule") {
        for (i, a) in list(p.get("actions")).iter().enumerate() {
            body_size(cx, a, rp(&name, &format!("actions[{i}].fixedResponseConfig.messageBody")));
        }
    }
    for (name, p) in cx.of("aws-native:elasticloadbalancingv2:LoadBalancer") {
        let drops = list(p.get("loadBalancerAttributes")).iter().any(|a| {
            text(a.get("key")).as_deref() == Some("routing.http.drop_invalid_header_fields.enabled")
                && is_true(a.get("value"))
        });
        if !drops {
            cx.add(
                "alb-drops-invalid-headers",
                rp(&name, "loadBalancerAttributes"),
                "set routing.http.drop_invalid_header_fields.enabled to \"true\"",
            );
        }
    }
}

fn body_size(cx: &mut Ctx, action: &Value, path: String) {
    if let Some(body) = text(get(action, "fixedResponseConfig.messageBody")) {
        if body.len() > PAGE_404_MAX {
            cx.add(
                "404-body-size",
                path,
                format!(
                    "the body is {} bytes; a fixed response holds at most {PAGE_404_MAX}",
                    body.len()
                ),
            );
        }
    }
}

/// One ingress rule, inline or a separate `SecurityGroupIngress`.
struct Rule {
    group: String,
    path: String,
    protocol: String,
    from: Option<i64>,
    to: Option<i64>,
    cidr: bool,
    source: Option<String>,
}

fn ingress(cx: &mut Ctx, stack: &Stack) {
    let mut rules = vec![];
    for (name, p) in cx.of("aws-native:ec2:SecurityGroup") {
        for (i, r) in list(p.get("securityGroupIngress")).into_iter().enumerate() {
            rules.push(rule(name.clone(), rp(&name, &format!("securityGroupIngress[{i}]")), r));
        }
    }
    for (name, p) in cx.of("aws-native:ec2:SecurityGroupIngress") {
        let group = ref_root(p.get("groupId")).unwrap_or_default();
        rules.push(rule(group, format!("resources.{name}.properties"), p));
    }
    let alb: Vec<String> = cx
        .of("aws-native:elasticloadbalancingv2:LoadBalancer")
        .iter()
        .flat_map(|(_, p)| ref_roots(p.get("securityGroups")))
        .collect();
    let instances: Vec<String> = cx
        .of("aws-native:ec2:LaunchTemplate")
        .iter()
        .flat_map(|(_, p)| ref_roots(get(p, "launchTemplateData.securityGroupIds")))
        .collect();
    let db: Vec<String> = cx
        .of("aws-native:rds:DbInstance")
        .iter()
        .flat_map(|(_, p)| ref_roots(p.get("vpcSecurityGroups")))
        .collect();
    let port = i64::from(stack.instances.port);
    for r in &rules {
        let all = r.protocol == "-1" || r.protocol == "all";
        if all || r.from.unwrap_or(0) <= 22 && 22 <= r.to.unwrap_or(65535) {
            cx.add(
                "no-ssh-ingress",
                r.path.clone(),
                format!(
                    "this rule opens port 22 ({}..{}); use Session Manager",
                    r.from.unwrap_or(0),
                    r.to.unwrap_or(65535)
                ),
            );
        }
        let only = |sources: &[String], want: i64| {
            !all && !r.cidr
                && r.source.as_ref().is_some_and(|s| sources.contains(s))
                && r.from == Some(want)
                && r.to == Some(want)
        };
        if instances.contains(&r.group) && !only(&alb, port) {
            cx.add(
                "instances-only-from-alb",
                r.path.clone(),
                format!(
                    "the instances' group may only admit the load balancer's group on port {port}"
                ),
            );
        }
        if db.contains(&r.group) && !only(&instances, 5432) {
            cx.add(
                "db-only-from-instances",
                r.path.clone(),
                "the database's group may only admit the instances' group on port 5432",
            );
        }
    }
}

fn rule(group: String, path: String, r: &Value) -> Rule {
    Rule {
        group,
        path,
        protocol: text(r.get("ipProtocol")).unwrap_or_default(),
        from: number(r.get("fromPort")),
        to: number(r.get("toPort")),
        cidr: r.get("cidrIp").is_some()
            || r.get("cidrIpv6").is_some()
            || r.get("sourcePrefixListId").is_some(),
        source: ref_root(r.get("sourceSecurityGroupId")),
    }
}

fn database(cx: &mut Ctx, doc: &Mapping, stack: &Stack) {
    for (name, p) in cx.of("aws-native:rds:DbInstance") {
        if !is_true(p.get("storageEncrypted")) {
            cx.add(
                "db-encrypted-not-public",
                rp(&name, "storageEncrypted"),
                "the database must be encrypted at rest (storageEncrypted: true)",
            );
        }
        if text(p.get("publiclyAccessible")).as_deref() != Some("false") {
            cx.add(
                "db-encrypted-not-public",
                rp(&name, "publiclyAccessible"),
                "the database must say publiclyAccessible: false",
            );
        }
        if !is_true(p.get("manageMasterUserPassword")) {
            cx.add("db-password-managed", rp(&name, "manageMasterUserPassword"), "let RDS manage the master password in Secrets Manager (manageMasterUserPassword: true)");
        }
        if p.get("masterUserPassword").is_some() {
            cx.add(
                "db-password-managed",
                rp(&name, "masterUserPassword"),
                "never pass the master password in the program",
            );
        }
        if stack.protected && !is_true(p.get("multiAz")) {
            cx.add(
                "prod-multi-az",
                rp(&name, "multiAz"),
                "a protected stack needs a Multi-AZ database",
            );
        }
        if stack.protected && !is_true(p.get("deletionProtection")) {
            cx.add(
                "prod-deletion-protection",
                rp(&name, "deletionProtection"),
                "a protected stack needs deletion protection on the database",
            );
        }
        if let Some(outputs) = doc.get("outputs").and_then(Value::as_mapping) {
            for (k, v) in outputs {
                let leaks = serde_yaml::to_string(v).unwrap_or_default();
                if leaks.contains(&format!("{name}.masterUser")) {
                    cx.add(
                        "db-password-managed",
                        format!("outputs.{}", k.as_str().unwrap_or_default()),
                        "outputs must not expose the master user secret",
                    );
                }
            }
        }
    }
    if let Some(config) = doc.get("config").and_then(Value::as_mapping) {
        for key in config
            .keys()
            .filter_map(Value::as_str)
            .filter(|k| k.to_ascii_lowercase().contains("password"))
        {
            cx.add(
                "db-password-managed",
                format!("config.{key}"),
                "no password may come in through config",
            );
        }
    }
    if stack.protected {
        for (name, p) in cx.of("aws-native:elasticloadbalancingv2:LoadBalancer") {
            let on = list(p.get("loadBalancerAttributes")).iter().any(|a| {
                text(a.get("key")).as_deref() == Some("deletion_protection.enabled")
                    && is_true(a.get("value"))
            });
            if !on {
                cx.add("prod-deletion-protection", rp(&name, "loadBalancerAttributes"), "a protected stack needs deletion_protection.enabled \"true\" on the load balancer");
            }
        }
    }
}

fn compute(cx: &mut Ctx, stack: &Stack) {
    for (name, p) in cx.of("aws-native:ec2:LaunchTemplate") {
        let data = p.get("launchTemplateData");
        let md = data.and_then(|d| d.get("metadataOptions"));
        if text(md.and_then(|m| m.get("httpTokens"))).as_deref() != Some("required")
            || number(md.and_then(|m| m.get("httpPutResponseHopLimit"))).is_none_or(|h| h > 2)
        {
            cx.add(
                "imdsv2-required",
                rp(&name, "launchTemplateData.metadataOptions"),
                "require IMDSv2 (httpTokens: required) with httpPutResponseHopLimit at most 2",
            );
        }
        let volumes = list(data.and_then(|d| d.get("blockDeviceMappings")));
        if volumes.is_empty() {
            cx.add(
                "root-volume-encrypted",
                rp(&name, "launchTemplateData.blockDeviceMappings"),
                "declare the root volume with encrypted: true",
            );
        }
        for (i, v) in volumes.iter().enumerate() {
            if v.get("ebs").is_some() && !is_true(get(v, "ebs.encrypted")) {
                cx.add(
                    "root-volume-encrypted",
                    rp(
                        &name,
                        &format!("launchTemplateData.blockDeviceMappings[{i}].ebs.encrypted"),
                    ),
                    "instance volumes must be encrypted",
                );
            }
        }
    }
    let subnets = cx.of("aws-native:ec2:Subnet");
    for (name, p) in cx.of("aws-native:autoscaling:AutoScalingGroup") {
        let mut zones: Vec<String> = ref_roots(p.get("vpcZoneIdentifier"))
            .iter()
            .filter_map(|s| {
                subnets
                    .iter()
                    .find(|(n, _)| n == s)
                    .and_then(|(_, sp)| text(sp.get("availabilityZone")))
            })
            .collect();
        zones.sort();
        zones.dedup();
        if zones.len() < 2 {
            cx.add(
                "asg-two-zones",
                rp(&name, "vpcZoneIdentifier"),
                format!("the group must span subnets in two zones; it spans {}", zones.len()),
            );
        }
        if number(p.get("minSize")).is_none_or(|m| m < 2) {
            cx.add("asg-min-2", rp(&name, "minSize"), "keep at least 2 instances (minSize >= 2)");
        }
        if text(p.get("healthCheckType")).as_deref() != Some("ELB") {
            cx.add(
                "asg-elb-health-check",
                rp(&name, "healthCheckType"),
                "use the load balancer's health checks (healthCheckType: ELB)",
            );
        }
        if number(p.get("healthCheckGracePeriod")).is_none_or(|g| g <= 0) {
            cx.add(
                "asg-elb-health-check",
                rp(&name, "healthCheckGracePeriod"),
                "set a health check grace period",
            );
        }
        if list(p.get("targetGroupArns")).is_empty() {
            cx.add(
                "asg-elb-health-check",
                rp(&name, "targetGroupArns"),
                "attach the group to the target group",
            );
        }
        scaling_policy(cx, &name, p, stack);
        if !is_true(p.get("capacityRebalance")) {
            cx.add(
                "capacity-rebalance",
                rp(&name, "capacityRebalance"),
                "turn capacity rebalancing on",
            );
        }
    }
    let hc = &stack.health_check;
    for (name, p) in cx.of("aws-native:elasticloadbalancingv2:TargetGroup") {
        let want = [
            ("healthCheckPath", hc.path.clone()),
            ("healthCheckIntervalSeconds", hc.interval_seconds.to_string()),
            ("healthyThresholdCount", hc.healthy_threshold.to_string()),
            ("unhealthyThresholdCount", hc.unhealthy_threshold.to_string()),
        ];
        for (prop, value) in want {
            if text(p.get(prop)).as_deref() != Some(value.as_str()) {
                cx.add(
                    "target-health-check",
                    rp(&name, prop),
                    format!("expected {value} (from the stack's health_check)"),
                );
            }
        }
    }
}

/// A group that may grow (max > min) needs a target tracking policy on its requests per target,
/// aimed at the stack's `scaling.target_requests_per_minute`; otherwise nothing moves it.
fn scaling_policy(cx: &mut Ctx, asg: &str, p: &Value, stack: &Stack) {
    let (min, max) = (number(p.get("minSize")), number(p.get("maxSize")));
    if max.zip(min).is_none_or(|(max, min)| max <= min) {
        return;
    }
    let policies: Vec<_> = cx
        .of("aws-native:autoscaling:ScalingPolicy")
        .into_iter()
        .filter(|(_, sp)| ref_root(sp.get("autoScalingGroupName")).as_deref() == Some(asg))
        .collect();
    let want = stack.scaling.as_ref().map(|s| i64::from(s.target_requests_per_minute));
    let fits = |sp: &Value| {
        text(sp.get("policyType")).as_deref() == Some("TargetTrackingScaling")
            && text(get(
                sp,
                "targetTrackingConfiguration.predefinedMetricSpecification.predefinedMetricType",
            ))
            .as_deref()
                == Some("ALBRequestCountPerTarget")
            && get(sp, "targetTrackingConfiguration.predefinedMetricSpecification.resourceLabel")
                .is_some()
            && want.is_some_and(|w| {
                number(get(sp, "targetTrackingConfiguration.targetValue")) == Some(w)
            })
    };
    if !policies.iter().any(|(_, sp)| fits(sp)) {
        cx.add(
            "asg-scaling-policy",
            rp(asg, "maxSize"),
            match want {
                None => format!("maxSize {} > minSize {}: add a `scaling` section to the stack file", max.unwrap_or(0), min.unwrap_or(0)),
                Some(w) => format!("maxSize > minSize: add a TargetTrackingScaling policy on ALBRequestCountPerTarget (with its resourceLabel) targeting {w} for this group"),
            },
        );
    }
}
