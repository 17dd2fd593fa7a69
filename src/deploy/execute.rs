//! The executor: runs the steps in order, each idempotent (it re-reads before it writes), under the
//! deploy lock, which is released at the end whatever happens.
use std::sync::Arc;
use std::time::Duration;

use super::error::DeployError;
use super::observe::{deploy_config, Aws};
use super::record::{self, Record};
use super::steps::Steps;
use super::store::Store;
use super::{bucket, cert, delegation, dns, lock, refresh};
use crate::config::Stack;
use crate::error::{OrchError, Outcome};
use crate::printer::Printer;
use crate::project::Project;
use crate::pulumi::Pulumi;
use crate::runner::Runner;

/// Knobs for one run.
pub struct Run<'a> {
    pub project: &'a Project,
    pub stack: &'a Stack,
    pub printer: &'a Printer,
    pub aws: &'a Aws,
    pub store: &'a Store,
    pub runner: Arc<dyn Runner>,
    pub force: bool,
    pub force_unlock: bool,
}

/// Seconds between status polls (ACM, instance refresh); `ORCH_POLL_SECONDS`, default 15.
pub fn poll() -> Duration {
    Duration::from_secs(
        std::env::var("ORCH_POLL_SECONDS").ok().and_then(|v| v.parse().ok()).unwrap_or(15),
    )
}

/// `orch up`: the state bucket, then everything else under the lock.
pub async fn up<S: Steps>(run: &Run<'_>, steps: &S) -> Result<Outcome, OrchError> {
    let p = run.printer;
    if let Store::S3 { bucket, .. } = run.store {
        let changed = bucket::ensure(&run.aws.s3, bucket, &run.stack.region).await?;
        p.progress(&if changed.is_empty() {
            format!("✓ state bucket {bucket}")
        } else {
            format!("✓ state bucket {bucket}: {}", changed.join(", "))
        });
    }
    let lock = lock::acquire(run.store, &run.stack.name, "orch up", run.force_unlock, p).await?;
    p.progress(&format!("✓ deploy lock {}", run.store.describe(&lock::key(&run.stack.name))));
    let result = tokio::select! {
        r = locked(run, steps) => r,
        _ = tokio::signal::ctrl_c() => Err(OrchError::failed("interrupted", "rerun `orch up`; every step is idempotent")),
    };
    let released = lock.release().await;
    let outcome = result?;
    released?;
    Ok(outcome)
}

