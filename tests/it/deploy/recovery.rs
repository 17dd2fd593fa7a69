//! Crashes and contention: a concurrent `orch up`, orch killed mid-run, orch and pulumi killed
//! together (pulumi's own stack lock left behind). A killed run's lock is taken over once its lease
//! (`ORCH_LOCK_LEASE_SECONDS`, short here) has run out; until then it is refused.
use super::env::*;
use crate::support;
use std::collections::BTreeSet;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread")]
async fn a_concurrent_up_is_refused_naming_the_holder_and_force_unlock_breaks_a_foreign_lock() {
    let Some(moto) = support::service("ORCH_TEST_MOTO") else { return };
    let env = Env::new(&moto, false).await;
    let mut first = env.background_up("3").spawn().unwrap();
    let lock_key = format!("locks/{}.json", env.name);
    support::wait_until_async(Duration::from_secs(30), "the first run takes the lock", || async {
        env.object(&lock_key).await.is_some()
    })
    .await;
    let lock = env.object(&lock_key).await.unwrap();
    let second = env.up(DIGEST_A, &[], &[]).code(2);
    let text = stderr(&second);
    let holder: serde_json::Value = serde_json::from_str(&lock).unwrap();
    assert!(
        text.contains("is locked by")
            && text.contains(holder["holder"].as_str().unwrap())
            && text.contains(holder["host"].as_str().unwrap()),
        "{text}"
    );
    assert!(
        text.contains(&format!("pid {}", first.id())) && text.contains("--force-unlock"),
        "{text}"
    );
    assert!(first.wait().unwrap().success());
    assert_eq!(env.object(&lock_key).await, None);

    // A lock from another host is never broken silently; --force-unlock breaks it with a warning.
    let foreign = r#"{"holder":"feedface","user":"ci","host":"build-7","pid":1,"since":"2026-01-01T00:00:00Z","command":"orch up"}"#;
    env.s3()
        .await
        .put_object()
        .bucket(&env.bucket)
        .key(&lock_key)
        .body(foreign.as_bytes().to_vec().into())
        .send()
        .await
        .unwrap();
    let refused = env.up(DIGEST_B, &[], &[]).code(2);
    assert!(stderr(&refused).contains("feedface") && stderr(&refused).contains("build-7"));
    let forced = env.up(DIGEST_B, &[], &["--force-unlock"]).success();
    assert!(
        stderr(&forced).contains("warning: --force-unlock: taking over the lock held by feedface"),
        "{}",
        stderr(&forced)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn killing_orch_mid_run_then_rerunning_converges_without_duplicates() {
    let Some(moto) = support::service("ORCH_TEST_MOTO") else { return };
    let env = Env::new(&moto, true).await;
    let domain = env.domain.clone().unwrap();
    let mut victim = env.background_up("2").env(LEASE.0, LEASE.1).spawn().unwrap();
    support::wait_until(
        Duration::from_secs(60),
        "pulumi up starts and takes its stack lock",
        || env.calls().iter().any(|c| c[0] == "up") && env.pulumi_locked(),
    );
    victim.kill().unwrap();
    victim.wait().unwrap();
    assert!(
        env.object(&format!("locks/{}.json", env.name)).await.is_some(),
        "the killed run leaves its lock"
    );
    // The orphaned fake pulumi runs on; it drops its stack lock when it exits.
    support::wait_until(Duration::from_secs(30), "the orphaned pulumi exits", || {
        !env.pulumi_locked()
    });

    // Once its lease expired (no pid is judged), the lock is taken over. (A lock whose lease still
    // runs is refused: deploy::locks and a_concurrent_up_is_refused_… test that without racing a
    // two-second lease against a loaded machine.)
    env.lease_expired().await;
    let rerun = env.up(DIGEST_A, &[LEASE], &[]).success();
    assert!(stderr(&rerun).contains("taking over an expired lock"), "{}", stderr(&rerun));
    let zones = env.zones_named(&domain).await;
    assert_eq!(zones.len(), 1, "one hosted zone");
    assert_eq!(env.certs_for(&domain).await, 1, "one certificate");
    let sets = env.record_sets(&zones[0]).await;
    let unique: BTreeSet<_> = sets.iter().collect();
    assert_eq!(unique.len(), sets.len(), "duplicate record sets: {sets:?}");
    assert!(env.object(&format!("deployments/{}/latest.json", env.name)).await.is_some());
    env.up(DIGEST_A, &[], &[]).success();
    assert_eq!(env.zones_named(&domain).await.len(), 1);
    assert_eq!(env.certs_for(&domain).await, 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_pulumi_killed_mid_update_leaves_its_lock_which_the_rerun_cancels_but_never_a_live_one() {
    use std::os::unix::process::CommandExt;
    let Some(moto) = support::service("ORCH_TEST_MOTO") else { return };
    let env = Env::new(&moto, false).await;
    // The DIY backend's layout: .pulumi/locks/organization/<project>/<stack>/ (pkg/backend/diy/lock.go).
    let locks = env
        .pulumi_state
        .path()
        .join(&env.bucket)
        .join(".pulumi/locks/organization")
        .join(format!("orch-{}", env.name))
        .join(&env.name);
    let held = || std::fs::read_dir(&locks).map(|d| d.count()).unwrap_or(0);

    // The whole process group dies (a CI runner cancelled, a laptop lid closed): orch and pulumi.
    let mut victim =
        env.background_up("30").env(LEASE.0, LEASE.1).process_group(0).spawn().unwrap();
    support::wait_until(Duration::from_secs(60), "pulumi takes its lock", || held() > 0);
    nix::sys::signal::killpg(
        nix::unistd::Pid::from_raw(victim.id() as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    victim.wait().unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(held(), 1, "pulumi's lock is left behind");

    // Once the lease ran out, the rerun takes orch's lock over, then cancels pulumi's: taken by
    // that run, here, and its process is gone. It converges.
    env.lease_expired().await;
    let rerun = env.up(DIGEST_A, &[LEASE], &[]).success();
    let text = stderr(&rerun);
    assert!(
        text.contains("taking over an expired lock")
            && text.contains("gone from this host: `pulumi cancel`"),
        "{text}"
    );
    assert!(env.calls().iter().any(|c| c[0] == "cancel" && c.contains(&"--yes".to_string())));
    assert_eq!(held(), 0);
    assert!(env.object(&format!("deployments/{}/latest.json", env.name)).await.is_some());

    // A holder that is alive (this test process) is never cancelled: exit 2 naming it.
    std::fs::create_dir_all(&locks).unwrap();
    let host = nix::unistd::gethostname().unwrap().into_string().unwrap();
    let lock = serde_json::json!({ "pid": std::process::id(), "username": "ci", "hostname": host, "timestamp": "2026-11-25T12:00:00Z" });
    std::fs::write(locks.join("live.json"), lock.to_string()).unwrap();
    let refused = env.up(DIGEST_A, &[], &["--force"]).code(2);
    let text = stderr(&refused);
    assert!(
        text.contains(&format!("is locked by ci@{host} (pid {})", std::process::id()))
            && text.contains("pulumi cancel --yes --stack"),
        "{text}"
    );
    assert_eq!(held(), 1, "a live holder's lock is kept");
    assert_eq!(
        env.object(&format!("locks/{}.json", env.name)).await,
        None,
        "orch's own lock is released"
    );
}
