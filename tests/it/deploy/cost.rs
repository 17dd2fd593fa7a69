//! The cost in `orch up --dry-run`: after a deployment the plan prices the rendered program against
//! the program the live release recorded; raising `instances.min` changes it by exactly the instance
//! type's hourly price × 730 h × the difference, on the group's `instances` line.
use super::env::*;
use crate::support::{self, repo};
use serde_json::Value;

#[tokio::test(flavor = "multi_thread")]
async fn dry_run_shows_the_monthly_cost_and_its_change_against_the_live_release() {
    let Some(moto) = support::service("ORCH_TEST_MOTO") else { return };
    let env = Env::new(&moto, false).await;
    let first = env.up(DIGEST_A, &[], &["--dry-run"]).success();
    let text = String::from_utf8_lossy(&first.get_output().stdout).into_owned();
    assert!(text.contains("no program recorded for a live release"), "{text}");
    env.up(DIGEST_A, &[], &[]).success();

    let dry = |args: &[&str]| -> Value {
        let out = env.up(DIGEST_A, &[], args).success();
        serde_json::from_slice(&out.get_output().stdout).unwrap()
    };
    let same = dry(&["--dry-run", "--json"]);
    assert_eq!(same["cost"]["delta_usd"], 0.0, "{:#}", same["cost"]);
    assert_eq!(same["cost"]["changes"], serde_json::json!([]));

    let table: Value = serde_json::from_str(
        &std::fs::read_to_string(repo().join("data/prices/eu-west-1.json")).unwrap(),
    )
    .unwrap();
    let hourly = table["prices"]["ec2.instance.t3.micro"]["usd"].as_f64().unwrap();
    let path = format!("stacks/{}.yaml", env.name);
    let stack = env.scratch.read(&path);
    for min in [3u32, 4] {
        let raised =
            stack.replace("  min: 2\n  desired: 2\n", &format!("  min: {min}\n  desired: {min}\n"));
        env.scratch.write(&path, &raised);
        let plan = dry(&["--dry-run", "--json"]);
        let changes = plan["cost"]["changes"].as_array().unwrap();
        let instances =
            changes.iter().find(|c| c["resource"] == "asg" && c["kind"] == "instances").unwrap();
        let expected = hourly * 730.0 * f64::from(min - 2);
        let got = instances["delta_usd"].as_f64().unwrap();
        assert!((got - expected).abs() < 1e-9, "min {min}: {got} vs {expected}");
        assert!(changes.iter().all(|c| c["resource"] == "asg"), "{changes:#?}");
        let text = env.up(DIGEST_A, &[], &["--dry-run"]).success();
        let text = String::from_utf8_lossy(&text.get_output().stdout).into_owned();
        assert!(text.contains(&format!("+${expected:.2}/month: asg {min} × t3.micro")), "{text}");
    }
}