async fn locked<S: Steps>(run: &Run<'_>, steps: &S) -> Result<Outcome, OrchError> {
    let (p, stack, aws) = (run.printer, run.stack, run.aws);
    let env = stack.name.as_str();
    let last = record::latest(run.store, env).await?;
    let program =
        steps.render(run.project, stack, last.as_ref().and_then(|r| r.stack_file.as_deref()))?;
    p.progress(&format!(
        "✓ program rendered into {} ({})",
        program.dir.display(),
        record::short(&program.hash)
    ));
    let image = steps.image(run.project, stack, p).await?;
    p.progress(&format!("✓ image {}", image.uri));
    let ami = super::ami::resolve(&aws.ssm, stack).await?;
    p.progress(&format!("✓ AMI {} ({})", ami.id, ami.source));

    let mut zone_id = None;
    if let Some(domain) = &stack.domain {
        let (id, ns, created) = dns::ensure_zone(&aws.r53, env, &domain.name).await?;
        p.progress(&format!(
            "✓ hosted zone {} ({id}){}",
            domain.name,
            if created { " created" } else { "" }
        ));
        match dns::observe_parent(&aws.r53, &domain.parent_zone, &domain.name).await? {
            Some(parent) if parent.delegation.as_deref() == Some(&ns[..]) => {
                p.progress(&format!("✓ NS delegation in {}", domain.parent_zone))
            }
            Some(parent) => {
                dns::delegate(&aws.r53, &parent.id, &domain.name, &ns).await?;
                p.progress(&format!(
                    "✓ NS delegation UPSERTed in {} and INSYNC",
                    domain.parent_zone
                ));
            }
            None => {
                p.warn(&format!("{} is not a hosted zone in this account: set these name servers for {} at your registrar:", domain.parent_zone, domain.name));
                for n in &ns {
                    p.data(n);
                }
                check_delegation(&domain.name, &ns, p).await?;
            }
        }
        zone_id = Some(id);
    }

    let cert_arn = match &stack.domain {
        Some(domain) => {
            let timeout = Duration::from_secs(
                std::env::var("ORCH_ACM_TIMEOUT").ok().and_then(|v| v.parse().ok()).unwrap_or(1800),
            );
            cert::ensure_acm(
                &aws.acm,
                &aws.r53,
                env,
                &domain.name,
                zone_id.as_deref().unwrap_or_default(),
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
    };
    p.progress(&format!("✓ certificate {cert_arn}"));

    let config = deploy_config(&program, &image, &cert_arn, zone_id.as_deref(), &ami.id);
    let config_hash = record::config_hash(&config, &program.secrets);
    match record::change_reason(last.as_ref(), &image.digest, &program.hash, &config_hash) {
        None if !run.force => {
            p.progress("✓ no changes since the last deployment: pulumi skipped (use --force to deploy anyway)");
            if let Some(url) =
                last.as_ref().and_then(|l| l.outputs.get("url")).and_then(|u| u.as_str())
            {
                p.data(url);
            }
            return Ok(Outcome::Ok);
        }
        reason => p.progress(&format!(
            "  deploying: {}",
            if run.force { "--force".into() } else { reason.unwrap_or_default() }
        )),
    }

    let pushed = steps.push(run.project, stack, &image, p).await?;
    p.progress(&format!("✓ image in the registry ({pushed} bytes pushed)"));
    Pulumi::check_passphrase().map_err(DeployError::from)?;
    let backend = stack.pulumi.as_ref().map(|s| s.pulumi_url(&stack.region)).unwrap_or_default();
    let pulumi = Pulumi::new(run.runner.clone(), &program.dir, &backend, env);
    pulumi.select_stack().map_err(DeployError::from)?;
    pulumi.set_config(&config, &program.secrets).map_err(DeployError::from)?;
    p.progress(&format!("  pulumi up (stack {env})"));
    pulumi.up(p).await.map_err(DeployError::from)?;
    let outputs = pulumi.outputs().map_err(DeployError::from)?;

    if record::launch_template_changed(last.as_ref(), &outputs, &image.digest, &program.hash) {
        let output = |key: &str| {
            outputs.get(key).and_then(|v| v.as_str()).map(str::to_string).ok_or_else(|| {
                DeployError::step("instance refresh", format!("the stack has no `{key}` output"))
            })
        };
        let target = refresh::Target {
            group: output("asgName")?,
            template_id: output("launchTemplateId")?,
            version: output("launchTemplateVersion")?,
            alarm: output("targetErrorsAlarm").ok(),
        };
        refresh::run(&aws.asg, &target, poll(), Duration::from_secs(3600), p).await?;
    }

    let url = outputs
        .get("url")
        .and_then(|v| v.as_str())
        .ok_or_else(|| DeployError::step("verify", "the stack has no `url` output"))?
        .to_string();
    let http_url = outputs.get("httpUrl").and_then(|v| v.as_str());
    if !steps.verify(run.project, stack, &url, http_url, p).await? {
        p.warn(&format!("deployed, but {url} failed verification; the deployment is not recorded, so the next `orch up` deploys and verifies again"));
        return Ok(Outcome::Finding);
    }
    let rec = Record {
        env: env.into(),
        revision: run.project.revision(run.runner.as_ref()),
        by: Some(crate::host::who()),
        image_uri: image.uri.clone(),
        image_digest: image.digest.clone(),
        program_hash: program.hash.clone(),
        config_hash,
        outputs,
        certificate_arn: Some(cert_arn.clone()),
        stack_file: std::fs::read_to_string(program.dir.join(crate::render::stack_file_name(env)))
            .ok(),
        ami: Some(ami.id.clone()),
        time: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        orch_version: env!("CARGO_PKG_VERSION").into(),
    };
    let at = record::save(run.store, &rec).await?;
    p.progress(&format!("✓ deployment recorded at {at}"));
    p.data(&url);
    Ok(Outcome::Ok)
}

/// A delegation made at a registrar, checked by a DNS query. Skipped with ORCH_OFFLINE, under an
/// emulator (public DNS cannot see its zones) unless ORCH_DNS_SERVER names a resolver, and when no
/// resolver answers; a wrong or missing delegation stops the run before the certificate waits on it.
async fn check_delegation(name: &str, ns: &[String], p: &Printer) -> Result<(), DeployError> {
    let Some(server) = delegation::mode().map_err(DeployError::Refused)? else {
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
