//! The real contracts (pulumi CLI and AWS as their sources say they behave): the stack file keeps
//! the deployed config across re-renders and on a fresh checkout, a protected environment is only
//! torn down with `--unprotect` and a final database snapshot, and `orch check` gates `orch up`.
use super::env::*;
use crate::support;

fn stack_file(env: &Env) -> serde_yaml::Value {
    let path = env.program_dir().join(format!("Pulumi.{}.yaml", env.name));
    serde_yaml::from_str(&std::fs::read_to_string(&path).unwrap_or_default()).unwrap_or_default()
}

fn config(file: &serde_yaml::Value, env: &Env, key: &str) -> Option<String> {
    file["config"][format!("orch-{}:{key}", env.name).as_str()].as_str().map(str::to_string)
}

#[tokio::test(flavor = "multi_thread")]
async fn deploy_time_config_survives_re_renders_and_a_fresh_checkout_runs_pulumi_with_it() {
    let Some(moto) = support::service("ORCH_TEST_MOTO") else { return };
    let env = Env::new(&moto, false).await;
    let out = env.up(DIGEST_A, &[], &[]).success();
    assert!(stderr(&out).contains("✓ AMI ami-"), "{}", stderr(&out));
    let deployed = stack_file(&env);
    let salt = deployed["encryptionsalt"].as_str().expect("pulumi wrote a salt").to_string();
    let image = config(&deployed, &env, "imageUri").expect("imageUri in the stack file");
    assert!(image.ends_with(DIGEST_A), "{image}");
    assert!(config(&deployed, &env, "amiId").is_some_and(|a| a.starts_with("ami-")));
    assert!(config(&deployed, &env, "certificateArn").is_some());
    let up = env.calls().into_iter().find(|c| c[0] == "up").unwrap();
    assert!(up.contains(&"--event-log".to_string()), "{up:?}");

    // Re-rendering (render, check) keeps what pulumi and `orch up` wrote.
    for args in [["render", "--env", &env.name], ["check", "--env", &env.name]] {
        env.scratch.orch().envs(env.envs(DIGEST_A)).args(args).assert().success();
        let file = stack_file(&env);
        assert_eq!(file["encryptionsalt"].as_str(), Some(salt.as_str()), "{args:?} lost the salt");
        assert_eq!(config(&file, &env, "imageUri").as_deref(), Some(image.as_str()), "{args:?}");
    }

    // A fresh checkout (CI, the drift timer): build/ is empty, drift restores the recorded file.
    std::fs::remove_dir_all(env.scratch.path().join("build")).unwrap();
    let drift = env
        .scratch
        .orch()
        .envs(env.envs(DIGEST_A))
        .args(["drift", "--env", &env.name, "--json"])
        .output()
        .unwrap();
    // (The certificate-wiring row needs a load balancer moto does not have; the refresh is what
    // matters here.)
    let report: serde_json::Value = serde_json::from_slice(&drift.stdout).unwrap_or_default();
    let resources = report["rows"].as_array().and_then(|rows| {
        rows.iter().find(|r| r["check"] == "resources").map(|r| r["level"].clone())
    });
    assert_eq!(
        resources,
        Some(serde_json::json!("ok")),
        "{}\n{report:#}",
        String::from_utf8_lossy(&drift.stderr)
    );
    // drift is read-only: it ran pulumi on a private copy of the program and left build/ alone.
    assert!(!env.scratch.path().join("build").exists(), "drift wrote build/");
    let refresh = env.calls().into_iter().find(|c| c[0] == "refresh").expect("refresh ran");
    assert!(refresh.contains(&"--preview-only".to_string()), "{refresh:?}");

    // And `up` on a fresh checkout keeps the stack's salt instead of letting pulumi make a new one.
    env.up(DIGEST_A, &[], &["--force"]).success();
    let file = stack_file(&env);
    assert_eq!(config(&file, &env, "imageUri").as_deref(), Some(image.as_str()));
    assert_eq!(stack_file(&env)["encryptionsalt"].as_str(), Some(salt.as_str()));
}

