//! What orch reports is what runs (issue 23): rollouts, refreshes, rollbacks and drift decided from
//! the group as the stateful Auto Scaling stand-in holds it (env.rs), and a release history that
//! records every run that changed the stack with how it ended.
use super::env::*;
use crate::support;

/// Failure 1: a first `orch up` whose verification failed wrote no record, so the rerun with a
/// fixed image never refreshed the group. Now the failed run is a release (live, unverified) and the
/// rerun rolls the group because the group, read from Auto Scaling, is behind the program.
#[tokio::test(flavor = "multi_thread")]
async fn a_rerun_after_a_failed_verification_rolls_the_group_out() {
    let Some(moto) = support::service("ORCH_TEST_MOTO") else { return };
    let env = Env::new(&moto, false).await;
    let bad = [("FAKE_PULUMI_HTTP_URL", "http://127.0.0.1:9/")];
    env.up(DIGEST_A, &bad, &[]).code(1);
    let rec = env.latest().await;
    assert_eq!(
        (rec["state"].as_str(), rec["image_digest"].as_str()),
        (Some("unverified"), Some(DIGEST_A))
    );
    assert_eq!(env.group_version(), "1");

    let out = env.up(DIGEST_B, &[], &[]).success();
    let text = stderr(&out);
    assert!(text.contains("the group launches v1, the program's launch template is v2"), "{text}");
    assert_eq!(env.group_version(), "2", "the fix was rolled out: {text}");
    let rec = env.latest().await;
    assert_eq!(
        (rec["state"].as_str(), rec["image_digest"].as_str()),
        (Some("verified"), Some(DIGEST_B))
    );

    // Same inputs as the verified record, but the group was moved back outside orch: not a no-op.
    env.change_group(|g| g.version = "1".into());
    let plan = env.up(DIGEST_B, &[], &["--dry-run"]).success();
    let plan = String::from_utf8_lossy(&plan.get_output().stdout).into_owned();
    assert!(!plan.contains("(no-op"), "{plan}");
    assert!(
        plan.contains(&format!("group {} on v1", env.asg())),
        "the plan names what it saw: {plan}"
    );
    let out = env.up(DIGEST_B, &[], &[]).success();
    assert!(!stderr(&out).contains("pulumi skipped"), "{}", stderr(&out));
    assert_eq!(env.group_version(), "2", "{}", stderr(&out));
    // And now it is one.
    let out = env.up(DIGEST_B, &[], &[]).success();
    assert!(stderr(&out).contains("pulumi skipped"), "{}", stderr(&out));
}

/// Failure 2: on InstanceRefreshInProgress orch followed whatever refresh was running, towards
/// whatever version, and reported success; a refresh Cancelling ended in "refresh  of … is not
/// listed". Now it waits for another refresh to end, then starts its own, and the group must end on
/// the program's version.
#[tokio::test(flavor = "multi_thread")]
async fn someone_elses_refresh_is_waited_for_and_ours_follows() {
    let Some(moto) = support::service("ORCH_TEST_MOTO") else { return };
    let env = Env::new(&moto, false).await;
    env.up(DIGEST_A, &[], &[]).success();
    let other = |id: &str, status: &str, version: &str| Refresh::seeded(id, status, version, 3);
    env.change_group(|g| g.refreshes.insert(0, other("ir-other", "InProgress", "7")));
    let out = env.up(DIGEST_B, &[], &[]).success();
    let text = stderr(&out);
    assert!(
        text.contains("refresh ir-other is InProgress towards v7, not v2: waiting for it to end"),
        "{text}"
    );
    assert!(text.contains("refresh ir-other ended Successful; deciding again"), "{text}");
    assert_eq!(env.group_version(), "2", "the group ends on the program's version: {text}");

    env.change_group(|g| g.refreshes.insert(0, other("ir-cancel", "Cancelling", "2")));
    let out = env.up(DIGEST_A, &[], &[]).success();
    let text = stderr(&out);
    assert!(text.contains("refresh ir-cancel is Cancelling towards v2, not v3"), "{text}");
    assert!(text.contains("refresh ir-cancel ended Cancelled"), "{text}");
    assert_eq!(env.group_version(), "3", "{text}");
}

/// Failure 3: after an unrecorded bad deploy `orch rollback` skipped the last good release as
/// "live" and `--to` it printed "pulumi skipped". Now the bad release is live and unverified, and
/// the rollback redeploys the last verified one for real.
#[tokio::test(flavor = "multi_thread")]
async fn after_a_failed_verification_rollback_redeploys_the_last_verified_release() {
    let Some(moto) = support::service("ORCH_TEST_MOTO") else { return };
    let env = Env::new(&moto, false).await;
    env.up(DIGEST_A, &[], &[]).success();
    env.up(DIGEST_B, &[("FAKE_PULUMI_HTTP_URL", "http://127.0.0.1:9/")], &[]).code(1);

    let out = env.orch("releases", &["--json"]).success();
    let rows: serde_json::Value = serde_json::from_slice(&out.get_output().stdout).unwrap();
    let rows = rows["releases"].as_array().expect("a list of releases");
    assert_eq!(rows[0]["digest"], DIGEST_B);
    assert_eq!(
        (rows[0]["live"].as_bool(), rows[0]["outcome"].as_str()),
        (Some(true), Some("unverified"))
    );
    assert_eq!(
        (rows[1]["digest"].as_str(), rows[1]["outcome"].as_str()),
        (Some(DIGEST_A), Some("verified"))
    );

    let ups =
        |env: &Env| env.calls().iter().filter(|c| c.first().is_some_and(|a| a == "up")).count();
    let before = ups(&env);
    let out = env.orch("rollback", &[]).success();
    let text = stderr(&out);
    assert!(!text.contains("pulumi skipped"), "{text}");
    assert_eq!(ups(&env), before + 1, "pulumi up ran: {text}");
    let rec = env.latest().await;
    assert_eq!(
        (rec["state"].as_str(), rec["image_digest"].as_str()),
        (Some("verified"), Some(DIGEST_A))
    );
    assert_eq!(env.group_version(), "3", "the rollback rolled the group: {text}");
}

