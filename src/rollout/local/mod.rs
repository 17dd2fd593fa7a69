//! Rolling a new release over the running instances, as an Auto Scaling instance refresh with
//! MinHealthyPercentage 100 / MaxHealthyPercentage 200 does: one instance at a time, launch a
//! new-release instance in the zone of an old one, wait until it passes `healthy_threshold` health
//! checks, then drain the old one (out of rotation first; SIGTERM after a short delay so requests
//! already routed to it finish; SIGKILL after the stop grace). Instances in service never drop below
//! desired. A new instance that exits, or is not healthy within `grace_period_seconds`, rolls the
//! release back: every instance of it is terminated and the previous release keeps serving. A
//! canary rollout (`rollout.strategy: canary`) holds the first replacement in the canary phase
//! ([`canary`]) until every step has passed, or aborts it.
pub mod canary;

use std::sync::Arc;
use std::time::{Duration, Instant};

use self::canary::{CanaryRun, Next};
use crate::local::group::supervisor::Supervisor;
use crate::local::release::{Entry, Release};
use crate::release::State;
use crate::rollout::canary::StepAnalysis;

/// How long a drained instance stays out of rotation before it gets SIGTERM.
const DRAIN_DELAY: Duration = Duration::from_millis(500);

/// A rollout in progress.
#[derive(Debug)]
pub(crate) struct Rollout {
    pub(crate) to: Arc<Release>,
    from: Arc<Release>,
    generation: u64,
    by: String,
    revision: String,
    started: Instant,
    step: Option<Step>,
    /// Old instances out of rotation, waiting for their SIGTERM.
    draining: Vec<(String, Instant)>,
    replaced: u32,
    /// The canary phase, until promoted (None for a rolling rollout, and after promotion).
    pub(crate) canary: Option<CanaryRun>,
    /// The canary's judged steps, kept with the release.
    pub(crate) analysis: Vec<StepAnalysis>,
    /// Why it was deployed with `--force`, if it was.
    forced: Option<String>,
}

#[derive(Debug)]
struct Step {
    new_id: String,
    old_id: String,
    launched: Instant,
}

impl Supervisor {
    /// Start rolling `release` out (asked by control generation `generation`, by `by`). A release
    /// already targeted is ignored; a rollout in progress is rolled back first.
    pub fn start_rollout(&mut self, req: crate::local::control::ReleaseRequest) {
        let crate::local::control::ReleaseRequest {
            release,
            by,
            revision,
            generation,
            canary,
            forced,
        } = req;
        if release.id == self.release.id && self.rollout.is_none() {
            // Already what runs (after a rolled-back release too): deployed, nothing to replace.
            self.release_view = crate::local::release::ReleaseView {
                id: release.id,
                digest: release.digest,
                outcome: State::Deployed,
                reason: None,
                generation,
                replaced: 0,
                canary: None,
                analysis: vec![],
            };
            return;
        }
        if let Some(r) = &self.rollout {
            if r.to.id == release.id {
                return;
            }
            self.roll_back("a newer release was requested".into());
        }
        let to = Arc::new(release);
        self.event(format!("rollout of release {} ({}) started", to.id, to.short_digest()));
        self.release_view = crate::local::release::ReleaseView {
            id: to.id.clone(),
            digest: to.digest.clone(),
            outcome: State::Rolling,
            reason: None,
            generation,
            replaced: 0,
            canary: None,
            analysis: vec![],
        };
        let canary = canary.map(|plan| CanaryRun::start(plan, &self.release.id, &to.id));
        self.pool.set_split(canary.as_ref().map(CanaryRun::split));
        self.rollout = Some(Rollout {
            from: std::mem::replace(&mut self.release, to.clone()),
            to,
            generation,
            by,
            revision,
            started: Instant::now(),
            step: None,
            draining: vec![],
            replaced: 0,
            canary,
            analysis: vec![],
            forced,
        });
    }

