//! The local tier end to end: real processes, a real TLS client. Each test runs its own tier in a
//! scratch project on free ports, and a guard runs `orch down` even when the test fails.
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::support::{port_open, Tier};

impl Tier {
    pub(crate) fn status(&self) -> (i32, serde_json::Value) {
        let out = self.orch().args(["status", "--env", "local", "--json"]).output().unwrap();
        let json = serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null);
        (out.status.code().unwrap_or(-1), json)
    }

    pub(crate) fn client(&self) -> reqwest::Client {
        let ca = std::fs::read(self.ca()).unwrap();
        reqwest::Client::builder()
            .add_root_certificate(reqwest::Certificate::from_pem(&ca).unwrap())
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap()
    }

    fn page(&self, name: &str) -> Option<String> {
        std::fs::read_to_string(self.scratch.path().join("app/pages").join(name)).ok()
    }
}

pub(crate) async fn identity(
    client: &reqwest::Client,
    url: &str,
) -> Result<(String, String), String> {
    let resp = client
        .get(url)
        .header("accept", "application/json")
        .send()
        .await
        .map_err(|e| format!("{e:?}"))?;
    if !resp.status().is_success() {
        return Err(format!("status {}", resp.status()));
    }
    let v: serde_json::Value = resp.json().await.map_err(|e| e.to_string())?;
    Ok((
        v["instance_id"].as_str().unwrap_or("").into(),
        v["availability_zone"].as_str().unwrap_or("").into(),
    ))
}

/// Steady load on `url` from `workers` clients until `stop`; returns (ok, failures).
pub(crate) fn load(
    client: reqwest::Client,
    url: String,
    workers: usize,
    stop: Arc<AtomicBool>,
) -> tokio::task::JoinHandle<(usize, Vec<String>)> {
    load_every(client, url, workers, Duration::from_millis(10), stop)
}

/// Load on `url` from `workers` clients, each pausing `pause` between requests, until `stop`.
pub(crate) fn load_every(
    client: reqwest::Client,
    url: String,
    workers: usize,
    pause: Duration,
    stop: Arc<AtomicBool>,
) -> tokio::task::JoinHandle<(usize, Vec<String>)> {
    tokio::spawn(async move {
        let tasks: Vec<_> = (0..workers)
            .map(|_| {
                let (client, url, stop) = (client.clone(), url.clone(), stop.clone());
                tokio::spawn(async move {
                    let (mut ok, mut failed) = (0, vec![]);
                    while !stop.load(Ordering::Relaxed) {
                        match identity(&client, &url).await {
                            Ok(_) => ok += 1,
                            Err(e) => failed.push(e),
                        }
                        tokio::time::sleep(pause).await;
                    }
                    (ok, failed)
                })
            })
            .collect();
        let mut total = (0, vec![]);
        for t in tasks {
            let (ok, mut failed) = t.await.unwrap();
            total.0 += ok;
            total.1.append(&mut failed);
        }
        total
    })
}

fn gone(pid: u64) -> bool {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    stat.is_empty() || stat.contains(") Z")
}

fn wait_dead(pid: u64) {
    crate::support::wait_until(Duration::from_secs(5), &format!("{pid} dies"), || gone(pid));
}

