//! `orch build`: a static app binary, a reproducible OCI layout (read back by skopeo), pushes to
//! a real registry that skip what is already there, ECR repository and token calls against moto,
//! and the binary unpacked from the image serving /healthz and resolving + TLS-connecting from
//! inside the unpacked root. Reproducibility across machines, tags and `--verify`: [`reproducible`].
mod reproducible;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use orch::image::binary::{self, Profile};
use orch::image::{ecr, unpack, ImageError, PushReport};
use orch::runner::Duct;
use predicates::prelude::*;

use crate::support::{free_port, repo, service, Scratch};

/// The app, built once per test run exactly as `orch build` builds it (debug profile).
pub(crate) fn static_app() -> PathBuf {
    static APP: OnceLock<PathBuf> = OnceLock::new();
    APP.get_or_init(|| match binary::build(&Duct, &repo(), Profile::Dev) {
        Ok(path) => path,
        Err(e) => panic!("building the static app failed: {e}"),
    })
    .clone()
}

/// `orch build` in `scratch` with the prebuilt static app.
pub(crate) fn orch_build(scratch: &Scratch, args: &[&str]) -> assert_cmd::assert::Assert {
    scratch.orch().env("ORCH_APP_BINARY", static_app()).arg("build").args(args).assert()
}

pub(crate) fn index_digest(dir: &Path) -> String {
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("index.json")).unwrap()).unwrap();
    index["manifests"][0]["digest"].as_str().unwrap().to_owned()
}

pub(crate) fn skopeo_digest(target: &str, extra: &[&str]) -> String {
    let out = std::process::Command::new("skopeo")
        .arg("inspect")
        .args(extra)
        .arg(target)
        .output()
        .expect("skopeo");
    assert!(
        out.status.success(),
        "skopeo inspect {target}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
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
    assert_eq!(
        String::from_utf8(first).unwrap().trim(),
        digest,
        "stdout carries the manifest digest"
    );
    let index = std::fs::read(dir.join("index.json")).unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    orch_build(&scratch, &[]).success();
    assert_eq!(std::fs::read(dir.join("index.json")).unwrap(), index, "byte-identical index.json");
    assert_eq!(skopeo_digest(&format!("oci:{}", dir.display()), &[]), digest);
    let blobs: u64 = std::fs::read_dir(dir.join("blobs/sha256"))
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .sum();
    assert!(blobs < 200_000_000, "{blobs} bytes");
}

#[test]
fn the_unpacked_root_has_the_app_users_name_service_and_certificates() {
    let scratch = Scratch::new();
    scratch.write(
        "app/certs/extra.pem",
        "-----BEGIN CERTIFICATE-----\nEXTRA\n-----END CERTIFICATE-----\n",
    );
    orch_build(&scratch, &[]).success();
    let layout = scratch.path().join("build/local/image");
    let dest = scratch.path().join("root");
    let got = unpack(&layout, &dest).unwrap();
    assert_eq!(
        (got.rootfs.as_path(), got.entrypoint.as_slice(), got.digest.to_string()),
        (dest.as_path(), ["/app".to_string()].as_slice(), index_digest(&layout))
    );
    assert!(got.env.contains(&("PORT".into(), "8080".into())), "{:?}", got.env);
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(dest.join("app")).unwrap().permissions().mode() & 0o777, 0o755);
    assert_eq!(std::fs::read(dest.join("app")).unwrap(), std::fs::read(static_app()).unwrap());
    assert!(std::fs::read_to_string(dest.join("etc/passwd")).unwrap().contains(":65532:65532:"));
    assert!(std::fs::read_to_string(dest.join("etc/nsswitch.conf"))
        .unwrap()
        .contains("hosts: files dns"));
    let bundle = std::fs::read_to_string(dest.join("etc/ssl/certs/ca-certificates.crt")).unwrap();
    assert!(
        bundle.matches("BEGIN CERTIFICATE").count() > 100,
        "the pinned Mozilla CA certificates are in the image"
    );
    assert!(bundle.ends_with("EXTRA\n-----END CERTIFICATE-----\n"), "app/certs/*.pem are appended");
    if repo().join("app/pages").is_dir() {
        assert!(dest.join("pages").is_dir(), "error pages are in the image");
    }
    // Unpacking again is a no-op; a foreign non-empty folder is refused.
    assert_eq!(unpack(&layout, &dest).unwrap(), got);
    let foreign = scratch.path().join("stacks");
    assert!(matches!(unpack(&layout, &foreign), Err(ImageError::DestNotEmpty { .. })));
}

