//! What `orch up` and `orch build` left behind, as status and drift read it: the deployment record
//! (through the deploy's own [`Store`] and [`record::latest`], so both agree on where it is and
//! what it holds), the latest built image digest under `build/<env>/image/`, and the certificate
//! ARN in the rendered stack config (for records older than the record's own `certificate_arn`).
use std::path::Path;

use super::cloud::Clients;
use super::OpsError;
use crate::config::Stack;
use crate::image::{layout, PushReport};
use crate::state::record::{self, Record};
use crate::state::store::Store;

fn store(clients: &Clients, stack: &Stack) -> Result<Store, OpsError> {
    let backend = stack
        .pulumi
        .as_ref()
        .map(|p| &p.backend)
        .ok_or_else(|| OpsError::NoBackend(stack.name.clone()))?;
    Ok(Store::for_backend(backend, &clients.s3))
}

/// Read the last deployment record; `Ok(None)` when there is none yet.
pub(crate) async fn load(clients: &Clients, stack: &Stack) -> Result<Option<Record>, OpsError> {
    record::latest(&store(clients, stack)?, &stack.name)
        .await
        .map_err(|e| OpsError::Record(e.to_string()))
}

/// The marker `orch down` left, when the environment is down and not deployed since.
pub(crate) async fn down(
    clients: &Clients,
    stack: &Stack,
) -> Result<Option<record::Down>, OpsError> {
    record::down_since(&store(clients, stack)?, &stack.name)
        .await
        .map_err(|e| OpsError::Record(e.to_string()))
}

/// The digest of the latest image `orch build` produced for this env: the one `pushed.json` names
/// if there is one, else the OCI layout's.
pub(crate) fn latest_built(build_dir: &Path) -> Option<String> {
    let image = build_dir.join("image");
    let pushed = std::fs::read(image.join("pushed.json"))
        .ok()
        .and_then(|b| serde_json::from_slice::<PushReport>(&b).ok());
    pushed
        .map(|p| p.digest.to_string())
        .or_else(|| layout::read_layout(&image).ok().map(|l| l.digest.to_string()))
}

/// The certificate ARN in the rendered stack config (`build/<env>/Pulumi.<env>.yaml`): the value
/// of the first config key ending in `certificateArn` (any namespace), if it is a plain string.
pub(crate) fn configured_certificate(build_dir: &Path, env: &str) -> Option<String> {
    let text = std::fs::read_to_string(build_dir.join(format!("Pulumi.{env}.yaml"))).ok()?;
    let doc: serde_yaml::Value = serde_yaml::from_str(&text).ok()?;
    let config = doc.get("config")?.as_mapping()?;
    config.iter().find_map(|(k, v)| {
        let key = k.as_str()?;
        let last = key.rsplit(':').next().unwrap_or(key);
        if last.eq_ignore_ascii_case("certificateArn") {
            v.as_str().map(str::to_string)
        } else {
            None
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::{layer, rootfs::Entry, source::Source};

    #[test]
    fn latest_built_prefers_pushed_json_then_the_oci_layout() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(latest_built(dir.path()), None);
        let layers = vec![layer::build(&[Entry::file("app", 0o755, "bin")], 0).unwrap()];
        let run = crate::image::pipeline::run_config();
        let img = layout::assemble(layers, &run, &Source::unknown(), &Default::default()).unwrap();
        layout::write_layout(&dir.path().join("image"), &img, "t").unwrap();
        assert_eq!(latest_built(dir.path()), Some(img.digest.to_string()));
        let pushed_digest = format!("sha256:{}", "e".repeat(64));
        let pushed = PushReport {
            registry: "r".into(),
            repository: "app".into(),
            tag: "t".into(),
            digest: pushed_digest.parse().unwrap(),
            reference: format!("r/app@{pushed_digest}"),
            bytes_uploaded: 0,
            blobs_uploaded: 0,
            blobs_skipped: 2,
            manifest_uploaded: false,
        };
        std::fs::write(dir.path().join("image/pushed.json"), serde_json::to_vec(&pushed).unwrap())
            .unwrap();
        assert_eq!(latest_built(dir.path()).as_deref(), Some(pushed_digest.as_str()));
    }

    fn stack(backend: &str) -> Stack {
        let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/stacks/dev.yaml"))
            .unwrap();
        crate::config::load_str(
            &text.replace("s3://orch-state-dev", backend),
            "dev",
            Path::new("stacks/dev.yaml"),
        )
        .unwrap()
    }

    #[tokio::test]
    async fn the_record_is_read_where_orch_up_writes_it() {
        let dir = tempfile::tempdir().unwrap();
        let clients = Clients::new("eu-west-1").await;
        let dev = stack(&format!("file://{}", dir.path().display()));
        assert!(load(&clients, &dev).await.unwrap().is_none());
        let rec = record::tests::rec();
        record::save(&Store::Dir(dir.path().join(".orch")), &rec).await.unwrap();
        assert_eq!(load(&clients, &dev).await.unwrap(), Some(rec));
        let mut other = dev.clone();
        other.pulumi = None;
        let bad = load(&clients, &other).await.unwrap_err();
        assert!(matches!(&bad, OpsError::NoBackend(env) if env == "dev"), "{bad}");
    }

    #[test]
    fn configured_certificate_is_read_from_the_rendered_stack_config() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(configured_certificate(dir.path(), "dev"), None);
        std::fs::write(
            dir.path().join("Pulumi.dev.yaml"),
            "config:\n  aws-native:region: eu-west-1\n  orch:certificateArn: arn:aws:acm:x\n",
        )
        .unwrap();
        assert_eq!(configured_certificate(dir.path(), "dev").as_deref(), Some("arn:aws:acm:x"));
    }
}
