//! `orch down` for an AWS environment: under the deploy lock, `pulumi destroy` every resource of the
//! stack and retire the deployment record (kept in the history, so the next `orch up` deploys
//! afresh). Kept on purpose: the state bucket, the hosted zone and its delegation, the certificate
//! and the images — they cost little and keep the name servers and ARN stable for the next `up`.
//! A protected environment is refused unless `--unprotect` is given; then deletion protection is
//! first turned off through the program (`pulumi up`), and the database gets a final snapshot,
//! named in the plan and the output, before anything is deleted: no data is lost.
use std::sync::Arc;

use serde::Serialize;

use super::error::DeployError;
use super::{bucket, observe};
use crate::config::Stack;
use crate::error::{OrchError, Outcome};
use crate::outputs::Output;
use crate::printer::Printer;
use crate::project::Project;
use crate::pulumi::Pulumi;
use crate::runner::Runner;
use crate::settings::Settings;
use crate::state::lock::{self, LockInfo};
use crate::state::record::{self, Record};
use crate::state::store::Store;

/// What `down` read before deciding.
#[derive(Debug, Clone)]
pub(crate) struct Observed {
    /// False when the state bucket does not exist: nothing was ever deployed.
    pub store_exists: bool,
    pub lock: Option<LockInfo>,
    pub last: Option<Record>,
    /// When the plan was made: names the final snapshot.
    pub now: chrono::DateTime<chrono::Utc>,
}

impl Default for Observed {
    fn default() -> Self {
        Observed { store_exists: false, lock: None, last: None, now: chrono::Utc::now() }
    }
}

/// The options of one teardown.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Options {
    /// Turn deletion protection off and snapshot the database first (required when protected).
    pub unprotect: bool,
    /// Break a deploy lock held by someone else (with a warning).
    pub force_unlock: bool,
}

/// The teardown as data: what runs and what is kept.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct DownPlan {
    pub env: String,
    /// Nothing to tear down (no state store).
    pub nothing: bool,
    pub steps: Vec<(String, String)>,
    /// The final database snapshot taken before the destroy (protected environments).
    pub final_snapshot: Option<String>,
    /// Break a foreign deploy lock (`--force-unlock`).
    pub force_unlock: bool,
}

impl DownPlan {
    pub(crate) fn lines(&self) -> Vec<String> {
        let mut out = vec![format!(
            "teardown plan for `{}`{}:",
            self.env,
            if self.nothing { " (nothing deployed)" } else { "" }
        )];
        out.extend(self.steps.iter().map(|(action, detail)| format!("  [{action:<7}] {detail}")));
        out
    }
}

/// The identifier of the final snapshot `down --unprotect` takes (RDS: letters, digits, hyphens).
pub(crate) fn final_snapshot_id(env: &str, now: chrono::DateTime<chrono::Utc>) -> String {
    format!("orch-{env}-final-{}", now.format("%Y%m%d-%H%M%S"))
}

/// Pure: the teardown for what was observed.
pub(crate) fn plan(stack: &Stack, o: &Observed, opts: Options) -> DownPlan {
    let env = stack.name.clone();
    if !o.store_exists {
        return DownPlan {
            env,
            nothing: true,
            steps: vec![("skip".into(), "no state bucket: nothing was deployed".into())],
            final_snapshot: None,
            force_unlock: opts.force_unlock,
        };
    }
    let mut steps = vec![];
    match &o.lock {
        Some(l) if l.expired(crate::clock::now()) => steps.push((
            "run".into(),
            format!("take over the deploy lock of {}: its lease expired", l.describe()),
        )),
        Some(l) => steps.push(("REFUSE".into(), format!("deploy lock held by {}", l.describe()))),
        None => steps.push(("run".into(), "take the deploy lock".into())),
    }
    let mut final_snapshot = None;
    if stack.protected && !opts.unprotect {
        steps.push((
            "REFUSE".into(),
            format!("`{env}` is protected: deletion protection is on for the database and the load balancer; `orch down --unprotect` turns it off, snapshots the database, then destroys"),
        ));
    } else if stack.protected {
        if o.last.is_none() {
            steps.push((
                "config".into(),
                "no deployment record: deploy-time keys the stack file lacks get a placeholder for the next step only (its two targets read none of them)".into(),
            ));
        }
        steps.push((
            "change".into(),
            "pulumi up --target the database and the load balancer: deletion protection off, no other resource touched; on a later failure it is turned back on".into(),
        ));
        let db = o
            .last
            .as_ref()
            .and_then(|r| r.output(Output::DbInstanceIdentifier))
            .unwrap_or("the database");
        let id = final_snapshot_id(&env, o.now);
        steps.push(("create".into(), format!("final snapshot `{id}` of {db}, waited for until available (kept after the destroy)")));
        final_snapshot = Some(id);
    }
    steps.push(("destroy".into(), format!("pulumi destroy: every resource of stack `{env}` (load balancer, instances, database, network)")));
    if final_snapshot.is_some() {
        steps.push((
            "delete".into(),
            "any snapshot of the database the destroy itself made (the RDS delete handler's own): the final snapshot above is the one kept".into(),
        ));
    }
    if let Some(db) = o.last.as_ref().and_then(|r| r.output(Output::DbInstanceIdentifier)) {
        steps.push((
            "delete".into(),
            format!(
                "the database's log groups {}* (made by RDS, not the program)",
                super::rdslogs::prefix(db)
            ),
        ));
    }
    match &o.last {
        Some(r) => steps.push((
            "retire".into(),
            format!(
                "deployment record of {} (image {}) → history",
                crate::clock::show(&r.time),
                record::short(&r.digest)
            ),
        )),
        None => steps.push(("skip".into(), "no deployment record".into())),
    }
    let mut kept = vec!["state bucket", "certificate", "images"];
    if stack.domain.is_some() {
        kept.insert(1, "hosted zone and NS delegation");
    }
    if final_snapshot.is_some() {
        kept.push("the database's automated backups (for their retention period)");
        kept.push("the final database snapshot");
    }
    steps.push(("keep".into(), format!("{} (for the next `orch up`)", kept.join(", "))));
    DownPlan { env, nothing: false, steps, final_snapshot, force_unlock: opts.force_unlock }
}