/// Point the scratch project's local stack at a fresh repository of `registry`; its name.
fn push_to(scratch: &Scratch, registry: &str) -> String {
    let repository = format!("orch-test-{}", rand::random::<u32>());
    let stack = scratch.read("stacks/local.yaml").replace(
        "  repository: orch-app",
        &format!("  repository: {repository}\n  registry: {registry}"),
    );
    scratch.write("stacks/local.yaml", &stack);
    repository
}

#[test]
fn push_reads_back_with_skopeo_and_a_repush_uploads_nothing() {
    let Some(registry) = service("ORCH_TEST_REGISTRY") else { return };
    let scratch = Scratch::new();
    let repository = push_to(&scratch, &registry);
    let pushed = |scratch: &Scratch| -> PushReport {
        let out = orch_build(scratch, &["--push"]).success().get_output().stdout.clone();
        let report: PushReport =
            serde_json::from_str(&scratch.read("build/local/image/pushed.json")).unwrap();
        assert!(String::from_utf8(out).unwrap().contains(&report.reference));
        report
    };
    let first = pushed(&scratch);
    let digest = index_digest(&scratch.path().join("build/local/image"));
    assert_eq!(first.digest.as_ref(), digest);
    assert_eq!(first.reference, format!("{registry}/{repository}@{digest}"));
    assert!(
        first.bytes_uploaded > 0 && first.blobs_uploaded == 3 && first.manifest_uploaded,
        "{first:?}"
    );
    let remote = format!("docker://{registry}/{repository}:{}", first.tag);
    assert_eq!(skopeo_digest(&remote, &["--tls-verify=false"]), digest);

    let again = pushed(&scratch);
    assert_eq!(again.digest.as_ref(), digest, "a rebuild gives the same digest");
    assert_eq!(
        (again.bytes_uploaded, again.blobs_uploaded, again.blobs_skipped, again.manifest_uploaded),
        (0, 0, 3, false)
    );
}

#[test]
fn push_without_a_registry_on_local_fails_with_a_hint() {
    let scratch = Scratch::new();
    orch_build(&scratch, &["--push"]).code(2).stderr(
        predicates::str::contains("no registry to push to")
            .and(predicates::str::contains("image.registry")),
    );
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
    assert_eq!(
        actions,
        [ecr::Action::Create, ecr::Action::PutLifecyclePolicy(ecr::lifecycle_policy(7))]
    );
    assert!(uri.ends_with(&format!("/{name}")), "{uri}");
    let seen = ecr::observe(&client, &name).await.unwrap().unwrap();
    assert!(seen.immutable && seen.scan_on_push, "{seen:?}");
    let policy: serde_json::Value =
        serde_json::from_str(seen.lifecycle_policy.as_deref().unwrap()).unwrap();
    assert_eq!(policy["rules"][1]["selection"]["countNumber"], 7);
    assert_eq!(policy["rules"][0]["selection"]["tagPrefixList"][0], "release-");
    assert_eq!(ecr::ensure_repository(&client, &name, 7).await.unwrap().1, [], "idempotent");

    client
        .put_image_tag_mutability()
        .repository_name(&name)
        .image_tag_mutability(aws_sdk_ecr::types::ImageTagMutability::Mutable)
        .send()
        .await
        .unwrap();
    assert_eq!(
        ecr::ensure_repository(&client, &name, 7).await.unwrap().1,
        [ecr::Action::SetImmutableTags],
        "drift is repaired"
    );

    let (host, auth) = ecr::login(&client).await.unwrap();
    assert!(!host.is_empty() && !host.contains("://"), "{host}");
    assert!(
        matches!(&auth, oci_client::secrets::RegistryAuth::Basic(user, password) if user == "AWS" && !password.is_empty())
    );
}

/// A child process killed when dropped.
struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `GET path` over plain HTTP/1.1: the status code, if anything answered.
fn http_status(port: u16, path: &str) -> Option<u16> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(std::time::Duration::from_secs(2))).ok()?;
    write!(stream, "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n").ok()?;
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).ok()?;
    std::str::from_utf8(&head[9..12]).ok()?.parse().ok()
}

/// The layout built from the current app, unpacked into a fresh folder of `scratch`.
fn unpacked_image(scratch: &Scratch, ca_pem: Option<&str>) -> orch::image::Unpacked {
    if let Some(pem) = ca_pem {
        scratch.write("app/certs/test-ca.pem", pem);
    }
    orch_build(scratch, &[]).success();
    unpack(&scratch.path().join("build/local/image"), &scratch.path().join("rootfs")).unwrap()
}

