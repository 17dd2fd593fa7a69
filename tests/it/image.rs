//! `orch build`: a static app binary, a reproducible OCI layout (read back by skopeo), pushes to
//! a real registry that skip what is already there, ECR repository and token calls against moto,
//! and the binary unpacked from the image serving /healthz and resolving + TLS-connecting from
//! inside the unpacked root.
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use orch::image::binary::{self, Profile};
use orch::image::{ecr, unpack, ImageError, PushReport};
use orch::runner::Duct;
use predicates::prelude::*;

use crate::support::{repo, service, Scratch};

/// The app, built once per test run exactly as `orch build` builds it (debug profile).
fn static_app() -> PathBuf {
    static APP: OnceLock<PathBuf> = OnceLock::new();
    APP.get_or_init(|| match binary::build(&Duct, &repo(), Profile::Dev) {
        Ok(path) => path,
        Err(e) => panic!("building the static app failed: {e}"),
    })
    .clone()
}

/// `orch build` in `scratch` with the prebuilt static app.
fn orch_build(scratch: &Scratch, args: &[&str]) -> assert_cmd::assert::Assert {
    scratch.orch().env("ORCH_APP_BINARY", static_app()).arg("build").args(args).assert()
}

fn index_digest(dir: &Path) -> String {
    let index: serde_json::Value = serde_json::from_slice(&std::fs::read(dir.join("index.json")).unwrap()).unwrap();
    index["manifests"][0]["digest"].as_str().unwrap().to_owned()
}

fn skopeo_digest(target: &str, extra: &[&str]) -> String {
    let out = std::process::Command::new("skopeo").arg("inspect").args(extra).arg(target).output().expect("skopeo");
    assert!(out.status.success(), "skopeo inspect {target}: {}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    v["Digest"].as_str().unwrap().to_owned()
}

#[test]
fn the_app_is_built_as_a_static_executable() {
    let path = static_app();
    binary::check_static(&path).unwrap();
    let out = std::process::Command::new("file").arg(&path).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("static") && !text.contains("interpreter"), "{text}");
}

#[test]
fn two_builds_give_the_same_digest_and_skopeo_reads_the_layout() {
    let scratch = Scratch::new();
    let first = orch_build(&scratch, &[]).success().get_output().stdout.clone();
    let dir = scratch.path().join("build/local/image");
    let digest = index_digest(&dir);
    assert_eq!(String::from_utf8(first).unwrap().trim(), digest, "stdout carries the manifest digest");
    let index = std::fs::read(dir.join("index.json")).unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    orch_build(&scratch, &[]).success();
    assert_eq!(std::fs::read(dir.join("index.json")).unwrap(), index, "byte-identical index.json");
    assert_eq!(skopeo_digest(&format!("oci:{}", dir.display()), &[]), digest);
    let blobs: u64 = std::fs::read_dir(dir.join("blobs/sha256")).unwrap().map(|e| e.unwrap().metadata().unwrap().len()).sum();
    assert!(blobs < 200_000_000, "{blobs} bytes");
}

#[test]
fn the_unpacked_root_has_the_app_users_name_service_and_certificates() {
    let scratch = Scratch::new();
    scratch.write("app/certs/extra.pem", "-----BEGIN CERTIFICATE-----\nEXTRA\n-----END CERTIFICATE-----\n");
    orch_build(&scratch, &[]).success();
    let layout = scratch.path().join("build/local/image");
    let dest = scratch.path().join("root");
    let got = unpack(&layout, &dest).unwrap();
    assert_eq!((got.rootfs.as_path(), got.entrypoint.as_slice(), got.digest.clone()), (dest.as_path(), ["/app".to_string()].as_slice(), index_digest(&layout)));
    assert!(got.env.contains(&("PORT".into(), "8080".into())), "{:?}", got.env);
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(dest.join("app")).unwrap().permissions().mode() & 0o777, 0o755);
    assert_eq!(std::fs::read(dest.join("app")).unwrap(), std::fs::read(static_app()).unwrap());
    assert!(std::fs::read_to_string(dest.join("etc/passwd")).unwrap().contains(":65532:65532:"));
    assert!(std::fs::read_to_string(dest.join("etc/nsswitch.conf")).unwrap().contains("hosts: files dns"));
    let bundle = std::fs::read_to_string(dest.join("etc/ssl/certs/ca-certificates.crt")).unwrap();
    assert!(bundle.matches("BEGIN CERTIFICATE").count() > 100, "the host's CA certificates are in the image");
    assert!(bundle.ends_with("EXTRA\n-----END CERTIFICATE-----\n"), "app/certs/*.pem are appended");
    if repo().join("app/pages").is_dir() {
        assert!(dest.join("pages").is_dir(), "error pages are in the image");
    }
    // Unpacking again is a no-op; a foreign non-empty folder is refused.
    assert_eq!(unpack(&layout, &dest).unwrap(), got);
    let foreign = scratch.path().join("stacks");
    assert!(matches!(unpack(&layout, &foreign), Err(ImageError::DestNotEmpty { .. })));
}

