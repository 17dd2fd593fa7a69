//! The load balancer's certificate in ACM. With a domain: a DNS-validated certificate, its validation
//! CNAMEs UPSERTed into the environment's zone, waited for with a spinner and a timeout; an ISSUED one
//! for the name is reused. Without: a self-signed certificate (rcgen) for `*.<region>.elb.amazonaws.com`,
//! tagged `orch-env`, imported and re-imported under the same ARN when it nears expiry.
use aws_sdk_acm::primitives::Blob;
use aws_sdk_acm::types::{
    CertificateStatus, CertificateType, Filters, KeyAlgorithm, Tag, ValidationMethod,
};
use aws_sdk_route53::types::RrType;
use std::time::{Duration, Instant};

use super::error::DeployError;
use crate::printer::Printer;

/// Days before expiry at which a self-signed certificate is re-imported.
pub(crate) const RENEW_DAYS: i64 = 30;
const SELF_SIGNED_DAYS: i64 = 365;
const TAG: &str = "orch-env";

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub(crate) enum CertState {
    Missing,
    Issued {
        arn: String,
    },
    Pending {
        arn: String,
    },
    /// An imported (self-signed) certificate and how many days it has left.
    Imported {
        arn: String,
        days_left: i64,
    },
}

/// The names a self-signed certificate covers: every load balancer of the region.
pub(crate) fn self_signed_names(region: &str) -> Vec<String> {
    vec![format!("*.{region}.elb.amazonaws.com")]
}

/// Every key type ACM knows (API reference, `Filters.keyTypes`). Without `Includes.keyTypes`
/// `ListCertificates` returns only RSA_1024 and RSA_2048 certificates, so the self-signed one
/// (rcgen's EC P-256 key) would never be found and every `up` would import another.
const KEY_TYPES: [KeyAlgorithm; 7] = [
    KeyAlgorithm::Rsa1024,
    KeyAlgorithm::Rsa2048,
    KeyAlgorithm::Rsa3072,
    KeyAlgorithm::Rsa4096,
    KeyAlgorithm::EcPrime256v1,
    KeyAlgorithm::EcSecp384r1,
    KeyAlgorithm::EcSecp521r1,
];

async fn list(
    acm: &aws_sdk_acm::Client,
) -> Result<Vec<aws_sdk_acm::types::CertificateSummary>, DeployError> {
    let mut out = vec![];
    let mut token = None;
    let includes = Filters::builder().set_key_types(Some(KEY_TYPES.to_vec())).build();
    loop {
        let page = acm
            .list_certificates()
            .certificate_statuses(CertificateStatus::Issued)
            .certificate_statuses(CertificateStatus::PendingValidation)
            .includes(includes.clone())
            .set_next_token(token)
            .send()
            .await
            .map_err(DeployError::aws("listing ACM certificates"))?;
        out.extend(page.certificate_summary_list().iter().cloned());
        token = page.next_token().map(str::to_owned);
        if token.is_none() {
            return Ok(out);
        }
    }
}

/// The certificate orch would use for `domain` (or the env's self-signed one), read-only.
pub(crate) async fn observe(
    acm: &aws_sdk_acm::Client,
    env: &str,
    domain: Option<&str>,
) -> Result<CertState, DeployError> {
    let all = list(acm).await?;
    if let Some(name) = domain {
        let mine: Vec<_> = all
            .iter()
            .filter(|c| {
                c.domain_name() == Some(name) && c.r#type() != Some(&CertificateType::Imported)
            })
            .collect();
        if let Some(c) = mine.iter().find(|c| c.status() == Some(&CertificateStatus::Issued)) {
            return Ok(CertState::Issued { arn: c.certificate_arn().unwrap_or_default().into() });
        }
        return Ok(mine.first().map_or(CertState::Missing, |c| CertState::Pending {
            arn: c.certificate_arn().unwrap_or_default().into(),
        }));
    }
    for c in all.iter().filter(|c| c.r#type() == Some(&CertificateType::Imported)) {
        let Some(arn) = c.certificate_arn() else { continue };
        let tags = acm
            .list_tags_for_certificate()
            .certificate_arn(arn)
            .send()
            .await
            .map_err(DeployError::aws("reading certificate tags"))?;
        if tags.tags().iter().any(|t| t.key() == TAG && t.value() == Some(env)) {
            let d = acm
                .describe_certificate()
                .certificate_arn(arn)
                .send()
                .await
                .map_err(DeployError::aws("describing a certificate"))?;
            let not_after =
                d.certificate().and_then(|c| c.not_after()).map(|t| t.secs()).unwrap_or(0);
            let days_left = (not_after - chrono::Utc::now().timestamp()) / 86_400;
            return Ok(CertState::Imported { arn: arn.into(), days_left });
        }
    }
    Ok(CertState::Missing)
}

