//! The deploy lock as a lease, and signals: a second `orch up` in another PID namespace with the
//! same host name never breaks a live lock (its holder's pid means nothing there); SIGTERM during
//! `pulumi up` cancels pulumi gracefully, records the interruption and releases the lock; read-only
//! commands running beside a deploy never rewrite its `build/<env>/Pulumi.<env>.yaml`.
use super::env::*;
use crate::support;
use std::time::Duration;

/// `orch` in a new PID namespace (`unshare --pid --fork`; as a non-root user inside a new user
/// namespace too): same host name, none of this namespace's pids.
fn in_new_pid_namespace(env: &Env, digest: &str) -> std::process::Command {
    let mut cmd = std::process::Command::new("unshare");
    if !nix::unistd::geteuid().is_root() {
        cmd.args(["--user", "--map-root-user"]);
    }
    cmd.args(["--pid", "--fork"])
        .arg(assert_cmd::cargo::cargo_bin("orch"))
        .args(["up", "--env", &env.name])
        .env("ORCH_ROOT", env.scratch.path())
        .envs(env.envs(digest))
        .env(LEASE.0, LEASE.1);
    cmd
}

#[tokio::test(flavor = "multi_thread")]
async fn a_second_up_in_another_pid_namespace_never_breaks_a_live_lock() {
    let Some(moto) = support::service("ORCH_TEST_MOTO") else { return };
    let env = Env::new(&moto, false).await;
    let lock_key = format!("locks/{}.json", env.name);
    // The first run outlives its 2 s lease several times over: only renewal keeps it.
    let first_log = env.scratch.path().join("first.stderr");
    let mut first = env.background_up("8");
    first.env(LEASE.0, LEASE.1).stderr(std::fs::File::create(&first_log).unwrap());
    let mut first = first.spawn().unwrap();
    support::wait_until(Duration::from_secs(60), "the first run's pulumi up runs", || {
        env.calls().iter().any(|c| c[0] == "up") && env.pulumi_locked()
    });
    let held = env.object(&lock_key).await.expect("the first run holds the lock");
    let holder: serde_json::Value = serde_json::from_str(&held).unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await; // longer than one lease: renewed meanwhile

    let second = in_new_pid_namespace(&env, DIGEST_B).output().unwrap();
    let text = String::from_utf8_lossy(&second.stderr);
    assert_eq!(second.status.code(), Some(2), "{text}");
    assert!(
        text.contains("is locked by") && text.contains(holder["holder"].as_str().unwrap()),
        "{text}"
    );
    let now: serde_json::Value =
        serde_json::from_str(&env.object(&lock_key).await.expect("still locked")).unwrap();
    assert_eq!(now["holder"], holder["holder"], "the lock was never taken over");
    assert_ne!(now["expires"], holder["expires"], "the holder renews its lease");
    assert!(!env.calls().iter().any(|c| c[0] == "cancel"), "pulumi was never cancelled");

    let status = first.wait().unwrap();
    let log = std::fs::read_to_string(&first_log).unwrap();
    assert!(status.success(), "the first run finishes undisturbed: {log}");
    assert_eq!(env.object(&lock_key).await, None);
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_during_pulumi_up_cancels_it_records_the_interruption_and_releases_the_lock() {
    let Some(moto) = support::service("ORCH_TEST_MOTO") else { return };
    let env = Env::new(&moto, false).await;
    let log = env.scratch.path().join("orch.stderr");
    let mut run = env.background_up("60");
    run.stderr(std::fs::File::create(&log).unwrap());
    let mut run = run.spawn().unwrap();
    support::wait_until(Duration::from_secs(60), "pulumi up runs and holds its stack lock", || {
        env.calls().iter().any(|c| c[0] == "up") && env.pulumi_locked()
    });
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(run.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let status = run.wait().unwrap();
    let text = std::fs::read_to_string(&log).unwrap();
    assert_eq!(status.code(), Some(143), "{text}");
    assert!(text.contains("SIGTERM") && text.contains("recorded as interrupted"), "{text}");
    assert!(!env.pulumi_locked(), "pulumi stopped gracefully and dropped its stack lock: {text}");
    assert_eq!(env.object(&format!("locks/{}.json", env.name)).await, None, "{text}");
    // The stack may be partly changed: the interrupted release is the live one, and says so.
    assert_eq!(env.latest().await["state"], "interrupted");

    let out = env
        .scratch
        .orch()
        .envs(env.envs(DIGEST_A))
        .args(["releases", "--env", &env.name, "--json"])
        .output()
        .unwrap();
    let list: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let rows = list["releases"].as_array().unwrap();
    assert_eq!(rows.len(), 1, "{list:#}");
    assert_eq!(rows[0]["outcome"], "interrupted");
    assert_eq!(rows[0]["live"], true);
    assert_eq!(rows[0]["digest"], DIGEST_A);
}

#[tokio::test(flavor = "multi_thread")]
async fn read_only_commands_beside_a_deploy_never_rewrite_its_stack_file() {
    let Some(moto) = support::service("ORCH_TEST_MOTO") else { return };
    let env = Env::new(&moto, false).await;
    env.up(DIGEST_A, &[], &[]).success();
    // A deploy of B sits in `pulumi up`, its stack file already set to B.
    let mut holder = env.background_up("8");
    holder.envs(env.envs(DIGEST_B));
    let mut holder = holder.spawn().unwrap();
    support::wait_until(Duration::from_secs(60), "the deploy of B runs pulumi up", || {
        env.calls().iter().filter(|c| c[0] == "up").count() == 2 && env.pulumi_locked()
    });
    let file = env.program_dir().join(format!("Pulumi.{}.yaml", env.name));
    let before = std::fs::read(&file).unwrap();
    assert!(String::from_utf8_lossy(&before).contains(DIGEST_B));
    let modified = std::fs::metadata(&file).unwrap().modified().unwrap();

    env.up(DIGEST_A, &[], &["--dry-run"]).success();
    env.up(DIGEST_A, &[], &[]).code(2); // refused by the lock
                                        // `orch drift` runs pulumi refresh (preview-only) on the recorded config beside the deploy.
    let drift = env
        .scratch
        .orch()
        .envs(env.envs(DIGEST_A))
        .args(["drift", "--env", &env.name])
        .output()
        .unwrap();
    assert!(
        env.calls().iter().any(|c| c[0] == "refresh"),
        "drift ran pulumi refresh: {}",
        String::from_utf8_lossy(&drift.stderr)
    );
    assert_eq!(std::fs::read(&file).unwrap(), before, "the stack file was rewritten");
    assert_eq!(std::fs::metadata(&file).unwrap().modified().unwrap(), modified);
    assert!(holder.wait().unwrap().success());
}
