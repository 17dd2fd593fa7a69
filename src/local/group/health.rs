//! Active health checks: one task per registered instance probes the stack's liveness path every
//! `interval_seconds` (every 200 ms until its first pass, so a booting instance joins quickly) and
//! moves it in and out of service after `healthy_threshold` / `unhealthy_threshold` results in a row.
//! A probe this process could not even make (out of file descriptors) proves nothing about the
//! instance and is not counted: a flood of sockets on the listeners never makes instances unhealthy.
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Empty;
use hyper::{Request, Uri};
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;

use crate::config::HealthCheck;
use crate::local::lb::limits::is_exhaustion;
use crate::local::lb::pool::Target;

/// Probe interval while an instance has never passed a check.
const BOOT_PROBE: Duration = Duration::from_millis(200);

/// The health check as the checker uses it.
#[derive(Debug, Clone)]
pub struct HealthSettings {
    pub path: String,
    pub interval: Duration,
    pub timeout: Duration,
    pub healthy_threshold: u32,
    pub unhealthy_threshold: u32,
}

impl From<&HealthCheck> for HealthSettings {
    fn from(h: &HealthCheck) -> Self {
        HealthSettings {
            path: h.path.clone(),
            interval: Duration::from_secs(u64::from(h.interval_seconds.max(1))),
            timeout: Duration::from_secs(u64::from(h.timeout_seconds.max(1))),
            healthy_threshold: h.healthy_threshold,
            unhealthy_threshold: h.unhealthy_threshold,
        }
    }
}

/// Probes instances; no connection reuse, so every probe proves the instance still accepts connections.
#[derive(Clone)]
pub struct Checker {
    client: Client<HttpConnector, Empty<Bytes>>,
    settings: Arc<HealthSettings>,
}

impl Checker {
    pub fn new(settings: HealthSettings) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(settings.timeout));
        let client =
            Client::builder(TokioExecutor::new()).pool_max_idle_per_host(0).build(connector);
        Checker { client, settings: Arc::new(settings) }
    }

    /// One probe: a 2xx answer within the timeout passes; `None` when this process could not
    /// make it (out of descriptors).
    pub async fn probe(&self, target: &Target) -> Option<bool> {
        let Ok(uri) = format!("http://{}{}", target.addr, self.settings.path).parse::<Uri>() else {
            return Some(false);
        };
        let Ok(req) =
            Request::get(uri).header("user-agent", "orch-health-check").body(Empty::new())
        else {
            return Some(false);
        };
        match tokio::time::timeout(self.settings.timeout, self.client.request(req)).await {
            Ok(Ok(resp)) => Some(resp.status().is_success()),
            Ok(Err(e)) if local_exhaustion(&e) => None,
            _ => Some(false),
        }
    }

    /// Check `target` until it is deregistered.
    pub fn spawn(&self, target: Arc<Target>) -> tokio::task::JoinHandle<()> {
        let checker = self.clone();
        tokio::spawn(async move {
            while !target.is_removed() {
                let s = &checker.settings;
                match checker.probe(&target).await {
                    Some(passed) => {
                        if target.record_check(passed, s.healthy_threshold, s.unhealthy_threshold) {
                            tracing::info!(instance = %target.id, healthy = target.is_healthy(), "health changed");
                        }
                    }
                    None => {
                        tracing::warn!(instance = %target.id, "health probe not made: out of file descriptors");
                    }
                }
                tokio::time::sleep(if target.has_booted() { s.interval } else { BOOT_PROBE }).await;
            }
        })
    }
}

/// Is `e` (or a cause of it) this process running out of descriptors?
fn local_exhaustion(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut current = Some(e);
    while let Some(err) = current {
        if err.downcast_ref::<std::io::Error>().is_some_and(is_exhaustion) {
            return true;
        }
        current = err.source();
    }
    false
}
