//! The local Auto Scaling group. Every tick it reaps exited instances, kills the instances of zones
//! taken down by the drill, asks [`crate::placement::plan`] what to do and does it: launches on a
//! free address of the zone's loopback range (registering the instance with the load balancer and
//! its health checker) and terminates gracefully (deregister first, then SIGTERM, SIGKILL after 5 s).
//! Brakes: launches in a zone whose launches keep failing wait (exponential backoff, `backoff`),
//! at most [`MAX_REPLACEMENTS_PER_TICK`] unhealthy instances are replaced per tick, and a failed
//! launch names its real cause (out of descriptors is not "no free address").
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

mod launch;
mod views;

pub use launch::LaunchError;

use super::backoff::Backoff;
use super::health::Checker;
use super::launcher::{Instance, Launcher};
use crate::local::lb::pool::{Pool, Target};
use crate::local::release::{Release, ReleaseView};
use crate::placement::{self, Action, Observed, ZoneState};
use crate::release::State;
use crate::rollout::local::Rollout;

/// How long a terminated instance gets to exit after SIGTERM.
const STOP_GRACE: Duration = Duration::from_secs(5);
/// Events kept for `status`.
const EVENTS_KEPT: usize = 30;
/// Unhealthy instances terminated (and replaced) per tick at most; the others wait for the next
/// ticks, so a fault that makes every instance look unhealthy at once cannot replace them all.
pub const MAX_REPLACEMENTS_PER_TICK: usize = 1;

/// A zone and its loopback /24.
#[derive(Debug, Clone)]
pub struct Zone {
    pub name: String,
    pub net: ipnet::Ipv4Net,
}

impl Zone {
    /// Parse `127.x.y.0/24` into a zone ([`crate::config::loopback_net`]).
    pub fn new(name: &str, range: &str) -> Option<Zone> {
        crate::config::loopback_net(range).map(|net| Zone { name: name.into(), net })
    }
}

/// The group's shape: capacity, zones, the first instance port and the health-check grace.
#[derive(Debug, Clone)]
pub struct Fleet {
    pub desired: u32,
    pub zones: Vec<Zone>,
    pub base_port: u16,
    pub grace: Duration,
}

pub(crate) struct Running {
    pub(crate) target: Arc<Target>,
    pub(crate) process: Box<dyn Instance>,
    pub(crate) release: Arc<Release>,
}

/// The supervisor's settings and what it runs.
pub struct Supervisor {
    pub desired: u32,
    zones: Vec<Zone>,
    base_port: u16,
    pub(crate) grace: Duration,
    pub(crate) pool: Arc<Pool>,
    checker: Checker,
    launcher: Box<dyn Launcher>,
    pub(crate) running: Vec<Running>,
    pub(crate) stopping: Vec<(Box<dyn Instance>, Instant)>,
    zones_down: BTreeSet<String>,
    events: Vec<String>,
    backoff: Backoff,
    /// The release new instances run.
    pub(crate) release: Arc<Release>,
    /// The release being rolled out, instance by instance.
    pub(crate) rollout: Option<Rollout>,
    /// How the last requested release fared.
    pub(crate) release_view: ReleaseView,
    /// Where finished rollouts are recorded (`releases.json`).
    pub(crate) history: Option<std::path::PathBuf>,
}

impl Supervisor {
    pub fn new(
        fleet: Fleet,
        pool: Arc<Pool>,
        checker: Checker,
        launcher: Box<dyn Launcher>,
        release: Release,
    ) -> Self {
        let Fleet { desired, zones, base_port, grace } = fleet;
        let release_view = ReleaseView {
            id: release.id.clone(),
            digest: release.digest.clone(),
            outcome: State::Deployed,
            reason: None,
            generation: 0,
            replaced: 0,
            canary: None,
            analysis: vec![],
        };
        Supervisor {
            desired,
            zones,
            base_port,
            grace,
            pool,
            checker,
            launcher,
            running: vec![],
            stopping: vec![],
            zones_down: BTreeSet::new(),
            events: vec![],
            backoff: Backoff::default(),
            release: Arc::new(release),
            rollout: None,
            release_view,
            history: None,
        }
    }

    /// Record finished rollouts in `path`.
    pub fn with_history(mut self, path: std::path::PathBuf) -> Self {
        self.history = Some(path);
        self
    }

    /// The release view `state.json` carries.
    pub fn release_view(&self) -> &ReleaseView {
        &self.release_view
    }

    pub(crate) fn event(&mut self, text: String) {
        tracing::info!("{text}");
        self.events.push(format!("{} {text}", chrono::Utc::now().format("%H:%M:%S%.3f")));
        if self.events.len() > EVENTS_KEPT {
            self.events.remove(0);
        }
    }

    /// Apply the drill's zone states: instances of a zone going down die at once (SIGKILL).
    pub fn set_zones_down(&mut self, down: &BTreeSet<String>) {
        for zone in down.difference(&self.zones_down.clone()) {
            self.event(format!("zone {zone} down"));
        }
        for zone in self.zones_down.clone().difference(down) {
            self.event(format!("zone {zone} up"));
        }
        self.zones_down = down.clone();
        let mut killed = Vec::new();
        for r in self.running.iter_mut().filter(|r| down.contains(&r.target.zone)) {
            r.process.stop(true);
            killed.push(r.target.id.clone());
        }
        for id in killed {
            self.reap(&id, "died with its zone");
        }
    }