#[test]
fn the_binary_unpacked_from_the_image_starts_and_answers_healthz() {
    let scratch = Scratch::new();
    let image = unpacked_image(&scratch, None);
    let port = free_port();
    let entry = image.rootfs.join(image.entrypoint[0].trim_start_matches('/'));
    let mut cmd = std::process::Command::new(entry);
    cmd.env_clear()
        .envs(image.env.iter().cloned())
        .env("PORT", port.to_string())
        .env("BIND", "127.0.0.1");
    cmd.env("DATABASE_URL", format!("sqlite://{}/app.db?mode=rwc", scratch.path().display()));
    // An explicit local run: the app never asks the real metadata service from here.
    cmd.env("LOCAL_IDENTITY", "1");
    cmd.current_dir(&image.rootfs)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    let _app = Child(cmd.spawn().expect("start the unpacked app"));
    crate::support::wait_until(
        std::time::Duration::from_secs(30),
        &format!("the unpacked app answers /healthz with 200 on 127.0.0.1:{port}"),
        || http_status(port, "/healthz") == Some(200),
    );
}

/// A TLS server on 127.0.0.1 for `name`, certified by a fresh CA; returns (CA PEM, port, requests served).
fn tls_server(name: &str) -> (String, u16, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
    use std::io::{Read, Write};
    use std::sync::{atomic::AtomicUsize, Arc};
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
    let leaf_key = KeyPair::generate().unwrap();
    let leaf =
        CertificateParams::new(vec![name.to_owned()]).unwrap().signed_by(&leaf_key, &ca).unwrap();
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(leaf_key.serialize_der().into());
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(vec![leaf.der().clone()], key)
    .unwrap();
    let config = Arc::new(config);
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let served = Arc::new(AtomicUsize::new(0));
    let count = served.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let Ok(conn) = rustls::ServerConnection::new(config.clone()) else { continue };
            let mut tls = rustls::StreamOwned::new(conn, stream);
            let mut buf = Vec::new();
            let mut chunk = [0u8; 1024];
            while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                match tls.read(&mut chunk) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => buf.extend_from_slice(&chunk[..n]),
                }
            }
            if buf.windows(4).any(|w| w == b"\r\n\r\n") {
                let _ = tls.write_all(
                    b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok",
                );
                let _ = tls.flush();
                tls.conn.send_close_notify();
                let _ = tls.flush();
                count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            }
        }
    });
    (ca.pem(), port, served)
}

#[test]
fn inside_the_unpacked_root_the_binary_resolves_a_name_and_connects_over_tls() {
    if !nix_is_root() {
        eprintln!("skipping: chroot needs root");
        return;
    }
    let name = "probe.orch.test";
    let (ca_pem, port, served) = tls_server(name);
    let scratch = Scratch::new();
    let image = unpacked_image(&scratch, Some(&ca_pem));
    let probe = |root: &Path| {
        // Absolute: the environment is cleared, so there is no PATH to search.
        let chroot = ["/usr/sbin/chroot", "/usr/bin/chroot", "/sbin/chroot"]
            .into_iter()
            .find(|p| Path::new(p).exists())
            .unwrap_or("chroot");
        std::process::Command::new(chroot)
            .arg(root)
            .arg(&image.entrypoint[0])
            .args(["--probe", &format!("https://{name}:{port}/")])
            .env_clear()
            .envs(image.env.iter().cloned())
            .output()
            .expect("chroot")
    };
    // Without a hosts entry the name does not resolve inside the root: nothing reaches the server.
    let out = probe(&image.rootfs);
    assert!(
        !out.status.success(),
        "resolved {name} without a hosts entry? {}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert_eq!(served.load(std::sync::atomic::Ordering::SeqCst), 0);
    // The image's /etc/hosts (as a runtime would extend it) maps the name; the CA is only in the image's bundle.
    let hosts = image.rootfs.join("etc/hosts");
    let text = std::fs::read_to_string(&hosts).unwrap();
    std::fs::write(&hosts, format!("{text}127.0.0.1\t{name}\n")).unwrap();
    let out = probe(&image.rootfs);
    assert!(
        out.status.success(),
        "probe failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        served.load(std::sync::atomic::Ordering::SeqCst),
        1,
        "the TLS server answered one request"
    );
}

fn nix_is_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}
