//! `orch down` for an AWS environment: under the deploy lock, `pulumi destroy` every resource of the
//! stack and retire the deployment record (kept in the history, so the next `orch up` deploys
//! afresh). Kept on purpose: the state bucket, the hosted zone and its delegation, the certificate
//! and the images — they cost little and keep the name servers and ARN stable for the next `up`.
use std::sync::Arc;

use serde::Serialize;

use super::error::DeployError;
use super::lock::{self, LockInfo};
use super::record::{self, Record};
use super::store::Store;
use super::{bucket, observe};
use crate::config::Stack;
use crate::error::{OrchError, Outcome};
use crate::printer::Printer;
use crate::project::Project;
use crate::pulumi::Pulumi;
use crate::runner::Runner;

/// What `down` read before deciding.
#[derive(Debug, Clone, Default)]
pub struct Observed {
    /// False when the state bucket does not exist: nothing was ever deployed.
    pub store_exists: bool,
    pub lock: Option<LockInfo>,
    pub last: Option<Record>,
}

/// The teardown as data: what runs and what is kept.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DownPlan {
    pub env: String,
    /// Nothing to tear down (no state store).
    pub nothing: bool,
    pub steps: Vec<(String, String)>,
}

impl DownPlan {
    pub fn lines(&self) -> Vec<String> {
        let mut out = vec![format!(
            "teardown plan for `{}`{}:",
            self.env,
            if self.nothing { " (nothing deployed)" } else { "" }
        )];
        out.extend(self.steps.iter().map(|(action, detail)| format!("  [{action:<7}] {detail}")));
        out
    }
}

/// Pure: the teardown for what was observed.
pub fn plan(stack: &Stack, o: &Observed) -> DownPlan {
    let env = stack.name.clone();
    if !o.store_exists {
        return DownPlan {
            env,
            nothing: true,
            steps: vec![("skip".into(), "no state bucket: nothing was deployed".into())],
        };
    }
    let mut steps = vec![];
    match &o.lock {
        Some(l) => steps.push((
            "REFUSE".into(),
            format!(
                "deploy lock held by {} ({}@{}, pid {}, since {})",
                l.holder, l.user, l.host, l.pid, l.since
            ),
        )),
        None => steps.push(("run".into(), "take the deploy lock".into())),
    }
    steps.push(("destroy".into(), format!("pulumi destroy: every resource of stack `{env}` (load balancer, instances, database, network)")));
    match &o.last {
        Some(r) => steps.push((
            "retire".into(),
            format!(
                "deployment record of {} (image {}) → history",
                r.time,
                record::short(&r.image_digest)
            ),
        )),
        None => steps.push(("skip".into(), "no deployment record".into())),
    }
    let mut kept = vec!["state bucket", "certificate", "images"];
    if stack.domain.is_some() {
        kept.insert(1, "hosted zone and NS delegation");
    }
    steps.push(("keep".into(), format!("{} (for the next `orch up`)", kept.join(", "))));
    DownPlan { env, nothing: false, steps }
}

pub async fn observe(
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
    })
}

/// Run the teardown: lock, destroy, retire the record, unlock.
pub async fn execute(
    project: &Project,
    stack: &Stack,
    store: &Store,
    runner: Arc<dyn Runner>,
    force_unlock: bool,
    p: &Printer,
) -> Result<Outcome, OrchError> {
    let env = stack.name.as_str();
    let lock = lock::acquire(store, env, "orch down", force_unlock, p).await?;
    p.progress(&format!("✓ deploy lock {}", store.describe(&lock::key(env))));
    let result = destroy(project, stack, store, runner, p).await;
    let released = lock.release().await;
    let outcome = result?;
    released?;
    Ok(outcome)
}

async fn destroy(
    project: &Project,
    stack: &Stack,
    store: &Store,
    runner: Arc<dyn Runner>,
    p: &Printer,
) -> Result<Outcome, OrchError> {
    let env = stack.name.as_str();
    // The program folder names the project pulumi's stacks belong to.
    let dir = crate::render::write(project, stack, &crate::render::render(project, stack)?)?;
    let backend = stack.pulumi.as_ref().map(|s| s.backend.clone()).unwrap_or_default();
    let pulumi = Pulumi::new(runner, &dir, &backend, env);
    Pulumi::check_passphrase().map_err(DeployError::from)?;
    if pulumi.select_existing().map_err(DeployError::from)? {
        p.progress(&format!("  pulumi destroy (stack {env})"));
        pulumi.destroy(p).await.map_err(DeployError::from)?;
        p.progress(&format!("✓ stack `{env}` destroyed"));
    } else {
        p.progress(&format!("✓ no pulumi stack `{env}` in {backend}: nothing to destroy"));
    }
    if let Some(last) = record::latest(store, env).await? {
        let at = record::retire(store, &last).await?;
        p.progress(&format!("✓ deployment record retired to {at}"));
    }
    p.data(&format!("`{env}` is down; kept: state bucket, hosted zone, certificate, images"));
    Ok(Outcome::Ok)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stack() -> Stack {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("stacks/dev.yaml");
        crate::config::load_str(&std::fs::read_to_string(&path).unwrap(), "dev", &path)
            .expect("stacks/dev.yaml loads")
    }

    #[test]
    fn nothing_deployed_is_a_plan_with_nothing_to_do() {
        let plan = plan(&stack(), &Observed::default());
        assert!(plan.nothing);
        assert!(plan.lines().join("\n").contains("nothing was deployed"));
    }

    #[test]
    fn a_held_lock_refuses_and_the_zone_is_kept() {
        let mut o = Observed { store_exists: true, ..Observed::default() };
        o.lock = Some(LockInfo::mine("orch up"));
        let text = plan(&stack(), &o).lines().join("\n");
        assert!(text.contains("[REFUSE ] deploy lock held by"), "{text}");
        assert!(
            text.contains("[destroy] pulumi destroy")
                && text.contains("hosted zone and NS delegation"),
            "{text}"
        );
        assert!(text.contains("[skip   ] no deployment record"), "{text}");
    }
}
