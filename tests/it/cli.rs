//! The command-line surface: help text snapshots, exit codes for usage errors.
use crate::support::orch;

#[test]
fn help_lists_every_subcommand() {
    let out = orch().arg("--help").output().unwrap();
    assert!(out.status.success());
    let help = String::from_utf8(out.stdout).unwrap();
    for sub in [
        "up",
        "status",
        "drift",
        "render",
        "check",
        "cost",
        "build",
        "verify",
        "down",
        "logs",
        "local",
        "completions",
    ] {
        assert!(help.contains(&format!("\n  {sub} ")), "--help lacks `{sub}`:\n{help}");
    }
    insta::assert_snapshot!("help", help);
}

#[test]
fn up_help_snapshot() {
    let out = orch().args(["up", "--help"]).output().unwrap();
    insta::assert_snapshot!("up_help", String::from_utf8(out.stdout).unwrap());
}

#[test]
fn unknown_flag_is_a_usage_error() {
    orch().args(["status", "--bogus"]).assert().code(2);
}

#[test]
fn completions_need_no_project() {
    let out = orch().args(["completions", "bash"]).current_dir("/").output().unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("orch"));
}

/// The error report (stderr) and exit code of `orch` run with `args` in a scratch project, with
/// `env` set and every AWS_* variable of the test process removed.
fn report(args: &[&str], env: &[(&str, &str)]) -> (Option<i32>, String) {
    let scratch = crate::support::Scratch::new();
    let mut cmd = scratch.orch();
    for (k, _) in std::env::vars().filter(|(k, _)| k.starts_with("AWS_")) {
        cmd.env_remove(k);
    }
    cmd.envs(env.iter().copied()).args(args);
    let out = cmd.output().unwrap();
    let stderr = String::from_utf8(out.stderr).unwrap();
    (out.status.code(), stderr.replace(scratch.path().to_str().unwrap(), "<project>"))
}

#[test]
fn a_malformed_orch_variable_is_exit_2_naming_it_before_anything_runs() {
    let (code, stderr) = report(&["status", "--env", "local"], &[("ORCH_POLL_SECONDS", "soon")]);
    assert_eq!(code, Some(2));
    insta::assert_snapshot!("bad_setting", stderr);
}

#[test]
fn an_unknown_environment_lists_the_existing_ones() {
    let (code, stderr) = report(&["status", "--env", "staging"], &[]);
    assert_eq!(code, Some(2));
    insta::assert_snapshot!("unknown_env", stderr);
}

/// No credentials anywhere (instance metadata off, so nothing leaves this machine): one sentence
/// and a hint, no SDK log lines, no debug dump of the SDK's error structs.
#[test]
fn no_aws_credentials_is_one_sentence_and_a_hint() {
    let home = tempfile::tempdir().unwrap();
    let missing = home.path().join("missing");
    let missing = missing.to_str().unwrap();
    let (code, stderr) = report(
        &["status", "--env", "prod"],
        &[
            ("HOME", home.path().to_str().unwrap()),
            ("AWS_EC2_METADATA_DISABLED", "true"),
            ("AWS_CONFIG_FILE", missing),
            ("AWS_SHARED_CREDENTIALS_FILE", missing),
        ],
    );
    assert_eq!(code, Some(2));
    assert!(!stderr.contains("WARN") && !stderr.contains("ProviderChainError"), "{stderr}");
    insta::assert_snapshot!("no_credentials", stderr);
}
