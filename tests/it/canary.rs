//! Canary releases on the local tier under steady load: a good release promotes through every step
//! without a failed request; a release failing 5 % of its requests (health checks passing) is
//! aborted at the first step with the failures bounded by the canary's share; a release 200 ms
//! slower is aborted on latency. `orch status` shows the step while it runs, `orch up` prints the
//! analysis and exits 1 on an abort, and `orch releases --json` keeps it with the release.
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::local::load_every;
use crate::support::Tier;

/// Two instances, judged against 99 % availability and 100 ms, steps of 10 % and 50 % baked 3 s.
fn canary_tier() -> Tier {
    let tier = Tier::scratch();
    let stack = tier.scratch.read("stacks/local.yaml").replace("desired: 4", "desired: 2");
    tier.scratch.write(
        "stacks/local.yaml",
        &format!(
            "{stack}slo:\n  availability: 99\n  latency_p99_ms: 100\nrollout:\n  strategy: canary\n  steps: [10, 50]\n  bake_seconds: 3\n"
        ),
    );
    tier
}

fn releases(status: &serde_json::Value) -> BTreeSet<String> {
    status["instances"]
        .as_array()
        .map(|a| a.iter().map(|i| i["release"].as_str().unwrap_or("").to_string()).collect())
        .unwrap_or_default()
}

/// `orch up` for the release `env` makes, under load; returns (exit code, stderr, ok, failed).
async fn ship(tier: &Tier, env: &[(&str, &str)]) -> (i32, String, usize, Vec<String>) {
    let stop = Arc::new(AtomicBool::new(false));
    let traffic = load_every(tier.client(), tier.https("/"), 8, Duration::ZERO, stop.clone());
    tier.set_env(env);
    let mut up = tier.orch();
    up.args(["up", "--env", "local", "--detach"]);
    let out = tokio::task::spawn_blocking(move || up.output().unwrap()).await.unwrap();
    stop.store(true, Ordering::Relaxed);
    let (ok, failed) = traffic.await.unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    println!("{env:?}: exit {:?}, {ok} ok, {} failed\n{stderr}", out.status.code(), failed.len());
    (out.status.code().unwrap_or(-1), stderr, ok, failed)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_canary_promotes_a_good_release_and_aborts_a_failing_or_slow_one() {
    let tier = canary_tier();
    tier.up();
    let (_, s) = tier.status();
    let first = s["release"]["id"].as_str().unwrap().to_string();

    // A good release: every step passes, then the rest is replaced; `status` shows the step.
    let watcher = {
        let root = tier.scratch.path().to_path_buf();
        tokio::task::spawn_blocking(move || {
            let start = Instant::now();
            while start.elapsed() < Duration::from_secs(60) {
                let mut status = crate::support::orch();
                status.env("ORCH_ROOT", &root).args(["status", "--env", "local"]);
                let out = status.output().unwrap();
                let text = String::from_utf8_lossy(&out.stdout).into_owned();
                if let Some(line) = text.lines().find(|l| l.starts_with("canary step")) {
                    return Some(line.to_string());
                }
                std::thread::sleep(Duration::from_millis(200));
            }
            None
        })
    };
    let (code, stderr, ok, failed) = ship(&tier, &[("RELEASE_NOTE", "v2")]).await;
    assert_eq!(code, 0, "{stderr}");
    assert!(failed.is_empty(), "{} failed requests: {failed:?}", failed.len());
    assert!(ok >= 600, "only {ok} requests");
    assert!(stderr.contains("canary analysis of release"), "{stderr}");
    assert_eq!(stderr.matches("pass: 5xx").count(), 2, "two steps passed: {stderr}");
    let line = watcher.await.unwrap().expect("orch status showed the canary step");
    assert!(line.contains("% of traffic") && line.contains("requests"), "{line}");
    let (_, s) = tier.status();
    let second = s["release"]["id"].as_str().unwrap().to_string();
    assert_ne!(second, first);
    assert_eq!(releases(&s), BTreeSet::from([second.clone()]), "{s:#}");

    // 5 % of requests answered 500, health checks passing: aborted at the first step.
    let (code, stderr, ok, failed) = ship(&tier, &[("FAULT_ERROR_PERCENT", "5")]).await;
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains("aborted: canary step 1/2 (10 % of traffic) failed: 5xx: canary"),
        "{stderr}"
    );
    assert!(failed.iter().all(|f| f == "status 500 Internal Server Error"), "{failed:?}");
    let share = failed.len() as f64 / (ok + failed.len()) as f64;
    println!(
        "5 % release: {} of {} requests failed ({:.3} %)",
        failed.len(),
        ok + failed.len(),
        share * 100.0
    );
    assert!(!failed.is_empty(), "the canary got traffic");
    assert!(share <= 0.005, "{} of {} failed: more than the canary's share", failed.len(), ok);
    let (_, s) = tier.status();
    assert_eq!(s["release"]["outcome"], "aborted", "{s:#}");
    assert_eq!(
        releases(&s),
        BTreeSet::from([second.clone()]),
        "the fleet is on the baseline: {s:#}"
    );

    // 200 ms more per request: aborted on latency.
    let (code, stderr, _, failed) = ship(&tier, &[("FAULT_DELAY_MS", "200")]).await;
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("failed: latency: canary p99"), "{stderr}");
    assert!(failed.is_empty(), "a slow canary fails no request: {failed:?}");
    let (_, s) = tier.status();
    assert_eq!(releases(&s), BTreeSet::from([second.clone()]), "{s:#}");

    // The analysis is kept with each release.
    let out = tier.orch().args(["releases", "--env", "local", "--json"]).output().unwrap();
    let list: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let rows = list["releases"].as_array().unwrap();
    let verdicts = |row: &serde_json::Value| -> Vec<String> {
        row["canary"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["verdict"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(
        (rows[0]["outcome"].as_str(), verdicts(&rows[0])),
        (Some("aborted"), vec!["fail".to_string()])
    );
    assert_eq!(
        (rows[1]["outcome"].as_str(), verdicts(&rows[1])),
        (Some("aborted"), vec!["fail".to_string()])
    );
    assert_eq!(verdicts(&rows[2]), ["pass", "pass"], "{list:#}");
    let step = &rows[1]["canary"][0];
    assert_eq!(step["percent"], 10);
    assert!(step["canary"]["errors"].as_u64().unwrap() >= 1, "{step:#}");
    assert_eq!(step["baseline"]["errors"], 0, "{step:#}");
}
