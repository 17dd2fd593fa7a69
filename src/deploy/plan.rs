//! The plan as data: [`Observed`] is what orch read (read-only) from AWS, the state store and the
//! local build — the group's launch-template version and any active refresh among it; [`plan`] turns
//! it into the list of steps with what exists, what would change and the facts each decision rests
//! on. `--dry-run` prints this; the executor re-checks each step as it goes, so a rerun converges.
use serde::Serialize;

use super::bucket::BucketState;
use super::cert::{CertState, RENEW_DAYS};
use super::delegation::Delegation;
use super::dns::{ParentZone, ZoneState};
use super::steps::ImageRef;
use crate::config::Stack;
use crate::state::lock::LockInfo;
use crate::state::record::{change_reason, Record};

#[derive(Debug, Clone, Default, Serialize)]
pub(crate) struct Observed {
    /// Some for `s3://` backends.
    pub bucket: Option<BucketState>,
    pub lock: Option<LockInfo>,
    /// True when the lock's lease has expired (its holder stopped renewing it).
    pub lock_stale: bool,
    /// None when the stack has no domain.
    pub zone: Option<ZoneState>,
    /// The parent zone when it is in this account.
    pub parent: Option<ParentZone>,
    /// Parent elsewhere: what public DNS says of the delegation (None: not asked).
    pub registrar: Option<Delegation>,
    pub cert: Option<CertState>,
    pub last: Option<Record>,
    /// The Auto Scaling group of the last release as it runs now (None: no release, or no group).
    pub group: Option<super::group::Observed>,
    /// Why the group could not be read, when it could not.
    pub group_problem: Option<String>,
    #[serde(skip)]
    pub image: Option<ImageRef>,
    /// Why the image is unknown, when it is.
    pub image_problem: Option<String>,
    /// Whether an image orch did not build (rollback, `ORCH_IMAGE`) is in its ECR repository
    /// (None: built here, or not in ECR).
    pub image_present: Option<bool>,
    /// The AMI the instances would boot.
    pub ami: Option<super::ami::Ami>,
    /// Why the AMI is unknown, when it is.
    pub ami_problem: Option<String>,
    pub program_hash: Option<String>,
    /// Known when every deploy-time value (certificate ARN, zone id) already exists.
    pub config_hash: Option<String>,
    /// The error budget of the stack's `slo:` from the load balancer's metrics (None: no `slo:`).
    pub budget: Option<BudgetState>,
}

/// The error budget as observed.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum BudgetState {
    /// Not readable (no deployment yet, no metrics access): the deploy goes on, saying so.
    Unknown(String),
    Known {
        summary: String,
        exhausted: bool,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Action {
    /// Already as wanted.
    Exists,
    Create,
    Change,
    /// Runs every time (or whenever needed).
    Run,
    Skip,
    /// Would stop the run.
    Refuse,
}

impl Action {
    fn label(&self) -> &'static str {
        match self {
            Action::Exists => "exists",
            Action::Create => "create",
            Action::Change => "change",
            Action::Run => "run",
            Action::Skip => "skip",
            Action::Refuse => "REFUSE",
        }
    }
}

/// What a step does; the executor matches on it (`execute::run_step`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Kind {
    /// Render the program into build/<env>/.
    Program,
    /// A file backend: nothing to manage.
    StateStore,
    StateBucket,
    Lock,
    Image,
    Ami,
    HostedZone,
    Delegation,
    Certificate,
    /// Make sure the image is in the registry.
    Push,
    PulumiStack,
    /// Record the release as `applying` before the stack changes.
    Release,
    PulumiUp,
    InstanceRefresh,
    Verify,
    Record,
    /// The `slo:` error budget gate.
    ErrorBudget,
}

