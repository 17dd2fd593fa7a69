//! Scaling on load, end to end on the local tier: a real load generator through the TLS load
//! balancer raises desired capacity above `min` within a bounded time with no failed request, the
//! new instances spread over both zones, and desired returns to `min` after the load stops.
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::local::{load, load_every, wait_for};
use crate::support::Tier;

const SCALING: &str = "scaling:
  target_requests_per_minute: 600
  scale_out_cooldown_seconds: 2
  scale_in_cooldown_seconds: 6
  window_seconds: 3
";

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn load_scales_the_group_out_across_zones_and_back_in_to_min_with_no_failed_request() {
    let tier = Tier::scratch();
    let stack = tier.scratch.read("stacks/local.yaml").replace("desired: 4", "desired: 2");
    let stack = stack.replacen("health_check:", &format!("{SCALING}health_check:"), 1);
    tier.scratch.write("stacks/local.yaml", &stack);
    tier.up();
    let client = tier.client();
    let (_, s) = tier.status();
    assert_eq!(s["desired"], 2, "{s:#}");
    assert_eq!(s["scaling"]["target_per_instance"], 600.0, "{s:#}");

    // `orch up`'s own checks are requests too: wait until they have left the window.
    wait_for(&tier, Duration::from_secs(10), "an idle window", |s| {
        s["scaling"]["load_per_instance"] == 0.0
    });
    // Well above 600 requests per instance per minute for 2 instances: the group grows.
    let stop = Arc::new(AtomicBool::new(false));
    let heavy = load(client.clone(), tier.https("/"), 4, stop.clone());
    let start = Instant::now();
    wait_for(&tier, Duration::from_secs(30), "desired above min under load", |s| {
        s["desired"].as_u64().is_some_and(|d| d > 2)
    });
    let out_after = start.elapsed();
    let grown = wait_for(&tier, Duration::from_secs(30), "the new instances in service", |s| {
        s["desired"].as_u64().is_some_and(|d| d > 2)
            && s["in_service"] == s["desired"]
            && s["zones"].as_array().is_some_and(|zs| zs.iter().all(|z| z["healthy"] != 0))
    });
    stop.store(true, Ordering::Relaxed);
    let (ok, failed) = heavy.await.unwrap();
    assert!(ok >= 200, "only {ok} requests went through");
    assert!(failed.is_empty(), "{} failed requests while scaling out: {failed:?}", failed.len());
    let (_, s) = tier.status();
    let last = &s["scaling"]["last"];
    assert_eq!(last["direction"], "out", "{s:#}");
    assert!(last["reason"].as_str().is_some_and(|r| r.contains("above the target 600")), "{s:#}");
    let zones: Vec<u64> =
        s["zones"].as_array().unwrap().iter().map(|z| z["instances"].as_u64().unwrap()).collect();
    let (lo, hi) = (zones.iter().min().unwrap(), zones.iter().max().unwrap());
    assert!(hi - lo <= 1, "new instances spread over the zones: {zones:?}");

    // A light load (well under the target) goes on while the group scales back in: no failure.
    let stop = Arc::new(AtomicBool::new(false));
    let light = load_every(client, tier.https("/"), 1, Duration::from_millis(200), stop.clone());
    let start = Instant::now();
    wait_for(&tier, Duration::from_secs(40), "desired back to min", |s| {
        s["desired"] == 2 && s["in_service"] == 2
    });
    let in_after = start.elapsed();
    stop.store(true, Ordering::Relaxed);
    let (_, failed) = light.await.unwrap();
    assert!(failed.is_empty(), "{} failed requests while scaling in: {failed:?}", failed.len());
    let (_, s) = tier.status();
    assert_eq!(s["scaling"]["last"]["direction"], "in", "{s:#}");

    // The human status names the load, the target and the last decision.
    let out = tier.orch().args(["status", "--env", "local"]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("/600 requests/instance/min (min 2, max 6); last: in"), "{text}");
    eprintln!(
        "scaling: desired above min {:.1} s after the load began, in service {:.1} s later; \
         back to min {:.1} s after it stopped",
        out_after.as_secs_f64(),
        grown.as_secs_f64(),
        in_after.as_secs_f64()
    );
}
