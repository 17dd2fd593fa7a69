//! `orch down` on the aws target: plan, destroy, record retired, what is kept, and the next `up`.
use super::env::*;
use crate::support;

#[tokio::test(flavor = "multi_thread")]
async fn down_destroys_the_stack_retires_the_record_keeps_the_zone_and_the_next_up_deploys_again() {
    let Some(moto) = support::service("ORCH_TEST_MOTO") else { return };
    let env = Env::new(&moto, true).await;
    let down = |args: &[&str]| {
        let mut cmd = env.scratch.orch();
        cmd.envs(env.envs(DIGEST_A)).args(["down", "--env", &env.name]).args(args);
        cmd.assert()
    };
    // Never deployed: nothing to do, nothing created.
    let before = env.moto_state().await;
    let out = down(&[]).success();
    assert!(String::from_utf8_lossy(&out.get_output().stdout).contains("nothing was deployed"));
    assert_eq!(env.moto_state().await, before);

    env.up(DIGEST_A, &[], &[]).success();
    let latest = format!("deployments/{}/latest.json", env.name);
    // The log group RDS makes for the database when it first exports a log (not the program's).
    let record: serde_json::Value =
        serde_json::from_str(&env.object(&latest).await.unwrap()).unwrap();
    let db = record["outputs"]["dbInstanceIdentifier"].as_str().expect("db output").to_string();
    let rds_group = format!("/aws/rds/instance/{db}/postgresql");
    let logs = aws_sdk_cloudwatchlogs::Client::new(&env.sdk().await);
    logs.create_log_group().log_group_name(&rds_group).send().await.unwrap();
    let groups = || async {
        let out = logs
            .describe_log_groups()
            .log_group_name_prefix(format!("/aws/rds/instance/{db}/"))
            .send()
            .await
            .unwrap();
        out.log_groups()
            .iter()
            .filter_map(|g| g.log_group_name())
            .map(str::to_owned)
            .collect::<Vec<_>>()
    };
    let before = env.moto_state().await;
    let plan = down(&["--dry-run"]).success();
    let text = String::from_utf8_lossy(&plan.get_output().stdout).into_owned();
    assert!(
        text.contains("[destroy] pulumi destroy")
            && text.contains("[retire ] deployment record")
            && text.contains("hosted zone and NS delegation")
            && text.contains(&format!("/aws/rds/instance/{db}/*")),
        "{text}"
    );
    assert_eq!(env.moto_state().await, before, "--dry-run changed moto state");
    assert_eq!(groups().await, std::slice::from_ref(&rds_group), "--dry-run deleted a log group");
    assert!(!env.calls().iter().any(|c| c[0] == "destroy"));

    let out = down(&[]).success();
    assert!(
        stderr(&out).contains("✓ stack") && stderr(&out).contains("destroyed"),
        "{}",
        stderr(&out)
    );
    let destroy = env.calls().into_iter().find(|c| c[0] == "destroy").expect("pulumi destroy ran");
    assert!(
        destroy.iter().any(|a| a == "--yes") && destroy.iter().any(|a| a == "--event-log"),
        "{destroy:?}"
    );
    assert_eq!(env.object(&latest).await, None, "the record is retired");
    assert!(groups().await.is_empty(), "the database's log groups are deleted");
    assert!(stderr(&out).contains(&format!("log group {rds_group} deleted")), "{}", stderr(&out));
    assert_eq!(env.object(&format!("locks/{}.json", env.name)).await, None, "the lock is released");
    let history = env
        .s3()
        .await
        .list_objects_v2()
        .bucket(&env.bucket)
        .prefix(format!("deployments/{}/history/", env.name))
        .send()
        .await
        .unwrap();
    assert!(history.contents().iter().any(|o| o.key().unwrap_or("").ends_with("-destroyed.json")));
    let domain = env.domain.clone().unwrap();
    assert_eq!(env.zones_named(&domain).await.len(), 1, "the zone is kept");
    assert_eq!(env.certs_for(&domain).await, 1, "the certificate is kept");

    // status says the environment is down, since when, and what ran before (exit 1: not serving).
    let status = env
        .scratch
        .orch()
        .envs(env.envs(DIGEST_A))
        .args(["status", "--env", &env.name, "--json"])
        .assert()
        .code(1);
    let report: serde_json::Value = serde_json::from_slice(&status.get_output().stdout).unwrap();
    assert_eq!(report["verdict"], "down", "{report}");
    assert_eq!(report["rows"][0]["data"]["image_digest"], DIGEST_A, "{report}");

    // The same digest again is not a no-op: the stack is gone, so up deploys and records anew.
    let ups = env.calls().iter().filter(|c| c[0] == "up").count();
    let again = env.up(DIGEST_A, &[], &[]).success();
    assert!(!stderr(&again).contains("no changes since the last deployment"), "{}", stderr(&again));
    assert_eq!(env.calls().iter().filter(|c| c[0] == "up").count(), ups + 1);
    assert!(env.object(&latest).await.is_some());
    assert_eq!(env.zones_named(&domain).await.len(), 1, "the kept zone is reused");
    assert_eq!(
        env.object(&format!("deployments/{}/down.json", env.name)).await,
        None,
        "a deployment clears the down marker"
    );
}