/// An environment made `protected` (with the Multi-AZ database that needs), deployed once.
async fn protected_env(moto: &str) -> Env {
    let env = Env::new(moto, false).await;
    let path = env.scratch.path().join(format!("stacks/{}.yaml", env.name));
    let text = std::fs::read_to_string(&path)
        .unwrap()
        .replace("protected: false", "protected: true")
        .replace("multi_az: false", "multi_az: true");
    std::fs::write(&path, text).unwrap();
    env.up(DIGEST_A, &[], &["--yes"]).success();
    env
}

#[tokio::test(flavor = "multi_thread")]
async fn a_protected_environment_is_torn_down_only_with_unprotect_after_a_final_snapshot() {
    let Some(moto) = support::service("ORCH_TEST_MOTO") else { return };
    let env = protected_env(&moto).await;
    let latest = format!("deployments/{}/latest.json", env.name);

    // The database the stack's output names, in moto.
    let db = format!("orch-{}-db", env.name);
    let rds = env.moto_database(&db).await;
    let outputs = serde_json::json!({ "dbInstanceIdentifier": db }).to_string();
    let down = |args: &[&str]| {
        let mut cmd = env.scratch.orch();
        cmd.envs(env.envs(DIGEST_A))
            .env("FAKE_PULUMI_OUTPUTS", &outputs)
            .args(["down", "--env", &env.name, "--yes"])
            .args(args);
        cmd.assert()
    };

    // Refused without --unprotect: nothing destroyed, the record stays.
    let out = down(&[]).code(2);
    assert!(stderr(&out).contains("is protected") && stderr(&out).contains("--unprotect"));
    assert!(!env.calls().iter().any(|c| c[0] == "destroy"));
    assert!(env.object(&latest).await.is_some());

    let plan = down(&["--unprotect", "--dry-run"]).success();
    let text = String::from_utf8_lossy(&plan.get_output().stdout).into_owned();
    assert!(
        text.contains("deletion protection off") && text.contains("final snapshot `orch-"),
        "{text}"
    );

    // A snapshot that cannot be taken (no such database): protection goes back on, nothing is
    // destroyed, and the error says so.
    let protection = |env: &Env| {
        let st = env.pulumi_stack();
        (st["protection"]["db"].as_bool(), st["protection"]["alb"].as_bool())
    };
    assert_eq!(protection(&env), (Some(true), Some(true)), "the up turned protection on");
    let ups = env.calls().iter().filter(|c| c[0] == "up").count();
    let mut failing = env.scratch.orch();
    failing
        .envs(env.envs(DIGEST_A))
        .env(
            "FAKE_PULUMI_OUTPUTS",
            serde_json::json!({ "dbInstanceIdentifier": "nope" }).to_string(),
        )
        .args(["down", "--env", &env.name, "--yes", "--unprotect"]);
    let out = failing.assert().code(2);
    assert!(
        stderr(&out).contains("deletion protection is back on; nothing was destroyed"),
        "{}",
        stderr(&out)
    );
    let targeted: Vec<Vec<String>> =
        env.calls().into_iter().filter(|c| c[0] == "up").skip(ups).collect();
    assert_eq!(targeted.len(), 2, "off, then back on: {targeted:?}");
    for call in &targeted {
        let targets: Vec<&String> =
            call.windows(2).filter(|w| w[0] == "--target").map(|w| &w[1]).collect();
        assert_eq!(targets.len(), 2, "only the database and the load balancer: {call:?}");
        assert!(targets.iter().any(|t| t.ends_with("aws-native:rds:DbInstance::db")), "{call:?}");
    }
    assert_eq!(protection(&env), (Some(true), Some(true)), "protection restored");
    assert!(!env.calls().iter().any(|c| c[0] == "destroy"));
    assert!(env.object(&latest).await.is_some(), "the record stays");

    // From a fresh checkout: protection off (only the two targets), snapshot, destroy; the RDS
    // handler's own extra snapshot is deleted, orch's final one kept and recorded.
    std::fs::remove_dir_all(env.scratch.path().join("build")).unwrap();
    let ups = env.calls().iter().filter(|c| c[0] == "up").count();
    let mut cmd = env.scratch.orch();
    cmd.envs(env.envs(DIGEST_A))
        .env("FAKE_PULUMI_OUTPUTS", &outputs)
        .env("FAKE_PULUMI_DB_DELETE_SNAPSHOT", "1")
        .args(["down", "--env", &env.name, "--yes", "--unprotect"]);
    let out = cmd.assert().success();
    let stdout = String::from_utf8_lossy(&out.get_output().stdout).into_owned();
    let snapshot = stdout
        .lines()
        .find_map(|l| l.strip_prefix("final snapshot: "))
        .and_then(|l| l.split_whitespace().next())
        .unwrap_or_else(|| panic!("no snapshot named in {stdout}"))
        .to_string();
    let calls: Vec<Vec<String>> = env.calls();
    let names: Vec<&str> = calls.iter().map(|c| c[0].as_str()).collect();
    assert_eq!(names.iter().filter(|c| **c == "up").count(), ups + 1, "{names:?}");
    let up = calls.iter().rposition(|c| c[0] == "up").unwrap();
    assert!(calls[up].contains(&"--target".to_string()), "{:?}", calls[up]);
    assert!(up < names.iter().position(|c| *c == "destroy").unwrap(), "{names:?}");
    let program = std::fs::read_to_string(env.program_dir().join("Pulumi.yaml")).unwrap();
    assert!(program.contains("deletionProtection: false"), "protection not turned off");
    assert!(program.contains("deleteAutomatedBackups: false"), "automated backups kept");
    assert_eq!(env.pulumi_stack()["resources"], serde_json::json!({}), "everything destroyed");
    let snaps = rds
        .describe_db_snapshots()
        .db_instance_identifier(&db)
        .snapshot_type("manual")
        .send()
        .await
        .unwrap();
    let ids: Vec<&str> =
        snaps.db_snapshots().iter().filter_map(|s| s.db_snapshot_identifier()).collect();
    assert_eq!(ids, [snapshot.as_str()], "only orch's final snapshot is left of the manual ones");
    assert_eq!(snaps.db_snapshots()[0].status(), Some("available"));
    assert!(stderr(&out).contains("a snapshot of") && stderr(&out).contains("the destroy made"));
    assert_eq!(env.object(&latest).await, None, "the record is retired");
    let marker: serde_json::Value = serde_json::from_str(
        &env.object(&format!("deployments/{}/down.json", env.name)).await.unwrap(),
    )
    .unwrap();
    assert_eq!(marker["final_snapshot"].as_str(), Some(snapshot.as_str()), "{marker:#}");
}

