//! `up`, `down` and `serve` for the local target. `up` resolves everything that can fail (stack,
//! database, app build) before starting anything, then runs `orch local serve` as a child — in the
//! foreground, or detached in its own session with `--detach` — waits until the tier is healthy and
//! runs the acceptance suite against it. `up` on a running tier converges it; `up`/`down` first
//! clean up what a killed orch left behind.
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::artifact::{self, Artifact};
use super::control::ReleaseRequest;
use super::lb::{limits::Limits, workers};
use super::release::{self, Release};
use super::serve::{self, ServeConfig};
use super::state::{self, Paths, State, Tier, TIER_MARK};
use super::{control, database, paths, zones, LocalError};
use crate::config::Stack;
use crate::context::{Ctx, DownOptions, UpOptions};
use crate::error::{OrchError, Outcome};
use crate::local::group::launcher::ProcessLauncher;
use crate::placement::{self, ZoneState};
use crate::release::State as ReleaseState;
use crate::runner::Duct;

/// How long `up` waits for the tier to become healthy.
const HEALTHY_WITHIN: Duration = Duration::from_secs(60);

pub(super) async fn up(
    ctx: &Ctx<'_>,
    stack: &Stack,
    args: &UpOptions,
) -> Result<Outcome, OrchError> {
    let project = ctx.project()?;
    let paths = paths(&project, stack);
    let zone_list = zones(stack)?;
    let (_, db_label) = database(stack, &paths)?;
    let local = stack.local_settings();
    let (http_url, https_url) = serve::urls(local.http_port, local.https_port);
    let p = ctx.printer;

    // The error budget gate: while the objective's budget is spent, no new deploy (`--force`
    // deploys anyway and says so).
    let mut forced = None;
    if let Some(slo) = &stack.slo {
        let budget = super::slo::budget(&paths, slo);
        if budget.exhausted && !args.force {
            p.warn(&format!(
                "refused: the error budget is exhausted: {}; nothing was changed (`orch slo --env {}` shows it, `orch up --force` deploys anyway)",
                budget.summary(),
                stack.name
            ));
            return Ok(Outcome::Finding);
        }
        if budget.exhausted {
            let why =
                format!("deployed past an exhausted error budget (--force): {}", budget.summary());
            p.warn(&why);
            forced = Some(why);
        }
    }

    if args.dry_run {
        let states: Vec<ZoneState> = zone_list.iter().map(|z| ZoneState::up(&z.name)).collect();
        p.data(&format!(
            "would start the local tier: {http_url} and {https_url}, database {db_label}"
        ));
        for action in placement::plan(stack.instances.desired, &states, &[]) {
            p.data(&format!("  {}", serde_json::to_string(&action).unwrap_or_default()));
        }
        return Ok(Outcome::Ok);
    }

    std::fs::create_dir_all(&paths.dir).map_err(|e| LocalError::io(&paths.dir, e))?;
    // Under the tier's lock: a second `up` (or `rollback`) is refused naming this one, never
    // racing it on the control file or taking its starting supervisor for a leftover.
    let lock = super::lock(ctx, stack, &paths, "orch up", args.force_unlock).await?;
    let result = up_locked(ctx, stack, args, &paths, forced).await;
    lock.release().await.map_err(LocalError::from)?;
    match result? {
        Up::Done(state, aborted) => {
            let passed = verify_tier(ctx, &state).await;
            print_urls(ctx, &state);
            Ok(Outcome::finding_if(!passed || aborted))
        }
        // The foreground tier runs on after the lock is released: `up` then only waits.
        Up::Foreground(child, state) => foreground(ctx, child, &state).await,
    }
}

/// What the locked part of `up` leaves: a tier to verify, or a foreground one to wait for.
enum Up {
    /// The tier as it runs, and whether a canary was aborted (the previous release serves).
    Done(State, bool),
    Foreground(Child, State),
}

