//! The checks `status` and `drift` both run, each observing one concern and judging it into rows:
//! the certificate in use and its wiring into the listener, and the NS delegation in the parent zone.
use crate::outputs::Output;
use chrono::Utc;
use std::path::Path;

use super::cloud::Clients;
use super::report::Row;
use super::{judge, observe, record};
use crate::config::Stack;
use crate::state::record::Record;

/// `(certificate, cert-wiring)`: the certificate in use (what the listener serves, else what the
/// stack was given: the record's ARN, else the rendered stack config's) and whether the listener
/// serves the one the stack was given.
pub(crate) async fn certificate(
    clients: &Clients,
    rec: &Record,
    build_dir: &Path,
    env: &str,
) -> (Row, Row) {
    let configured = rec
        .certificate()
        .map(str::to_string)
        .or_else(|| record::configured_certificate(build_dir, env));
    let serving = match rec.output(Output::TargetGroupArn) {
        Some(a) => observe::listener_certificates(clients, a).await,
        None => Err("no targetGroupArn output recorded".to_string()),
    };
    let (wiring, in_use) = match &serving {
        Ok(arns) => {
            (judge::wiring(configured.as_deref(), arns), arns.first().cloned().or(configured))
        }
        Err(e) => (Row::error("cert-wiring", e.clone()), configured),
    };
    let cert = match in_use {
        None => Row::skipped("certificate", "no certificate ARN known"),
        Some(arn) => match observe::certificate(clients, &arn).await {
            Ok(c) => judge::certificate(&c, Utc::now()),
            Err(e) => Row::error("certificate", e),
        },
    };
    (cert, wiring)
}

/// The `delegation` row; `no_domain` is the skip reason for a stack without a domain.
pub(crate) async fn delegation(clients: &Clients, stack: &Stack, no_domain: &str) -> Row {
    match &stack.domain {
        None => Row::skipped("delegation", no_domain.to_string()),
        Some(d) => match observe::delegation(clients, &d.name, &d.parent_zone).await {
            Ok(found) => judge::delegation(&found),
            Err(e) => Row::error("delegation", e),
        },
    }
}