pub(crate) async fn observe(
    stack: &Stack,
    aws: &observe::Aws,
    store: &Store,
) -> Result<Observed, DeployError> {
    if let Store::S3 { bucket, .. } = store {
        if !bucket::observe(&aws.s3, bucket).await?.exists {
            return Ok(Observed::default());
        }
    }
    Ok(Observed {
        store_exists: true,
        lock: lock::observe(store, &stack.name).await?,
        last: record::latest(store, &stack.name).await?,
        now: chrono::Utc::now(),
    })
}

/// A protected environment is torn down only with `--unprotect` (a plan with a final snapshot).
pub(crate) fn refuse_protected(stack: &Stack, plan: &DownPlan) -> Result<(), DeployError> {
    let env = &stack.name;
    if stack.protected && plan.final_snapshot.is_none() && !plan.nothing {
        return Err(DeployError::Refused(format!(
            "`{env}` is protected (deletion protection on the database and load balancer); nothing was changed. `orch down --env {env} --unprotect` turns it off, takes a final database snapshot, then destroys (see it first with --dry-run)"
        )));
    }
    Ok(())
}

/// Run the teardown the plan lays out: lock, (unprotect, final snapshot,) destroy, retire the
/// record, unlock.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn execute(
    project: &Project,
    stack: &Stack,
    plan: &DownPlan,
    aws: &observe::Aws,
    store: &Store,
    runner: Arc<dyn Runner>,
    settings: &Settings,
    p: &Printer,
) -> Result<Outcome, OrchError> {
    let env = stack.name.as_str();
    refuse_protected(stack, plan)?;
    crate::interrupt::install().map_err(|e| OrchError::io("handling SIGINT and SIGTERM", e))?;
    let lease = lock::lease(settings);
    let lock = lock::acquire(store, env, "orch down", lease, plan.force_unlock, p).await?;
    p.progress(&format!("✓ deploy lock {}", store.describe(&lock::key(env))));
    let expired = lock.expired.clone();
    let destroyed = destroy(project, stack, plan, aws, store, runner, expired, settings, p);
    let ended = super::stop::guarded(destroyed, p).await;
    let result = match ended {
        super::stop::Ended::Done(r) => r,
        super::stop::Ended::Interrupted(sig) => Err(super::stop::interrupted(
            sig,
            "orch down",
            "the deployment record is kept; what pulumi deleted stays deleted",
        )),
    };
    let released = lock.release().await;
    let outcome = result?;
    released?;
    Ok(outcome)
}