    /// One rollout round; called by `tick` instead of the placement while a rollout runs.
    pub(crate) fn rollout_tick(&mut self) {
        let Some(mut r) = self.rollout.take() else { return };
        // Drained instances get their SIGTERM once the drain delay is over.
        let due: Vec<String> = r
            .draining
            .iter()
            .filter(|(_, at)| at.elapsed() >= DRAIN_DELAY)
            .map(|(id, _)| id.clone())
            .collect();
        r.draining.retain(|(_, at)| at.elapsed() < DRAIN_DELAY);
        for id in due {
            if let Some(old) = self.running.iter_mut().find(|x| x.target.id == id) {
                old.process.stop(false);
            }
            self.reap(&id, "replaced by the new release");
        }
        if let Some(step) = &r.step {
            let new = self.running.iter().find(|x| x.target.id == step.new_id);
            let healthy = new.is_some_and(|x| x.target.is_healthy());
            if new.is_none() {
                let why =
                    format!("its instance {} exited before passing health checks", step.new_id);
                return self.fail(r, why);
            }
            if !healthy && r.canary.as_ref().is_some_and(CanaryRun::serving) {
                let why = format!("its canary instance {} failed its health checks", step.new_id);
                return self.fail(r, why);
            }
            if !healthy && step.launched.elapsed() > self.grace {
                let why = format!(
                    "its instance {} did not pass health checks within {} s",
                    step.new_id,
                    self.grace.as_secs()
                );
                return self.fail(r, why);
            }
            if !healthy {
                self.rollout = Some(r);
                return;
            }
            let old_id = step.old_id.clone();
            if r.canary.is_some() {
                match self.canary_tick(&mut r) {
                    Next::Watch => {
                        self.rollout = Some(r);
                        return;
                    }
                    Next::Abort(why) => return self.abort(r, why),
                    Next::Promote => {}
                }
            }
            self.pool.deregister(&old_id);
            r.draining.push((old_id, Instant::now()));
            r.replaced += 1;
            self.release_view.replaced = r.replaced;
            r.step = None;
        }
        let draining: Vec<String> = r.draining.iter().map(|(id, _)| id.clone()).collect();
        let next = self
            .running
            .iter()
            .filter(|x| x.release.id != r.to.id && !draining.contains(&x.target.id))
            .max_by_key(|x| x.target.launched.elapsed())
            .map(|x| (x.target.id.clone(), x.target.zone.clone()));
        match next {
            Some((old_id, zone)) => match self.launch(&zone, r.to.clone()) {
                Some(new_id) => {
                    r.step = Some(Step { new_id, old_id, launched: Instant::now() });
                    self.rollout = Some(r);
                }
                None => self.fail(r, format!("no instance could be launched in {zone}")),
            },
            None if r.draining.is_empty() => self.finish(r, State::Deployed, None),
            None => self.rollout = Some(r),
        }
    }

    /// Roll the rollout in progress back (a newer request, or shutdown).
    fn roll_back(&mut self, why: String) {
        if let Some(r) = self.rollout.take() {
            self.fail(r, why);
        }
    }

    /// The canary failed: all traffic back on the baseline at once, the canary retired.
    fn abort(&mut self, r: Rollout, why: String) {
        self.undo(r, State::Aborted, why);
    }

    /// The release failed its health checks: roll it back.
    fn fail(&mut self, r: Rollout, why: String) {
        self.undo(r, State::RolledBack, why);
    }

