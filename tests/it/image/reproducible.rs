//! Images that come out the same on every machine: two builds of one commit from different
//! folders, target directories, cargo homes, home folders, time zones, locales, umasks and host CA
//! bundles give one digest; tags carry the
//! digest, so two digests of one revision never share a tag in the real registry, and a tag that
//! names another digest is refused; `orch build --verify` says "same" or names the layer that
//! differs.
use std::path::{Path, PathBuf};
use std::process::Command;

use orch::image::layout::read_layout;
use orch::image::push::{push, Destination};
use orch::image::{ImageError, PushReport};
use orch::printer::Printer;

use super::{index_digest, orch_build, skopeo_digest, static_app};
use crate::support::{repo, service, Scratch};

fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git").arg("-C").arg(dir).args(args).output().expect("git");
    assert!(out.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// Make `scratch` a git repository with one commit (fixed author and date).
fn commit(scratch: &Scratch) -> String {
    let dir = scratch.path();
    if !dir.join(".git").exists() {
        git(dir, &["init", "--quiet"]);
    }
    git(dir, &["add", "-A", "stacks", "pulumi", "app"]);
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(["-c", "user.name=t", "-c", "user.email=t@t", "commit", "--quiet", "-m", "c"])
        .env("GIT_AUTHOR_DATE", "2024-05-01T10:00:00Z")
        .env("GIT_COMMITTER_DATE", "2024-05-01T10:00:00Z")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    git(dir, &["rev-parse", "HEAD"])
}

/// A clean checkout of `commit` at `dir` (kept between runs, so its target directory stays warm).
fn checkout(dir: &Path, commit: &str) {
    if !dir.join(".git").exists() {
        std::fs::create_dir_all(dir).unwrap();
        git(dir, &["init", "--quiet"]);
    }
    git(dir, &["fetch", "--quiet", &repo().display().to_string(), commit]);
    git(dir, &["checkout", "--quiet", "--force", "--detach", commit]);
    git(dir, &["clean", "--quiet", "-fdx", "-e", "/build"]);
}

/// A cargo home of its own that needs no network: a copy of the index, the downloaded crates linked.
/// The copy is made afresh each run: one kept in a warm target folder from an earlier run lacks
/// the crates added since (`no matching package named …` offline).
fn cargo_home(dir: &Path) -> PathBuf {
    let default = home_cargo();
    let registry = dir.join("registry");
    let index = registry.join("index");
    if index.exists() {
        std::fs::remove_dir_all(&index).unwrap();
    }
    std::fs::create_dir_all(&registry).unwrap();
    let status = Command::new("cp")
        .arg("-r")
        .arg(default.join("registry/index"))
        .arg(&index)
        .status()
        .unwrap();
    assert!(status.success());
    if std::fs::symlink_metadata(registry.join("cache")).is_err() {
        std::os::unix::fs::symlink(default.join("registry/cache"), registry.join("cache")).unwrap();
    }
    dir.to_owned()
}

fn home_cargo() -> PathBuf {
    std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").unwrap()).join(".cargo"))
}

#[test]
fn two_builds_of_one_commit_on_differently_set_up_machines_give_one_digest() {
    let dirty = git(
        &repo(),
        &[
            "status",
            "--porcelain",
            "--untracked-files=no",
            "--",
            "app",
            "Cargo.lock",
            "Cargo.toml",
            "rust-toolchain.toml",
        ],
    );
    assert!(dirty.is_empty(), "commit the app's sources first: this test builds HEAD\n{dirty}");
    let commit = git(&repo(), &["rev-parse", "HEAD"]);
    let target =
        std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| repo().join("target"), PathBuf::from);
    let base = target.join("orch-repro");
    let (a, b) = (base.join("a"), base.join("b"));
    checkout(&a, &commit);
    checkout(&b, &commit);

    // Machine A: the app compiled in this checkout, the shared target directory, the usual cargo home.
    let first = orch_build_in(&a, &[("ORCH_APP_BINARY", static_app().as_os_str())], None);
    // Machine B: another folder, target directory, cargo home, home folder, time zone, locale, umask
    // and host CA bundle; compiled by orch.
    let other_ca = base.join("other-ca.pem");
    std::fs::write(&other_ca, "-----BEGIN CERTIFICATE-----\nMAo=\n-----END CERTIFICATE-----\n")
        .unwrap();
    let home = cargo_home(&base.join("cargo-home-b"));
    let target_b = base.join("target-b");
    let home_b = base.join("home-b");
    std::fs::create_dir_all(&home_b).unwrap();
    // rustup finds its toolchains under $HOME unless told: B keeps them where A has them.
    let rustup_home = std::env::var_os("RUSTUP_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").expect("HOME")).join(".rustup"));
    let second = orch_build_in(
        &b,
        &[
            ("ORCH_BUILD_PROFILE", "dev".as_ref()),
            ("CARGO_TARGET_DIR", target_b.as_os_str()),
            ("CARGO_HOME", home.as_os_str()),
            ("CARGO_NET_OFFLINE", "true".as_ref()),
            ("HOME", home_b.as_os_str()),
            ("RUSTUP_HOME", rustup_home.as_os_str()),
            // UTC+12:45 (+13:45 in summer): a C compiler's local `__DATE__`/`__TIME__` would show it.
            ("TZ", "Pacific/Chatham".as_ref()),
            ("LC_ALL", "C.UTF-8".as_ref()),
            ("LANG", "C.UTF-8".as_ref()),
            ("SOURCE_DATE_EPOCH", "1234567890".as_ref()),
            ("SSL_CERT_FILE", other_ca.as_os_str()),
            ("SSL_CERT_DIR", base.as_os_str()),
        ],
        Some("077"),
    );
    assert_eq!(first.0, second.0, "one commit, one digest");
    assert_eq!(first.1, second.1, "one commit, one tag");
    assert!(first.1.starts_with(&commit[..12]), "{}", first.1);
    let size: u64 = read_layout(&b.join("build/local/image"))
        .unwrap()
        .manifest
        .layers()
        .iter()
        .map(|l| l.size())
        .sum();
    eprintln!(
        "reproducible: {} ({size} bytes compressed) from {} and {}",
        first.0,
        a.display(),
        b.display()
    );
}