async fn up_locked(
    ctx: &Ctx<'_>,
    stack: &Stack,
    args: &UpOptions,
    paths: &Paths,
    forced: Option<String>,
) -> Result<Up, OrchError> {
    let project = ctx.project()?;
    let p = ctx.printer;
    let paths = paths.clone();
    // A history that does not parse stops the run before anything changes (it is never replaced).
    release::history(&paths.releases())?;
    let mut aborted = false;
    let state = match state::inspect(&paths) {
        Tier::Running(state) => {
            p.progress(&format!(
                "the local tier is already running (pid {}): converging",
                state.pid
            ));
            let artifact = artifact::resolve(&project, stack, &Duct, p, ctx.settings())
                .map_err(LocalError::from)?;
            let wanted = release_of(stack, &artifact);
            if wanted.id != state.release.id || state.release.outcome != ReleaseState::Deployed {
                let how = How { canary: crate::rollout::canary::CanaryPlan::of(stack), forced };
                aborted = roll_out(ctx, stack, &paths, wanted, how).await?.is_some();
            }
            let generation =
                control::update(&paths.control(), |c| c.desired = Some(stack.instances.desired))
                    .map_err(|e| LocalError::io(paths.control(), e))?;
            wait_healthy(&paths, None, generation).await?
        }
        Tier::Stopped { cleaned } => {
            if cleaned > 0 {
                p.progress(&format!("stopped {cleaned} leftover process(es) of a previous run"));
            }
            let artifact = artifact::resolve(&project, stack, &Duct, p, ctx.settings())
                .map_err(LocalError::from)?;
            let started = Instant::now();
            let mut child = spawn_serve(ctx, &project.root, &paths, &artifact, args.detach)?;
            let spinner = p.spinner("starting instances and the load balancer");
            let result = wait_healthy(&paths, Some(&mut child), 0).await;
            spinner.finish_and_clear();
            match result {
                Ok(state) => {
                    p.progress(&format!("healthy in {:.1} s", started.elapsed().as_secs_f64()));
                    let first = release_of(stack, &artifact);
                    let entry = release::Entry {
                        time: crate::clock::now(),
                        digest: first.digest.clone(),
                        state: ReleaseState::Deployed,
                        note: None,
                        by: Some(crate::host::who()),
                        revision: project.revision(&Duct),
                        canary: vec![],
                        forced,
                        run: first.ran(started.elapsed().as_secs_f64()),
                    };
                    if let Err(e) = release::record(&paths.releases(), entry) {
                        p.warn(&format!("recording the release: {e}"));
                    }
                    if !args.detach {
                        return Ok(Up::Foreground(child, state));
                    }
                    state
                }
                Err(e) => {
                    stop_child(&mut child);
                    let _ = state::inspect(&paths);
                    return Err(e.into());
                }
            }
        }
    };
    Ok(Up::Done(state, aborted))
}

/// The release `artifact` makes for `stack`: the image's program and environment plus `instances.env`.
pub(super) fn release_of(stack: &Stack, artifact: &Artifact) -> Release {
    let mut env = artifact.env.clone();
    env.extend(stack.instances.env.iter().map(|(k, v)| (k.clone(), v.clone())));
    Release::new(&artifact.digest, artifact.program.clone(), env)
}

/// How a release rolls out: as a canary or rolling, and why it was forced, if it was.
#[derive(Debug, Default)]
pub(crate) struct How {
    pub canary: Option<crate::rollout::canary::CanaryPlan>,
    pub forced: Option<String>,
}

