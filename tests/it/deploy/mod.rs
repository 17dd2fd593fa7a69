//! `orch up` on the aws target against moto, with the fake pulumi (tests/fake-pulumi/pulumi) and a
//! stub AutoScaling endpoint for instance refreshes. The live URL the fake pulumi outputs is a real
//! local tier (two zones behind the TLS load balancer), so `orch up` runs the full `orch verify`
//! suite after `pulumi up`. Every test uses its own environment name, bucket and domain, so they
//! share one moto.
mod canary;
mod contracts;
mod cost;
mod env;
mod locks;
mod recovery;
mod teardown;
mod truth;

use crate::support::{self, Scratch};
use env::*;
use std::sync::{Arc, Mutex};

#[tokio::test(flavor = "multi_thread")]
async fn up_runs_every_step_to_a_record_then_the_rerun_is_a_no_op_and_dry_run_changes_nothing() {
    let Some(moto) = support::service("ORCH_TEST_MOTO") else { return };
    let env = Env::new(&moto, true).await;
    let domain = env.domain.clone().unwrap();

    let before = env.moto_state().await;
    let plan = env.up(DIGEST_A, &[], &["--dry-run"]).success();
    let plan_text = String::from_utf8_lossy(&plan.get_output().stdout).into_owned();
    assert!(
        plan_text.contains("[create] state bucket")
            && plan_text.contains("[create] hosted zone")
            && plan_text.contains("[run   ] pulumi up"),
        "{plan_text}"
    );
    let json = env.up(DIGEST_A, &[], &["--dry-run", "--json"]).success();
    let plan: serde_json::Value = serde_json::from_slice(&json.get_output().stdout).unwrap();
    let steps: Vec<(&str, &str)> = plan["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["name"].as_str().unwrap(), s["action"].as_str().unwrap()))
        .collect();
    assert!(
        steps.contains(&("state bucket", "create")) && steps.contains(&("AMI", "exists")),
        "{plan:#}"
    );
    assert!(steps.contains(&("pulumi up", "run")), "{plan:#}");
    assert_eq!(env.moto_state().await, before, "--dry-run changed moto state");

    let run = env.up(DIGEST_A, &[], &[]).success();
    // The plan that runs is the plan --dry-run printed: the same steps, in the same order.
    let planned: Vec<&str> =
        plan["steps"].as_array().unwrap().iter().map(|s| s["name"].as_str().unwrap()).collect();
    let ran: Vec<String> = stderr(&run)
        .lines()
        .filter_map(|l| {
            l.strip_prefix("→ ").and_then(|l| l.split_once(": ")).map(|(n, _)| n.to_string())
        })
        .collect();
    assert_eq!(ran, planned, "{}", stderr(&run));
    assert_eq!(
        String::from_utf8_lossy(&run.get_output().stdout).trim().lines().last(),
        Some(env.url.as_str())
    );
    assert!(
        stderr(&run).contains("✓ verify: ")
            && stderr(&run).contains("redirect, HTTPS and our 404 page checked"),
        "{}",
        stderr(&run)
    );

    // State bucket: encrypted, closed to the public; no lock left behind; a record with the digest.
    let s3 = env.s3().await;
    assert!(s3.get_bucket_encryption().bucket(&env.bucket).send().await.is_ok());
    let pab = s3
        .get_public_access_block()
        .bucket(&env.bucket)
        .send()
        .await
        .unwrap()
        .public_access_block_configuration
        .unwrap();
    assert_eq!(pab.block_public_acls(), Some(true));
    assert_eq!(
        env.object(&format!("locks/{}.json", env.name)).await,
        None,
        "the lock must be released"
    );
    let record: serde_json::Value = serde_json::from_str(
        &env.object(&format!("deployments/{}/latest.json", env.name))
            .await
            .expect("a deployment record"),
    )
    .unwrap();
    assert_eq!(record["image_digest"], DIGEST_A);
    assert_eq!(record["outputs"]["url"], env.url.as_str());
    assert!(record["program_hash"].as_str().unwrap().starts_with("sha256:"));
    assert!(
        record["certificate_arn"].as_str().is_some_and(|a| a.starts_with("arn:aws:acm:")),
        "{record}"
    );

    // DNS: one zone, delegated from the parent with the same name servers; cert ISSUED and wired.
    let zones = env.zones_named(&domain).await;
    assert_eq!(zones.len(), 1);
    let child = env.r53().await.get_hosted_zone().id(&zones[0]).send().await.unwrap();
    let mut ns: Vec<String> = child
        .delegation_set()
        .unwrap()
        .name_servers()
        .iter()
        .map(|n| n.trim_end_matches('.').to_string())
        .collect();
    ns.sort();
    let parent_id = env.zones_named(&env.parent).await.remove(0);
    let parent = env
        .r53()
        .await
        .list_resource_record_sets()
        .hosted_zone_id(&parent_id)
        .start_record_name(&domain)
        .start_record_type(aws_sdk_route53::types::RrType::Ns)
        .send()
        .await
        .unwrap();
    let set = parent
        .resource_record_sets()
        .iter()
        .find(|r| r.name().trim_end_matches('.') == domain)
        .expect("NS delegation in the parent");
    let mut delegated: Vec<String> = set
        .resource_records()
        .iter()
        .map(|r| r.value().trim_end_matches('.').to_string())
        .collect();
    delegated.sort();
    assert_eq!(delegated, ns);
    assert_eq!(env.certs_for(&domain).await, 1);
    let sets = env.record_sets(&zones[0]).await;
    assert!(sets.iter().any(|(_, t)| t == "CNAME"), "validation CNAME in the zone: {sets:?}");
    let config_calls: Vec<_> = env
        .calls()
        .into_iter()
        .filter(|c| c.first().map(String::as_str) == Some("config"))
        .collect();
    let flat = format!("{config_calls:?}");
    assert!(
        flat.contains("certificateArn=arn:aws:acm:")
            && flat.contains(&format!(
                "imageUri=123456789012.dkr.ecr.eu-west-1.amazonaws.com/{}@{DIGEST_A}",
                env.repo
            ))
            && flat.contains("hostedZoneId="),
        "{flat}"
    );

    // Rerun: no-op, pulumi not run again.
    let ups = env.calls().iter().filter(|c| c[0] == "up").count();
    let again = env.up(DIGEST_A, &[], &[]).success();
    assert!(stderr(&again).contains("no changes since the last deployment"), "{}", stderr(&again));
    assert_eq!(
        env.calls().iter().filter(|c| c[0] == "up").count(),
        ups,
        "pulumi up ran on the no-op path"
    );

    // A dry run after the deployment: everything exists, no-op, and still nothing changes.
    let before = env.moto_state().await;
    let plan = env.up(DIGEST_A, &[], &["--dry-run"]).success();
    let plan_text = String::from_utf8_lossy(&plan.get_output().stdout).into_owned();
    assert!(
        plan_text.contains("no-op")
            && plan_text.contains("[exists] certificate")
            && plan_text.contains("[exists] NS delegation"),
        "{plan_text}"
    );
    assert_eq!(env.moto_state().await, before);
    // A new image is a change.
    let plan = env.up(DIGEST_B, &[], &["--dry-run"]).success();
    assert!(String::from_utf8_lossy(&plan.get_output().stdout)
        .contains("image aaaaaaaaaaaa → bbbbbbbbbbbb"));
}

#[tokio::test(flavor = "multi_thread")]
async fn pulumi_failure_partial_and_cancellation_are_reported_recorded_as_failed_and_release_the_lock(
) {
    let Some(moto) = support::service("ORCH_TEST_MOTO") else { return };
    let env = Env::new(&moto, false).await;
    let cases = [
        ("fail-mid-update", "failed (exit 1: error)", "failed: db;"),
        ("partial", "failed (exit 1: error)", "partially applied: db;"),
        ("cancel", "was cancelled", "unchanged"),
    ];
    for (scenario, verb, what) in cases {
        let out = env
            .up(DIGEST_A, &[("FAKE_PULUMI_SCENARIO", scenario), ("FAKE_PULUMI_FAIL_AT", "db")], &[])
            .code(2);
        let text = stderr(&out);
        assert!(text.contains(verb) && text.contains(what), "{scenario}: {text}");
        if scenario != "cancel" {
            assert!(
                text.contains(&format!("db: create db: operation failed: fake {scenario}")),
                "{scenario}: diagnostics kept: {text}"
            );
        }
        assert!(text.contains("hint: "), "{text}");
        // The release was recorded before pulumi changed the stack, and says how it ended.
        let rec = env.latest().await;
        assert_eq!(rec["state"], "failed", "{scenario}: {rec}");
        assert!(rec["note"].as_str().is_some_and(|n| n.contains("pulumi")), "{scenario}: {rec}");
        assert_eq!(
            env.object(&format!("locks/{}.json", env.name)).await,
            None,
            "{scenario} must release the lock"
        );
    }
    // Other documented exit codes are named.
    let out = env
        .up(
            DIGEST_A,
            &[("FAKE_PULUMI_SCENARIO", "fail-mid-update"), ("FAKE_PULUMI_EXIT", "3")],
            &[],
        )
        .code(2);
    assert!(
        stderr(&out).contains("exit 3: authentication error")
            && stderr(&out).contains("check the AWS credentials"),
        "{}",
        stderr(&out)
    );
    // The rerun converges: the resources done before the failures are unchanged, the rest created.
    let ok = env.up(DIGEST_A, &[], &[]).success();
    assert!(stderr(&ok).contains("pulumi: "), "{}", stderr(&ok));
    assert_eq!(env.latest().await["state"], "verified");
}

/// The Auto Scaling stand-in refuses what the real StartInstanceRefresh refuses: the request orch
/// sent before (AutoRollback, no desired configuration), `$Latest`, an SSM-parameter image.
#[tokio::test(flavor = "multi_thread")]
async fn the_strict_autoscaling_stand_in_refuses_an_irreversible_refresh() {
    let dir = tempfile::tempdir().unwrap();
    let program = |version: &str, image: &str| {
        format!("resources:\n  asg:\n    properties:\n      launchTemplate: {{version: \"{version}\"}}\n  launchTemplate:\n    properties:\n      launchTemplateData: {{imageId: \"{image}\"}}\n")
    };
    std::fs::write(
        dir.path().join("Pulumi.yaml"),
        program("${launchTemplate.latestVersionNumber}", "${amiId}"),
    )
    .unwrap();
    let base = "Action=StartInstanceRefresh&AutoScalingGroupName=g&Preferences.MinHealthyPercentage=100&Preferences.AutoRollback=true";
    let refused = |body: &str| {
        refresh_refusal(&form(body), dir.path()).map(|(code, m)| format!("{code}: {m}"))
    };
    assert!(refused(base).is_some_and(|m| m.starts_with("ValidationError")
        && m.contains("DesiredConfiguration parameter is empty")));
    let desired = "&DesiredConfiguration.LaunchTemplate.LaunchTemplateId=lt-1&DesiredConfiguration.LaunchTemplate.Version=";
    assert!(refused(&format!("{base}{desired}%24Latest")).is_some_and(|m| m.contains("$Latest")));
    assert_eq!(refused(&format!("{base}{desired}3")), None);
    assert!(refused(&format!("{base}{desired}3&Preferences.MaxHealthyPercentage=250"))
        .is_some_and(|m| m.starts_with("ValidationError")));
    std::fs::write(dir.path().join("Pulumi.yaml"), program("$Latest", "${amiId}")).unwrap();
    assert!(
        refused(&format!("{base}{desired}3")).is_some_and(|m| m.contains("the group uses $Latest"))
    );
    std::fs::write(dir.path().join("Pulumi.yaml"), program("3", "resolve:ssm:/aws/service/x"))
        .unwrap();
    assert!(refused(&format!("{base}{desired}3")).is_some_and(|m| m.contains("SSM parameter")));

    // Over the wire: the SDK sees the refusal as a service error with that code.
    let (url, _) = autoscaling_stub(
        "Successful",
        dir.path().to_path_buf(),
        dir.path().join("groups.json"),
        None,
    );
    let sdk = aws_config::defaults(aws_sdk_s3::config::BehaviorVersion::latest())
        .region(aws_sdk_s3::config::Region::new("eu-west-1"))
        .endpoint_url(&url)
        .credentials_provider(aws_sdk_s3::config::Credentials::new("t", "t", None, None, "t"))
        .load()
        .await;
    let asg = aws_sdk_autoscaling::Client::new(&sdk);
    let err = asg
        .start_instance_refresh()
        .auto_scaling_group_name("g")
        .preferences(
            aws_sdk_autoscaling::types::RefreshPreferences::builder().auto_rollback(true).build(),
        )
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.as_service_error().and_then(|e| e.meta().code()), Some("ValidationError"));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_new_image_rolls_the_group_with_an_instance_refresh_and_a_failed_refresh_is_an_error() {
    let Some(moto) = support::service("ORCH_TEST_MOTO") else { return };
    let env = Env::new(&moto, false).await;
    env.up(DIGEST_A, &[], &[]).success();

    let (stub, seen) = env.autoscaling("Successful");
    let out = env.up(DIGEST_B, &[("AWS_ENDPOINT_URL_AUTO_SCALING", stub.as_str())], &[]).success();
    assert!(stderr(&out).contains("instance refresh ir-1: successful"), "{}", stderr(&out));
    let bodies = seen.lock().unwrap().clone();
    let start = bodies
        .iter()
        .find(|b| b.contains("Action=StartInstanceRefresh"))
        .expect("StartInstanceRefresh");
    let request = form(start);
    for (key, want) in [
        ("Preferences.MinHealthyPercentage", "100"),
        ("Preferences.MaxHealthyPercentage", "200"),
        ("Preferences.SkipMatching", "true"),
        ("Preferences.AutoRollback", "true"),
        ("AutoScalingGroupName", &format!("orch-{}-asg", env.name)),
        ("DesiredConfiguration.LaunchTemplate.Version", "2"),
        ("Preferences.AlarmSpecification.Alarms.member.1", "fake-targetErrorsAlarm"),
    ] {
        assert_eq!(request.get(key).map(String::as_str), Some(want), "{key} in {start}");
    }
    assert!(
        request
            .get("DesiredConfiguration.LaunchTemplate.LaunchTemplateId")
            .is_some_and(|id| id.starts_with("lt-")),
        "{start}"
    );
    assert_eq!(
        refresh_refusal(&request, &env.program_dir()),
        None,
        "the strict stand-in accepts it"
    );
    assert!(
        bodies.iter().filter(|b| b.contains("Action=DescribeInstanceRefreshes")).count() >= 2,
        "followed to the end"
    );

    let (stub, _) = env.autoscaling("RollbackSuccessful");
    let out = env.up(DIGEST_A, &[("AWS_ENDPOINT_URL_AUTO_SCALING", stub.as_str())], &[]).code(2);
    assert!(stderr(&out).contains("ended RollbackSuccessful"), "{}", stderr(&out));
    let record: serde_json::Value = serde_json::from_str(
        &env.object(&format!("deployments/{}/latest.json", env.name)).await.unwrap(),
    )
    .unwrap();
    assert_eq!(
        (record["image_digest"].as_str(), record["state"].as_str()),
        (Some(DIGEST_A), Some("rolled_back")),
        "the rolled-back release is live in the stack and says so"
    );
    assert_eq!(env.group_version(), "2", "the instances went back to the previous version");
}

#[tokio::test(flavor = "multi_thread")]
async fn without_a_domain_a_self_signed_certificate_is_imported_once_and_reused() {
    let Some(moto) = support::service("ORCH_TEST_MOTO") else { return };
    let env = Env::new(&moto, false).await;
    // ACM lists only RSA keys unless asked for others; the self-signed key is EC P-256.
    let (acm, listed) = acm_as_aws(&moto);
    let acm_env = [("AWS_ENDPOINT_URL_ACM", acm.as_str())];
    env.up(DIGEST_A, &acm_env, &[]).success();
    let tagged = || async {
        let acm = env.acm().await;
        let mut n = 0;
        for c in env.certs().await {
            let tags = acm
                .list_tags_for_certificate()
                .certificate_arn(c.certificate_arn().unwrap())
                .send()
                .await
                .unwrap();
            n += tags
                .tags()
                .iter()
                .filter(|t| t.key() == "orch-env" && t.value() == Some(env.name.as_str()))
                .count();
        }
        n
    };
    assert_eq!(tagged().await, 1);
    env.up(DIGEST_B, &acm_env, &[]).success();
    assert_eq!(tagged().await, 1, "the certificate is reused, not imported again");
    let plan = env.up(DIGEST_B, &acm_env, &["--dry-run"]).success();
    assert!(String::from_utf8_lossy(&plan.get_output().stdout)
        .contains("[exists] certificate        self-signed, 36"));
    let listed = listed.lock().unwrap();
    assert!(!listed.is_empty(), "orch listed the certificates through the stand-in");
    for body in listed.iter() {
        assert!(body.contains("EC_prime256v1"), "every listing asks for EC keys too: {body}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failed_verification_is_a_finding_and_is_recorded_as_unverified() {
    let Some(moto) = support::service("ORCH_TEST_MOTO") else { return };
    let env = Env::new(&moto, false).await;
    // The tier answers HTTPS, but nothing listens where the program says HTTP is: the redirect fails.
    let out = env.up(DIGEST_A, &[("FAKE_PULUMI_HTTP_URL", "http://127.0.0.1:9/")], &[]).code(1);
    let text = stderr(&out);
    assert!(text.contains("failed verification"), "{text}");
    let row = |name: &str| text.lines().find(|l| l.contains(name)).unwrap_or_default().to_string();
    assert!(row("http redirects to https").contains("FAIL"), "{text}");
    assert!(
        row("requests reach ≥2 zones").contains("pass")
            && row("unknown path gets our 404 page").contains("pass"),
        "the whole suite ran: {text}"
    );
    assert_eq!(env.latest().await["state"], "unverified");
    assert!(text.contains("recorded as unverified"), "{text}");

    // The live release is unverified: the rerun deploys and verifies again.
    let rerun = env.up(DIGEST_A, &[], &[]).success();
    assert!(!stderr(&rerun).contains("pulumi skipped"), "{}", stderr(&rerun));
    assert_eq!(env.latest().await["state"], "verified");
    let out = env
        .scratch
        .orch()
        .envs(env.envs(DIGEST_A))
        .args(["verify", "--env", &env.name, "--json"])
        .assert()
        .success();
    let report: serde_json::Value = serde_json::from_slice(&out.get_output().stdout).unwrap();
    assert_eq!(report["passed"], true, "{report}");
    assert_eq!(report["zones"].as_array().unwrap().len(), 2, "{report}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_registrar_delegation_is_checked_by_a_dns_query_before_the_certificate() {
    let Some(moto) = support::service("ORCH_TEST_MOTO") else { return };
    let env = Env::with_registrar(&moto).await;
    let domain = env.domain.clone().unwrap();
    let answers = Arc::new(Mutex::new(vec!["ns1.old-registrar.example".to_string()]));
    let dns = dns_server(answers.clone());

    // Public DNS still names the old name servers: the run stops, printing the ones to set.
    let out = env.up(DIGEST_A, &[("ORCH_DNS_SERVER", dns.as_str())], &[]).code(2);
    let text = stderr(&out);
    assert!(
        text.contains(&format!("public DNS does not delegate {domain}"))
            && text.contains("ns1.old-registrar.example"),
        "{text}"
    );
    assert!(text.contains("at your registrar"), "{text}");
    let zones = env.zones_named(&domain).await;
    assert_eq!(zones.len(), 1);
    let zone = env.r53().await.get_hosted_zone().id(&zones[0]).send().await.unwrap();
    let ns: Vec<String> = zone
        .delegation_set()
        .unwrap()
        .name_servers()
        .iter()
        .map(|n| n.trim_end_matches('.').to_string())
        .collect();
    let stdout = String::from_utf8_lossy(&out.get_output().stdout).into_owned();
    assert!(
        ns.iter().all(|n| stdout.contains(n.as_str())),
        "the name servers to set are printed: {stdout}"
    );
    assert_eq!(
        env.certs_for(&domain).await,
        0,
        "no certificate is requested before the delegation holds"
    );
    let dns_env = [("ORCH_DNS_SERVER", dns.as_str())];
    let plan = env.up(DIGEST_A, &dns_env, &["--dry-run"]).success();
    let text = String::from_utf8_lossy(&plan.get_output().stdout).into_owned();
    assert!(
        text.contains("[REFUSE] NS delegation")
            && text.contains("public DNS lists ns1.old-registrar.example"),
        "{text}"
    );
    assert_eq!(env.object(&format!("locks/{}.json", env.name)).await, None);

    // The registrar now delegates to the zone: the run goes through.
    *answers.lock().unwrap() = ns.iter().map(|n| n.to_uppercase()).collect();
    let out = env.up(DIGEST_A, &[("ORCH_DNS_SERVER", dns.as_str())], &[]).success();
    assert!(stderr(&out).contains(&format!("✓ public DNS delegates {domain}")), "{}", stderr(&out));
    let plan = env.up(DIGEST_A, &dns_env, &["--dry-run"]).success();
    assert!(
        String::from_utf8_lossy(&plan.get_output().stdout)
            .contains("[exists] NS delegation      at the registrar"),
        "{}",
        String::from_utf8_lossy(&plan.get_output().stdout)
    );
    assert_eq!(env.zones_named(&domain).await.len(), 1, "the zone is reused");

    // No resolver answers (offline): the check is skipped with a note, never a mismatch.
    let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = silent.local_addr().unwrap().to_string();
    let out = env.up(DIGEST_B, &[("ORCH_DNS_SERVER", addr.as_str())], &[]).success();
    assert!(
        stderr(&out).contains("delegation check by DNS skipped: no answer"),
        "{}",
        stderr(&out)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn up_builds_the_image_pushes_it_to_a_real_registry_and_deploys_it_by_digest() {
    let Some(moto) = support::service("ORCH_TEST_MOTO") else { return };
    let Some(registry) = support::service("ORCH_TEST_REGISTRY") else { return };
    let env = Env::new(&moto, false).await;
    let repository = format!("orch-deploy-{}", env.name);
    let stack = env.scratch.read(&format!("stacks/{}.yaml", env.name));
    env.scratch.write(
        &format!("stacks/{}.yaml", env.name),
        &stack.replace(
            &format!("  repository: {}", env.repo),
            &format!("  repository: {repository}\n  registry: {registry}"),
        ),
    );
    let app = crate::image::static_app();
    let up = |args: &[&str]| {
        let mut cmd = env.scratch.orch();
        cmd.envs(env.envs(DIGEST_A))
            .env_remove("ORCH_IMAGE")
            .env("ORCH_APP_BINARY", &app)
            .args(["up", "--env", &env.name])
            .args(args);
        cmd.assert()
    };

    let first = up(&[]).success();
    let text = stderr(&first);
    let pushed: u64 = text
        .lines()
        .find_map(|l| l.strip_prefix("✓ image in the registry ("))
        .and_then(|r| r.split(' ').next())
        .and_then(|n| n.parse().ok())
        .expect(&text);
    assert!(pushed > 0, "{text}");
    let record: serde_json::Value = serde_json::from_str(
        &env.object(&format!("deployments/{}/latest.json", env.name)).await.unwrap(),
    )
    .unwrap();
    let digest = record["image_digest"].as_str().unwrap().to_string();
    assert_eq!(record["image_uri"], format!("{registry}/{repository}@{digest}"));
    // pulumi was given exactly that reference, and the registry serves it.
    assert!(format!("{:?}", env.calls())
        .contains(&format!("imageUri={registry}/{repository}@{digest}")));
    let out = std::process::Command::new("skopeo")
        .args([
            "inspect",
            "--tls-verify=false",
            &format!("docker://{registry}/{repository}@{digest}"),
        ])
        .output()
        .expect("skopeo");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    // Nothing changed: the rebuilt image has the same digest, so the no-op path is taken.
    let ups = env.calls().iter().filter(|c| c[0] == "up").count();
    let again = up(&[]).success();
    assert!(stderr(&again).contains("no changes since the last deployment"), "{}", stderr(&again));
    assert_eq!(env.calls().iter().filter(|c| c[0] == "up").count(), ups);
    // --force deploys again; the registry already has every blob.
    let forced = up(&["--force"]).success();
    assert!(
        stderr(&forced).contains("✓ image in the registry (0 bytes pushed)"),
        "{}",
        stderr(&forced)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_late_settings_are_refused_before_anything_changes() {
    let Some(moto) = support::service("ORCH_TEST_MOTO") else { return };
    let env = Env::new(&moto, false).await;
    let before = env.moto_state().await;
    let out = env.up(DIGEST_A, &[("ORCH_VERIFY_CA", "/nonexistent/ca.pem")], &[]).code(2);
    assert!(
        stderr(&out).contains("ORCH_VERIFY_CA: cannot read /nonexistent/ca.pem"),
        "{}",
        stderr(&out)
    );
    let out = env.up(DIGEST_A, &[("ORCH_DNS_SERVER", "not-an-ip")], &[]).code(2);
    assert!(
        stderr(&out).contains(
            "environment variable ORCH_DNS_SERVER: must be ip or ip:port (got `not-an-ip`)"
        ),
        "{}",
        stderr(&out)
    );
    assert_eq!(env.moto_state().await, before, "nothing was created");
    assert!(env.calls().is_empty(), "pulumi never ran");
}

#[test]
fn a_protected_environment_needs_yes_without_a_terminal() {
    let scratch = Scratch::new();
    let out = scratch
        .orch()
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .args(["up", "--env", "prod"])
        .assert()
        .code(2);
    let text = stderr(&out);
    assert!(text.contains("`prod` is protected") && text.contains("--yes"), "{text}");
}