/// Failure 4: drift compared the record with the outputs and the instances with the group, so a
/// group left on an older version than the program (here: a refresh rolled back) was never drift.
#[tokio::test(flavor = "multi_thread")]
async fn drift_reports_a_group_behind_the_program_and_the_release_says_rolled_back() {
    let Some(moto) = support::service("ORCH_TEST_MOTO") else { return };
    let env = Env::new(&moto, false).await;
    env.up(DIGEST_A, &[], &[]).success();
    let (stub, _) = env.autoscaling("RollbackSuccessful");
    let out = env.up(DIGEST_B, &[("AWS_ENDPOINT_URL_AUTO_SCALING", stub.as_str())], &[]).code(2);
    assert!(stderr(&out).contains("release recorded as rolled_back"), "{}", stderr(&out));
    assert_eq!(env.latest().await["state"], "rolled_back");
    assert_eq!(env.group_version(), "1");

    let out = env.orch("drift", &["--json"]).get_output().clone();
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let rollout = report["rows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["check"] == "rollout")
        .unwrap_or_else(|| panic!("a rollout row: {report:#}"));
    assert_eq!(rollout["level"], "bad", "{rollout:#}");
    assert!(
        rollout["summary"]
            .as_str()
            .unwrap()
            .contains("launches v1, the program's launch template is v2"),
        "{rollout:#}"
    );
    assert_ne!(out.status.code(), Some(0));

    // The next `orch up` with the same inputs is no no-op: it rolls the group out.
    env.up(DIGEST_B, &[], &[]).success();
    assert_eq!(env.group_version(), "2");
}

/// Failure 5: images expired under a running release. Each release tags its image, which the
/// lifecycle policy never expires; a rollback (or ORCH_IMAGE) whose image is gone stops before
/// anything changes; `orch releases` marks releases whose image is gone; two stacks sharing a
/// repository with different `keep` is a configuration error naming both files.
#[tokio::test(flavor = "multi_thread")]
async fn release_images_are_kept_and_a_missing_one_stops_the_run_before_anything_changes() {
    let Some(moto) = support::service("ORCH_TEST_MOTO") else { return };
    let env = Env::new(&moto, false).await;
    env.up(DIGEST_A, &[], &[]).success();
    let tags = env.image_tags(DIGEST_A).await.unwrap();
    let prefix = format!("release-{}-", env.name);
    assert!(tags.iter().any(|t| t.starts_with(&prefix)), "{tags:?}");
    env.up(DIGEST_B, &[], &[]).success();

    // Release A's image disappears (deleted by hand, or expired by a policy from before the tags).
    let id = aws_sdk_ecr::types::ImageIdentifier::builder().image_digest(DIGEST_A).build();
    env.ecr()
        .await
        .batch_delete_image()
        .repository_name(&env.repo)
        .image_ids(id)
        .send()
        .await
        .unwrap();
    assert_eq!(env.image_tags(DIGEST_A).await, None);
    let out = env.orch("releases", &[]).success();
    let table = String::from_utf8_lossy(&out.get_output().stdout).into_owned();
    assert!(table.contains("verified (image gone)"), "{table}");
    let out = env.orch("releases", &["--json"]).success();
    let json: serde_json::Value = serde_json::from_slice(&out.get_output().stdout).unwrap();
    assert_eq!(json["releases"][0]["image_present"], true, "{json:#}");
    assert_eq!(json["releases"][1]["image_present"], false, "{json:#}");

    let calls = env.calls().len();
    let latest = env.latest().await;
    let out = env.orch("rollback", &[]).code(2);
    assert!(stderr(&out).contains("is not in its repository"), "{}", stderr(&out));
    let out = env.up(DIGEST_A, &[], &[]).code(2);
    assert!(stderr(&out).contains("is not in its repository"), "{}", stderr(&out));
    assert_eq!(env.calls().len(), calls, "pulumi was not run");
    assert_eq!(env.latest().await, latest, "nothing was recorded");

    // Another AWS stack on the same repository and region that keeps another count.
    let other = env
        .scratch
        .read(&format!("stacks/{}.yaml", env.name))
        .replace("keep: 20", "keep: 5")
        .replace(&env.bucket, &format!("{}-o", env.bucket));
    env.scratch.write(&format!("stacks/{}-o.yaml", env.name), &other);
    let out = env.up(DIGEST_B, &[], &[]).code(2);
    let text = stderr(&out);
    assert!(
        text.contains(&format!("{}.yaml keeps 20", env.name))
            && text.contains(&format!("{}-o.yaml keeps 5", env.name)),
        "{text}"
    );
}