    /// Terminate the release's instances, put the drained old ones back, keep serving the previous
    /// release.
    fn undo(&mut self, r: Rollout, outcome: State, why: String) {
        self.pool.set_split(None);
        self.release_view.canary = None;
        let new: Vec<String> = self
            .running
            .iter()
            .filter(|x| x.release.id == r.to.id)
            .map(|x| x.target.id.clone())
            .collect();
        for id in &new {
            self.pool.deregister(id);
            if let Some(x) = self.running.iter_mut().find(|x| &x.target.id == id) {
                x.process.stop(false);
            }
            self.reap(id, "terminated: its release is rolled back");
        }
        // Drained old instances go back as fresh targets: registered and health-checked again.
        for (id, _) in &r.draining {
            self.restore(id);
        }
        self.release = r.from.clone();
        let mut ids = new.clone();
        if let Some(step) = r.step.as_ref().filter(|s| !new.contains(&s.new_id)) {
            ids.push(step.new_id.clone());
        }
        // Reaped instances' logs are kept under instances/retired/ (Launcher::retire).
        let logs = ids.iter().map(|id| format!("instances/retired/{id}.log")).collect::<Vec<_>>();
        let reason = format!(
            "release {} {}: {why}; read {} under the tier's folder",
            r.to.id,
            if outcome == State::Aborted { "aborted" } else { "rolled back" },
            if logs.is_empty() { "serve.log".into() } else { logs.join(", ") }
        );
        self.finish(r, outcome, Some(reason));
    }

