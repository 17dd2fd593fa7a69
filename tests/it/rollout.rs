//! Shipping a new release to a running local tier: a rolling replacement under steady load with no
//! failed request, and a release whose instances never pass their health checks rolled back by
//! itself, again without a failed request; `orch status` shows each instance's image digest.
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::local::{load, wait_for};
use crate::support::Tier;

impl Tier {
    /// Give every instance `env` (the stack's `instances.env`): a new release.
    pub(crate) fn set_env(&self, env: &[(&str, &str)]) {
        let stack = self.scratch.read("stacks/local.yaml");
        let mut out = String::new();
        let mut in_env = false;
        for line in stack.lines() {
            if line == "  env:" {
                in_env = true;
                continue;
            }
            if in_env && line.starts_with("    ") {
                continue;
            }
            in_env = false;
            out.push_str(line);
            out.push('\n');
            if line == "instances:" {
                out.push_str("  env:\n");
                for (k, v) in env {
                    out.push_str(&format!("    {k}: \"{v}\"\n"));
                }
            }
        }
        self.scratch.write("stacks/local.yaml", &out);
    }
}

fn releases(status: &serde_json::Value) -> BTreeSet<String> {
    status["instances"]
        .as_array()
        .map(|a| a.iter().map(|i| i["release"].as_str().unwrap_or("").to_string()).collect())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_new_release_rolls_out_without_a_failed_request_and_a_bad_one_rolls_back_by_itself() {
    let tier = Tier::scratch();
    tier.up();
    let (_, before) = tier.status();
    let first = before["release"]["id"].as_str().unwrap().to_string();
    assert_eq!(releases(&before), BTreeSet::from([first.clone()]));
    assert!(before["instances"][0]["image_digest"].as_str().unwrap().starts_with("sha256:"));

    // A new release under steady load.
    let client = tier.client();
    let stop = Arc::new(AtomicBool::new(false));
    let traffic = load(client.clone(), tier.https("/"), 4, stop.clone());
    tier.set_env(&[("RELEASE_NOTE", "v2")]);
    let started = Instant::now();
    let out = tier.orch().args(["up", "--env", "local", "--detach"]).output().unwrap();
    let took = started.elapsed();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("deployed: 4 instance(s) replaced"), "{stderr}");
    stop.store(true, Ordering::Relaxed);
    let (ok, failed) = traffic.await.unwrap();
    println!(
        "rollout of 4 instances: {took:.1?} for `orch up`, {ok} requests served, {} failed",
        failed.len()
    );
    assert!(ok >= 50, "only {ok} requests went through");
    assert!(failed.is_empty(), "{} failed requests during the rollout: {failed:?}", failed.len());
    let (code, after) = tier.status();
    assert_eq!(code, 0, "{after:#}");
    let second = after["release"]["id"].as_str().unwrap().to_string();
    assert_ne!(second, first);
    assert_eq!(after["release"]["outcome"], "deployed");
    assert_eq!(releases(&after), BTreeSet::from([second.clone()]), "{after:#}");
    assert_eq!(after["instances"].as_array().unwrap().len(), 4);

    // A release whose instances never pass health checks (the app refuses its configuration).
    let stop = Arc::new(AtomicBool::new(false));
    let traffic = load(client.clone(), tier.https("/"), 4, stop.clone());
    tier.set_env(&[("RELEASE_NOTE", "v3"), ("MESSAGE_TTL_MS", "not-a-number")]);
    let out = tier.orch().args(["up", "--env", "local", "--detach"]).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("rolled back") && stderr.contains("instances/retired/i-"), "{stderr}");
    assert!(stderr.contains("health checks"), "{stderr}");
    wait_for(&tier, Duration::from_secs(15), "back to the previous release, healthy", |s| {
        s["healthy"] == true && releases(s) == BTreeSet::from([second.clone()])
    });
    stop.store(true, Ordering::Relaxed);
    let (ok, failed) = traffic.await.unwrap();
    assert!(ok >= 20, "only {ok} requests went through");
    assert!(failed.is_empty(), "{} failed requests during the rollback: {failed:?}", failed.len());
    let (_, s) = tier.status();
    assert_eq!(s["release"]["outcome"], "rolled_back", "{s:#}");

    // The history (the release record both targets keep: `state`): v2 deployed, v3 rolled back.
    let history: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(tier.scratch.path().join(".orch/local/releases.json")).unwrap(),
    )
    .unwrap();
    let outcomes: Vec<(&str, &str)> = history
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["id"].as_str().unwrap(), e["state"].as_str().unwrap()))
        .collect();
    assert_eq!(outcomes[0], (first.as_str(), "deployed"), "{history:#}");
    assert_eq!(outcomes[1], (second.as_str(), "deployed"), "{history:#}");
    assert_eq!(outcomes[2].1, "rolled_back", "{history:#}");

    // `orch releases`: newest first, the live one marked.
    let out = tier.orch().args(["releases", "--env", "local", "--json"]).output().unwrap();
    let list: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let rows = list["releases"].as_array().unwrap();
    assert_eq!(rows.len(), 3, "{list:#}");
    assert_eq!(rows[0]["outcome"], "rolled_back");
    assert_eq!(
        (rows[1]["id"].as_str(), rows[1]["live"].as_bool()),
        (Some(second.as_str()), Some(true))
    );
    assert!(rows[2]["digest"].as_str().unwrap().starts_with("sha256:"));

    // `orch rollback`: back to the release before the live one, no build, under load.
    let stop = Arc::new(AtomicBool::new(false));
    let traffic = load(client.clone(), tier.https("/"), 4, stop.clone());
    let out = tier.orch().args(["rollback", "--env", "local"]).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(!stderr.contains("Compiling"), "a rollback builds nothing: {stderr}");
    stop.store(true, Ordering::Relaxed);
    let (_, failed) = traffic.await.unwrap();
    assert!(failed.is_empty(), "{} failed requests during the rollback: {failed:?}", failed.len());
    let (_, s) = tier.status();
    assert_eq!(s["release"]["id"].as_str(), Some(first.as_str()), "{s:#}");
    assert_eq!(releases(&s), BTreeSet::from([first.clone()]));

    // After the rollback every instance is health checked again: one frozen with SIGSTOP (it keeps
    // its socket, answers nothing) leaves rotation and is replaced.
    let frozen = &s["instances"][0];
    let (id, pid) = (frozen["id"].as_str().unwrap().to_string(), frozen["pid"].as_u64().unwrap());
    let pid = nix::unistd::Pid::from_raw(pid as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGSTOP).unwrap();
    wait_for(&tier, Duration::from_secs(60), "the frozen instance replaced", |s| {
        let ids: Vec<&str> = s["instances"]
            .as_array()
            .map(|a| a.iter().filter_map(|i| i["id"].as_str()).collect())
            .unwrap_or_default();
        s["healthy"] == true && ids.len() == 4 && !ids.contains(&id.as_str())
    });
    // Let it run again, so the stop the supervisor sent it takes effect.
    let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGCONT);
    let (_, s) = tier.status();
    assert_eq!(releases(&s), BTreeSet::from([first.clone()]), "{s:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_tier_is_locked_while_it_changes_and_converging_back_after_a_rollback_exits_0() {
    let tier = Tier::scratch();
    tier.up();
    let (_, before) = tier.status();
    let first = before["release"]["id"].as_str().unwrap().to_string();
    let original = tier.scratch.read("stacks/local.yaml");

    // A second `up` while one rolls a release out is refused, naming the first.
    tier.set_env(&[("RELEASE_NOTE", "v2")]);
    let mut rolling = std::process::Command::new(assert_cmd::cargo::cargo_bin("orch"))
        .args(["up", "--env", "local", "--detach"])
        .env("ORCH_ROOT", tier.scratch.path())
        .env("ORCH_BUILD_PROFILE", "dev")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let lock = tier.scratch.path().join(".orch/local/locks/local.json");
    crate::support::wait_until(
        Duration::from_secs(60),
        "the first up holds the tier's lock",
        || lock.exists(),
    );
    // So are `down` and the zone drill: none of them races the rollout on the control file.
    for args in [
        &["up", "--env", "local", "--detach"][..],
        &["down", "--env", "local"][..],
        &["local", "zone-down", "local-a", "--env", "local"][..],
    ] {
        let out = tier.orch().args(args).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(
            stderr.contains("is locked by") && stderr.contains(&format!("pid {}", rolling.id())),
            "{args:?}: {stderr}"
        );
    }
    assert!(rolling.wait().unwrap().success());
    assert!(!lock.exists(), "released");
    let (_, s) = tier.status();
    let second = s["release"]["id"].as_str().unwrap().to_string();
    assert_ne!(second, first);

    // A bad release is rolled back; setting the stack back to the running release then exits 0.
    tier.set_env(&[("RELEASE_NOTE", "v3"), ("MESSAGE_TTL_MS", "not-a-number")]);
    let out = tier.orch().args(["up", "--env", "local", "--detach"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", String::from_utf8_lossy(&out.stderr));
    tier.set_env(&[("RELEASE_NOTE", "v2")]);
    let out = tier.orch().args(["up", "--env", "local", "--detach"]).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let (_, s) = tier.status();
    assert_eq!(s["release"]["id"].as_str(), Some(second.as_str()), "{s:#}");
    assert_eq!(s["release"]["outcome"], "deployed", "{s:#}");

    // A history that does not parse is an error naming the file; nothing overwrites it.
    let history = tier.scratch.path().join(".orch/local/releases.json");
    std::fs::write(&history, b"[{\"id\": \"trunc").unwrap();
    tier.scratch.write("stacks/local.yaml", &original);
    for args in [&["releases", "--env", "local"][..], &["up", "--env", "local", "--detach"][..]] {
        let out = tier.orch().args(args).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(&history.display().to_string()), "{stderr}");
        assert_eq!(std::fs::read(&history).unwrap(), b"[{\"id\": \"trunc");
    }
    let (_, s) = tier.status();
    assert_eq!(s["release"]["id"].as_str(), Some(second.as_str()), "nothing changed: {s:#}");
}
