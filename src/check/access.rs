//! Who may do what, beyond the named cases of [`super::policy`]: no IAM statement allows a wildcard
//! action on a wildcard resource, no trust policy lets any principal assume a role, and security
//! groups admit only the sources the architecture allows (docs/programs.md, "Security groups").
use serde_yaml::{Mapping, Value};

use super::expr;
use super::values::{literal, resources};
use super::{sourced, Finding};

/// Every rule: name, what it demands, and its source.
pub const RULES: &[(&str, &str, &str)] = &[
    ("iam-wildcard-on-wildcard", "no Allow statement grants a wildcard action (`*`, `svc:*`, `svc:Get*`) on resource `*`",
     "https://docs.aws.amazon.com/IAM/latest/UserGuide/best-practices.html#grant-least-privilege"),
    ("iam-trust-open", "no trust policy lets any principal (`*`) assume the role without a condition",
     "https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_principal.html#principal-anonymous"),
    ("sg-allowed-sources", "security groups admit only what the architecture allows: the load balancer's 80 and 443 from anywhere; no other group is open",
     "docs/programs.md (Security groups); the instances' and database's groups: instances-only-from-alb, db-only-from-instances"),
];

/// A string or a list of strings, as IAM writes Action/Resource/Principal values.
fn strings(v: Option<&Value>) -> Vec<String> {
    match v {
        Some(Value::Sequence(items)) => items.iter().filter_map(literal).collect(),
        Some(v) => literal(v).into_iter().collect(),
        None => vec![],
    }
}

/// Every policy document under `v` (`policyDocument`, `assumeRolePolicyDocument`), with its path.
fn documents<'v>(v: &'v Value, path: String, out: &mut Vec<(String, bool, &'v Value)>) {
    match v {
        Value::Mapping(m) => {
            for (k, child) in m {
                let key = k.as_str().unwrap_or_default();
                let here = format!("{path}.{key}");
                match key {
                    "assumeRolePolicyDocument" => out.push((here, true, child)),
                    "policyDocument" => out.push((here, false, child)),
                    _ => documents(child, here, out),
                }
            }
        }
        Value::Sequence(items) => {
            for (i, item) in items.iter().enumerate() {
                documents(item, format!("{path}[{i}]"), out);
            }
        }
        _ => {}
    }
}

/// Run every rule.
pub(super) fn run(doc: &Mapping) -> Vec<Finding> {
    let mut out = vec![];
    let mut add = |rule: &str, path: String, msg: String| {
        out.push(sourced(RULES, rule, &path, msg));
    };
    let all: Vec<_> = resources(doc).collect();
    for (name, _, props) in &all {
        let mut docs = vec![];
        documents(props, format!("resources.{name}.properties"), &mut docs);
        for (path, trust, d) in docs {
            let statements = match d.get("Statement") {
                Some(Value::Sequence(s)) => s.iter().collect(),
                Some(s) => vec![s],
                None => vec![],
            };
            for (i, s) in statements.into_iter().enumerate() {
                if literal(s.get("Effect").unwrap_or(&Value::Null)).as_deref() != Some("Allow") {
                    continue;
                }
                let at = format!("{path}.Statement[{i}]");
                let actions = strings(s.get("Action"));
                let wild_action = actions.iter().find(|a| a.contains('*'));
                if let Some(a) =
                    wild_action.filter(|_| strings(s.get("Resource")).iter().any(|r| r == "*"))
                {
                    add("iam-wildcard-on-wildcard", at.clone(), format!("`{a}` on `*` grants every matching action on every resource; name the actions and the resources"));
                }
                let principal = s.get("Principal");
                let open = strings(principal).iter().any(|p| p == "*")
                    || principal.and_then(Value::as_mapping).is_some_and(|m| {
                        m.values().any(|v| strings(Some(v)).iter().any(|p| p == "*"))
                    });
                if trust && open && s.get("Condition").is_none() {
                    add(
                        "iam-trust-open",
                        format!("{at}.Principal"),
                        "any principal could assume this role; name the service or account".into(),
                    );
                }
            }
        }
    }
    security_groups(&all, &mut add);
    out
}

fn security_groups(all: &[(&str, &str, &Value)], add: &mut dyn FnMut(&str, String, String)) {
    let refs = |token: &str, path: &str| -> Vec<String> {
        all.iter()
            .filter(|(_, t, _)| *t == token)
            .filter_map(|(_, _, p)| path.split('.').try_fold(*p, |v, k| v.get(k)))
            .flat_map(|v| v.as_sequence().into_iter().flatten())
            .filter_map(|v| v.as_str().and_then(expr::whole).map(|r| r.root))
            .collect()
    };
    let alb = refs("aws-native:elasticloadbalancingv2:LoadBalancer", "securityGroups");
    let known: Vec<String> = [
        refs("aws-native:ec2:LaunchTemplate", "launchTemplateData.securityGroupIds"),
        refs("aws-native:rds:DbInstance", "vpcSecurityGroups"),
        alb.clone(),
    ]
    .concat();
    let mut rules: Vec<(String, String, &Value)> = vec![];
    for (name, token, p) in all {
        if *token == "aws-native:ec2:SecurityGroup" {
            let items =
                p.get("securityGroupIngress").and_then(Value::as_sequence).into_iter().flatten();
            for (i, r) in items.enumerate() {
                rules.push((
                    name.to_string(),
                    format!("resources.{name}.properties.securityGroupIngress[{i}]"),
                    r,
                ));
            }
        }
        if *token == "aws-native:ec2:SecurityGroupIngress" {
            let group =
                p.get("groupId").and_then(Value::as_str).and_then(expr::whole).map(|r| r.root);
            rules.push((group.unwrap_or_default(), format!("resources.{name}.properties"), p));
        }
    }
    for (group, path, r) in rules {
        let text = |k: &str| r.get(k).and_then(literal);
        if alb.contains(&group) {
            let world = text("cidrIp").as_deref() == Some("0.0.0.0/0")
                || text("cidrIpv6").as_deref() == Some("::/0");
            let port = text("fromPort").filter(|f| *f == text("toPort").unwrap_or_default());
            let ok = world
                && text("ipProtocol").is_some_and(|p| p.eq_ignore_ascii_case("tcp"))
                && port.is_some_and(|p| p == "80" || p == "443");
            if !ok {
                add("sg-allowed-sources", path, "the load balancer's group admits only TCP 80 and 443 from anywhere (0.0.0.0/0 or ::/0)".into());
            }
        } else if !known.contains(&group) {
            add("sg-allowed-sources", path, format!("`{group}` is not the group of the load balancer, the instances or the database; the architecture opens no other group"));
        }
    }
}