/// `orch build` in the checkout `dir` with `env` (and `umask`, if given): (digest, tag).
fn orch_build_in(
    dir: &Path,
    env: &[(&str, &std::ffi::OsStr)],
    umask: Option<&str>,
) -> (String, String) {
    let mut cmd = match umask {
        None => crate::support::orch(),
        Some(mask) => {
            let mut sh = Command::new("sh");
            sh.arg("-c")
                .arg(format!("umask {mask} && exec \"$0\" \"$@\""))
                .arg(assert_cmd::cargo::cargo_bin("orch"));
            sh.env_remove("ORCH_ENV").env("NO_COLOR", "1");
            assert_cmd::Command::from_std(sh)
        }
    };
    cmd.env("ORCH_ROOT", dir).env_remove("ORCH_APP_BINARY").env_remove("ORCH_BUILD_PROFILE");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.arg("build").timeout(std::time::Duration::from_secs(1800)).output().unwrap();
    assert!(
        out.status.success(),
        "orch build in {}: {}",
        dir.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let layout = read_layout(&dir.join("build/local/image")).unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), layout.digest.as_ref());
    (layout.digest.to_string(), layout.tag.unwrap())
}

/// A static app that differs from [`static_app`] by one byte: what another machine might compile.
fn other_app(dir: &Path) -> PathBuf {
    let path = dir.join("other-app");
    let mut bytes = std::fs::read(static_app()).unwrap();
    bytes.push(0);
    std::fs::write(&path, bytes).unwrap();
    path
}