#[test]
fn push_reads_back_with_skopeo_and_a_repush_uploads_nothing() {
    let Some(registry) = service("ORCH_TEST_REGISTRY") else { return };
    let scratch = Scratch::new();
    let repository = format!("orch-test-{}", rand::random::<u32>());
    let stack = scratch.read("stacks/local.yaml").replace("  repository: orch-app", &format!("  repository: {repository}\n  registry: {registry}"));
    scratch.write("stacks/local.yaml", &stack);
    let pushed = |scratch: &Scratch| -> PushReport {
        let out = orch_build(scratch, &["--push"]).success().get_output().stdout.clone();
        let report: PushReport = serde_json::from_str(&scratch.read("build/local/image/pushed.json")).unwrap();
        assert!(String::from_utf8(out).unwrap().contains(&report.reference));
        report
    };
    let first = pushed(&scratch);
    let digest = index_digest(&scratch.path().join("build/local/image"));
    assert_eq!(first.digest, digest);
    assert_eq!(first.reference, format!("{registry}/{repository}@{digest}"));
    assert!(first.bytes_uploaded > 0 && first.blobs_uploaded == 3 && first.manifest_uploaded, "{first:?}");
    let remote = format!("docker://{registry}/{repository}:{}", first.tag);
    assert_eq!(skopeo_digest(&remote, &["--tls-verify=false"]), digest);

    let again = pushed(&scratch);
    assert_eq!(again.digest, digest, "a rebuild gives the same digest");
    assert_eq!((again.bytes_uploaded, again.blobs_uploaded, again.blobs_skipped, again.manifest_uploaded), (0, 0, 3, false));
}

#[test]
fn push_without_a_registry_on_local_fails_with_a_hint() {
    let scratch = Scratch::new();
    orch_build(&scratch, &["--push"])
        .code(2)
        .stderr(predicates::str::contains("no registry to push to").and(predicates::str::contains("image.registry")));
}

#[tokio::test]
async fn ecr_repository_is_ensured_idempotently_and_the_token_gives_basic_auth() {
    let Some(endpoint) = service("ORCH_TEST_MOTO") else { return };
    let creds = aws_sdk_ecr::config::Credentials::new("testing", "testing", None, None, "test");
    let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new("eu-west-1"))
        .endpoint_url(&endpoint)
        .credentials_provider(creds)
        .load()
        .await;
    let client = aws_sdk_ecr::Client::new(&config);
    let name = format!("orch-test-{}", rand::random::<u32>());

    let (uri, actions) = ecr::ensure_repository(&client, &name, 7).await.unwrap();
    assert_eq!(actions, [ecr::Action::Create, ecr::Action::PutLifecyclePolicy(ecr::lifecycle_policy(7))]);
    assert!(uri.ends_with(&format!("/{name}")), "{uri}");
    let seen = ecr::observe(&client, &name).await.unwrap().unwrap();
    assert!(seen.immutable && seen.scan_on_push, "{seen:?}");
    let policy: serde_json::Value = serde_json::from_str(seen.lifecycle_policy.as_deref().unwrap()).unwrap();
    assert_eq!(policy["rules"][0]["selection"]["countNumber"], 7);
    assert_eq!(ecr::ensure_repository(&client, &name, 7).await.unwrap().1, [], "idempotent");

    client
        .put_image_tag_mutability()
        .repository_name(&name)
        .image_tag_mutability(aws_sdk_ecr::types::ImageTagMutability::Mutable)
        .send()
        .await
        .unwrap();
    assert_eq!(ecr::ensure_repository(&client, &name, 7).await.unwrap().1, [ecr::Action::SetImmutableTags], "drift is repaired");

    let (host, auth) = ecr::login(&client).await.unwrap();
    assert!(!host.is_empty() && !host.contains("://"), "{host}");
    assert!(matches!(&auth, oci_client::secrets::RegistryAuth::Basic(user, password) if user == "AWS" && !password.is_empty()));
}
