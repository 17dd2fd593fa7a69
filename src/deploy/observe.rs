//! Read-only gathering of [`Observed`]: the AWS clients, the state store, and every lookup the plan
//! needs. Nothing here writes to AWS or to the state store.
use std::collections::BTreeMap;

use super::error::DeployError;
use super::plan::Observed;
use super::steps::{ImageRef, Program, Steps};
use super::{bucket, cert, delegation, dns};
use crate::config::Stack;
use crate::error::OrchError;
use crate::printer::Printer;
use crate::project::Project;
use crate::state::store::Store;
use crate::state::{lock, record};

/// The AWS clients a deployment uses.
#[derive(Debug, Clone)]
pub(crate) struct Aws {
    pub s3: aws_sdk_s3::Client,
    pub r53: aws_sdk_route53::Client,
    pub acm: aws_sdk_acm::Client,
    pub asg: aws_sdk_autoscaling::Client,
    pub ssm: aws_sdk_ssm::Client,
    pub rds: aws_sdk_rds::Client,
    pub ecr: aws_sdk_ecr::Client,
    pub cw: aws_sdk_cloudwatch::Client,
}

impl Aws {
    pub(crate) async fn new(region: &str) -> Self {
        let sdk = crate::aws::sdk_config(region).await;
        Aws {
            s3: crate::aws::s3_client(&sdk),
            r53: aws_sdk_route53::Client::new(&sdk),
            acm: aws_sdk_acm::Client::new(&sdk),
            asg: aws_sdk_autoscaling::Client::new(&sdk),
            ssm: aws_sdk_ssm::Client::new(&sdk),
            rds: aws_sdk_rds::Client::new(&sdk),
            ecr: aws_sdk_ecr::Client::new(&sdk),
            cw: aws_sdk_cloudwatch::Client::new(&sdk),
        }
    }
}

/// The state store for a backend URL: the bucket itself, or `<path>/.orch` beside a file backend.
pub(crate) fn store_for(backend: &crate::config::Backend, aws: &Aws) -> Store {
    Store::for_backend(backend, &aws.s3)
}

/// The program's config plus the deploy-time values orch wires in.
pub(crate) fn deploy_config(
    program: &Program,
    image: &ImageRef,
    certificate_arn: &str,
    zone_id: Option<&str>,
    ami: &str,
) -> BTreeMap<String, String> {
    let mut config = program.config.clone();
    config.insert("imageUri".into(), image.uri.clone());
    config.insert("amiId".into(), ami.into());
    config.insert("certificateArn".into(), certificate_arn.into());
    if let Some(id) = zone_id {
        config.insert("hostedZoneId".into(), id.into());
    }
    config
}

pub(crate) async fn observe<S: Steps>(
    project: &Project,
    stack: &Stack,
    aws: &Aws,
    store: &Store,
    steps: &S,
    settings: &crate::settings::Settings,
    printer: &Printer,
) -> Result<Observed, OrchError> {
    let mut o = Observed::default();
    let mut store_readable = true;
    if let Store::S3 { bucket, .. } = store {
        let state = bucket::observe(&aws.s3, bucket).await?;
        store_readable = state.exists;
        o.bucket = Some(state);
    }
    if store_readable {
        o.lock = lock::observe(store, &stack.name).await?;
        o.lock_stale = o.lock.as_ref().is_some_and(|l| l.expired(crate::clock::now()));
        o.last = record::latest(store, &stack.name).await?;
    }
    // The error budget, from the metrics of the balancer the live release runs behind.
    if let Some(slo) = &stack.slo {
        use super::plan::BudgetState;
        o.budget = Some(match o.last.as_ref().map(crate::ops::slo::balancer) {
            None => BudgetState::Unknown("no deployment yet: no traffic to count".into()),
            Some(Err(e)) => BudgetState::Unknown(e),
            Some(Ok(lb)) => match crate::ops::slo::budget(&aws.cw, &lb, slo).await {
                Ok((b, _)) => BudgetState::Known { summary: b.summary(), exhausted: b.exhausted },
                Err(e) => BudgetState::Unknown(format!("CloudWatch: {e}")),
            },
        });
    }
    // What the group of the live release runs, read from Auto Scaling, not from the record.
    if let Some(name) = o.last.as_ref().and_then(|r| r.output(crate::outputs::Output::AsgName)) {
        match super::group::observe(&aws.asg, name).await {
            Ok(group) => o.group = group,
            Err(e) => o.group_problem = Some(e.to_string()),
        }
    }
    let mut zone_id = None;
    if let Some(domain) = &stack.domain {
        let zone = dns::observe_zone(&aws.r53, &domain.name).await?;
        if let dns::ZoneState::One { id, .. } = &zone {
            zone_id = Some(id.clone());
        }
        o.zone = Some(zone);
        o.parent = dns::observe_parent(&aws.r53, &domain.parent_zone, &domain.name).await?;
        if let (None, dns::ZoneState::One { name_servers, .. }) =
            (&o.parent, o.zone.as_ref().unwrap_or(&dns::ZoneState::Missing))
        {
            if let Some(server) = delegation::mode(settings).map_err(DeployError::Refused)? {
                o.registrar = Some(delegation::check(&domain.name, name_servers, server).await);
            }
        }
    }
    o.cert = Some(
        cert::observe(&aws.acm, &stack.name, stack.domain.as_ref().map(|d| d.name.as_str()))
            .await?,
    );
    let recorded = o.last.as_ref().and_then(|r| r.run.stack_file.clone());
    // Read-only: into a private folder, so build/<env>/ is written only under the lock.
    let program = steps.render_private(project, stack, recorded.as_deref())?;
    o.program_hash = Some(program.hash.clone());
    match super::ami::resolve(&aws.ssm, stack).await {
        Ok(ami) => o.ami = Some(ami),
        Err(e) => o.ami_problem = Some(e.to_string()),
    }
    match steps.image(project, stack, printer).await {
        Ok(image) => o.image = Some(image),
        Err(e) => o.image_problem = Some(e.to_string()),
    }
    // An image orch did not build must be in the registry before anything changes.
    let pinned = o.image.as_ref().filter(|i| i.prebuilt);
    if let Some(ecr) = pinned.and_then(|i| crate::image::retention::ecr_image(&i.uri)) {
        o.image_present = Some(crate::image::retention::exists(&aws.ecr, &ecr).await?);
    }
    let arn = match &o.cert {
        Some(cert::CertState::Issued { arn }) => Some(arn.clone()),
        Some(cert::CertState::Imported { arn, days_left }) if *days_left >= cert::RENEW_DAYS => {
            Some(arn.clone())
        }
        _ => None,
    };
    if let (Some(image), Some(arn), Some(ami)) = (&o.image, arn, &o.ami) {
        if stack.domain.is_none() || zone_id.is_some() {
            let config = deploy_config(&program, image, &arn, zone_id.as_deref(), &ami.id);
            o.config_hash = Some(record::config_hash(&config, &program.secrets));
        }
    }
    Ok(o)
}
