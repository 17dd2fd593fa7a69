//! Route 53: the environment's hosted zone (never two for one name), the NS delegation in a parent
//! zone of the same account (UPSERT, wait for INSYNC, read back), and UPSERTs of single records.
use aws_sdk_route53::types::{
    Change, ChangeAction, ChangeBatch, ChangeStatus, ResourceRecord, ResourceRecordSet, RrType,
};
use std::time::{Duration, Instant};

use super::error::DeployError;

/// The hosted zones carrying one name.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub(crate) enum ZoneState {
    Missing,
    One { id: String, name_servers: Vec<String> },
    Many(Vec<String>),
}

/// The parent zone, when it is in this account, and the NS record it holds for the child name.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub(crate) struct ParentZone {
    pub id: String,
    pub delegation: Option<Vec<String>>,
}

/// `Name.` → `name`: how names and name servers are compared.
pub(crate) fn norm(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

fn sorted(names: impl IntoIterator<Item = impl AsRef<str>>) -> Vec<String> {
    let mut v: Vec<String> = names.into_iter().map(|n| norm(n.as_ref())).collect();
    v.sort();
    v.dedup();
    v
}

/// The ids of the public zones named exactly `name`.
async fn zone_ids(r53: &aws_sdk_route53::Client, name: &str) -> Result<Vec<String>, DeployError> {
    let out = r53
        .list_hosted_zones_by_name()
        .dns_name(name)
        .max_items(100)
        .send()
        .await
        .map_err(DeployError::aws(format!("listing hosted zones for {name}")))?;
    Ok(out
        .hosted_zones()
        .iter()
        .filter(|z| norm(z.name()) == norm(name) && !z.config().is_some_and(|c| c.private_zone()))
        .map(|z| z.id().trim_start_matches("/hostedzone/").to_string())
        .collect())
}

pub(crate) async fn observe_zone(
    r53: &aws_sdk_route53::Client,
    name: &str,
) -> Result<ZoneState, DeployError> {
    let ids = zone_ids(r53, name).await?;
    match ids.as_slice() {
        [] => Ok(ZoneState::Missing),
        [id] => {
            let zone = r53
                .get_hosted_zone()
                .id(id)
                .send()
                .await
                .map_err(DeployError::aws(format!("reading hosted zone {id}")))?;
            let ns = zone.delegation_set().map(|d| sorted(d.name_servers())).unwrap_or_default();
            Ok(ZoneState::One { id: id.clone(), name_servers: ns })
        }
        _ => Ok(ZoneState::Many(ids)),
    }
}

pub(crate) async fn observe_parent(
    r53: &aws_sdk_route53::Client,
    parent: &str,
    child: &str,
) -> Result<Option<ParentZone>, DeployError> {
    match observe_zone(r53, parent).await? {
        ZoneState::Missing => Ok(None),
        ZoneState::Many(ids) => Err(two_zones(parent, &ids)),
        ZoneState::One { id, .. } => {
            let delegation = record_values(r53, &id, child, RrType::Ns).await?;
            Ok(Some(ParentZone { id, delegation }))
        }
    }
}

fn two_zones(name: &str, ids: &[String]) -> DeployError {
    DeployError::Refused(format!(
        "{} public hosted zones are named {name} ({}); orch will not guess which one is live — delete the extra ones",
        ids.len(),
        ids.join(", ")
    ))
}

/// The values of the `rtype` record named `name` in the zone, if there is one.
pub(crate) async fn record_values(
    r53: &aws_sdk_route53::Client,
    zone_id: &str,
    name: &str,
    rtype: RrType,
) -> Result<Option<Vec<String>>, DeployError> {
    let out = r53
        .list_resource_record_sets()
        .hosted_zone_id(zone_id)
        .start_record_name(name)
        .start_record_type(rtype.clone())
        .max_items(1)
        .send()
        .await
        .map_err(DeployError::aws(format!("reading the {} record {name}", rtype.as_str())))?;
    Ok(out
        .resource_record_sets()
        .iter()
        .find(|r| norm(r.name()) == norm(name) && r.r#type() == &rtype)
        .map(|r| sorted(r.resource_records().iter().map(|v| v.value()))))
}

/// Ensure exactly one public zone named `name`; returns its id and name servers, and whether it was created.
pub(crate) async fn ensure_zone(
    r53: &aws_sdk_route53::Client,
    env: &str,
    name: &str,
) -> Result<(String, Vec<String>, bool), DeployError> {
    match observe_zone(r53, name).await? {
        ZoneState::One { id, name_servers } => return Ok((id, name_servers, false)),
        ZoneState::Many(ids) => return Err(two_zones(name, &ids)),
        ZoneState::Missing => {}
    }
    let reference = format!("orch-{env}-{}", norm(name));
    let mut created = r53.create_hosted_zone().name(name).caller_reference(&reference).send().await;
    if let Err(e) = &created {
        if e.as_service_error().is_some_and(|s| s.is_hosted_zone_already_exists())
            && zone_ids(r53, name).await?.is_empty()
        {
            // The deterministic reference was used by a zone since deleted: take a fresh one.
            let fresh = format!("{reference}-{}", chrono::Utc::now().timestamp());
            created = r53.create_hosted_zone().name(name).caller_reference(fresh).send().await;
        }
    }
    if let Err(e) = created {
        if !e.as_service_error().is_some_and(|s| s.is_hosted_zone_already_exists()) {
            return Err(DeployError::aws(format!("creating hosted zone {name}"))(e));
        }
    }
    // Read back: the emulator (and a racing run) could leave two.
    match observe_zone(r53, name).await? {
        ZoneState::One { id, name_servers } => Ok((id, name_servers, true)),
        ZoneState::Many(ids) => Err(two_zones(name, &ids)),
        ZoneState::Missing => Err(DeployError::step(
            format!("creating hosted zone {name}"),
            "the zone does not show up after creation",
        )),
    }
}

/// UPSERT one record set and wait until Route 53 reports the change INSYNC.
pub(crate) async fn upsert(
    r53: &aws_sdk_route53::Client,
    zone_id: &str,
    name: &str,
    rtype: RrType,
    ttl: i64,
    values: &[String],
    timeout: Duration,
) -> Result<(), DeployError> {
    let what = format!("{} record {name}", rtype.as_str());
    let records = values
        .iter()
        .map(|v| ResourceRecord::builder().value(v).build())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| DeployError::step(&what, e.to_string()))?;
    let set = ResourceRecordSet::builder()
        .name(name)
        .r#type(rtype)
        .ttl(ttl)
        .set_resource_records(Some(records))
        .build()
        .map_err(|e| DeployError::step(&what, e.to_string()))?;
    let change = Change::builder()
        .action(ChangeAction::Upsert)
        .resource_record_set(set)
        .build()
        .map_err(|e| DeployError::step(&what, e.to_string()))?;
    let batch = ChangeBatch::builder()
        .changes(change)
        .comment("orch up")
        .build()
        .map_err(|e| DeployError::step(&what, e.to_string()))?;
    let out = r53
        .change_resource_record_sets()
        .hosted_zone_id(zone_id)
        .change_batch(batch)
        .send()
        .await
        .map_err(DeployError::aws(format!("upserting the {what}")))?;
    let mut status = out.change_info().map(|c| (c.id().to_string(), c.status().clone()));
    let start = Instant::now();
    while let Some((id, s)) = &status {
        if s == &ChangeStatus::Insync {
            break;
        }
        if start.elapsed() > timeout {
            return Err(DeployError::Timeout {
                what: format!("Route 53 to apply the {what}"),
                seconds: timeout.as_secs(),
            });
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
        let got = r53
            .get_change()
            .id(id)
            .send()
            .await
            .map_err(DeployError::aws("following a Route 53 change"))?;
        status = got.change_info().map(|c| (c.id().to_string(), c.status().clone()));
    }
    Ok(())
}

/// Delegate `child` from the parent zone to `name_servers`, then read the record back and compare.
pub(crate) async fn delegate(
    r53: &aws_sdk_route53::Client,
    parent_id: &str,
    child: &str,
    name_servers: &[String],
) -> Result<(), DeployError> {
    let values: Vec<String> = name_servers.iter().map(|n| format!("{}.", norm(n))).collect();
    upsert(r53, parent_id, child, RrType::Ns, 300, &values, Duration::from_secs(180)).await?;
    let now = record_values(r53, parent_id, child, RrType::Ns).await?;
    if now.as_deref() != Some(&sorted(name_servers)[..]) {
        return Err(DeployError::step(
            format!("delegating {child}"),
            format!("the parent zone holds {now:?} after the UPSERT, expected {name_servers:?}"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn names_compare_without_trailing_dot_or_case() {
        assert_eq!(super::norm("Dev.Example.COM."), "dev.example.com");
        assert_eq!(super::sorted(["b.", "a", "a."]), ["a", "b"]);
    }
}
