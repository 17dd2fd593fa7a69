//! The deployment record: what was deployed (env, source revision, image digest, rendered-program
//! hash, config hash, outputs, time), kept as JSON in the state store at `deployments/<env>/latest.json`
//! plus one file per release under `deployments/<env>/history/`. `orch up` writes it before `pulumi up`
//! changes the stack (state `applying`) and again when the run ends (verified, unverified, failed,
//! rolled back, interrupted), so `latest.json` is what the stack was last set to, never only the last
//! good run; `orch status` and `orch drift` read it through [`latest`] too.
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

use super::store::Store;
use super::StateError;
use crate::outputs::Output;

/// The deployment record: the release record both targets share, with what the AWS stack ran.
pub type Record = crate::release::Release<AwsRun>;

/// What an AWS release ran with: the stack's inputs and outputs, as `orch up` left them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AwsRun {
    pub env: String,
    pub image_uri: String,
    pub program_hash: String,
    /// sha256 over every config key and value (secrets included, so a rotated secret redeploys).
    pub config_hash: String,
    #[serde(default)]
    pub outputs: BTreeMap<String, serde_json::Value>,
    /// The certificate ARN the run wired into the stack (absent in records of older orch versions).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate_arn: Option<String>,
    /// The stack config file (`Pulumi.<env>.yaml`) as pulumi left it after the update: the deploy-time
    /// keys and the secrets provider's salt (secrets only as pulumi's ciphertext), so drift and down
    /// run pulumi with the deployed config on a checkout whose `build/` is empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stack_file: Option<String>,
    /// The AMI id the instances boot (absent in records of older orch versions).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ami: Option<String>,
    /// The rendered program (`Pulumi.yaml`) that was deployed: what `orch status` and the
    /// `--dry-run` cost change price as running now (absent in records of older orch versions).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub program: Option<String>,
    pub orch_version: String,
}

impl crate::release::Ran for AwsRun {
    fn ami(&self) -> Option<&str> {
        self.ami.as_deref()
    }
    fn runs(&self, digest: &str) -> String {
        format!("{digest} {}", self.ami.as_deref().unwrap_or(""))
    }
}

impl Record {
    /// A non-empty string output.
    pub fn output(&self, o: Output) -> Option<&str> {
        crate::outputs::get(&self.run.outputs, o)
    }
    /// The image digest: the record's own field, else the `imageDigest` output.
    pub fn digest(&self) -> Option<&str> {
        Some(self.digest.as_str())
            .filter(|d| !d.is_empty())
            .or_else(|| self.output(Output::ImageDigest))
    }
    /// The certificate ARN wired into the stack: the record's field, else a `certificateArn` output.
    pub fn certificate(&self) -> Option<&str> {
        self.run
            .certificate_arn
            .as_deref()
            .filter(|a| !a.is_empty())
            .or_else(|| self.output(Output::CertificateArn))
    }
}

pub fn latest_key(env: &str) -> String {
    format!("deployments/{env}/latest.json")
}

pub async fn latest(store: &Store, env: &str) -> Result<Option<Record>, StateError> {
    read(store, &latest_key(env)).await
}

/// The JSON object at `key`, if there is one; one that does not parse is an error naming it.
async fn read<T: serde::de::DeserializeOwned>(
    store: &Store,
    key: &str,
) -> Result<Option<T>, StateError> {
    match store.get(key).await? {
        None => Ok(None),
        Some(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|e| {
            StateError::step(format!("reading {}", store.describe(key)), e.to_string())
        }),
    }
}

/// Write the record as the latest and into the history.
pub async fn save(store: &Store, record: &Record) -> Result<String, StateError> {
    let body = serde_json::to_vec_pretty(record)
        .map_err(|e| StateError::step("encoding the deployment record", e.to_string()))?;
    let stamp = crate::clock::stamp(&record.time);
    let short = record.digest.trim_start_matches("sha256:").chars().take(12).collect::<String>();
    let history = format!("deployments/{}/history/{stamp}-{short}.json", record.run.env);
    store.put(&history, &body).await?;
    store.put(&latest_key(&record.run.env), &body).await?;
    store.delete(&down_key(&record.run.env)).await?;
    Ok(store.describe(&latest_key(&record.run.env)))
}