    pub(crate) fn reap(&mut self, id: &str, why: &str) {
        if let Some(pos) = self.running.iter().position(|r| r.target.id == id) {
            let mut r = self.running.remove(pos);
            self.pool.deregister(id);
            if !r.process.exited() {
                self.stopping.push((r.process, Instant::now()));
            }
            self.launcher.retire(id);
            self.event(format!("{id} ({}) {why}", r.target.zone));
        }
    }

    /// One round: reap, plan, act. Returns the actions taken.
    pub fn tick(&mut self) -> Vec<Action> {
        let exited: Vec<String> = self
            .running
            .iter_mut()
            .filter_map(|r| r.process.exited().then(|| r.target.id.clone()))
            .collect();
        for id in exited {
            if let Some(r) = self.running.iter().find(|r| r.target.id == id) {
                if !r.target.has_booted() {
                    let zone = r.target.zone.clone();
                    let wait = self.backoff.failed(&zone);
                    self.reap(&id, &format!("exited before passing a health check; next launch in {zone} in {wait:?}"));
                    continue;
                }
            }
            self.reap(&id, "exited");
        }
        let healthy_zones: BTreeSet<String> = self
            .running
            .iter()
            .filter(|r| r.target.is_healthy())
            .map(|r| r.target.zone.clone())
            .collect();
        for zone in &healthy_zones {
            self.backoff.succeeded(zone);
        }
        self.stopping.retain_mut(|(p, since)| {
            if p.exited() {
                return false;
            }
            if since.elapsed() > STOP_GRACE {
                p.stop(true);
            }
            true
        });
        if self.rollout.is_some() {
            // A rollout owns the capacity until it ends (launch first, then drain one old instance).
            self.rollout_tick();
            return vec![];
        }

        let zones: Vec<ZoneState> = self
            .zones
            .iter()
            .map(|z| ZoneState {
                name: z.name.clone(),
                available: !self.zones_down.contains(&z.name),
            })
            .collect();
        let actions = placement::plan(self.desired, &zones, &self.braked(self.observed()));
        for action in &actions {
            match action {
                Action::Terminate { id, reason } => {
                    if let Some(r) = self.running.iter_mut().find(|r| &r.target.id == id) {
                        self.pool.deregister(id);
                        r.process.stop(false);
                    }
                    self.reap(id, &format!("terminated ({reason:?})"));
                }
                Action::Launch { zone } if self.backoff.ready(zone) => {
                    let release = self.release.clone();
                    self.launch(zone, release);
                }
                Action::Launch { .. } => {}
            }
        }
        actions
    }

    fn observed(&self) -> Vec<Observed> {
        self.running
            .iter()
            .map(|r| Observed {
                id: r.target.id.clone(),
                zone: r.target.zone.clone(),
                healthy: r.target.is_healthy(),
                in_grace: r.target.launched.elapsed() < self.grace,
            })
            .collect()
    }

    /// What the plan sees: unhealthy instances past their grace beyond the first
    /// [`MAX_REPLACEMENTS_PER_TICK`] look as if still in grace, so this tick neither terminates
    /// nor replaces them.
    fn braked(&self, mut observed: Vec<Observed>) -> Vec<Observed> {
        let mut replacing = 0;
        for o in observed.iter_mut().filter(|o| !o.healthy && !o.in_grace) {
            if self.zones_down.contains(&o.zone) {
                continue;
            }
            replacing += 1;
            o.in_grace = replacing > MAX_REPLACEMENTS_PER_TICK;
        }
        observed
    }

    /// Stop every instance (SIGTERM, then SIGKILL after `grace`).
    pub async fn shutdown(&mut self, grace: Duration) {
        for r in &mut self.running {
            self.pool.deregister(&r.target.id);
            r.process.stop(false);
        }
        let mut all: Vec<Box<dyn Instance>> = self.running.drain(..).map(|r| r.process).collect();
        all.extend(self.stopping.drain(..).map(|(p, _)| p));
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline && all.iter_mut().any(|p| !p.exited()) {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        for p in &mut all {
            p.stop(true);
        }
        for _ in 0..20 {
            if all.iter_mut().all(|p| p.exited()) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zones_parse_their_loopback_range() {
        let z = Zone::new("local-a", "127.0.1.0/24").unwrap();
        assert_eq!(z.net.network().octets(), [127, 0, 1, 0]);
        assert!(Zone::new("x", "10.0.0.0/24").is_none());
        assert!(Zone::new("x", "127.0.1.0/16").is_none());
        assert!(Zone::new("x", "127.0.1.7/24").is_none(), "host bits set");
        assert!(Zone::new("x", "127.0.1/24").is_none());
        assert!(Zone::new("x", "128.0.1.0/24").is_none());
    }
}
