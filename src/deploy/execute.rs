//! The executor: runs exactly the steps of the plan `--dry-run` prints, matching on each
//! ([`run_step`]), each idempotent (it re-reads before it writes), under the deploy lock, which is
//! released at the end whatever happens.
use std::sync::Arc;
use std::time::Duration;

use std::collections::BTreeMap;

use super::error::DeployError;
use super::observe::{deploy_config, Aws};
use super::plan::{Action, Kind, Plan, Step};
use super::steps::{ImageRef, Program, Steps};
use super::{bucket, cert, delegation, dns};
use crate::config::Stack;
use crate::error::{OrchError, Outcome};
use crate::outputs::Output;
use crate::printer::Printer;
use crate::project::Project;
use crate::pulumi::Pulumi;
use crate::release::State;
use crate::rollout::aws as refresh;
use crate::runner::Runner;
use crate::settings::Settings;
use crate::state::lock;
use crate::state::record::{self, AwsRun, Record};
use crate::state::store::Store;

/// Knobs for one run.
pub(crate) struct Run<'a> {
    pub project: &'a Project,
    pub stack: &'a Stack,
    pub printer: &'a Printer,
    pub aws: &'a Aws,
    pub store: &'a Store,
    pub runner: Arc<dyn Runner>,
    pub settings: &'a Settings,
    pub force: bool,
    pub force_unlock: bool,
}

/// Seconds between status polls (ACM, instance refresh); `ORCH_POLL_SECONDS`, default 15.
pub(crate) fn poll(settings: &Settings) -> Duration {
    settings.poll.unwrap_or(Duration::from_secs(15))
}

/// `orch up`: observe (read-only), [`plan`](super::plan::plan), then run exactly that plan.
pub(crate) async fn up<S: Steps>(run: &Run<'_>, steps: &S) -> Result<Outcome, OrchError> {
    let observed = super::observe::observe(
        run.project,
        run.stack,
        run.aws,
        run.store,
        steps,
        run.settings,
        run.printer,
    )
    .await?;
    let plan = super::plan::plan(run.stack, &observed, run.force, run.force_unlock);
    execute(run, steps, &plan, observed.image, observed.ami).await
}

/// Run the steps of `plan` in order, matching on each; those after the lock step run under the
/// deploy lock, which is released at the end whatever happens. Each step re-reads before it writes,
/// so a rerun converges. A refused step (other than the lock, which `lock::acquire` judges with
/// `--force-unlock` and stale holders in mind) stops the run before anything changes. `image` and
/// `ami`, when the observation already produced them, are not built or read a second time.
pub(crate) async fn execute<S: Steps>(
    run: &Run<'_>,
    steps: &S,
    plan: &Plan,
    image: Option<ImageRef>,
    ami: Option<super::ami::Ami>,
) -> Result<Outcome, OrchError> {
    let p = run.printer;
    if let Some(s) = plan.steps.iter().find(|s| s.action == Action::Refuse && s.kind != Kind::Lock)
    {
        if s.kind == Kind::ErrorBudget {
            // A finding, not a failure: the service misses its objective (exit 1).
            p.warn(&format!("refused: the error budget is {}; nothing was changed", s.detail));
            return Ok(Outcome::Finding);
        }
        return Err(DeployError::Refused(format!("{}: {}", s.name, s.detail)).into());
    }
    let at = plan.steps.iter().position(|s| s.kind == Kind::Lock).unwrap_or(0);
    let mut cx = Cx { image, ami, ..Cx::default() };
    for step in &plan.steps[..at] {
        run_step(run, steps, step, &mut cx).await?;
    }
    if let Some(step) = plan.steps.get(at).filter(|s| s.kind == Kind::Lock) {
        p.progress(&format!("→ {}: {}", step.name, step.detail));
    }
    crate::interrupt::install().map_err(|e| OrchError::io("handling SIGINT and SIGTERM", e))?;
    let lease = lock::lease(run.settings);
    let lock =
        lock::acquire(run.store, &run.stack.name, "orch up", lease, run.force_unlock, p).await?;
    p.progress(&format!("✓ deploy lock {}", run.store.describe(&lock::key(&run.stack.name))));
    cx.expired_run = lock.expired.clone();
    let rest = plan.steps.get(at + 1..).unwrap_or_default();
    let ended = super::stop::guarded(locked(run, steps, rest, &mut cx), p).await;
    let result = match ended {
        super::stop::Ended::Done(r) => {
            if let Err(e) = &r {
                end_release(run, &mut cx, failed_state(e), e.to_string()).await;
            }
            r
        }
        super::stop::Ended::Interrupted(sig) => Err(interrupted(run, &mut cx, sig).await),
    };
    let released = lock.release().await;
    let outcome = result?;
    released?;
    Ok(outcome)
}