/// Ask the running supervisor to roll `wanted` out and wait for the outcome: Ok(None) when every
/// instance runs it, Ok(Some(reason)) when its canary was aborted (the analysis printed), an error
/// naming the failed checks and the logs when it was rolled back.
pub(crate) async fn roll_out(
    ctx: &Ctx<'_>,
    stack: &Stack,
    paths: &Paths,
    wanted: Release,
    how: How,
) -> Result<Option<String>, LocalError> {
    let p = ctx.printer;
    let id = wanted.id.clone();
    let revision = ctx.project().map(|pr| pr.revision(&Duct)).unwrap_or_else(|_| "unknown".into());
    let canary_time = how.canary.as_ref().map(|c| c.longest()).unwrap_or_default();
    match &how.canary {
        Some(c) => p.progress(&format!(
            "rolling out release {id} ({}) as a canary: steps {:?} % of traffic, {} s each",
            wanted.short_digest(),
            c.steps,
            c.bake_seconds
        )),
        None => p.progress(&format!("rolling out release {id} ({})", wanted.short_digest())),
    }
    let generation = control::update(&paths.control(), |c| {
        c.release = Some(ReleaseRequest {
            release: wanted,
            by: crate::host::who(),
            revision: revision.clone(),
            generation: c.generation + 1,
            canary: how.canary.clone(),
            forced: how.forced.clone(),
        });
    })
    .map_err(|e| LocalError::io(paths.control(), e))?;
    let per_instance = u64::from(stack.health_check.grace_period_seconds) + 10;
    let within = Duration::from_secs(30 + per_instance * u64::from(stack.instances.max.max(1)))
        + canary_time;
    let spinner = p.spinner(format!("rolling out release {id}"));
    let start = Instant::now();
    let result = loop {
        if let Some(s) = state::read(paths) {
            if s.release.generation >= generation && s.release.outcome != ReleaseState::Rolling {
                break Ok(s.release);
            }
            spinner.set_message(match &s.release.canary {
                Some(c) => format!(
                    "canary of release {id}: step {}/{} ({} % of traffic), {:.0}/{} s, {} request(s)",
                    c.step, c.steps, c.percent, c.seconds, c.bake_seconds, c.canary.requests
                ),
                None => format!(
                    "rolling out release {id}: {} instance(s) replaced",
                    s.release.replaced
                ),
            });
        }
        if start.elapsed() > within {
            break Err(LocalError::NotHealthy {
                seconds: within.as_secs(),
                detail: format!(": release {id} was still rolling out{}", log_tail(paths)),
            });
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    spinner.finish_and_clear();
    let view = result?;
    if !view.analysis.is_empty() {
        p.progress(&format!(
            "canary analysis of release {id}:\n{}",
            crate::rollout::canary::table(&view.analysis)
        ));
    }
    match view.outcome {
        ReleaseState::Deployed => {
            p.progress(&format!(
                "✓ release {id} deployed: {} instance(s) replaced in {:.1} s",
                view.replaced,
                start.elapsed().as_secs_f64()
            ));
            Ok(None)
        }
        ReleaseState::Aborted => {
            let reason = view.reason.unwrap_or_else(|| format!("release {id} aborted"));
            p.warn(&format!("{reason}; the previous release serves every request"));
            Ok(Some(reason))
        }
        _ => Err(LocalError::RolledBack {
            reason: view.reason.unwrap_or_else(|| format!("release {id} rolled back")),
        }),
    }
}

async fn verify_tier(ctx: &Ctx<'_>, state: &State) -> bool {
    let report =
        crate::verify::run_suite(&state.https_url, &super::report::verify_options(ctx, state, 24))
            .await;
    ctx.printer.progress(&report.table());
    report.passed()
}

fn print_urls(ctx: &Ctx<'_>, state: &State) {
    ctx.printer.data(&state.http_url);
    ctx.printer.data(&state.https_url);
}

/// Foreground: verify, print the URLs, then wait for the tier (Ctrl-C reaches it too: same process group).
async fn foreground(ctx: &Ctx<'_>, mut child: Child, state: &State) -> Result<Outcome, OrchError> {
    let passed = verify_tier(ctx, state).await;
    print_urls(ctx, state);
    ctx.printer.progress("running in the foreground; Ctrl-C stops everything");
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(|e| LocalError::io("SIGTERM handler", e))?;
    loop {
        let stop = tokio::select! {
            _ = tokio::signal::ctrl_c() => true,
            _ = term.recv() => true,
            _ = tokio::time::sleep(Duration::from_millis(200)) => false,
        };
        if stop {
            // The terminal sends Ctrl-C to the whole group; a signal sent to orch alone is passed on.
            state::signal(child.id(), nix::sys::signal::Signal::SIGTERM);
        }
        if let Ok(Some(_)) = child.try_wait() {
            break;
        }
    }
    Ok(Outcome::finding_if(!passed))
}

/// Start `orch local serve` for this project, marked as part of the tier.
fn spawn_serve(
    ctx: &Ctx<'_>,
    root: &std::path::Path,
    paths: &Paths,
    artifact: &Artifact,
    detach: bool,
) -> Result<Child, LocalError> {
    let exe =
        std::env::current_exe().map_err(|e| LocalError::io("finding the orch executable", e))?;
    let mut cmd = Command::new(exe);
    cmd.args(["local", "serve", "--env", &ctx.env])
        .env("ORCH_ROOT", root)
        .env("ORCH_APP_BIN", &artifact.program)
        .env(artifact::ENV_VAR, serde_json::to_string(&artifact.env).unwrap_or_default())
        .env(artifact::DIGEST_VAR, &artifact.digest)
        .env(TIER_MARK, &paths.dir)
        .stdin(Stdio::null());
    if detach {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(paths.serve_log())
            .map_err(|e| LocalError::io(paths.serve_log(), e))?;
        let log2 = log.try_clone().map_err(|e| LocalError::io(paths.serve_log(), e))?;
        cmd.stdout(log).stderr(log2);
        use std::os::unix::process::CommandExt;
        // SAFETY: setsid is async-signal-safe and touches no memory of the parent.
        unsafe {
            cmd.pre_exec(|| nix::unistd::setsid().map(|_| ()).map_err(std::io::Error::from));
        }
    } else {
        cmd.stdout(Stdio::null());
    }
    cmd.spawn().map_err(|e| LocalError::io("starting `orch local serve`", e))
}

fn stop_child(child: &mut Child) {
    state::stop_all(&[child.id()], Duration::from_secs(5));
    let _ = child.wait();
}

/// Poll `state.json` until the tier is balanced and has applied control `generation`.
async fn wait_healthy(
    paths: &Paths,
    mut child: Option<&mut Child>,
    generation: u64,
) -> Result<State, LocalError> {
    let start = Instant::now();
    loop {
        if let Some(child) = child.as_deref_mut() {
            if let Ok(Some(status)) = child.try_wait() {
                return Err(LocalError::Exited {
                    detail: format!(" ({status}){}", log_tail(paths)),
                });
            }
        }
        let current = state::read(paths);
        if let Some(s) = &current {
            if s.balanced && s.control_generation >= generation && s.in_service() >= s.desired {
                return Ok(s.clone());
            }
        }
        if start.elapsed() > HEALTHY_WITHIN {
            let events = current.map(|s| s.events.join("\n  ")).unwrap_or_default();
            return Err(LocalError::NotHealthy {
                seconds: HEALTHY_WITHIN.as_secs(),
                detail: format!(":\n  {events}{}", log_tail(paths)),
            });
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn log_tail(paths: &Paths) -> String {
    let text = std::fs::read_to_string(paths.serve_log()).unwrap_or_default();
    let lines: Vec<&str> = text.lines().rev().take(10).collect();
    if lines.is_empty() {
        return String::new();
    }
    format!("\n{}", lines.into_iter().rev().collect::<Vec<_>>().join("\n"))
}

pub(super) async fn down(
    ctx: &Ctx<'_>,
    stack: &Stack,
    args: &DownOptions,
) -> Result<Outcome, OrchError> {
    let project = ctx.project()?;
    let paths = paths(&project, stack);
    let p = ctx.printer;
    if args.dry_run {
        match state::read(&paths) {
            Some(s) => p.data(&format!(
                "would stop the supervisor (pid {}) and {} instance(s); the database is kept",
                s.pid,
                s.instances.len()
            )),
            None => p.data("nothing to stop"),
        }
        return Ok(Outcome::Ok);
    }
    // Under the tier's lock: never stop a tier an `up` or a rollback is changing.
    std::fs::create_dir_all(&paths.dir).map_err(|e| LocalError::io(&paths.dir, e))?;
    let lock = super::lock(ctx, stack, &paths, "orch down", args.force_unlock).await?;
    stop(p, &paths);
    lock.release().await.map_err(LocalError::from)?;
    Ok(Outcome::Ok)
}

/// Stop the tier's processes (and leftovers of a killed one); the database is kept.
fn stop(p: &crate::printer::Printer, paths: &Paths) {
    match state::inspect(paths) {
        Tier::Running(s) => {
            let n = s.instances.len();
            state::stop_all(&[s.pid], Duration::from_secs(15));
            let leftovers = state::tier_processes(&paths.dir);
            state::stop_all(&leftovers, Duration::from_secs(3));
            let _ = std::fs::remove_file(paths.state());
            let _ = std::fs::remove_file(paths.control());
            p.progress(&format!("stopped the load balancer, the supervisor and {n} instance(s)"));
        }
        Tier::Stopped { cleaned } if cleaned > 0 => {
            p.progress(&format!(
                "the tier was not running; stopped {cleaned} leftover process(es)"
            ));
        }
        Tier::Stopped { .. } => p.progress("the local tier is not running"),
    }
    if paths.db().exists() {
        p.progress(&format!("kept the database {}", paths.db().display()));
    }
}

/// The hidden `orch local serve`: the tier in this process.
pub async fn serve(ctx: &Ctx<'_>, stack: &Stack) -> Result<Outcome, OrchError> {
    let project = ctx.project()?;
    let paths = paths(&project, stack);
    if std::env::var_os(TIER_MARK).as_deref() != Some(paths.dir.as_os_str()) {
        // Every process of the tier carries the mark, this one included: re-exec with it.
        let exe = std::env::current_exe()
            .map_err(|e| LocalError::io("finding the orch executable", e))?;
        let status = Command::new(exe)
            .args(std::env::args_os().skip(1))
            .env(TIER_MARK, &paths.dir)
            .env("ORCH_ROOT", &project.root)
            .status()
            .map_err(|e| LocalError::io("re-running `orch local serve`", e))?;
        return if status.success() {
            Ok(Outcome::Ok)
        } else {
            Err(LocalError::Exited { detail: format!(" ({status})") }.into())
        };
    }
    let zone_list = zones(stack)?;
    let (db_url, _) = database(stack, &paths)?;
    let artifact = artifact::resolve(&project, stack, &Duct, ctx.printer, ctx.settings())
        .map_err(LocalError::from)?;
    let release = release_of(stack, &artifact);
    let local = stack.local_settings();
    let cfg = ServeConfig {
        desired: stack.instances.desired,
        zones: zone_list,
        base_port: stack.instances.port,
        grace: Duration::from_secs(u64::from(stack.health_check.grace_period_seconds)),
        health: (&stack.health_check).into(),
        http_port: local.http_port,
        https_port: local.https_port,
        pages_dir: project.pages_dir(),
        program: artifact.program.clone(),
        launcher: Box::new(ProcessLauncher {
            env: vec![("DATABASE_URL".into(), db_url)],
            log_dir: paths.instances(),
        }),
        release,
        scaling: crate::scaling::Policy::of(stack),
        lb_limits: Limits::from_settings(ctx.settings()),
        lb_workers: workers::count(ctx.settings().lb_workers),
        paths,
    };
    serve::serve(cfg).await?;
    Ok(Outcome::Ok)
}
