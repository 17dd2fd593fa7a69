//! The load balancer's target group: the registered instances with their health state, shared by
//! the proxy (round robin over healthy targets, passive failure marking), the active health checker
//! and the supervisor (registers and deregisters instances).
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Instant;

use super::split::Split;
use super::upstream::Conns;

/// One registered instance.
#[derive(Debug)]
pub struct Target {
    pub id: String,
    /// The release it runs (what a canary split routes and counts by).
    pub release: String,
    pub zone: String,
    pub addr: SocketAddr,
    pub launched: Instant,
    healthy: AtomicBool,
    /// Has ever passed a health check (the instance finished booting).
    booted: AtomicBool,
    /// A request to it failed to connect (passive detection); cleared by the next passing check.
    suspect: AtomicBool,
    ok_streak: AtomicU32,
    fail_streak: AtomicU32,
    removed: AtomicBool,
    /// Idle keep-alive connections to it (the proxy's upstream pool).
    pub(crate) conns: Conns,
}

impl Target {
    pub fn new(id: impl Into<String>, zone: impl Into<String>, addr: SocketAddr) -> Self {
        Target {
            id: id.into(),
            release: String::new(),
            zone: zone.into(),
            addr,
            launched: Instant::now(),
            healthy: AtomicBool::new(false),
            booted: AtomicBool::new(false),
            suspect: AtomicBool::new(false),
            ok_streak: AtomicU32::new(0),
            fail_streak: AtomicU32::new(0),
            removed: AtomicBool::new(false),
            conns: Conns::default(),
        }
    }
    /// The same target, running `release`.
    pub fn running(self, release: &str) -> Self {
        Target { release: release.into(), ..self }
    }

    /// Passing active health checks (what the supervisor judges instances by).
    pub fn is_healthy(&self) -> bool {
        self.healthy.load(Ordering::Relaxed)
    }
    /// Healthy and not suspect: receives traffic.
    pub fn in_rotation(&self) -> bool {
        self.is_healthy() && !self.suspect.load(Ordering::Relaxed)
    }
    pub fn has_booted(&self) -> bool {
        self.booted.load(Ordering::Relaxed)
    }
    pub fn is_removed(&self) -> bool {
        self.removed.load(Ordering::Relaxed)
    }

    /// Record an active health check: `healthy` after `up` consecutive passes, unhealthy after `down`
    /// consecutive failures. Returns true when the state changed.
    pub fn record_check(&self, passed: bool, up: u32, down: u32) -> bool {
        if passed {
            self.booted.store(true, Ordering::Relaxed);
            self.suspect.store(false, Ordering::Relaxed);
            self.fail_streak.store(0, Ordering::Relaxed);
            let streak = self.ok_streak.fetch_add(1, Ordering::Relaxed) + 1;
            streak >= up && !self.healthy.swap(true, Ordering::Relaxed)
        } else {
            self.ok_streak.store(0, Ordering::Relaxed);
            let streak = self.fail_streak.fetch_add(1, Ordering::Relaxed) + 1;
            streak >= down && self.healthy.swap(false, Ordering::Relaxed)
        }
    }

    /// A fresh target for the same instance, registered again after it was deregistered (a drained
    /// instance a rollback puts back): not removed, so the health checker probes it again; its last
    /// health state carried over (it was in service when drained), to be judged anew from the
    /// next probe on.
    pub fn restored(&self) -> Target {
        let t = Target::new(self.id.clone(), self.zone.clone(), self.addr);
        t.healthy.store(self.is_healthy(), Ordering::Relaxed);
        t.booted.store(self.has_booted(), Ordering::Relaxed);
        Target { launched: self.launched, release: self.release.clone(), ..t }
    }

    /// Passive failure detection: a connection to it failed, so take it out of rotation now; the
    /// next passing active check puts it back. Returns true when it was in rotation.
    pub fn mark_suspect(&self) -> bool {
        !self.suspect.swap(true, Ordering::Relaxed)
    }
}

/// The registered targets, the round-robin cursor and the count of requests routed to the group.
#[derive(Debug, Default)]
pub struct Pool {
    targets: RwLock<Arc<Vec<Arc<Target>>>>,
    next: AtomicUsize,
    requests: AtomicU64,
    /// A canary's traffic split, while one runs.
    split: RwLock<Option<Arc<Split>>>,
}

impl Pool {
    /// Count a request routed to the group (what scaling measures, like ALB's `RequestCount`).
    pub fn count_request(&self) {
        self.requests.fetch_add(1, Ordering::Relaxed);
    }