/// An interrupted run: its release, if it got as far as recording one, is recorded as
/// interrupted (the stack may be partly changed, so it stays the live release and the next run
/// deploys again); the error it exits with.
async fn interrupted(run: &Run<'_>, cx: &mut Cx, sig: nix::sys::signal::Signal) -> OrchError {
    let what = end_release(run, cx, State::Interrupted, format!("stopped by {sig}"))
        .await
        .unwrap_or_else(|| "it stopped before the stack was changed".into());
    super::stop::interrupted(sig, "orch up", &what)
}

async fn locked<S: Steps>(
    run: &Run<'_>,
    steps: &S,
    rest: &[Step],
    cx: &mut Cx,
) -> Result<Outcome, OrchError> {
    for step in rest {
        if let Some(outcome) = run_step(run, steps, step, cx).await? {
            return Ok(outcome);
        }
    }
    Ok(Outcome::Ok)
}

/// How a failed run's release ended: rolled back when the refresh ended `Rollback…`, else failed.
fn failed_state(error: &OrchError) -> State {
    match error {
        OrchError::Deploy(DeployError::RefreshEnded { status, .. })
            if status.starts_with("Rollback") =>
        {
            State::RolledBack
        }
        _ => State::Failed,
    }
}

/// A run that ended early after its release was recorded as applying: the release records how it
/// ended and why; returns what happened to the record. Best effort: a store that fails now is
/// reported, and the `applying` record left behind still makes the next run deploy again.
async fn end_release(run: &Run<'_>, cx: &mut Cx, state: State, note: String) -> Option<String> {
    let rec = cx.release.as_mut().filter(|r| r.state == State::Applying)?;
    rec.state = state;
    rec.note = Some(note);
    Some(match record::save(run.store, rec).await {
        Ok(at) => {
            run.printer.progress(&format!("  release recorded as {} at {at}", state.as_str()));
            format!("the release is recorded as {} at {at}", state.as_str())
        }
        Err(e) => {
            run.printer.warn(&format!("could not record the release as {}: {e}", state.as_str()));
            format!("recording the release as {} failed: {e}", state.as_str())
        }
    })
}

/// What the steps hand on to the ones after them.
#[derive(Default)]
struct Cx {
    /// The release of this run, once recorded as applying.
    release: Option<Record>,
    last: Option<Record>,
    program: Option<Program>,
    image: Option<ImageRef>,
    ami: Option<super::ami::Ami>,
    zone_id: Option<String>,
    cert_arn: Option<String>,
    config: BTreeMap<String, String>,
    outputs: BTreeMap<String, serde_json::Value>,
    url: Option<String>,
    /// The deploy lock this run took over because its lease had expired.
    expired_run: Option<lock::LockInfo>,
    /// Why this release is deployed past an exhausted error budget (`--force`).
    forced: Option<String>,
}

fn missing(what: &str) -> OrchError {
    OrchError::Internal(format!("the plan runs a step before {what} is known"))
}