/// `down --unprotect` needs no deployment record: the deploy-time keys the targeted update does not
/// read get a placeholder, the rest is as with a record.
#[tokio::test(flavor = "multi_thread")]
async fn unprotect_works_without_a_deployment_record() {
    let Some(moto) = support::service("ORCH_TEST_MOTO") else { return };
    let env = protected_env(&moto).await;
    let db = format!("orch-{}-db2", env.name);
    env.moto_database(&db).await;
    // No record and no build/: what a teammate's fresh checkout has after the records were lost.
    let s3 = env.s3().await;
    let prefix = format!("deployments/{}/", env.name);
    let listed = s3.list_objects_v2().bucket(&env.bucket).prefix(&prefix).send().await.unwrap();
    for o in listed.contents() {
        s3.delete_object().bucket(&env.bucket).key(o.key().unwrap()).send().await.unwrap();
    }
    std::fs::remove_dir_all(env.scratch.path().join("build")).unwrap();

    let mut cmd = env.scratch.orch();
    cmd.envs(env.envs(DIGEST_A))
        .env("FAKE_PULUMI_OUTPUTS", serde_json::json!({ "dbInstanceIdentifier": db }).to_string())
        .args(["down", "--env", &env.name, "--yes", "--unprotect"]);
    let out = cmd.assert().success();
    assert!(stderr(&out).contains("no deployment record"), "{}", stderr(&out));
    let file = std::fs::read_to_string(env.program_dir().join(format!("Pulumi.{}.yaml", env.name)))
        .unwrap();
    assert!(file.contains("unused-by-orch-down"), "{file}");
    assert_eq!(env.pulumi_stack()["resources"], serde_json::json!({}), "everything destroyed");
    let stdout = String::from_utf8_lossy(&out.get_output().stdout).into_owned();
    assert!(stdout.contains("final snapshot: orch-"), "{stdout}");
}

