//! The `app-idle-timeout` rule: the app keeps an idle keep-alive connection open longer than the ALB
//! does. The ALB reuses its idle connections to a target for `idle_timeout.timeout_seconds` (default
//! 60 s, a load balancer attribute). AWS recommends an application idle timeout larger than the load
//! balancer's: when the target closes a connection first, the ALB may send a request on it and answer
//! the client 502 ("Edit attributes for your Application Load Balancer", Connection idle timeout), an
//! ELB 5xx the target-5xx alarm does not see. The app's
//! keep-alive idle timeout is `KEEP_ALIVE_TIMEOUT_MS` in the launch template's user data (docs/app.md).
use serde_yaml::{Mapping, Value};

use super::policy::text;
use super::Finding;

/// The rule's name and what it demands.
pub const RULE: (&str, &str) = (
    "app-idle-timeout",
    "the app's keep-alive idle timeout (KEEP_ALIVE_TIMEOUT_MS in the user data) exceeds the ALB's idle timeout",
);

/// The ALB's idle timeout when the attribute is not set (ELBv2 load balancer attributes).
const ALB_DEFAULT_IDLE_SECONDS: u64 = 60;
const VAR: &str = "KEEP_ALIVE_TIMEOUT_MS=";

/// Check every launch template's user data against every application load balancer of `doc`.
pub(super) fn run(doc: &Mapping) -> Vec<Finding> {
    let resources: Vec<(&str, &Value)> = doc
        .get("resources")
        .and_then(Value::as_mapping)
        .into_iter()
        .flatten()
        .filter_map(|(k, v)| Some((k.as_str()?, v)))
        .collect();
    let of = |token: &'static str| {
        resources.iter().filter(move |(_, r)| r.get("type").and_then(Value::as_str) == Some(token))
    };
    let albs: Vec<(&str, u64)> = of("aws-native:elasticloadbalancingv2:LoadBalancer")
        .filter(|(_, r)| text(prop(r, &["type"])).is_none_or(|t| t == "application"))
        .map(|(name, r)| (*name, alb_idle_seconds(r)))
        .collect();
    let Some(&(alb, alb_seconds)) = albs.iter().max_by_key(|(_, s)| *s) else { return vec![] };
    let mut out = vec![];
    for (name, r) in of("aws-native:ec2:LaunchTemplate") {
        let path = format!("resources.{name}.properties.launchTemplateData.userData");
        let user_data = user_data(r).unwrap_or_default();
        let message = match keep_alive_ms(&user_data) {
            None => format!(
                "the user data does not set {VAR}<ms>: the app would close idle connections on its own default, not provably after the ALB `{alb}` ({alb_seconds} s)"
            ),
            Some(ms) if ms <= alb_seconds * 1000 => format!(
                "the app closes idle keep-alive connections after {ms} ms, not after the ALB `{alb}` ({alb_seconds} s, idle_timeout.timeout_seconds): the ALB would reuse connections the app closed and answer 502; set {VAR} above {}",
                alb_seconds * 1000
            ),
            Some(_) => continue,
        };
        out.push(Finding::policy(RULE.0, &path, message));
    }
    out
}

fn prop<'a>(r: &'a Value, path: &[&str]) -> Option<&'a Value> {
    path.iter().try_fold(r.get("properties")?, |v, k| v.get(*k))
}

/// `idle_timeout.timeout_seconds` of a load balancer (the default when absent or not a number).
fn alb_idle_seconds(r: &Value) -> u64 {
    prop(r, &["loadBalancerAttributes"])
        .and_then(Value::as_sequence)
        .into_iter()
        .flatten()
        .find(|a| text(a.get("key")).as_deref() == Some("idle_timeout.timeout_seconds"))
        .and_then(|a| text(a.get("value")))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(ALB_DEFAULT_IDLE_SECONDS)
}

/// The user data script: a plain string or `fn::toBase64` of one.
fn user_data(r: &Value) -> Option<String> {
    let v = prop(r, &["launchTemplateData", "userData"])?;
    text(v.get("fn::toBase64").or(Some(v)))
}

/// The last `KEEP_ALIVE_TIMEOUT_MS=<digits>` of the script (what `docker run -e` would pass).
fn keep_alive_ms(script: &str) -> Option<u64> {
    script
        .match_indices(VAR)
        .filter_map(|(i, _)| {
            let rest = &script[i + VAR.len()..];
            let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
            digits.parse().ok()
        })
        .last()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn program(alb_seconds: Option<&str>, user_data: &str) -> Mapping {
        let attrs = alb_seconds.map_or(String::new(), |s| {
            format!("      loadBalancerAttributes:\n        - key: idle_timeout.timeout_seconds\n          value: \"{s}\"\n")
        });
        let text = format!(
            "resources:\n  alb:\n    type: aws-native:elasticloadbalancingv2:LoadBalancer\n    properties:\n      type: application\n{attrs}  lt:\n    type: aws-native:ec2:LaunchTemplate\n    properties:\n      launchTemplateData:\n        userData:\n          fn::toBase64: |\n            {user_data}\n"
        );
        serde_yaml::from_str(&text).unwrap()
    }

    #[test]
    fn the_app_must_outlast_the_alb() {
        assert!(
            run(&program(Some("60"), "docker run -e KEEP_ALIVE_TIMEOUT_MS=75000 app")).is_empty()
        );
        let f = run(&program(Some("120"), "docker run -e KEEP_ALIVE_TIMEOUT_MS=75000 app"));
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].path, "resources.lt.properties.launchTemplateData.userData");
        assert!(
            f[0].message.contains("75000 ms") && f[0].message.contains("120 s"),
            "{}",
            f[0].message
        );
        // Equal is not enough: both ends would close at once.
        assert_eq!(run(&program(Some("60"), "-e KEEP_ALIVE_TIMEOUT_MS=60000")).len(), 1);
        // Without the attribute the ALB keeps 60 s.
        assert_eq!(run(&program(None, "-e KEEP_ALIVE_TIMEOUT_MS=5000")).len(), 1);
        assert!(run(&program(None, "-e KEEP_ALIVE_TIMEOUT_MS=61000")).is_empty());
        let missing = run(&program(Some("60"), "docker run app"));
        assert!(missing[0].message.contains("does not set"), "{}", missing[0].message);
    }
}