/// A DNS-validated certificate for `name`, validated through `zone_id`; returns its ARN once ISSUED.
pub(crate) async fn ensure_acm(
    acm: &aws_sdk_acm::Client,
    r53: &aws_sdk_route53::Client,
    env: &str,
    name: &str,
    zone_id: &str,
    timeout: Duration,
    printer: &Printer,
) -> Result<String, DeployError> {
    let arn = match observe(acm, env, Some(name)).await? {
        CertState::Issued { arn } => return Ok(arn),
        CertState::Pending { arn } => arn,
        _ => {
            let token: String = format!("orch{env}{name}")
                .chars()
                .filter(char::is_ascii_alphanumeric)
                .take(32)
                .collect();
            let out = acm
                .request_certificate()
                .domain_name(name)
                .validation_method(ValidationMethod::Dns)
                .idempotency_token(token)
                .tags(
                    Tag::builder()
                        .key(TAG)
                        .value(env)
                        .build()
                        .map_err(|e| DeployError::step("certificate tag", e.to_string()))?,
                )
                .send()
                .await
                .map_err(DeployError::aws(format!("requesting a certificate for {name}")))?;
            out.certificate_arn().unwrap_or_default().to_string()
        }
    };
    let spinner = printer.spinner(format!("certificate for {name}: waiting for validation"));
    let start = Instant::now();
    let mut upserted = false;
    loop {
        let d = acm
            .describe_certificate()
            .certificate_arn(&arn)
            .send()
            .await
            .map_err(DeployError::aws("describing the certificate"))?;
        let cert = d.certificate();
        match cert.and_then(|c| c.status()) {
            Some(CertificateStatus::Issued) => {
                spinner.finish_and_clear();
                return Ok(arn);
            }
            Some(CertificateStatus::PendingValidation) | None => {}
            Some(other) => {
                spinner.finish_and_clear();
                return Err(DeployError::step(
                    format!("certificate {arn}"),
                    format!(
                        "status {}: {:?}",
                        other.as_str(),
                        cert.and_then(|c| c.failure_reason())
                    ),
                ));
            }
        }
        if !upserted {
            let records: Vec<_> = cert
                .map(|c| c.domain_validation_options())
                .unwrap_or_default()
                .iter()
                .filter_map(|o| o.resource_record())
                .cloned()
                .collect();
            for r in &records {
                super::dns::upsert(
                    r53,
                    zone_id,
                    r.name(),
                    RrType::Cname,
                    300,
                    &[r.value().to_string()],
                    Duration::from_secs(180),
                )
                .await?;
            }
            upserted = !records.is_empty();
            if upserted {
                spinner.set_message(format!(
                    "certificate for {name}: validation records in place, waiting for ACM"
                ));
            }
        }
        if start.elapsed() > timeout {
            spinner.finish_and_clear();
            return Err(DeployError::Timeout {
                what: format!("ACM to issue the certificate for {name} ({arn})"),
                seconds: timeout.as_secs(),
            });
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// Import (or re-import under `existing`) a fresh self-signed certificate; returns its ARN.
pub(crate) async fn import_self_signed(
    acm: &aws_sdk_acm::Client,
    env: &str,
    region: &str,
    existing: Option<&str>,
) -> Result<String, DeployError> {
    let (cert, key) = self_signed(region)
        .map_err(|e| DeployError::step("generating the self-signed certificate", e.to_string()))?;
    let mut req = acm
        .import_certificate()
        .certificate(Blob::new(cert.into_bytes()))
        .private_key(Blob::new(key.into_bytes()));
    match existing {
        Some(arn) => req = req.certificate_arn(arn),
        None => {
            req = req.tags(
                Tag::builder()
                    .key(TAG)
                    .value(env)
                    .build()
                    .map_err(|e| DeployError::step("certificate tag", e.to_string()))?,
            );
        }
    }
    let out =
        req.send().await.map_err(DeployError::aws("importing the self-signed certificate"))?;
    Ok(out.certificate_arn().unwrap_or_default().to_string())
}

/// A self-signed certificate and key (PEM) valid for a year.
pub(crate) fn self_signed(region: &str) -> Result<(String, String), rcgen::Error> {
    use chrono::Datelike;
    let mut params = rcgen::CertificateParams::new(self_signed_names(region))?;
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, format!("*.{region}.elb.amazonaws.com"));
    params.distinguished_name.push(rcgen::DnType::OrganizationName, "orch self-signed");
    let (from, to) = (
        chrono::Utc::now() - chrono::Duration::days(1),
        chrono::Utc::now() + chrono::Duration::days(SELF_SIGNED_DAYS),
    );
    params.not_before = rcgen::date_time_ymd(from.year(), from.month() as u8, from.day() as u8);
    params.not_after = rcgen::date_time_ymd(to.year(), to.month() as u8, to.day() as u8);
    let key = rcgen::KeyPair::generate()?;
    let cert = params.self_signed(&key)?;
    Ok((cert.pem(), key.serialize_pem()))
}