#[allow(clippy::too_many_arguments)]
async fn destroy(
    project: &Project,
    stack: &Stack,
    plan: &DownPlan,
    aws: &observe::Aws,
    store: &Store,
    runner: Arc<dyn Runner>,
    expired: Option<LockInfo>,
    settings: &Settings,
    p: &Printer,
) -> Result<Outcome, OrchError> {
    let env = stack.name.as_str();
    // The program folder names the project pulumi's stacks belong to; the stack file gets the
    // deployed config back (a fresh checkout has no build/).
    let last = record::latest(store, env).await?;
    let recorded = last.as_ref().and_then(|r| r.run.stack_file.as_deref());
    let rendered = match plan.final_snapshot {
        Some(_) => crate::render::render_unprotected(project, stack)?,
        None => crate::render::render(project, stack)?,
    };
    let dir = crate::render::write_restoring(project, stack, &rendered, recorded)?;
    let backend = stack.pulumi.as_ref().map(|s| s.pulumi_url(&stack.region)).unwrap_or_default();
    let pulumi =
        Pulumi::new(runner, settings.pulumi.as_deref(), &dir, &backend, env).after_expired(expired);
    Pulumi::check_passphrase().map_err(DeployError::from)?;
    let mut kept_snapshot = None;
    if pulumi.select_existing().map_err(DeployError::from)? {
        let mut db =
            last.as_ref().and_then(|r| r.output(Output::DbInstanceIdentifier)).map(str::to_string);
        if let Some(snapshot) = &plan.final_snapshot {
            let targets = unprotect(stack, &pulumi, &rendered.program, &dir, p).await?;
            let taken = async {
                let outputs = pulumi.outputs().map_err(DeployError::from)?;
                let id = crate::outputs::get(&outputs, Output::DbInstanceIdentifier)
                    .ok_or_else(|| {
                        DeployError::step(
                            "final snapshot",
                            "the stack has no `dbInstanceIdentifier` output",
                        )
                    })?
                    .to_string();
                let poll = super::execute::poll(settings);
                let timeout = super::snapshot::timeout(settings);
                super::snapshot::take(&aws.rds, &id, snapshot, poll, timeout, p).await?;
                Ok::<_, DeployError>(id)
            }
            .await;
            match taken {
                Ok(id) => db = Some(id),
                Err(e) => {
                    return Err(reprotect(project, stack, &pulumi, &targets, e, p).await.into())
                }
            }
            let db = db.as_deref().unwrap_or_default();
            p.data(&format!("final snapshot: {snapshot} (of {db}); restore it with `aws rds restore-db-instance-from-db-snapshot`"));
            kept_snapshot = Some(snapshot.clone());
        }
        let started = aws_sdk_rds::primitives::DateTime::from(std::time::SystemTime::now());
        p.progress(&format!("  pulumi destroy (stack {env})"));
        if let Err(e) = pulumi.destroy(p).await {
            if plan.final_snapshot.is_some() {
                p.warn(&format!("deletion protection is OFF for the database and the load balancer of `{env}` if the destroy left them: `orch down --env {env} --unprotect` finishes the teardown, `orch up --env {env}` turns protection back on"));
            }
            return Err(DeployError::from(e).into());
        }
        p.progress(&format!("✓ stack `{env}` destroyed"));
        if let (Some(ours), Some(db)) = (&kept_snapshot, &db) {
            super::snapshot::delete_unnamed(&aws.rds, db, ours, started, p).await?;
        }
        // RDS made the database's log groups, not the program (see rdslogs).
        if let Some(db) = &db {
            super::rdslogs::delete(&stack.region, db, p).await?;
        }
    } else {
        p.progress(&format!("✓ no pulumi stack `{env}` in {backend}: nothing to destroy"));
    }
    if let Some(last) = last {
        let at = record::retire(store, &last, kept_snapshot.as_deref()).await?;
        p.progress(&format!("✓ deployment record retired to {at}"));
    }
    p.data(&format!("`{env}` is down; kept: state bucket, hosted zone, certificate, images"));
    Ok(Outcome::Ok)
}

/// `pulumi up --target` the protected resources with the unprotected program already written to
/// `dir`; deploy-time keys the stack file lacks (no record) get [`super::unprotect::PLACEHOLDER`].
async fn unprotect(
    stack: &Stack,
    pulumi: &Pulumi,
    program: &str,
    dir: &std::path::Path,
    p: &Printer,
) -> Result<Vec<String>, OrchError> {
    let env = stack.name.as_str();
    let targets = super::unprotect::targets(program, env)?;
    let file = dir.join(format!("Pulumi.{env}.yaml"));
    let text = std::fs::read_to_string(&file).unwrap_or_default();
    let missing = super::unprotect::missing_config(program, &text, &targets)?;
    if !missing.is_empty() {
        p.progress(&format!(
            "  no deployment record: {} set to `{}` for the targeted update (read by no target)",
            missing.join(", "),
            super::unprotect::PLACEHOLDER
        ));
        let plain = missing
            .iter()
            .map(|k| (k.clone(), super::unprotect::PLACEHOLDER.to_string()))
            .collect();
        pulumi.set_config(&plain, &Default::default()).map_err(DeployError::from)?;
    }
    let names: Vec<&str> = targets.iter().map(|t| t.name.as_str()).collect();
    p.progress(&format!(
        "  pulumi up --target {}: deletion protection off (stack {env})",
        names.join(", ")
    ));
    let urns: Vec<String> = targets.iter().map(|t| t.urn.clone()).collect();
    pulumi.up_targets(&urns, p).await.map_err(DeployError::from)?;
    p.progress(&format!("✓ deletion protection off: {}", names.join(", ")));
    Ok(urns)
}