fn by_zone(status: &serde_json::Value) -> BTreeMap<String, (u64, u64)> {
    status["zones"]
        .as_array()
        .map(|zs| {
            zs.iter()
                .map(|z| {
                    (
                        z["name"].as_str().unwrap_or("").to_string(),
                        (z["instances"].as_u64().unwrap_or(0), z["healthy"].as_u64().unwrap_or(0)),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Wait until `cond(status)` holds; returns the time it took.
pub(crate) fn wait_for(
    tier: &Tier,
    within: Duration,
    what: &str,
    cond: impl Fn(&serde_json::Value) -> bool,
) -> Duration {
    let start = Instant::now();
    loop {
        let (_, s) = tier.status();
        if cond(&s) {
            return start.elapsed();
        }
        assert!(start.elapsed() < within, "{what}: not within {within:?}; last status {s:#}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn up_serves_over_tls_and_heals_instance_and_zone_failures() {
    let tier = Tier::scratch();
    let stdout = tier.up();
    assert!(stdout.contains(&format!("http://127.0.0.1:{}/", tier.http)), "{stdout}");
    assert!(stdout.contains(&format!("https://127.0.0.1:{}/", tier.https)), "{stdout}");
    let client = tier.client();

    // HTTP → 301 to HTTPS, host, path and query kept, port replaced.
    let resp =
        client.get(format!("http://localhost:{}/a/b?x=1&y=two", tier.http)).send().await.unwrap();
    assert_eq!(resp.status(), 301);
    assert_eq!(
        resp.headers()["location"],
        format!("https://localhost:{}/a/b?x=1&y=two", tier.https).as_str()
    );

    // 24 HTTPS requests: ≥ 2 instances, both zones.
    let (mut ids, mut zones) = (BTreeSet::new(), BTreeSet::new());
    for _ in 0..24 {
        let (id, zone) = identity(&client, &tier.https("/")).await.unwrap();
        assert!(id.starts_with("i-") && id.len() == 19, "{id}");
        ids.insert(id);
        zones.insert(zone);
    }
    assert!(ids.len() >= 2, "{ids:?}");
    assert_eq!(zones.into_iter().collect::<Vec<_>>(), ["local-a", "local-b"]);

    // Unknown path: our HTML 404 page.
    let resp = client.get(tier.https("/no-such-page")).send().await.unwrap();
    assert_eq!(resp.status(), 404);
    assert!(resp.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
    let body = resp.text().await.unwrap();
    if let Some(page) = tier.page("404.html") {
        let title = orch::verify::marker_from_page(&tier.scratch.path().join("app/pages/404.html"))
            .unwrap_or_default();
        assert!(body.contains(&title), "not our 404 page ({title}): {body}\nexpected like: {page}");
    }

    // The suite itself, against the running tier (URL from the state), as JSON.
    let out = tier.orch().args(["verify", "--env", "local", "--json"]).output().unwrap();
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(out.status.code(), Some(0), "{report:#}");
    assert_eq!(report["passed"], true);

    // Healthy: status exit 0, 2 + 2.
    let (code, status) = tier.status();
    assert_eq!(code, 0, "{status:#}");
    assert_eq!(by_zone(&status).values().map(|v| v.1).collect::<Vec<_>>(), [2, 2]);

    // One instance killed under load: no failed request.
    let stop = Arc::new(AtomicBool::new(false));
    let traffic = load(client.clone(), tier.https("/"), 4, stop.clone());
    tokio::time::sleep(Duration::from_millis(500)).await;
    let victim = status["instances"][0]["pid"].as_u64().unwrap() as i32;
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(victim), nix::sys::signal::Signal::SIGKILL)
        .unwrap();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    stop.store(true, Ordering::Relaxed);
    let (ok, failed) = traffic.await.unwrap();
    assert!(ok >= 100, "only {ok} requests went through");
    assert!(
        failed.is_empty(),
        "{} failed requests after killing one instance: {failed:?}",
        failed.len()
    );
    wait_for(&tier, Duration::from_secs(10), "replacement in service", |s| {
        s["in_service"] == 4 && s["healthy"] == true
    });

    // Zone down under load: capacity back to desired (in the other zone) within 5 s.
    let stop = Arc::new(AtomicBool::new(false));
    let traffic = load(client.clone(), tier.https("/"), 4, stop.clone());
    tokio::time::sleep(Duration::from_millis(300)).await;
    tier.orch().args(["local", "zone-down", "local-a", "--env", "local"]).assert().success();
    let healed = wait_for(&tier, Duration::from_secs(5), "capacity back after zone-down", |s| {
        by_zone(s).get("local-b").is_some_and(|b| b.1 >= 4)
    });
    eprintln!("zone-down healed in {healed:?}");
    let (code, _) = tier.status();
    assert_eq!(code, 1, "a zone without a healthy instance is degraded");
    stop.store(true, Ordering::Relaxed);
    let (ok, failed) = traffic.await.unwrap();
    assert!(ok > 0);
    assert!(failed.len() <= 4, "more failures than requests in flight: {failed:?}");

    // Unknown zone: exit 2 naming the zones.
    let out =
        tier.orch().args(["local", "zone-down", "local-z", "--env", "local"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("local-a, local-b"));

    // Zone back: an even spread again, never below desired on the way.
    tier.orch().args(["local", "zone-up", "local-a", "--env", "local"]).assert().success();
    let start = Instant::now();
    loop {
        let (code, s) = tier.status();
        let zones = by_zone(&s);
        assert!(
            s["in_service"].as_u64().unwrap_or(0) >= 4,
            "dropped below desired while rebalancing: {s:#}"
        );
        if code == 0 && zones.values().map(|v| (v.0, v.1)).collect::<Vec<_>>() == [(2, 2), (2, 2)] {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(15), "no even spread after zone-up: {s:#}");
        std::thread::sleep(Duration::from_millis(100));
    }

    // Access log: JSON lines naming the instance.
    let log = std::fs::read_to_string(tier.scratch.path().join(".orch/local/access.log")).unwrap();
    let line: serde_json::Value = serde_json::from_str(log.lines().last().unwrap()).unwrap();
    assert!(line["status"].is_u64() && line["path"].is_string());

    // Down: everything stops, ports close, the database stays.
    let (_, s) = tier.status();
    // The envelope every `status --json` starts with (env, target, kind, verdict), as on AWS.
    for (key, want) in
        [("env", "local"), ("target", "local"), ("kind", "status"), ("verdict", "healthy")]
    {
        assert_eq!(s[key], want, "{key} in {s:#}");
    }
    let pids: Vec<u64> =
        s["instances"].as_array().unwrap().iter().filter_map(|i| i["pid"].as_u64()).collect();
    tier.orch().args(["down", "--env", "local"]).assert().success();
    assert!(!port_open(tier.http) && !port_open(tier.https));
    for pid in pids {
        assert!(gone(pid), "instance {pid} still runs");
    }
    assert!(
        tier.scratch.path().join(".orch/local/app.db").exists()
            || std::env::var_os("ORCH_APP_BIN").is_some(),
        "the database file is kept"
    );
    // Status after down: `down`, exit 1 — like a torn-down AWS environment — naming the last release.
    let (code, s) = tier.status();
    assert_eq!(code, 1, "status after down: {s:#}");
    assert_eq!(
        (s["verdict"].as_str(), s["running"].as_bool()),
        (Some("down"), Some(false)),
        "{s:#}"
    );
    assert!(s["last_release"]["id"].as_str().is_some_and(|id| !id.is_empty()), "{s:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn error_pages_and_leftovers_of_a_killed_orch() {
    let tier = Tier::scratch();
    tier.up();
    let client = tier.client();

    // Both zones down: no instance can answer, the balancer serves our 503 page.
    for zone in ["local-a", "local-b"] {
        tier.orch().args(["local", "zone-down", zone, "--env", "local"]).assert().success();
    }
    let resp = client.get(tier.https("/")).send().await.unwrap();
    assert_eq!(resp.status(), 503);
    let body = resp.text().await.unwrap();
    match tier.page("503.html") {
        Some(page) => assert_eq!(body, page, "our 503 page"),
        None => assert!(body.contains("503")),
    }
    for zone in ["local-a", "local-b"] {
        tier.orch().args(["local", "zone-up", zone, "--env", "local"]).assert().success();
    }
    wait_for(&tier, Duration::from_secs(15), "back after both zones return", |s| {
        s["healthy"] == true
    });

    // Kill orch's supervisor outright: its instances stay behind...
    let (_, s) = tier.status();
    let serve: i32 =
        serde_json::from_str::<serde_json::Value>(&tier.scratch.read(".orch/local/state.json"))
            .unwrap()["pid"]
            .as_i64()
            .unwrap() as i32;
    let pids: Vec<u64> =
        s["instances"].as_array().unwrap().iter().filter_map(|i| i["pid"].as_u64()).collect();
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(serve), nix::sys::signal::Signal::SIGKILL)
        .unwrap();
    wait_dead(serve as u64);
    assert!(pids.iter().all(|p| std::path::Path::new(&format!("/proc/{p}")).exists()));
    let (code, s) = tier.status();
    assert_eq!((code, s["verdict"].as_str()), (1, Some("down")), "a dead supervisor: {s:#}");

    // ...and the next `up` cleans them up and starts a fresh tier.
    let out = tier.orch().args(["up", "--env", "local", "--detach"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("leftover"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for p in &pids {
        assert!(gone(*p), "leftover instance {p} survived");
    }
    assert_eq!(tier.status().0, 0);

    // `up` again while it runs converges: same supervisor, no second copy.
    let before = tier.scratch.read(".orch/local/state.json");
    let out = tier.orch().args(["up", "--env", "local", "--detach"]).output().unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("already running"));
    let pid_of =
        |text: &str| serde_json::from_str::<serde_json::Value>(text).unwrap()["pid"].clone();
    assert_eq!(pid_of(&before), pid_of(&tier.scratch.read(".orch/local/state.json")));

    // A killed supervisor is also cleaned up by `down`.
    let serve = pid_of(&before).as_i64().unwrap() as i32;
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(serve), nix::sys::signal::Signal::SIGKILL)
        .unwrap();
    wait_dead(serve as u64);
    let out = tier.orch().args(["down", "--env", "local"]).output().unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("leftover"));
    assert!(orch::local::state::tier_processes(
        &tier.scratch.path().join(".orch/local").canonicalize().unwrap()
    )
    .is_empty());
}

#[test]
fn a_bad_stack_is_a_clear_error_and_starts_nothing() {
    let tier = Tier::scratch();
    let stack = tier.scratch.read("stacks/local.yaml").replace("desired: 4", "desired: 9");
    tier.scratch.write("stacks/local.yaml", &stack);
    let out = tier.orch().args(["up", "--env", "local", "--detach"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("instances.desired"), "{stderr}");
    assert!(!tier.scratch.path().join(".orch/local/state.json").exists());
    assert!(!port_open(tier.http) && !port_open(tier.https));

    // Postgres without the URL variable: named, never started.
    let stack = tier
        .scratch
        .read("stacks/local.yaml")
        .replace("desired: 9", "desired: 4")
        .replace("engine: sqlite", "engine: postgres\n  url_env: ORCH_TEST_NO_SUCH_URL");
    tier.scratch.write("stacks/local.yaml", &stack);
    let out = tier
        .orch()
        .args(["up", "--env", "local", "--detach"])
        .env_remove("ORCH_TEST_NO_SUCH_URL")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("ORCH_TEST_NO_SUCH_URL"));
    assert!(!port_open(tier.http) && !port_open(tier.https));
}

/// `orch slo` counts the error budget from the load balancer's access log, and `orch up` refuses
/// while it is exhausted unless `--force`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_error_budget_is_counted_from_the_access_log_and_gates_up() {
    let tier = Tier::scratch();
    let stack = tier.scratch.read("stacks/local.yaml");
    tier.scratch.write(
        "stacks/local.yaml",
        &format!("{stack}slo:\n  availability: 99\n  latency_p99_ms: 300\n  window_days: 30\n"),
    );
    tier.up();
    let client = tier.client();
    let slo = || {
        let out = tier.orch().args(["slo", "--env", "local", "--json"]).output().unwrap();
        (
            out.status.code(),
            serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap_or_default(),
        )
    };
    for _ in 0..50 {
        assert_eq!(client.get(tier.https("/")).send().await.unwrap().status(), 200);
    }
    crate::support::wait_until(Duration::from_secs(10), "50 requests in the access log", || {
        slo().1["requests"].as_u64() >= Some(50)
    });
    let (code, b) = slo();
    assert_eq!(
        (code, b["errors"].as_u64(), b["exhausted"].as_bool()),
        (Some(0), Some(0), Some(false)),
        "{b:#}"
    );

    // Both zones down: the balancer answers 503 itself, and each one is a failed request.
    for zone in ["local-a", "local-b"] {
        tier.orch().args(["local", "zone-down", zone, "--env", "local"]).assert().success();
    }
    for _ in 0..10 {
        assert_eq!(client.get(tier.https("/")).send().await.unwrap().status(), 503);
    }
    for zone in ["local-a", "local-b"] {
        tier.orch().args(["local", "zone-up", zone, "--env", "local"]).assert().success();
    }
    crate::support::wait_until(Duration::from_secs(10), "the 503s in the access log", || {
        slo().1["errors"].as_u64() >= Some(10)
    });
    let (code, b) = slo();
    assert_eq!((code, b["exhausted"].as_bool()), (Some(1), Some(true)), "{b:#}");
    assert!(b["spent_percent"].as_f64().unwrap() > 100.0, "{b:#}");
    let text = tier.orch().args(["slo", "--env", "local"]).output().unwrap();
    assert!(String::from_utf8_lossy(&text.stdout).contains("exhausted"));

    // `up` refuses with the numbers, changing nothing; `--force` deploys anyway.
    let out = tier.orch().args(["up", "--env", "local", "--detach"]).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("error budget is exhausted") && stderr.contains("requests failed"),
        "{stderr}"
    );
    // A new release with `--force`: it rolls out and its record keeps why it was forced.
    tier.set_env(&[("RELEASE_NOTE", "forced")]);
    let out = tier.orch().args(["up", "--env", "local", "--detach", "--force"]).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("past an exhausted error budget"), "{stderr}");
    let out = tier.orch().args(["releases", "--env", "local", "--json"]).output().unwrap();
    let list: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let newest = &list["releases"][0];
    assert_eq!(newest["outcome"], "deployed", "{list:#}");
    assert!(
        newest["forced"].as_str().is_some_and(|f| f.contains("exhausted error budget (--force)")),
        "{list:#}"
    );

    // A bad objective is a config error naming its key.
    tier.scratch.write(
        "stacks/local.yaml",
        &format!("{stack}slo:\n  availability: 100\n  latency_p99_ms: 300\n"),
    );
    let out = tier.orch().args(["slo", "--env", "local"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("slo.availability"));
    // A valid stack again, so that dropping the tier (`orch down`) can stop it.
    tier.scratch.write("stacks/local.yaml", &stack);
}
