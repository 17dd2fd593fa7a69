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