/// One step of the plan; `Some(outcome)` ends the run there (no-op, failed verification).
async fn run_step<S: Steps>(
    run: &Run<'_>,
    steps: &S,
    step: &Step,
    cx: &mut Cx,
) -> Result<Option<Outcome>, OrchError> {
    let (p, stack, aws) = (run.printer, run.stack, run.aws);
    let env = stack.name.as_str();
    p.progress(&format!("→ {}: {}", step.name, step.detail));
    match step.kind {
        Kind::StateStore | Kind::Lock => {}
        Kind::StateBucket => {
            if let Store::S3 { bucket, .. } = run.store {
                let changed = bucket::ensure(&aws.s3, bucket, &stack.region).await?;
                p.progress(&if changed.is_empty() {
                    format!("✓ state bucket {bucket}")
                } else {
                    format!("✓ state bucket {bucket}: {}", changed.join(", "))
                });
            }
        }
        Kind::ErrorBudget => {
            p.progress(&format!("  error budget: {}", step.detail));
            if step.action == Action::Run && step.detail.starts_with("deployed past") {
                p.warn(&step.detail);
                cx.forced = Some(step.detail.clone());
            }
        }
        Kind::Program => {
            cx.last = record::latest(run.store, env).await?;
            let recorded = cx.last.as_ref().and_then(|r| r.run.stack_file.as_deref());
            let program = steps.render(run.project, stack, recorded)?;
            p.progress(&format!(
                "✓ program rendered into {} ({})",
                program.dir.display(),
                record::short(&program.hash)
            ));
            cx.program = Some(program);
        }
        Kind::Image => {
            let image = match cx.image.take() {
                Some(image) => image,
                None => steps.image(run.project, stack, p).await?,
            };
            p.progress(&format!("✓ image {}", image.uri));
            cx.image = Some(image);
        }
        Kind::Ami => {
            let ami = match cx.ami.take() {
                Some(ami) => ami,
                None => super::ami::resolve(&aws.ssm, stack).await?,
            };
            p.progress(&format!("✓ AMI {} ({})", ami.id, ami.source));
            cx.ami = Some(ami);
        }
        Kind::HostedZone => {
            let Some(domain) = &stack.domain else { return Ok(None) };
            let (id, _, created) = dns::ensure_zone(&aws.r53, env, &domain.name).await?;
            let suffix = if created { " created" } else { "" };
            p.progress(&format!("✓ hosted zone {} ({id}){suffix}", domain.name));
            cx.zone_id = Some(id);
        }
        Kind::Delegation => delegate(run).await?,
        Kind::Certificate => {
            let arn = certificate(run, cx.zone_id.as_deref()).await?;
            p.progress(&format!("✓ certificate {arn}"));
            cx.cert_arn = Some(arn);
        }
        Kind::PulumiUp if step.action == Action::Skip => {
            p.progress("✓ no changes since the last deployment: pulumi skipped (use --force to deploy anyway)");
            if let Some(url) = cx.last.as_ref().and_then(|l| l.output(Output::Url)) {
                p.data(url);
            }
            return Ok(Some(Outcome::Ok));
        }
        Kind::Push => {
            let image = cx.image.as_ref().ok_or_else(|| missing("the image"))?;
            let pushed = steps.push(run.project, stack, image, p).await?;
            p.progress(&format!("✓ image in the registry ({pushed} bytes pushed)"));
        }
        Kind::PulumiStack => {
            let (program, image) = (
                cx.program.as_ref().ok_or_else(|| missing("the program"))?,
                cx.image.as_ref().ok_or_else(|| missing("the image"))?,
            );
            let cert = cx.cert_arn.as_deref().ok_or_else(|| missing("the certificate"))?;
            let ami = cx.ami.as_ref().ok_or_else(|| missing("the AMI"))?;
            cx.config = deploy_config(program, image, cert, cx.zone_id.as_deref(), &ami.id);
            Pulumi::check_passphrase().map_err(DeployError::from)?;
            let pulumi = pulumi_for(run, program, cx);
            pulumi.select_stack().map_err(DeployError::from)?;
            pulumi.set_config(&cx.config, &program.secrets).map_err(DeployError::from)?;
        }
        Kind::Release => {
            let mut rec = release(run, cx, State::Applying)?;
            // Until pulumi reports new outputs, the stack's are those of the release before it
            // (`orch status` and `orch drift` read them even when this run fails).
            if rec.run.outputs.is_empty() {
                rec.run.outputs =
                    cx.last.as_ref().map(|l| l.run.outputs.clone()).unwrap_or_default();
            }
            let image = cx.image.as_ref().ok_or_else(|| missing("the image"))?;
            match crate::image::retention::ecr_image(&image.uri) {
                Some(ecr) => {
                    let tag = crate::image::retention::release_tag(env, &rec.time);
                    crate::image::retention::tag(&aws.ecr, &ecr, &tag).await?;
                    p.progress(&format!("✓ image tagged {tag}: kept by the lifecycle policy"));
                }
                None => p.progress("  the image is not in ECR: no release tag (the registry's own retention applies)"),
            }
            let at = record::save(run.store, &rec).await?;
            p.progress(&format!("✓ release recorded as applying at {at}"));
            cx.release = Some(rec);
        }
        Kind::PulumiUp => {
            let program = cx.program.as_ref().ok_or_else(|| missing("the program"))?;
            let pulumi = pulumi_for(run, program, cx);
            p.progress(&format!("  pulumi up (stack {env})"));
            pulumi.up(p).await.map_err(DeployError::from)?;
            cx.outputs = pulumi.outputs().map_err(DeployError::from)?;
            if let Some(rec) = cx.release.as_mut() {
                rec.run.outputs = cx.outputs.clone();
                rec.run.stack_file =
                    std::fs::read_to_string(program.dir.join(crate::render::stack_file_name(env)))
                        .ok();
                record::save(run.store, rec).await?;
            }
        }
        Kind::InstanceRefresh => {
            let outputs = &cx.outputs;
            let output = |o: Output| {
                crate::outputs::get(outputs, o).map(str::to_string).ok_or_else(|| {
                    DeployError::step("instance refresh", format!("the stack has no `{o}` output"))
                })
            };
            let target = refresh::Target {
                group: output(Output::AsgName)?,
                template_id: output(Output::LaunchTemplateId)?,
                version: output(Output::LaunchTemplateVersion)?,
                alarms: Output::REFRESH_ALARMS.iter().filter_map(|o| output(*o).ok()).collect(),
                canary: refresh::Checkpoints::of(stack),
            };
            // An hour for the replacements, plus every checkpoint's hold and the bake.
            let holds = target
                .canary
                .as_ref()
                .map_or(0, |c| u64::from(c.bake_seconds) * (c.percentages.len() as u64 + 1));
            let timeout = Duration::from_secs(3600 + holds);
            refresh::roll(&aws.asg, &target, poll(run.settings), timeout, p).await?;
        }
        Kind::Verify => {
            let url = crate::outputs::get(&cx.outputs, Output::Url)
                .ok_or_else(|| DeployError::step("verify", "the stack has no `url` output"))?
                .to_string();
            let http_url = crate::outputs::get(&cx.outputs, Output::HttpUrl);
            if !steps.verify(run.project, stack, &url, http_url, p).await? {
                if let Some(rec) = cx.release.as_mut() {
                    rec.state = State::Unverified;
                    rec.note = Some(format!("{url} failed verification"));
                    record::save(run.store, rec).await?;
                }
                p.warn(&format!("deployed, but {url} failed verification; the release is recorded as unverified (`orch releases`), so the next `orch up` deploys and verifies again and `orch rollback` goes back to the last verified release"));
                return Ok(Some(Outcome::Finding));
            }
            cx.url = Some(url);
        }
        Kind::Record => {
            let mut rec = match cx.release.take() {
                Some(rec) => rec,
                None => release(run, cx, State::Verified)?,
            };
            rec.state = State::Verified;
            rec.note = None;
            rec.run.outputs = std::mem::take(&mut cx.outputs);
            let at = record::save(run.store, &rec).await?;
            p.progress(&format!("✓ deployment recorded as verified at {at}"));
            if let Some(url) = &cx.url {
                p.data(url);
            }
        }
    }
    Ok(None)
}