/// After `err` stopped the teardown before the destroy: turn protection back on for `targets`
/// (the protected program, targeted again), and say which way it went.
async fn reprotect(
    project: &Project,
    stack: &Stack,
    pulumi: &Pulumi,
    targets: &[String],
    err: DeployError,
    p: &Printer,
) -> DeployError {
    let env = stack.name.as_str();
    let restored = async {
        let rendered = crate::render::render(project, stack).map_err(|e| e.to_string())?;
        crate::render::write(project, stack, &rendered).map_err(|e| e.to_string())?;
        pulumi.up_targets(targets, p).await.map_err(|e| e.to_string())
    }
    .await;
    let state = match restored {
        Ok(_) => "deletion protection is back on; nothing was destroyed".to_string(),
        Err(e) => format!("deletion protection is still OFF for the database and the load balancer ({e}); nothing was destroyed; `orch up --env {env}` turns it back on"),
    };
    DeployError::step(format!("orch down --unprotect of `{env}`"), format!("{err}; {state}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stack_named(env: &str) -> Stack {
        let path =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("stacks/{env}.yaml"));
        crate::config::load_str(&std::fs::read_to_string(&path).unwrap(), env, &path)
            .expect("the stack file loads")
    }

    fn stack() -> Stack {
        stack_named("dev")
    }

    #[test]
    fn a_protected_stack_is_refused_without_unprotect_and_snapshotted_with_it() {
        let prod = stack_named("prod");
        let now = chrono::DateTime::parse_from_rfc3339("2026-11-30T18:00:00Z").unwrap().into();
        let o = Observed { store_exists: true, now, ..Observed::default() };
        let refused = plan(&prod, &o, Options::default());
        assert!(refused.final_snapshot.is_none());
        assert!(refused.lines().join("\n").contains("[REFUSE ] `prod` is protected"));
        assert!(refuse_protected(&prod, &refused).is_err());
        let plan = plan(&prod, &o, Options { unprotect: true, ..Options::default() });
        assert_eq!(plan.final_snapshot.as_deref(), Some("orch-prod-final-20261130-180000"));
        let text = plan.lines().join("\n");
        let order: Vec<usize> = [
            "deletion protection off",
            "final snapshot `orch-prod-final-20261130-180000`",
            "pulumi destroy",
        ]
        .iter()
        .map(|s| text.find(s).unwrap_or_else(|| panic!("{s} missing: {text}")))
        .collect();
        assert!(order.windows(2).all(|w| w[0] < w[1]), "{text}");
        assert!(text.contains("the final database snapshot (for the next"), "{text}");
        assert!(text.contains("[change ] pulumi up --target the database and the load balancer"));
        assert!(text.contains("[config ] no deployment record"), "{text}");
        assert!(text.contains("[delete ] any snapshot of the database the destroy itself made"));
        assert!(refuse_protected(&prod, &plan).is_ok());
        assert!(refuse_protected(&stack(), &super::plan(&stack(), &o, Options::default())).is_ok());
    }

    #[test]
    fn nothing_deployed_is_a_plan_with_nothing_to_do() {
        let plan = plan(&stack(), &Observed::default(), Options::default());
        assert!(plan.nothing);
        assert!(plan.lines().join("\n").contains("nothing was deployed"));
    }

    #[test]
    fn a_held_lock_refuses_and_the_zone_is_kept() {
        let mut o = Observed { store_exists: true, ..Observed::default() };
        o.lock = Some(LockInfo::mine("orch up", std::time::Duration::from_secs(60)));
        let text = plan(&stack(), &o, Options::default()).lines().join("\n");
        assert!(text.contains("[REFUSE ] deploy lock held by"), "{text}");
        assert!(
            text.contains("[destroy] pulumi destroy")
                && text.contains("hosted zone and NS delegation"),
            "{text}"
        );
        assert!(text.contains("[skip   ] no deployment record"), "{text}");
    }
}
