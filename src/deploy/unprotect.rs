//! What `orch down --unprotect` switches off before it destroys a protected environment, found in
//! the rendered program: the resources that carry AWS deletion protection (the database and the load
//! balancer), as the URNs `pulumi up --target` takes, so no other resource of the stack is touched;
//! and the deploy-time config keys the stack file lacks (a checkout without a deployment record),
//! which the program declares but the targeted resources never read.
use serde_yaml::{Mapping, Value};

use super::error::DeployError;

/// The resource types whose deletion protection the program sets from `deletionProtection`.
const PROTECTED_TYPES: [&str; 2] =
    ["aws-native:rds:DbInstance", "aws-native:elasticloadbalancingv2:LoadBalancer"];

/// The value a missing deploy-time key gets for the targeted update (never read by its targets).
pub(crate) const PLACEHOLDER: &str = "unused-by-orch-down";

/// A resource `down --unprotect` updates with `pulumi up --target`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Target {
    /// The program's name for it (`db`, `loadBalancer`).
    pub name: String,
    pub urn: String,
}

fn parse(program: &str) -> Result<Mapping, DeployError> {
    serde_yaml::from_str(program)
        .map_err(|e| DeployError::step("reading the rendered program (Pulumi.yaml)", e.to_string()))
}

/// The protected resources of `program` in stack `stack`. A top-level resource's URN is
/// `urn:pulumi:<stack>::<project>::<type>::<name>` (its parent is the stack itself).
pub(crate) fn targets(program: &str, stack: &str) -> Result<Vec<Target>, DeployError> {
    let doc = parse(program)?;
    let project = doc.get("name").and_then(Value::as_str).unwrap_or_default().to_string();
    let resources = doc.get("resources").and_then(Value::as_mapping).cloned().unwrap_or_default();
    let mut out = vec![];
    for (name, res) in &resources {
        let (Some(name), Some(kind)) = (name.as_str(), res.get("type").and_then(Value::as_str))
        else {
            continue;
        };
        if PROTECTED_TYPES.contains(&kind) {
            let urn = format!("urn:pulumi:{stack}::{project}::{kind}::{name}");
            out.push(Target { name: name.to_string(), urn });
        }
    }
    if out.is_empty() {
        return Err(DeployError::step(
            "down --unprotect",
            "the rendered program has no database or load balancer to unprotect",
        ));
    }
    Ok(out)
}

/// The config keys `program` declares without a default that `stack_file` has no value for
/// (namespaced `<project>:<key>`), with the resources that read each; an error when a target reads one.
pub(crate) fn missing_config(
    program: &str,
    stack_file: &str,
    targets: &[Target],
) -> Result<Vec<String>, DeployError> {
    let doc = parse(program)?;
    let project = doc.get("name").and_then(Value::as_str).unwrap_or_default();
    let declared = doc.get("config").and_then(Value::as_mapping).cloned().unwrap_or_default();
    let resources = doc.get("resources").and_then(Value::as_mapping).cloned().unwrap_or_default();
    let mut missing = vec![];
    for (key, spec) in &declared {
        let Some(key) = key.as_str() else { continue };
        if spec.get("default").is_some() || key.contains(':') {
            continue;
        }
        let namespaced = format!("{project}:{key}");
        if crate::render::stackfile::config_value(stack_file, &namespaced).is_some() {
            continue;
        }
        for t in targets {
            let text = resources
                .get(t.name.as_str())
                .and_then(|r| serde_yaml::to_string(r).ok())
                .unwrap_or_default();
            if text.contains(&format!("${{{key}}}")) {
                return Err(DeployError::step(
                    "down --unprotect",
                    format!("`{}` reads the config key `{key}`, which the stack file lacks (no deployment record): run `orch up --env <env>` first", t.name),
                ));
            }
        }
        missing.push(namespaced);
    }
    Ok(missing)
}

#[cfg(test)]
mod tests {
    use super::*;

    const PROGRAM: &str = "name: orch-prod\nruntime: yaml\nconfig:\n  imageUri:\n    type: string\n  amiId:\n    type: string\n  logLevel:\n    default: info\nresources:\n  vpc:\n    type: aws-native:ec2:Vpc\n  db:\n    type: aws-native:rds:DbInstance\n    properties:\n      deletionProtection: false\n  loadBalancer:\n    type: aws-native:elasticloadbalancingv2:LoadBalancer\n  launchTemplate:\n    type: aws-native:ec2:LaunchTemplate\n    properties:\n      image: ${imageUri}\n";

    #[test]
    fn only_the_database_and_the_load_balancer_are_targeted() {
        let t = targets(PROGRAM, "prod").unwrap();
        let urns: Vec<&str> = t.iter().map(|t| t.urn.as_str()).collect();
        assert_eq!(
            urns,
            [
                "urn:pulumi:prod::orch-prod::aws-native:rds:DbInstance::db",
                "urn:pulumi:prod::orch-prod::aws-native:elasticloadbalancingv2:LoadBalancer::loadBalancer"
            ]
        );
        assert!(targets("name: x\nresources: {}\n", "prod").is_err());
        assert!(targets(": not yaml [", "prod").is_err());
    }

    #[test]
    fn keys_the_stack_file_lacks_are_listed_unless_a_target_reads_them() {
        let t = targets(PROGRAM, "prod").unwrap();
        let file = "config:\n  orch-prod:amiId: ami-1\n";
        assert_eq!(missing_config(PROGRAM, file, &t).unwrap(), ["orch-prod:imageUri"]);
        let reads = PROGRAM.replace("deletionProtection: false", "x: ${imageUri}");
        let err = missing_config(&reads, file, &t).unwrap_err().to_string();
        assert!(err.contains("`db` reads the config key `imageUri`"), "{err}");
    }
}