/// The release this run deploys, from what the steps so far produced.
fn release(run: &Run<'_>, cx: &Cx, state: State) -> Result<Record, OrchError> {
    let env = run.stack.name.as_str();
    let program = cx.program.as_ref().ok_or_else(|| missing("the program"))?;
    let image = cx.image.as_ref().ok_or_else(|| missing("the image"))?;
    Ok(Record {
        state,
        note: None,
        forced: cx.forced.clone(),
        revision: run.project.revision(run.runner.as_ref()),
        by: Some(crate::host::who()),
        digest: image.digest.to_string(),
        canary: vec![],
        // Milliseconds: two releases within one second (a quick rollback) keep their order.
        time: crate::clock::now(),
        run: AwsRun {
            env: env.into(),
            image_uri: image.uri.clone(),
            program_hash: program.hash.clone(),
            config_hash: record::config_hash(&cx.config, &program.secrets),
            outputs: cx.outputs.clone(),
            certificate_arn: cx.cert_arn.clone(),
            stack_file: std::fs::read_to_string(
                program.dir.join(crate::render::stack_file_name(env)),
            )
            .ok(),
            ami: cx.ami.as_ref().map(|a| a.id.clone()),
            program: std::fs::read_to_string(program.dir.join("Pulumi.yaml")).ok(),
            orch_version: env!("CARGO_PKG_VERSION").into(),
        },
    })
}

