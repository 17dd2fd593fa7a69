//! `orch verify`: exit codes and output of the acceptance suite when there is nothing good to verify
//! (the passing path runs against a real tier in `local.rs`).
use crate::support::Scratch;

#[test]
fn verify_without_a_running_tier_is_an_error() {
    let scratch = Scratch::new();
    let out = scratch.orch().args(["verify", "--env", "local"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not running"));
}

#[test]
fn verify_of_an_unreachable_url_fails_with_a_table_and_json() {
    let scratch = Scratch::new();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let url = format!("https://127.0.0.1:{port}/");
    let out = scratch.orch().args(["verify", &url, "--requests", "2"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(
        table.contains("FAIL") && table.contains("https serves instance, zone and db"),
        "{table}"
    );

    let out = scratch.orch().args(["verify", &url, "--requests", "2", "--json"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["passed"], false);
    assert!(report["checks"].as_array().unwrap().iter().any(|c| c["passed"] == false));
}

#[test]
fn verify_rejects_a_non_url() {
    Scratch::new().orch().args(["verify", "example.com"]).assert().code(2);
}
