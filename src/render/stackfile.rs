//! The stack config file `Pulumi.<env>.yaml`: orch renders its static keys (the providers' region),
//! pulumi itself adds the secrets provider's keys (the passphrase salt) and the deploy-time config
//! `orch up` sets (`<project>:imageUri`, `certificateArn`, `hostedZoneId`, `amiId`). A re-render must
//! keep what pulumi and `orch up` wrote, so [`merge`] lays the rendered keys over the recorded file
//! (from the deployment record) over the file on disk.
use serde_yaml::{Mapping, Value};

/// The stack file to write: `rendered` (static keys) over `recorded` over `existing`, key by key
/// inside `config:`, whole values for the other top-level keys. Unreadable inputs count as absent.
pub fn merge(existing: Option<&str>, recorded: Option<&str>, rendered: &str) -> String {
    let parse = |text: Option<&str>| -> Mapping {
        text.and_then(|t| serde_yaml::from_str::<Mapping>(t).ok()).unwrap_or_default()
    };
    let mut doc = Mapping::new();
    let mut config = Mapping::new();
    for layer in [parse(existing), parse(recorded), parse(Some(rendered))] {
        for (key, value) in layer {
            match (key.as_str(), value) {
                (Some("config"), Value::Mapping(keys)) => config.extend(keys),
                (_, value) => {
                    doc.insert(key, value);
                }
            }
        }
    }
    doc.insert("config".into(), Value::Mapping(config));
    let header = rendered.lines().take_while(|l| l.starts_with('#')).collect::<Vec<_>>();
    let body = serde_yaml::to_string(&doc).unwrap_or_default();
    if header.is_empty() {
        body
    } else {
        format!("{}\n{body}", header.join("\n"))
    }
}

/// A config value of the stack file, by its namespaced key (`orch-dev:imageUri`).
pub fn config_value(text: &str, key: &str) -> Option<String> {
    let doc: Mapping = serde_yaml::from_str(text).ok()?;
    doc.get("config")?.get(key)?.as_str().map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    const RENDERED: &str =
        "# Rendered by orch\nconfig:\n  aws-native:region: eu-west-1\n  aws:region: eu-west-1\n";

    #[test]
    fn a_re_render_keeps_the_salt_and_the_deploy_time_keys() {
        let existing = "encryptionsalt: v1:abc\nconfig:\n  aws-native:region: us-east-1\n  orch-dev:imageUri: r/a@sha256:1\n";
        let out = merge(Some(existing), None, RENDERED);
        assert!(out.starts_with("# Rendered by orch\n"), "{out}");
        assert!(out.contains("encryptionsalt: v1:abc"), "{out}");
        assert_eq!(config_value(&out, "orch-dev:imageUri").as_deref(), Some("r/a@sha256:1"));
        assert_eq!(config_value(&out, "aws-native:region").as_deref(), Some("eu-west-1"));
    }

    #[test]
    fn the_recorded_file_wins_over_a_stale_one_and_restores_an_empty_build_dir() {
        let recorded = "encryptionsalt: v1:new\nconfig:\n  orch-dev:imageUri: r/a@sha256:2\n";
        let stale = "encryptionsalt: v1:old\nconfig:\n  orch-dev:imageUri: r/a@sha256:1\n";
        let out = merge(Some(stale), Some(recorded), RENDERED);
        assert!(out.contains("v1:new") && !out.contains("v1:old"), "{out}");
        assert_eq!(config_value(&out, "orch-dev:imageUri").as_deref(), Some("r/a@sha256:2"));
        let fresh = merge(None, Some(recorded), RENDERED);
        assert_eq!(config_value(&fresh, "orch-dev:imageUri").as_deref(), Some("r/a@sha256:2"));
        assert!(fresh.contains("v1:new"));
    }

    #[test]
    fn nothing_but_the_rendered_keys_on_a_first_render() {
        let out = merge(None, None, RENDERED);
        assert_eq!(out.matches(':').count(), RENDERED.matches(':').count(), "{out}");
    }
}