fn pulumi_for(run: &Run<'_>, program: &Program, cx: &Cx) -> Pulumi {
    let stack = run.stack;
    let backend = stack.pulumi.as_ref().map(|s| s.pulumi_url(&stack.region)).unwrap_or_default();
    let pulumi = run.settings.pulumi.as_deref();
    Pulumi::new(run.runner.clone(), pulumi, &program.dir, &backend, &stack.name)
        .after_expired(cx.expired_run.clone())
}

/// The NS delegation of the env's zone: UPSERTed in a parent zone of this account, or checked by
/// DNS at a registrar.
async fn delegate(run: &Run<'_>) -> Result<(), OrchError> {
    let (p, aws, env) = (run.printer, run.aws, run.stack.name.as_str());
    let Some(domain) = &run.stack.domain else { return Ok(()) };
    let (_, ns, _) = dns::ensure_zone(&aws.r53, env, &domain.name).await?;
    match dns::observe_parent(&aws.r53, &domain.parent_zone, &domain.name).await? {
        Some(parent) if parent.delegation.as_deref() == Some(&ns[..]) => {
            p.progress(&format!("✓ NS delegation in {}", domain.parent_zone));
        }
        Some(parent) => {
            dns::delegate(&aws.r53, &parent.id, &domain.name, &ns).await?;
            p.progress(&format!("✓ NS delegation UPSERTed in {} and INSYNC", domain.parent_zone));
        }
        None => {
            p.warn(&format!("{} is not a hosted zone in this account: set these name servers for {} at your registrar:", domain.parent_zone, domain.name));
            for n in &ns {
                p.data(n);
            }
            check_delegation(&domain.name, &ns, run.settings, p).await?;
        }
    }
    Ok(())
}

/// The certificate ARN: ACM with DNS validation for a domain, else a self-signed one imported
/// (re-imported when it nears its end).
async fn certificate(run: &Run<'_>, zone_id: Option<&str>) -> Result<String, OrchError> {
    let (p, aws, stack) = (run.printer, run.aws, run.stack);
    let env = stack.name.as_str();
    Ok(match &stack.domain {
        Some(domain) => {
            let timeout = run.settings.acm_timeout.unwrap_or(Duration::from_secs(1800));
            cert::ensure_acm(
                &aws.acm,
                &aws.r53,
                env,
                &domain.name,
                zone_id.unwrap_or_default(),
                timeout,
                p,
            )
            .await?
        }
        None => match cert::observe(&aws.acm, env, None).await? {
            cert::CertState::Imported { arn, days_left } if days_left >= cert::RENEW_DAYS => arn,
            cert::CertState::Imported { arn, days_left } => {
                p.progress(&format!(
                    "  self-signed certificate has {days_left} days left: re-importing"
                ));
                cert::import_self_signed(&aws.acm, env, &stack.region, Some(&arn)).await?
            }
            _ => cert::import_self_signed(&aws.acm, env, &stack.region, None).await?,
        },
    })
}

/// A delegation made at a registrar, checked by a DNS query. Skipped with ORCH_OFFLINE, under an
/// emulator (public DNS cannot see its zones) unless ORCH_DNS_SERVER names a resolver, and when no
/// resolver answers; a wrong or missing delegation stops the run before the certificate waits on it.
async fn check_delegation(
    name: &str,
    ns: &[String],
    settings: &Settings,
    p: &Printer,
) -> Result<(), DeployError> {
    let Some(server) = delegation::mode(settings).map_err(DeployError::Refused)? else {
        p.progress("  delegation check by DNS skipped (offline or emulated AWS)");
        return Ok(());
    };
    match delegation::check(name, ns, server).await {
        delegation::Delegation::Matches => p.progress(&format!("✓ public DNS delegates {name} to the zone's name servers")),
        delegation::Delegation::Differs { found } => {
            return Err(DeployError::NotDelegated { name: name.into(), want: ns.to_vec(), found });
        }
        delegation::Delegation::Unknown(why) => p.progress(&format!("  delegation check by DNS skipped: no answer ({why}); check with `dig +short NS {name}`")),
    }
    Ok(())
}