    fn finish(&mut self, r: Rollout, outcome: State, reason: Option<String>) {
        let seconds = r.started.elapsed().as_secs_f64();
        self.event(match &reason {
            None => format!("release {} deployed in {seconds:.1} s", r.to.id),
            Some(why) => why.clone(),
        });
        self.release_view.outcome = outcome;
        self.release_view.reason = reason.clone();
        self.release_view.generation = r.generation;
        self.release_view.analysis = r.analysis.clone();
        if let Some(path) = &self.history {
            let entry = Entry {
                time: crate::clock::now(),
                digest: r.to.digest.clone(),
                state: outcome,
                note: reason,
                by: Some(r.by.clone()),
                revision: r.revision.clone(),
                canary: r.analysis,
                forced: r.forced,
                run: r.to.as_ref().clone().ran(seconds),
            };
            if let Err(e) = crate::local::release::record(path, entry) {
                tracing::warn!("recording the release in {}: {e}", path.display());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::local::group::health::{Checker, HealthSettings};
    use crate::local::group::launcher::{Instance, LaunchSpec, Launcher};
    use crate::local::group::supervisor::{Fleet, Supervisor, Zone};
    use crate::local::lb::pool::Pool;
    use std::io::{Read, Write};
    use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
    use std::sync::Mutex;

    /// An instance: a thread answering 200 on its address until stopped; `frozen` stops the
    /// answers but keeps the socket (as SIGSTOP does: connections queue, nothing replies).
    #[derive(Default)]
    struct Fake {
        frozen: AtomicBool,
        stopped: AtomicBool,
    }

    struct FakeInstance(Arc<Fake>);

    impl Instance for FakeInstance {
        fn pid(&self) -> Option<u32> {
            None
        }
        fn exited(&mut self) -> bool {
            self.0.stopped.load(Ordering::SeqCst)
        }
        fn stop(&mut self, _hard: bool) {
            self.0.stopped.store(true, Ordering::SeqCst);
        }
    }

    /// Launches fakes; the second launch of release `bad` fails (its rollout cannot go on).
    struct Fakes {
        bad: String,
        bad_launches: AtomicU32,
        launched: Mutex<Vec<(String, Arc<Fake>)>>,
    }

    impl Launcher for Arc<Fakes> {
        fn launch(&self, spec: &LaunchSpec) -> std::io::Result<Box<dyn Instance>> {
            if spec.release.id == self.bad && self.bad_launches.fetch_add(1, Ordering::SeqCst) == 1
            {
                return Err(std::io::Error::other("the second instance of the bad release"));
            }
            let fake = Arc::new(Fake::default());
            let listener = std::net::TcpListener::bind(spec.addr)?;
            listener.set_nonblocking(true)?;
            let me = fake.clone();
            std::thread::spawn(move || {
                let mut held = vec![];
                while !me.stopped.load(Ordering::SeqCst) {
                    match listener.accept() {
                        Ok((mut conn, _)) if !me.frozen.load(Ordering::SeqCst) => {
                            let _ = conn.set_nonblocking(false);
                            let mut buf = [0u8; 1024];
                            let _ = conn.read(&mut buf);
                            let _ = conn.write_all(
                                b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
                            );
                        }
                        Ok((conn, _)) => held.push(conn),
                        Err(_) => std::thread::sleep(Duration::from_millis(10)),
                    }
                }
            });
            self.launched.lock().unwrap().push((spec.id.clone(), fake.clone()));
            Ok(Box::new(FakeInstance(fake)))
        }
    }

    fn until(what: &str, sup: &mut Supervisor, mut cond: impl FnMut(&Supervisor) -> bool) {
        let start = Instant::now();
        while !cond(sup) {
            assert!(start.elapsed() < Duration::from_secs(20), "timed out: {what}");
            sup.tick();
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_rolled_back_rollout_puts_drained_instances_back_under_health_checks() {
        let good = Release::new("sha256:aa", "/good".into(), vec![]);
        let bad = Release::new("sha256:bb", "/bad".into(), vec![]);
        let fakes = Arc::new(Fakes {
            bad: bad.id.clone(),
            bad_launches: AtomicU32::new(0),
            launched: Mutex::new(vec![]),
        });
        let pool = Arc::new(Pool::default());
        let checker = Checker::new(HealthSettings {
            path: "/".into(),
            interval: Duration::from_millis(100),
            timeout: Duration::from_millis(300),
            healthy_threshold: 1,
            unhealthy_threshold: 2,
        });
        let base_port = 20000 + (std::process::id() % 20000) as u16;
        let fleet = Fleet {
            desired: 2,
            zones: vec![
                Zone::new("local-a", "127.0.91.0/24").unwrap(),
                Zone::new("local-b", "127.0.92.0/24").unwrap(),
            ],
            base_port,
            grace: Duration::from_secs(1),
        };
        let mut sup =
            Supervisor::new(fleet, pool.clone(), checker, Box::new(fakes.clone()), good.clone());
        tokio::task::block_in_place(|| {
            until("two healthy instances", &mut sup, |_| pool.healthy_count() == 2);
            let first: Vec<String> = sup.running.iter().map(|r| r.target.id.clone()).collect();
            sup.start_rollout(crate::local::control::ReleaseRequest {
                release: bad.clone(),
                by: "test".into(),
                revision: "test".into(),
                generation: 1,
                canary: None,
                forced: None,
            });
            // The first new instance passes, one old instance is drained, the next launch fails.
            until("the rollout is rolled back", &mut sup, |s| {
                s.release_view().outcome == State::RolledBack
            });
            let back: Vec<_> =
                pool.snapshot().iter().filter(|t| first.contains(&t.id)).cloned().collect();
            assert_eq!(back.len(), 2, "both old instances serve again");
            assert!(back.iter().all(|t| !t.is_removed()), "a restored target is live");
            // Freeze one old instance: health checks take it out of rotation, then it is replaced.
            let drained = back.iter().max_by_key(|t| t.launched.elapsed()).unwrap();
            let frozen = drained.id.clone();
            let fake = fakes
                .launched
                .lock()
                .unwrap()
                .iter()
                .find(|(id, _)| *id == frozen)
                .unwrap()
                .1
                .clone();
            fake.frozen.store(true, Ordering::SeqCst);
            until("the frozen instance leaves rotation", &mut sup, |_| {
                pool.find(&frozen).is_none_or(|t| !t.in_rotation())
            });
            until("the frozen instance is replaced", &mut sup, |s| {
                !s.running.iter().any(|r| r.target.id == frozen)
                    && s.running.iter().filter(|r| r.target.is_healthy()).count() == 2
            });
        });
        sup.shutdown(Duration::from_millis(100)).await;
    }
}