/// Where `orch down` leaves word that the environment is down, until the next deployment.
pub fn down_key(env: &str) -> String {
    format!("deployments/{env}/down.json")
}

/// An environment torn down by `orch down`: since when, and what was deployed before.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Down {
    pub since: crate::clock::Time,
    pub last: Record,
    /// The final database snapshot `orch down --unprotect` took (kept after the destroy).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub final_snapshot: Option<String>,
}

/// The down marker, if the environment was torn down and not deployed since (one that does not
/// parse is an error naming it, not "up").
pub async fn down_since(store: &Store, env: &str) -> Result<Option<Down>, StateError> {
    read(store, &down_key(env)).await
}

/// Retire the latest record on teardown: a `-destroyed` copy goes into the history, a down marker
/// (for `orch status`) is written, then the latest is removed (so the next `orch up` deploys afresh).
/// Returns where the copy went.
pub async fn retire(
    store: &Store,
    record: &Record,
    final_snapshot: Option<&str>,
) -> Result<String, StateError> {
    let mut retired = serde_json::to_value(record)
        .map_err(|e| StateError::step("encoding the deployment record", e.to_string()))?;
    if let (Some(snapshot), Some(fields)) = (final_snapshot, retired.as_object_mut()) {
        fields.insert("final_snapshot".into(), snapshot.into());
    }
    let body = serde_json::to_vec_pretty(&retired)
        .map_err(|e| StateError::step("encoding the deployment record", e.to_string()))?;
    let now = crate::clock::now();
    let key = format!(
        "deployments/{}/history/{}-destroyed.json",
        record.run.env,
        now.format("%Y%m%dT%H%M%SZ")
    );
    store.put(&key, &body).await?;
    let down = Down {
        since: now,
        last: record.clone(),
        final_snapshot: final_snapshot.map(str::to_string),
    };
    let marker = serde_json::to_vec_pretty(&down)
        .map_err(|e| StateError::step("encoding the down marker", e.to_string()))?;
    store.put(&down_key(&record.run.env), &marker).await?;
    store.delete(&latest_key(&record.run.env)).await?;
    Ok(store.describe(&key))
}

/// The config hash: keys sorted, each `key=value` line hashed.
pub fn config_hash(plain: &BTreeMap<String, String>, secrets: &BTreeMap<String, String>) -> String {
    let mut h = Sha256::new();
    for (k, v) in plain {
        h.update(format!("{k}={v}\n"));
    }
    for (k, v) in secrets {
        h.update(format!("secret:{k}={v}\n"));
    }
    format!("sha256:{}", hex::encode(h.finalize()))
}

/// Why a deployment is needed, or `None` when the last record already matches (the no-op path).
pub fn change_reason(
    last: Option<&Record>,
    image_digest: &str,
    program_hash: &str,
    config_hash: &str,
) -> Option<String> {
    let Some(last) = last else { return Some("no deployment recorded yet".into()) };
    let mut why = vec![];
    if last.state != crate::release::State::Verified {
        why.push(format!("the live release is {}", last.state.as_str()));
    }
    if last.digest != image_digest {
        why.push(format!("image {} → {}", short(&last.digest), short(image_digest)));
    }
    if last.run.program_hash != program_hash {
        why.push(format!("program {} → {}", short(&last.run.program_hash), short(program_hash)));
    }
    if last.run.config_hash != config_hash {
        why.push("stack config changed".into());
    }
    (!why.is_empty()).then(|| why.join(", "))
}