    /// Requests routed to the group since the tier started.
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    pub fn snapshot(&self) -> Arc<Vec<Arc<Target>>> {
        match self.targets.read() {
            Ok(t) => t.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    fn update(&self, f: impl FnOnce(&mut Vec<Arc<Target>>)) {
        let mut guard = match self.targets.write() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        let mut list: Vec<Arc<Target>> = guard.as_ref().clone();
        f(&mut list);
        *guard = Arc::new(list);
    }

    pub fn register(&self, target: Arc<Target>) {
        self.update(|list| list.push(target));
    }

    pub fn deregister(&self, id: &str) -> Option<Arc<Target>> {
        let mut gone = None;
        self.update(|list| {
            if let Some(pos) = list.iter().position(|t| t.id == id) {
                let t = list.remove(pos);
                t.removed.store(true, Ordering::Relaxed);
                gone = Some(t);
            }
        });
        gone
    }

    /// Route by `split` from now on (None: every target alike).
    pub fn set_split(&self, split: Option<Arc<Split>>) {
        match self.split.write() {
            Ok(mut s) => *s = split,
            Err(poisoned) => *poisoned.into_inner() = split,
        }
    }

    pub fn split(&self) -> Option<Arc<Split>> {
        match self.split.read() {
            Ok(s) => s.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Count a response of `target` in the canary's split, if one runs.
    pub fn observe(&self, target: &Target, status: u16, micros: u64) {
        if let Some(split) = self.split() {
            split.record(&target.release, status, micros);
        }
    }

    /// The next healthy target in round-robin order, skipping `exclude`. While a canary runs, the
    /// split chooses the release first (the other one when the chosen has no target in rotation).
    pub fn pick(&self, exclude: Option<&str>) -> Option<Arc<Target>> {
        let list = self.snapshot();
        let n = list.len();
        if n == 0 {
            return None;
        }
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        let usable = |t: &&Arc<Target>| t.in_rotation() && Some(t.id.as_str()) != exclude;
        let mut order = (0..n).map(|k| &list[(start + k) % n]);
        let Some(split) = self.split() else { return order.find(usable).cloned() };
        let wanted = if split.to_canary() { &split.canary } else { &split.baseline };
        order
            .clone()
            .filter(usable)
            .find(|t| &t.release == wanted)
            .or_else(|| order.find(usable))
            .cloned()
    }

    pub fn healthy_count(&self) -> usize {
        self.snapshot().iter().filter(|t| t.is_healthy()).count()
    }

    pub fn find(&self, id: &str) -> Option<Arc<Target>> {
        self.snapshot().iter().find(|t| t.id == id).cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(id: &str) -> Arc<Target> {
        let t = Arc::new(Target::new(id, "local-a", "127.0.0.1:1".parse().unwrap()));
        t.record_check(true, 1, 1);
        t
    }

    #[test]
    fn round_robin_over_healthy_targets() {
        let pool = Pool::default();
        for id in ["a", "b", "c"] {
            pool.register(target(id));
        }
        assert!(pool.snapshot()[1].mark_suspect());
        let picks: Vec<String> = (0..4).map(|_| pool.pick(None).unwrap().id.clone()).collect();
        assert_eq!(picks, ["a", "c", "c", "a"]);
        assert_eq!(pool.pick(Some("a")).unwrap().id, "c");
    }

    #[test]
    fn thresholds_gate_state_changes() {
        let t = Target::new("x", "z", "127.0.0.1:1".parse().unwrap());
        assert!(!t.record_check(true, 2, 2));
        assert!(!t.is_healthy());
        assert!(t.record_check(true, 2, 2));
        assert!(t.is_healthy());
        assert!(!t.record_check(false, 2, 2));
        assert!(t.is_healthy(), "one failure is not enough");
        assert!(t.record_check(false, 2, 2));
        assert!(!t.is_healthy());
    }

    #[test]
    fn suspect_leaves_rotation_until_the_next_passing_check() {
        let t = target("a");
        t.mark_suspect();
        assert!(t.is_healthy() && !t.in_rotation());
        t.record_check(true, 2, 2);
        assert!(t.in_rotation());
    }

    #[test]
    fn a_restored_target_is_live_again_and_judged_by_new_checks() {
        let pool = Pool::default();
        pool.register(target("a"));
        let gone = pool.deregister("a").unwrap();
        let back = Arc::new(gone.restored());
        assert!(!back.is_removed() && back.is_healthy() && back.launched == gone.launched);
        pool.register(back.clone());
        assert_eq!(pool.pick(None).unwrap().id, "a");
        back.record_check(false, 1, 1);
        assert!(!back.is_healthy() && pool.pick(None).is_none());
    }

    #[test]
    fn a_split_routes_its_share_to_the_canary_and_falls_back_when_it_is_out() {
        let pool = Pool::default();
        for (id, release) in [("a", "old"), ("b", "old"), ("c", "new")] {
            let t = Arc::new(Target::new(id, "z", "127.0.0.1:1".parse().unwrap()).running(release));
            t.record_check(true, 1, 1);
            pool.register(t);
        }
        let split = Arc::new(Split::new("old", "new", 100));
        pool.set_split(Some(split.clone()));
        let to_c = |pool: &Pool| (0..100).filter(|_| pool.pick(None).unwrap().id == "c").count();
        assert_eq!(to_c(&pool), 0, "0 % while the canary boots");
        split.step(10);
        assert_eq!(to_c(&pool), 10);
        pool.find("c").unwrap().mark_suspect();
        assert_eq!(to_c(&pool), 0, "no canary in rotation: the baseline serves");
        pool.set_split(None);
        pool.find("c").unwrap().record_check(true, 1, 1);
        assert_eq!(to_c(&pool), 33, "no split: round robin");
    }

    #[test]
    fn deregistered_targets_are_never_picked() {
        let pool = Pool::default();
        pool.register(target("a"));
        let gone = pool.deregister("a").unwrap();
        assert!(gone.is_removed());
        assert!(pool.pick(None).is_none());
    }
}