impl Kind {
    pub(crate) fn label(self) -> &'static str {
        match self {
            Kind::Program => "program",
            Kind::StateStore => "state store",
            Kind::StateBucket => "state bucket",
            Kind::Lock => "deploy lock",
            Kind::Image => "image",
            Kind::Ami => "AMI",
            Kind::HostedZone => "hosted zone",
            Kind::Delegation => "NS delegation",
            Kind::Certificate => "certificate",
            Kind::Push => "push",
            Kind::PulumiStack => "pulumi stack",
            Kind::Release => "release",
            Kind::PulumiUp => "pulumi up",
            Kind::InstanceRefresh => "instance refresh",
            Kind::Verify => "verify",
            Kind::Record => "record",
            Kind::ErrorBudget => "error budget",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct Step {
    pub kind: Kind,
    pub name: &'static str,
    pub action: Action,
    pub detail: String,
}

#[derive(Debug, Clone, Serialize)]
pub(crate) struct Plan {
    pub env: String,
    pub steps: Vec<Step>,
    /// Nothing changed since the last recorded deployment: pulumi is skipped.
    pub noop: bool,
    /// The monthly cost and its change against the live release (`orch up --dry-run`; docs/cost.md).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cost: Option<crate::cost::Delta>,
}

impl Plan {
    pub(crate) fn lines(&self) -> Vec<String> {
        let mut out = vec![format!(
            "plan for `{}`{}:",
            self.env,
            if self.noop { " (no-op: matches the last deployment)" } else { "" }
        )];
        out.extend(
            self.steps
                .iter()
                .map(|s| format!("  [{:<6}] {:<18} {}", s.action.label(), s.name, s.detail)),
        );
        out.extend(self.cost.iter().flat_map(crate::cost::Delta::lines));
        out
    }
}

/// The steps `orch up` would take, given what is there. Pure.
pub(crate) fn plan(stack: &Stack, o: &Observed, force: bool, force_unlock: bool) -> Plan {
    let mut steps = vec![];
    let mut step = |kind: Kind, action, detail: String| {
        steps.push(Step { kind, name: kind.label(), action, detail });
    };
    let backend = stack.pulumi.as_ref().map(|p| p.backend.to_string()).unwrap_or_default();

    match &o.bucket {
        None => step(Kind::StateStore, Action::Exists, format!("{backend} (no bucket to manage)")),
        Some(b) if !b.exists => step(
            Kind::StateBucket,
            Action::Create,
            format!("{backend} with versioning, encryption, public access block"),
        ),
        Some(b) if b.missing().is_empty() => step(
            Kind::StateBucket,
            Action::Exists,
            format!("{backend}: versioning, encryption, public access block"),
        ),
        Some(b) => step(
            Kind::StateBucket,
            Action::Change,
            format!("{backend}: add {}", b.missing().join(", ")),
        ),
    }
    match &o.lock {
        None => step(Kind::Lock, Action::Create, format!("locks/{}.json", stack.name)),
        Some(l) if force_unlock || o.lock_stale => step(
            Kind::Lock,
            Action::Change,
            format!(
                "take over the lock of {}{}",
                l.describe(),
                if o.lock_stale { ": its lease expired" } else { " (--force-unlock)" }
            ),
        ),
        Some(l) => step(Kind::Lock, Action::Refuse, format!("held by {}", l.describe())),
    }
    step(
        Kind::Program,
        Action::Run,
        format!(
            "render build/{}/ ({})",
            stack.name,
            o.program_hash
                .as_deref()
                .map(crate::state::record::short)
                .unwrap_or_else(|| "-".into())
        ),
    );
    match (&o.image, &o.image_problem) {
        (Some(i), _) if o.image_present == Some(false) => step(
            Kind::Image,
            Action::Refuse,
            format!("{} is not in its repository (expired or never pushed)", i.uri),
        ),
        (Some(i), _) if o.image_present == Some(true) => {
            step(Kind::Image, Action::Run, format!("deploy {} (in the registry)", i.uri));
        }
        (Some(i), _) => step(Kind::Image, Action::Run, format!("deploy {}", i.uri)),
        (None, p) => step(
            Kind::Image,
            Action::Run,
            format!("build and push ({})", p.as_deref().unwrap_or("digest known after the build")),
        ),
    }
    let last_ami = o.last.as_ref().and_then(|r| r.run.ami.as_deref());
    match (&o.ami, &o.ami_problem) {
        (Some(a), _) if last_ami.is_some_and(|l| l != a.id) => step(
            Kind::Ami,
            Action::Change,
            format!(
                "{} → {} ({}): a reason for a rollout",
                last_ami.unwrap_or_default(),
                a.id,
                a.source
            ),
        ),
        (Some(a), _) => step(Kind::Ami, Action::Exists, format!("{} ({})", a.id, a.source)),
        (None, p) => step(Kind::Ami, Action::Refuse, p.clone().unwrap_or_else(|| "unknown".into())),
    }
    if let Some(domain) = &stack.domain {
        match &o.zone {
            Some(ZoneState::One { id, name_servers }) => step(
                Kind::HostedZone,
                Action::Exists,
                format!("{} ({id}; {})", domain.name, name_servers.join(" ")),
            ),
            Some(ZoneState::Many(ids)) => step(
                Kind::HostedZone,
                Action::Refuse,
                format!("{} zones named {}: {}", ids.len(), domain.name, ids.join(", ")),
            ),
            _ => step(Kind::HostedZone, Action::Create, domain.name.clone()),
        }
        let ns = match &o.zone {
            Some(ZoneState::One { name_servers, .. }) => Some(name_servers.clone()),
            _ => None,
        };
        match &o.parent {
            Some(p) if p.delegation.is_some() && p.delegation == ns => step(Kind::Delegation, Action::Exists, format!("{} in {} ({})", domain.name, domain.parent_zone, p.id)),
            Some(p) if p.delegation.is_some() => step(Kind::Delegation, Action::Change, format!("UPSERT {} NS in {} ({})", domain.name, domain.parent_zone, p.id)),
            Some(p) => step(Kind::Delegation, Action::Create, format!("UPSERT {} NS in {} ({})", domain.name, domain.parent_zone, p.id)),
            None => match &o.registrar {
                Some(Delegation::Matches) => step(Kind::Delegation, Action::Exists, format!("at the registrar of {}: public DNS lists the zone's name servers", domain.parent_zone)),
                Some(Delegation::Differs { found }) => step(
                    Kind::Delegation,
                    Action::Refuse,
                    format!("public DNS lists {} for {}: set the zone's name servers at the registrar of {}", if found.is_empty() { "no name servers".into() } else { found.join(", ") }, domain.name, domain.parent_zone),
                ),
                _ => step(Kind::Delegation, Action::Run, format!("{} is not in this account: print the name servers for the registrar and check the delegation by DNS", domain.parent_zone)),
            },
        }
        match &o.cert {
            Some(CertState::Issued { arn }) => {
                step(Kind::Certificate, Action::Exists, format!("{} ISSUED ({arn})", domain.name));
            }
            Some(CertState::Pending { arn }) => step(
                Kind::Certificate,
                Action::Change,
                format!(
                    "{} pending validation: UPSERT validation records, wait ({arn})",
                    domain.name
                ),
            ),
            _ => step(
                Kind::Certificate,
                Action::Create,
                format!(
                    "request {} (DNS validation), UPSERT validation records, wait",
                    domain.name
                ),
            ),
        }
    } else {
        match &o.cert {
            Some(CertState::Imported { arn, days_left }) if *days_left >= RENEW_DAYS => step(
                Kind::Certificate,
                Action::Exists,
                format!("self-signed, {days_left} days left ({arn})"),
            ),
            Some(CertState::Imported { arn, days_left }) => step(
                Kind::Certificate,
                Action::Change,
                format!("re-import a fresh self-signed certificate ({days_left} days left; {arn})"),
            ),
            _ => step(
                Kind::Certificate,
                Action::Create,
                "generate a self-signed certificate and import it into ACM".into(),
            ),
        }
    }
    let reason = match (&o.image, &o.program_hash, &o.config_hash) {
        (Some(i), Some(p), Some(c)) => change_reason(o.last.as_ref(), i.digest.as_ref(), p, c),
        _ if o.last.is_none() => Some("no deployment recorded yet".into()),
        _ => Some("inputs not all known before the run".into()),
    };
    // The inputs may match the record while the group runs something else (a refresh that never
    // ran, was rolled back or is still running): then the run goes on and rolls the group.
    let rollout = rollout_facts(o);
    let reason = match (reason, &rollout) {
        (None, Some((true, facts))) => Some(facts.clone()),
        (reason, _) => reason,
    };
    let noop = reason.is_none() && !force;
    if noop {
        step(
            Kind::PulumiUp,
            Action::Skip,
            "image, program and config match the last deployment (--force to deploy anyway)".into(),
        );
    } else {
        let why = if force { "--force".to_string() } else { reason.unwrap_or_default() };
        step(
            Kind::Push,
            Action::Run,
            "make sure the image is in the registry (missing blobs only)".into(),
        );
        step(
            Kind::PulumiStack,
            Action::Run,
            format!("select or create stack {}, set the deploy-time config", stack.name),
        );
        step(
            Kind::Release,
            Action::Create,
            format!(
                "tag the image release-{}-<time> (the lifecycle policy never expires it), record the release as applying in deployments/{}/ before the stack changes",
                stack.name, stack.name
            ),
        );
        step(Kind::PulumiUp, Action::Run, why);
        let observed = match (&rollout, &o.group_problem) {
            (Some((_, facts)), _) => format!("now: {facts}"),
            (None, Some(p)) => format!("now: group unreadable ({p})"),
            (None, None) => "now: no group yet".into(),
        };
        let how = match crate::rollout::aws::Checkpoints::of(stack) {
            Some(c) => format!(
                "a canary: checkpoints at {} and 100 % of the group, each held {} s and {} s of bake after the last (rollout:)",
                c.percentages.iter().map(|p| format!("{p} %")).collect::<Vec<_>>().join(", "),
                c.bake_seconds,
                c.bake_seconds
            ),
            None => "rolling: no checkpoints (rollout.strategy)".into(),
        };
        let alarms = if stack.slo.is_some() {
            "rolled back when the target-5xx alarm or an slo: alarm (5xx ratios, p99) fires"
        } else {
            "rolled back when the target-5xx alarm fires (no slo:)"
        };
        step(Kind::InstanceRefresh, Action::Run, format!("after pulumi up, read the group: refresh when it or an instance is not on the program's launch-template version, wait for another active refresh first (MinHealthyPercentage 100, skip matching, auto-rollback); {how}; {alarms}; {observed}"));
        step(
            Kind::Verify,
            Action::Run,
            "the acceptance suite against the stack's url output".into(),
        );
        step(
            Kind::Record,
            Action::Create,
            format!("deployments/{}/latest.json (+ history)", stack.name),
        );
    }
    if let Some(b) = &o.budget {
        let (action, detail) = budget_step(b, noop, force);
        let kind = Kind::ErrorBudget;
        steps.insert(0, Step { kind, name: kind.label(), action, detail });
    }
    Plan { env: stack.name.clone(), steps, noop, cost: None }
}

/// The budget gate: an exhausted budget refuses a deploy unless `--force` (a no-op deploys nothing).
fn budget_step(b: &BudgetState, noop: bool, force: bool) -> (Action, String) {
    match b {
        BudgetState::Unknown(why) => (Action::Run, format!("unknown ({why}): not gating")),
        BudgetState::Known { summary, exhausted: false } => (Action::Exists, summary.clone()),
        BudgetState::Known { summary, .. } if noop => {
            (Action::Skip, format!("exhausted: {summary}; nothing to deploy"))
        }
        BudgetState::Known { summary, .. } if force => {
            (Action::Run, format!("deployed past an exhausted error budget (--force): {summary}"))
        }
        BudgetState::Known { summary, .. } => (
            Action::Refuse,
            format!("exhausted: {summary}; `orch slo` shows it, `orch up --force` deploys anyway"),
        ),
    }
}

/// The group as observed against the last release's launch-template version: (needs a rollout,
/// the facts). None when there is no group to judge.
fn rollout_facts(o: &Observed) -> Option<(bool, String)> {
    let group = o.group.as_ref()?;
    let want =
        o.last.as_ref().and_then(|r| r.output(crate::outputs::Output::LaunchTemplateVersion));
    let Some(want) = want else { return Some((false, group.facts())) };
    let decision = super::group::decide(group, want);
    let needed = !matches!(decision, super::group::Decision::Skip { .. });
    Some((needed, format!("{}: {}", group.facts(), decision.why())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::deploy::ami::Ami;

    fn stack() -> Stack {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("stacks/dev.yaml");
        crate::config::load_str(&std::fs::read_to_string(&path).unwrap(), "dev", &path).unwrap()
    }

    fn record(ami: &str) -> Record {
        let mut rec = crate::state::record::tests::rec();
        rec.run.ami = Some(ami.into());
        rec
    }

    #[test]
    fn an_exhausted_budget_refuses_unless_forced_and_says_so() {
        let exhausted = BudgetState::Known { summary: "12 of 100 failed".into(), exhausted: true };
        let o = Observed { budget: Some(exhausted), ..Observed::default() };
        let step = |force| plan(&stack(), &o, force, false).steps[0].clone();
        assert_eq!((step(false).kind, step(false).action), (Kind::ErrorBudget, Action::Refuse));
        assert!(step(false).detail.contains("12 of 100 failed"), "{:?}", step(false));
        assert_eq!(step(true).action, Action::Run);
        assert!(step(true).detail.starts_with("deployed past an exhausted error budget (--force)"));
        let unknown = Observed {
            budget: Some(BudgetState::Unknown("no deployment yet".into())),
            ..Observed::default()
        };
        assert_eq!(plan(&stack(), &unknown, false, false).steps[0].action, Action::Run);
        let none = plan(&stack(), &Observed::default(), false, false);
        assert!(none.steps.iter().all(|s| s.kind != Kind::ErrorBudget));
    }

    #[test]
    fn a_new_ami_is_a_reason_for_a_rollout_and_an_unknown_one_refuses() {
        let mut o = Observed { last: Some(record("ami-0aaaaaaaaaaaaaaaa")), ..Observed::default() };
        o.ami = Some(Ami { id: "ami-0bbbbbbbbbbbbbbbb".into(), source: "/aws/service/x".into() });
        let planned = plan(&stack(), &o, false, false);
        let ami = planned.steps.iter().find(|s| s.kind == Kind::Ami).unwrap();
        assert_eq!(ami.action, Action::Change);
        assert!(ami.detail.starts_with("ami-0aaaaaaaaaaaaaaaa → ami-0bbbbbbbbbbbbbbbb"), "{ami:?}");
        o.ami = None;
        o.ami_problem = Some("AccessDenied".into());
        let refused = plan(&stack(), &o, false, false);
        assert!(refused.steps.iter().any(|s| s.kind == Kind::Ami && s.action == Action::Refuse));
    }

    #[test]
    fn the_steps_run_in_the_order_the_executor_needs() {
        let planned = plan(&stack(), &Observed::default(), false, false);
        let kinds: Vec<Kind> = planned.steps.iter().map(|s| s.kind).collect();
        let pos = |k: Kind| kinds.iter().position(|x| *x == k).unwrap();
        assert!(pos(Kind::Lock) < pos(Kind::Program) && pos(Kind::Program) < pos(Kind::Image));
        assert!(pos(Kind::Certificate) < pos(Kind::PulumiStack));
        assert!(pos(Kind::Push) < pos(Kind::PulumiUp) && pos(Kind::PulumiUp) < pos(Kind::Verify));
        assert!(
            pos(Kind::PulumiStack) < pos(Kind::Release) && pos(Kind::Release) < pos(Kind::PulumiUp)
        );
        assert_eq!(kinds.last(), Some(&Kind::Record));
    }
}
