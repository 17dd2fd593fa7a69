//! `orch local serve`: the tier itself, in one process — the HTTP and HTTPS listeners of the load
//! balancer, the health checkers and the supervisor loop (4 ticks a second), writing `state.json`
//! every tick and reading `control.json`. SIGINT/SIGTERM stop the instances and remove the state.
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;

use super::control;
use super::release::Release;
use super::state::{self, Paths, State};
use super::{lb::tls, LocalError};
use crate::local::group::autoscale::Autoscaler;
use crate::local::group::health::{Checker, HealthSettings};
use crate::local::group::launcher::Launcher;
use crate::local::group::supervisor::{Fleet, Supervisor, Zone};
use crate::local::lb::accesslog::AccessLog;
use crate::local::lb::limits::{self, Limits};
use crate::local::lb::pages::Pages;
use crate::local::lb::pool::Pool;
use crate::local::lb::proxy::Lb;

/// Supervisor period.
pub const TICK: Duration = Duration::from_millis(250);
/// How long an instance may take to send response headers before the client gets the 504 page.
const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(30);

/// Everything the tier needs, resolved from the stack and the settings before anything starts.
pub struct ServeConfig {
    pub paths: Paths,
    pub desired: u32,
    pub zones: Vec<Zone>,
    pub base_port: u16,
    pub grace: Duration,
    pub health: HealthSettings,
    pub http_port: u16,
    pub https_port: u16,
    pub pages_dir: PathBuf,
    pub program: PathBuf,
    pub launcher: Box<dyn Launcher>,
    /// The release the tier starts with.
    pub release: Release,
    /// Scaling on load between min and max, when the stack asks for it.
    pub scaling: Option<crate::scaling::Policy>,
    /// The load balancer's bounds from the settings, before the file-descriptor budget caps them.
    pub lb_limits: Limits,
    /// The load balancer's HTTPS workers (`lb::workers::count`).
    pub lb_workers: usize,
}

async fn bind(port: u16) -> Result<TcpListener, LocalError> {
    TcpListener::bind(("127.0.0.1", port)).await.map_err(|source| LocalError::Bind { port, source })
}

/// Run the tier until SIGINT or SIGTERM.
pub async fn serve(cfg: ServeConfig) -> Result<(), LocalError> {
    std::fs::create_dir_all(&cfg.paths.dir).map_err(|e| LocalError::io(&cfg.paths.dir, e))?;
    let http = bind(cfg.http_port).await?;
    let https = bind(cfg.https_port).await?;
    let (certs, _) = tls::ensure(&cfg.paths.tls())?;
    let tls_config = tls::server_config(&certs)?;
    let log = AccessLog::open(&cfg.paths.access_log())
        .await
        .map_err(|e| LocalError::io(cfg.paths.access_log(), e))?;
    let _ = std::fs::remove_file(cfg.paths.control());

    let nofile = limits::raise_nofile();
    let lb_limits = cfg.lb_limits.within_fds(nofile);
    tracing::info!(nofile, ?lb_limits, "load balancer limits");
    let pool = Arc::new(Pool::default());
    let lb = Arc::new(Lb::new(
        pool.clone(),
        Pages::load(&cfg.pages_dir),
        log,
        cfg.https_port,
        UPSTREAM_TIMEOUT,
        lb_limits,
    ));
    let listeners = [
        tokio::spawn(lb.clone().serve_http(http)),
        tokio::spawn(lb.clone().serve_https(https, tls_config, cfg.lb_workers)),
    ];

    let fleet = Fleet {
        desired: cfg.desired,
        zones: cfg.zones.clone(),
        base_port: cfg.base_port,
        grace: cfg.grace,
    };
    let mut sup = Supervisor::new(
        fleet,
        pool.clone(),
        Checker::new(cfg.health.clone()),
        cfg.launcher,
        cfg.release,
    )
    .with_history(cfg.paths.releases());
    let mut scaler = cfg.scaling.map(|p| Autoscaler::new(p, std::time::Instant::now()));
    // With scaling, the stack's `desired` is the starting capacity and the scaler owns it afterwards
    // (as on AWS, where the group ignores later changes to `desiredCapacity`); without, a converging
    // `orch up` sets it.
    let mut release_generation = 0;
    let started_at = crate::clock::now();
    let (http_url, https_url) = urls(cfg.http_port, cfg.https_port);

    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(|e| LocalError::io("SIGTERM handler", e))?;
    let mut ticker = tokio::time::interval(TICK);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = tokio::signal::ctrl_c() => break,
            _ = term.recv() => break,
        }
        let ctl = control::read(&cfg.paths.control());
        if let Some(desired) = ctl.desired.filter(|_| scaler.is_none()) {
            sup.desired = desired;
        }
        sup.set_zones_down(&ctl.zones_down);
        if let Some(req) = ctl.release.filter(|r| r.generation > release_generation) {
            release_generation = req.generation;
            sup.start_rollout(req);
        }
        sup.tick();
        let (instances, zones, balanced) = sup.views();
        if let Some(scaler) = scaler.as_mut() {
            let in_service = instances.iter().filter(|i| i.healthy).count() as u32;
            let busy = sup.rollout.is_some();
            let now = std::time::Instant::now();
            if let Some(d) = scaler.tick(now, pool.requests(), in_service, sup.desired, busy) {
                sup.desired = d.to;
                sup.event(format!(
                    "scale {:?}: desired {} → {} ({})",
                    d.direction, d.from, d.to, d.reason
                ));
            }
        }
        let snapshot = State {
            pid: std::process::id(),
            started_at,
            updated_at: chrono::Utc::now(),
            http_url: http_url.clone(),
            https_url: https_url.clone(),
            ca: certs.ca.clone(),
            program: cfg.program.clone(),
            desired: sup.desired,
            balanced,
            zones,
            instances,
            control_generation: ctl.generation,
            events: sup.events().to_vec(),
            release: sup.release_view().clone(),
            scaling: scaler.as_ref().map(Autoscaler::view),
            buffered_bytes: lb.buffered_bytes(),
        };
        if let Err(e) = state::write(&cfg.paths, &snapshot) {
            tracing::warn!("writing {}: {e}", cfg.paths.state().display());
        }
    }
    for l in &listeners {
        l.abort();
    }
    sup.shutdown(Duration::from_secs(3)).await;
    let _ = std::fs::remove_file(cfg.paths.state());
    let _ = std::fs::remove_file(cfg.paths.control());
    Ok(())
}

/// The tier's two URLs.
pub fn urls(http_port: u16, https_port: u16) -> (String, String) {
    (format!("http://127.0.0.1:{http_port}/"), format!("https://127.0.0.1:{https_port}/"))
}