#[tokio::test(flavor = "multi_thread")]
async fn orch_check_gates_up_before_anything_changes() {
    let Some(moto) = support::service("ORCH_TEST_MOTO") else { return };
    let env = Env::new(&moto, false).await;
    let path = env.scratch.path().join(format!("stacks/{}.yaml", env.name));
    let text = std::fs::read_to_string(&path).unwrap().replace("type: t3.micro", "type: t3.smal");
    std::fs::write(&path, text).unwrap();
    let before = env.moto_state().await;
    for args in [&["--dry-run"][..], &[]] {
        let out = env.up(DIGEST_A, &[], args).code(2);
        let err = stderr(&out);
        assert!(
            err.contains("invalid-value")
                && err.contains("launchTemplateData.instanceType")
                && err.contains("t3.smal"),
            "{err}"
        );
        assert!(err.contains("orch check --env"), "{err}");
    }
    assert_eq!(env.moto_state().await, before, "nothing may change");
    assert!(env.calls().is_empty(), "pulumi never ran");
}

#[tokio::test(flavor = "multi_thread")]
async fn releases_lists_the_history_and_rollback_redeploys_an_earlier_digest_without_a_build() {
    let Some(moto) = support::service("ORCH_TEST_MOTO") else { return };
    let env = Env::new(&moto, false).await;
    env.up(DIGEST_A, &[], &[]).success();
    env.up(DIGEST_B, &[], &[]).success();
    let releases = || {
        let out = env
            .scratch
            .orch()
            .envs(env.envs(DIGEST_A))
            .args(["releases", "--env", &env.name, "--json"])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        v["releases"].as_array().unwrap().clone()
    };
    let rows = releases();
    assert_eq!(rows.len(), 2, "{rows:#?}");
    assert_eq!(
        (rows[0]["digest"].as_str(), rows[0]["live"].as_bool()),
        (Some(DIGEST_B), Some(true))
    );
    assert_eq!(rows[1]["digest"], DIGEST_A);
    assert!(rows[0]["ami"].as_str().is_some_and(|a| a.starts_with("ami-")));
    assert!(rows[0]["by"].as_str().is_some_and(|b| b.contains('@')));

    // The default: the release before the live one. ORCH_IMAGE is not what picks the image here.
    let rollback = |args: &[&str]| {
        let mut cmd = env.scratch.orch();
        cmd.envs(env.envs(DIGEST_A))
            .env_remove("ORCH_IMAGE")
            .args(["rollback", "--env", &env.name])
            .args(args);
        cmd.assert()
    };
    let ups = env.calls().iter().filter(|c| c[0] == "up").count();
    rollback(&[]).success();
    assert_eq!(env.calls().iter().filter(|c| c[0] == "up").count(), ups + 1);
    let latest: serde_json::Value = serde_json::from_str(
        &env.object(&format!("deployments/{}/latest.json", env.name)).await.unwrap(),
    )
    .unwrap();
    assert_eq!(latest["image_digest"], DIGEST_A);
    let rows = releases();
    assert_eq!(rows.len(), 3);
    assert_eq!(
        (rows[0]["digest"].as_str(), rows[0]["live"].as_bool()),
        (Some(DIGEST_A), Some(true))
    );

    // By digest prefix, forward again.
    let hex = DIGEST_B.trim_start_matches("sha256:");
    rollback(&["--to", &hex[..10]]).success();
    assert_eq!(releases()[0]["digest"], DIGEST_B);
    let out = rollback(&["--to", "deadbeefdead"]).code(2);
    assert!(stderr(&out).contains("no deployed release matches"), "{}", stderr(&out));
}