pub fn short(hash: &str) -> String {
    let bare = hash.split_once(':').map_or(hash, |(_, h)| h);
    bare.chars().take(12).collect()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::release::State as ReleaseState;

    pub(crate) fn rec() -> Record {
        Record {
            state: ReleaseState::Verified,
            note: None,
            revision: "abc".into(),
            digest: "sha256:1".into(),
            by: None,
            canary: vec![],
            forced: None,
            time: "2026-01-01T00:00:00Z".parse().unwrap(),
            run: AwsRun {
                env: "dev".into(),
                image_uri: "r/x@sha256:1".into(),
                program_hash: "sha256:p".into(),
                config_hash: "sha256:c".into(),
                outputs: BTreeMap::new(),
                certificate_arn: Some("arn:aws:acm:eu-west-1:1:certificate/c".into()),
                stack_file: None,
                ami: None,
                program: None,
                orch_version: "0".into(),
            },
        }
    }

    #[test]
    fn no_op_only_when_image_program_and_config_all_match() {
        let r = rec();
        assert_eq!(change_reason(Some(&r), "sha256:1", "sha256:p", "sha256:c"), None);
        assert!(change_reason(Some(&r), "sha256:2", "sha256:p", "sha256:c")
            .unwrap()
            .contains("image"));
        assert!(change_reason(Some(&r), "sha256:1", "sha256:q", "sha256:c")
            .unwrap()
            .contains("program"));
        assert!(change_reason(Some(&r), "sha256:1", "sha256:p", "sha256:d")
            .unwrap()
            .contains("config"));
        assert!(change_reason(None, "sha256:1", "sha256:p", "sha256:c").is_some());
        let unverified = Record { state: ReleaseState::Unverified, ..rec() };
        assert_eq!(
            change_reason(Some(&unverified), "sha256:1", "sha256:p", "sha256:c").as_deref(),
            Some("the live release is unverified"),
            "same inputs, but never verified: deploy and verify again"
        );
    }

    #[tokio::test]
    async fn saved_record_reads_back_as_latest() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::Dir(dir.path().to_path_buf());
        save(&store, &rec()).await.unwrap();
        assert_eq!(latest(&store, "dev").await.unwrap(), Some(rec()));
        assert_eq!(
            std::fs::read_dir(dir.path().join("deployments/dev/history")).unwrap().count(),
            1
        );
    }

    #[tokio::test]
    async fn a_down_marker_reads_back_and_a_corrupt_one_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::Dir(dir.path().to_path_buf());
        save(&store, &rec()).await.unwrap();
        retire(&store, &rec(), Some("orch-dev-final-1")).await.unwrap();
        let down = down_since(&store, "dev").await.unwrap().unwrap();
        assert_eq!(down.last, rec());
        assert_eq!(down.final_snapshot.as_deref(), Some("orch-dev-final-1"));
        assert_eq!(latest(&store, "dev").await.unwrap(), None);
        std::fs::write(dir.path().join(down_key("dev")), "{ not json").unwrap();
        let err = down_since(&store, "dev").await.unwrap_err().to_string();
        assert!(err.contains("deployments/dev/down.json"), "{err}");
    }

    #[test]
    fn records_without_a_certificate_arn_still_read_and_fall_back_to_outputs() {
        let mut old = serde_json::to_value(rec()).unwrap();
        old.as_object_mut().unwrap().remove("certificate_arn");
        old.as_object_mut().unwrap().remove("state");
        old["outputs"] =
            serde_json::json!({"certificateArn": "arn:out", "imageDigest": "sha256:o", "url": ""});
        let r: Record = serde_json::from_value(old).unwrap();
        assert_eq!((r.run.certificate_arn.as_deref(), r.certificate()), (None, Some("arn:out")));
        assert_eq!((r.digest(), r.output(Output::Url)), (Some("sha256:1"), None));
        assert_eq!(
            r.state,
            ReleaseState::Verified,
            "older records were written only once verified"
        );
        assert_eq!(rec().certificate(), Some("arn:aws:acm:eu-west-1:1:certificate/c"));
    }
}
