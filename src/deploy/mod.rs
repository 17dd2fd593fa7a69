//! The AWS target's deployment: observe (read-only) → [`plan::plan`] → `--dry-run` prints it, or the
//! executor runs it: state bucket, lock, render, image, DNS, certificate, `pulumi up`, instance
//! refresh, verify, record. See docs/deploy.md.
pub(crate) mod ami;
pub(crate) mod bucket;
pub(crate) mod cert;
pub(crate) mod delegation;
pub(crate) mod dns;
pub(crate) mod down;
pub(crate) mod error;
pub(crate) mod execute;
pub(crate) mod group;
pub(crate) mod observe;
pub(crate) mod plan;
pub(crate) mod rdslogs;
pub(crate) mod snapshot;
pub(crate) mod steps;
pub(crate) mod stop;
pub(crate) mod unprotect;

use std::io::{BufRead, IsTerminal, Write};
use std::sync::Arc;

use crate::config::Stack;
use crate::context::{Ctx, DownOptions, UpOptions};
use crate::error::{OrchError, Outcome};
use crate::state::record;
pub(crate) use error::DeployError;

/// `orch up` for an aws stack.
pub(crate) async fn up(
    ctx: &Ctx<'_>,
    stack: &Stack,
    args: &UpOptions,
) -> Result<Outcome, OrchError> {
    let project = ctx.project()?;
    let backend = backend(stack)?;
    preflight(&project, stack, ctx.settings())?;
    // `orch check` is the gate: a program AWS or the policy would refuse stops here, before the
    // bucket, zone, certificate or pulumi are touched (and in --dry-run too).
    let checked = crate::check::gate(&project, stack)?;
    ctx.printer.progress(&format!(
        "✓ orch check: {} resources, aws-native {}: clean",
        checked.resources, checked.provider_version
    ));
    let aws = observe::Aws::new(&stack.region).await;
    let store = observe::store_for(&backend, &aws);
    let steps = steps::Wired::new(ctx.settings());
    if args.dry_run {
        let observed =
            observe::observe(&project, stack, &aws, &store, &steps, ctx.settings(), ctx.printer)
                .await?;
        let mut plan = plan::plan(stack, &observed, args.force, args.force_unlock);
        let live = observed.last.as_ref().and_then(|r| r.run.program.as_deref());
        match crate::cost::for_plan(&project, stack, live) {
            Ok(cost) => plan.cost = Some(cost),
            Err(e) => ctx.printer.warn(&format!("monthly cost unknown: {e}")),
        }
        if args.json {
            ctx.printer.json(&plan)?;
        } else {
            for line in plan.lines() {
                ctx.printer.data(&line);
            }
        }
        return Ok(Outcome::Ok);
    }
    confirm(stack, args.yes, "deploy to")?;
    let run = execute::Run {
        project: &project,
        stack,
        printer: ctx.printer,
        aws: &aws,
        store: &store,
        runner: Arc::new(crate::runner::Duct),
        settings: ctx.settings(),
        force: args.force,
        force_unlock: args.force_unlock,
    };
    execute::up(&run, &steps).await
}

/// `orch down` for an aws stack: observe → [`down::plan`] → `--dry-run` prints it, or it runs.
pub(crate) async fn down(
    ctx: &Ctx<'_>,
    stack: &Stack,
    args: &DownOptions,
) -> Result<Outcome, OrchError> {
    let project = ctx.project()?;
    let aws = observe::Aws::new(&stack.region).await;
    let store = observe::store_for(&backend(stack)?, &aws);
    let observed = down::observe(stack, &aws, &store).await?;
    let opts = down::Options { unprotect: args.unprotect, force_unlock: args.force_unlock };
    let plan = down::plan(stack, &observed, opts);
    if args.dry_run || plan.nothing {
        for line in plan.lines() {
            ctx.printer.data(&line);
        }
        return Ok(Outcome::Ok);
    }
    down::refuse_protected(stack, &plan)?;
    confirm(stack, args.yes, "tear down")?;
    let runner = Arc::new(crate::runner::Duct);
    down::execute(&project, stack, &plan, &aws, &store, runner, ctx.settings(), ctx.printer).await
}

/// `orch rollback` for an AWS environment: confirm (protected), then redeploy the release.
pub(crate) async fn rollback(
    ctx: &Ctx<'_>,
    stack: &Stack,
    to: Option<&str>,
    yes: bool,
) -> Result<Outcome, OrchError> {
    let project = ctx.project()?;
    backend(stack)?;
    preflight(&project, stack, ctx.settings())?;
    crate::check::gate(&project, stack)?;
    confirm(stack, yes, "roll back")?;
    crate::release::aws::rollback(&project, stack, to, ctx.settings(), ctx.printer).await
}

/// The URLs of the last recorded deployment (`url`, `httpUrl` outputs), for `orch verify --env ENV`.
pub(crate) async fn deployed_urls(stack: &Stack) -> Result<(String, Option<String>), OrchError> {
    let aws = observe::Aws::new(&stack.region).await;
    let store = observe::store_for(&backend(stack)?, &aws);
    let last = record::latest(&store, &stack.name).await?;
    let output = |o| last.as_ref().and_then(|r| r.output(o)).map(str::to_string);
    match output(crate::outputs::Output::Url) {
        Some(url) => Ok((url, output(crate::outputs::Output::HttpUrl))),
        None => Err(DeployError::NotDeployed {
            env: stack.name.clone(),
            at: store.describe(&record::latest_key(&stack.name)),
        }
        .into()),
    }
}

/// The settings read late in a run (the resolver for the delegation check, the CA the verify suite
/// trusts), checked before anything changes: a bad one is a usage error (exit 2), not a failure
/// after `pulumi up`.
fn preflight(
    project: &crate::project::Project,
    stack: &Stack,
    settings: &crate::settings::Settings,
) -> Result<(), OrchError> {
    crate::config::check_shared_repository(project, stack)?;
    delegation::mode(settings).map_err(OrchError::Usage)?;
    let (pages, ca) = (project.pages_dir(), settings.verify_ca.as_deref());
    crate::verify::options_for_aws(Some(&pages), stack.domain.is_some(), None, 0, ca)
        .map_err(OrchError::Usage)?;
    Ok(())
}

pub(crate) fn backend(stack: &Stack) -> Result<crate::config::Backend, OrchError> {
    let backend = stack.pulumi.as_ref().map(|p| p.backend.clone());
    Ok(backend.ok_or_else(|| DeployError::NoBackend(stack.name.clone()))?)
}

/// Protected environments: ask on a terminal, demand `--yes` otherwise.
fn confirm(stack: &Stack, yes: bool, verb: &str) -> Result<(), OrchError> {
    if !stack.protected || yes {
        return Ok(());
    }
    if !std::io::stdin().is_terminal() {
        return Err(DeployError::NoTerminal { env: stack.name.clone(), verb: verb.into() }.into());
    }
    eprint!("`{}` is protected. Type its name to {verb} it: ", stack.name);
    let _ = std::io::stderr().flush();
    let mut answer = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut answer)
        .map_err(|e| OrchError::io("reading the confirmation", e))?;
    if answer.trim() == stack.name {
        Ok(())
    } else {
        Err(DeployError::NotConfirmed { env: stack.name.clone() }.into())
    }
}