#[tokio::test(flavor = "multi_thread")]
async fn a_tag_never_names_two_digests_of_one_revision_and_verify_names_the_layer() {
    let Some(registry) = service("ORCH_TEST_REGISTRY") else { return };
    let scratch = Scratch::new();
    let repository = super::push_to(&scratch, &registry);
    let revision = commit(&scratch);
    let push_with = |binary: &Path| -> PushReport {
        scratch.orch().env("ORCH_APP_BINARY", binary).args(["build", "--push"]).assert().success();
        serde_json::from_str(&scratch.read("build/local/image/pushed.json")).unwrap()
    };
    let first = push_with(&static_app());
    let other = other_app(scratch.path());
    let second = push_with(&other);
    assert_ne!(first.digest, second.digest, "another binary of the same revision");
    assert_ne!(first.tag, second.tag, "…gets another tag");
    for report in [&first, &second] {
        assert!(report.tag.starts_with(&revision[..12]), "{}", report.tag);
        let remote = format!("docker://{registry}/{repository}:{}", report.tag);
        assert_eq!(skopeo_digest(&remote, &["--tls-verify=false"]), report.digest.as_ref());
    }

    // Forcing the second image under the first tag is refused, naming both; the tag is untouched.
    let layout = read_layout(&scratch.path().join("build/local/image")).unwrap();
    let dest = Destination {
        registry: registry.clone(),
        repository: repository.clone(),
        auth: oci_client::secrets::RegistryAuth::Anonymous,
    };
    let err = push(&layout, &dest, &first.tag, &Printer::plain()).await.unwrap_err();
    assert!(matches!(err, ImageError::TagTaken { .. }), "{err}");
    let text = err.to_string();
    assert!(
        text.contains(first.digest.as_ref()) && text.contains(second.digest.as_ref()),
        "{text}"
    );
    let remote = format!("docker://{registry}/{repository}:{}", first.tag);
    assert_eq!(skopeo_digest(&remote, &["--tls-verify=false"]), first.digest.as_ref());

    // --verify against the registry (no local layout of it): the app layer is named as different.
    std::fs::remove_dir_all(scratch.path().join("build/local/image")).unwrap();
    let out = scratch
        .orch()
        .env("ORCH_APP_BINARY", &other)
        .args(["build", "--verify", &first.reference])
        .assert()
        .code(1);
    let text = String::from_utf8_lossy(&out.get_output().stdout).into_owned();
    assert!(text.contains("layer app   DIFFERS"), "{text}");
    assert!(text.contains("layer base  same"), "{text}");
    scratch
        .orch()
        .env("ORCH_APP_BINARY", static_app())
        .args(["build", "--verify", &first.reference])
        .assert()
        .code(0)
        .stdout(predicates::str::contains("same: "));
}

#[test]
fn verify_says_same_then_names_the_layer_an_input_changed() {
    let scratch = Scratch::new();
    let out = orch_build(&scratch, &[]).success().get_output().stdout.clone();
    let digest = String::from_utf8(out).unwrap().trim().to_owned();
    assert_eq!(digest, index_digest(&scratch.path().join("build/local/image")));
    orch_build(&scratch, &["--verify", &digest])
        .code(0)
        .stdout(predicates::str::contains(format!("same: this checkout rebuilds {digest}")));
    // One input changed: a certificate added to app/certs/ changes the base layer and its label.
    scratch.write(
        "app/certs/extra.pem",
        "-----BEGIN CERTIFICATE-----\nMAo=\n-----END CERTIFICATE-----\n",
    );
    let out = orch_build(&scratch, &["--verify", &digest]).code(1);
    let text = String::from_utf8_lossy(&out.get_output().stdout).into_owned();
    assert!(text.starts_with("differs: "), "{text}");
    assert!(text.contains("layer base  DIFFERS"), "{text}");
    assert!(text.contains("layer app   same"), "{text}");
    assert!(text.contains("label dev.orch.ca-bundle DIFFERS"), "{text}");
    // The layout `orch build` wrote is left alone; a malformed digest is a usage error.
    assert_eq!(index_digest(&scratch.path().join("build/local/image")), digest);
    orch_build(&scratch, &["--verify", "sha256:abc"])
        .code(2)
        .stderr(predicates::str::contains("orch build --verify"));
}
