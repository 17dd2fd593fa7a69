//! What `orch up` left behind: the deployment record in the state backend
//! (`deployments/<env>/latest.json`) and the latest built image digest under `build/<env>/image/`.
//! The record is read leniently (unknown fields ignored, camelCase or snake_case keys) so that
//! status keeps working across orch versions.
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;

use super::cloud::Clients;
use super::OpsError;
use crate::config::Stack;

/// One recorded deployment.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct DeploymentRecord {
    pub env: String,
    pub revision: Option<String>,
    #[serde(alias = "imageDigest")]
    pub image_digest: Option<String>,
    #[serde(alias = "programHash")]
    pub program_hash: Option<String>,
    /// The stack outputs at the end of the deployment (`url`, `asgName`, `targetGroupArn`, ...).
    pub outputs: BTreeMap<String, Value>,
    #[serde(alias = "certificateArn")]
    pub certificate_arn: Option<String>,
    #[serde(alias = "recordedAt", alias = "at")]
    pub time: Option<String>,
}

impl DeploymentRecord {
    /// A string output, if present and a string.
    pub fn output(&self, key: &str) -> Option<&str> {
        self.outputs.get(key).and_then(Value::as_str).filter(|s| !s.is_empty())
    }
    /// The image digest: the record's own field, else the `imageDigest` output.
    pub fn digest(&self) -> Option<&str> {
        self.image_digest.as_deref().or_else(|| self.output("imageDigest"))
    }
    /// The certificate ARN wired into the stack: the record's field, else a `certificateArn` output.
    pub fn certificate(&self) -> Option<&str> {
        self.certificate_arn.as_deref().or_else(|| self.output("certificateArn"))
    }
}

/// Where the state backend keeps things.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Backend {
    S3 { bucket: String, prefix: String },
    File(std::path::PathBuf),
}

impl Backend {
    /// Parse `s3://bucket[/prefix]` or `file://path` from the stack's `pulumi.backend`.
    pub fn of(stack: &Stack) -> Result<Backend, OpsError> {
        let url = stack.pulumi.as_ref().map(|p| p.backend.as_str()).ok_or_else(|| OpsError::NoBackend(stack.name.clone()))?;
        if let Some(rest) = url.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            let prefix = prefix.split('?').next().unwrap_or("").trim_matches('/').to_string();
            return Ok(Backend::S3 { bucket: bucket.to_string(), prefix });
        }
        if let Some(path) = url.strip_prefix("file://") {
            return Ok(Backend::File(path.into()));
        }
        Err(OpsError::BadBackend(url.to_string()))
    }

    fn key(prefix: &str, env: &str) -> String {
        let key = format!("deployments/{env}/latest.json");
        if prefix.is_empty() { key } else { format!("{prefix}/{key}") }
    }
}

/// Read the last deployment record; `Ok(None)` when there is none yet.
pub async fn load(clients: &Clients, stack: &Stack) -> Result<Option<DeploymentRecord>, OpsError> {
    let bytes = match Backend::of(stack)? {
        Backend::File(dir) => {
            // Beside Pulumi's own state, in `.orch/` (where `orch up` writes it).
            let path = dir.join(".orch").join(Backend::key("", &stack.name));
            match std::fs::read(&path) {
                Ok(b) => b,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
                Err(e) => return Err(OpsError::Record(format!("{}: {e}", path.display()))),
            }
        }
        Backend::S3 { bucket, prefix } => {
            let key = Backend::key(&prefix, &stack.name);
            match clients.s3.get_object().bucket(&bucket).key(&key).send().await {
                Ok(out) => out.body.collect().await.map_err(|e| OpsError::Record(format!("s3://{bucket}/{key}: {e}")))?.into_bytes().to_vec(),
                Err(e) if e.as_service_error().is_some_and(|s| s.is_no_such_key()) => return Ok(None),
                Err(e) if e.raw_response().is_some_and(|r| r.status().as_u16() == 404) => return Ok(None),
                Err(e) => return Err(OpsError::Record(format!("s3://{bucket}/{key}: {}", super::cloud::describe(&e)))),
            }
        }
    };
    serde_json::from_slice(&bytes).map(Some).map_err(|e| OpsError::Record(format!("the deployment record is not valid JSON: {e}")))
}

/// The digest of the latest image `orch build` produced for this env: `pushed.json`'s `digest`
/// if present, else the first manifest of the OCI layout's `index.json`.
pub fn latest_built(build_dir: &Path) -> Option<String> {
    let image = build_dir.join("image");
    let read = |name: &str| -> Option<Value> { serde_json::from_slice(&std::fs::read(image.join(name)).ok()?).ok() };
    if let Some(pushed) = read("pushed.json") {
        if let Some(d) = pushed.get("digest").and_then(Value::as_str) {
            return Some(d.to_string());
        }
    }
    let index = read("index.json")?;
    index.get("manifests")?.as_array()?.first()?.get("digest")?.as_str().map(str::to_string)
}

/// The certificate ARN in the rendered stack config (`build/<env>/Pulumi.<env>.yaml`): the value
/// of the first config key ending in `certificateArn` (any namespace), if it is a plain string.
pub fn configured_certificate(build_dir: &Path, env: &str) -> Option<String> {
    let text = std::fs::read_to_string(build_dir.join(format!("Pulumi.{env}.yaml"))).ok()?;
    let doc: serde_yaml::Value = serde_yaml::from_str(&text).ok()?;
    let config = doc.get("config")?.as_mapping()?;
    config.iter().find_map(|(k, v)| {
        let key = k.as_str()?;
        let last = key.rsplit(':').next().unwrap_or(key);
        if last.eq_ignore_ascii_case("certificateArn") { v.as_str().map(str::to_string) } else { None }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_reads_both_key_styles_and_ignores_unknown_fields() {
        let r: DeploymentRecord = serde_json::from_str(
            r#"{"env":"dev","imageDigest":"sha256:a","outputs":{"url":"https://x","asgName":"g"},"extra":1}"#,
        )
        .unwrap();
        assert_eq!((r.digest(), r.output("url"), r.output("nope")), (Some("sha256:a"), Some("https://x"), None));
        let r: DeploymentRecord = serde_json::from_str(r#"{"outputs":{"imageDigest":"sha256:b"}}"#).unwrap();
        assert_eq!(r.digest(), Some("sha256:b"));
    }

    #[test]
    fn latest_built_prefers_pushed_json_then_the_oci_index() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(latest_built(dir.path()), None);
        std::fs::create_dir_all(dir.path().join("image")).unwrap();
        std::fs::write(dir.path().join("image/index.json"), r#"{"manifests":[{"digest":"sha256:idx"}]}"#).unwrap();
        assert_eq!(latest_built(dir.path()).as_deref(), Some("sha256:idx"));
        std::fs::write(dir.path().join("image/pushed.json"), r#"{"digest":"sha256:pushed"}"#).unwrap();
        assert_eq!(latest_built(dir.path()).as_deref(), Some("sha256:pushed"));
    }

    #[test]
    fn configured_certificate_is_read_from_the_rendered_stack_config() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(configured_certificate(dir.path(), "dev"), None);
        std::fs::write(dir.path().join("Pulumi.dev.yaml"), "config:\n  aws-native:region: eu-west-1\n  orch:certificateArn: arn:aws:acm:x\n").unwrap();
        assert_eq!(configured_certificate(dir.path(), "dev").as_deref(), Some("arn:aws:acm:x"));
    }
}
