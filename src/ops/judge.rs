//! Pure judgements turning observations into report rows; shared by `status` and `drift`, and
//! unit-tested without any cloud. Zone balance is judged with the supervisor's own placement rules.
use aws_sdk_autoscaling::types::LifecycleState;
use aws_sdk_elasticloadbalancingv2::types::TargetHealthStateEnum;
use chrono::{DateTime, Utc};
use serde_json::json;

use super::observe::{Certificate, Delegation, Group, Target};
use super::report::{Level, Row};
use crate::placement::{self, Observed};

/// A certificate expiring sooner than this many days is reported.
pub(crate) const CERT_WARN_DAYS: i64 = 30;

/// Merge the target group's view into the group's instances.
pub(crate) fn merge_targets(group: &mut Group, targets: &[Target]) {
    for m in &mut group.instances {
        m.target = targets.iter().find(|t| t.id == m.id).map(|t| t.state.clone());
    }
}

/// Healthy means: in service, healthy for the ASG, and healthy for the load balancer when known.
pub(crate) fn observed(group: &Group) -> Vec<Observed> {
    group
        .instances
        .iter()
        .map(|m| Observed {
            id: m.id.clone(),
            zone: m.zone.clone(),
            healthy: m.lifecycle == LifecycleState::InService
                && m.health.eq_ignore_ascii_case("healthy")
                && m.target.as_ref().is_none_or(|t| *t == TargetHealthStateEnum::Healthy),
            in_grace: false,
        })
        .collect()
}

/// The `instances` row: one line per instance with zone, lifecycle, ASG health and target health.
pub(crate) fn instances(group: &Group) -> Row {
    let healthy = observed(group).iter().filter(|o| o.healthy).count();
    let lines = group
        .instances
        .iter()
        .map(|m| {
            format!(
                "{} {} {} asg:{} lb:{}",
                m.id,
                m.zone,
                m.lifecycle.as_str(),
                m.health,
                m.target.as_ref().map_or("?", |t| t.as_str())
            )
        })
        .collect();
    let summary = format!(
        "{healthy}/{} healthy in `{}` (desired {}, min {}, max {})",
        group.instances.len(),
        group.name,
        group.desired,
        group.min,
        group.max
    );
    let level = if (healthy as i32) < group.desired { Level::Bad } else { Level::Ok };
    Row::new("instances", level, summary).lines(lines).data(group)
}

/// The `zones` row: every zone of the stack must hold a healthy instance (the placement rules);
/// an uneven spread with every zone served is a note (the group rebalances by itself).
pub(crate) fn zones(zones: &[String], group: &Group) -> Row {
    let obs = observed(group);
    let health = placement::zone_health(zones, &obs);
    let lines = health
        .iter()
        .map(|z| format!("{}: {} instance(s), {} healthy", z.zone, z.instances, z.healthy))
        .collect();
    let empty: Vec<&str> =
        health.iter().filter(|z| !z.has_healthy()).map(|z| z.zone.as_str()).collect();
    let desired = u32::try_from(group.desired).unwrap_or(0);
    let row = if !empty.is_empty() {
        Row::bad("zones", format!("no healthy instance in {}", empty.join(", ")))
    } else if !placement::is_balanced(desired, zones, &obs) {
        Row::new(
            "zones",
            Level::Note,
            "every zone has a healthy instance; spread is uneven (the group rebalances)",
        )
    } else {
        Row::ok("zones", format!("balanced over {}", zones.join(", ")))
    };
    row.lines(lines).data(health)
}

/// The `targets` row on its own (target health per instance).
pub(crate) fn targets(targets: &[Target]) -> Row {
    let healthy = targets.iter().filter(|t| t.state == TargetHealthStateEnum::Healthy).count();
    let lines = targets
        .iter()
        .map(|t| {
            format!(
                "{} {}{}",
                t.id,
                t.state,
                t.reason.as_deref().map(|r| format!(" ({r})")).unwrap_or_default()
            )
        })
        .collect();
    let level = if healthy == 0 { Level::Bad } else { Level::Ok };
    Row::new("targets", level, format!("{healthy}/{} targets healthy", targets.len()))
        .lines(lines)
        .data(targets)
}

/// The `certificate` row: issued, not expired, and not expiring within [`CERT_WARN_DAYS`].
pub(crate) fn certificate(cert: &Certificate, now: DateTime<Utc>) -> Row {
    let days = cert.not_after.map(|t| (t - now).num_days());
    let expiry = match (cert.not_after, days) {
        (Some(t), Some(d)) => format!("expires {} ({d} days)", t.format("%Y-%m-%d")),
        _ => "no expiry known".to_string(),
    };
    let summary = format!(
        "{} {} for {}, {expiry}",
        cert.status,
        short_arn(&cert.arn),
        cert.domain.as_deref().unwrap_or("?")
    );
    let level = match days {
        _ if cert.status != "ISSUED" => Level::Bad,
        Some(d) if d < CERT_WARN_DAYS => Level::Bad,
        _ => Level::Ok,
    };
    Row::new("certificate", level, summary).data(json!({ "certificate": cert, "days_left": days }))
}

/// The `certificate-wiring` row: the ARN the stack was given against what the HTTPS listener serves.
pub(crate) fn wiring(configured: Option<&str>, serving: &[String]) -> Row {
    let data = json!({ "configured": configured, "serving": serving });
    match configured {
        None => Row::skipped("cert-wiring", "no certificate ARN recorded for this environment"),
        Some(_) if serving.is_empty() => {
            Row::bad("cert-wiring", "the load balancer has no HTTPS listener certificate")
        }
        Some(arn) if serving.iter().any(|s| s == arn) => {
            Row::ok("cert-wiring", format!("the HTTPS listener serves {}", short_arn(arn)))
        }
        Some(arn) => Row::bad(
            "cert-wiring",
            format!(
                "stack has {}, the listener serves {}",
                short_arn(arn),
                serving.iter().map(|s| short_arn(s)).collect::<Vec<_>>().join(", ")
            ),
        ),
    }
    .data(data)
}

/// The `delegation` row: the parent zone's NS record for the env name equals the env zone's servers.
pub(crate) fn delegation(d: &Delegation) -> Row {
    let row = match (&d.zone_ns, d.parent_in_account, &d.parent_ns) {
        (None, _, _) => Row::bad("delegation", format!("no public hosted zone for {}", d.zone)),
        (Some(_), false, _) => Row::skipped("delegation", format!("{} is not hosted in this account: set the NS at the registrar (orch up prints them)", d.parent)),
        (Some(_), true, None) => Row::bad("delegation", format!("{} has no NS record for {}", d.parent, d.zone)),
        (Some(zone), true, Some(parent)) if zone == parent => Row::ok("delegation", format!("{} delegates {} to its {} name servers", d.parent, d.zone, zone.len())),
        (Some(zone), true, Some(parent)) => {
            let missing: Vec<&str> = zone.iter().filter(|n| !parent.contains(n)).map(String::as_str).collect();
            let extra: Vec<&str> = parent.iter().filter(|n| !zone.contains(n)).map(String::as_str).collect();
            Row::bad("delegation", format!("{} delegates {} to other name servers", d.parent, d.zone))
                .lines(vec![format!("missing in parent: {}", missing.join(" ")), format!("stale in parent: {}", extra.join(" "))])
        }
    };
    row.data(d)
}

/// The `image` row for status: the deployed digest against the latest local build.
pub(crate) fn image(deployed: Option<&str>, built: Option<&str>) -> Row {
    let data = json!({ "deployed": deployed, "built": built });
    match (deployed, built) {
        (None, _) => Row::bad("image", "the deployment record names no image digest"),
        (Some(d), None) => {
            Row::ok("image", format!("{} deployed (no local build to compare)", short_digest(d)))
        }
        (Some(d), Some(b)) if d == b => {
            Row::ok("image", format!("{} deployed = latest build", short_digest(d)))
        }
        (Some(d), Some(b)) => Row::new(
            "image",
            Level::Note,
            format!(
                "{} deployed; latest build {} is not deployed (orch up)",
                short_digest(d),
                short_digest(b)
            ),
        ),
    }
    .data(data)
}

pub(crate) fn short_digest(d: &str) -> String {
    match d.split_once(':') {
        Some((alg, hex)) => format!("{alg}:{}", &hex[..hex.len().min(12)]),
        None => d.chars().take(19).collect(),
    }
}

pub(crate) fn short_arn(arn: &str) -> String {
    arn.rsplit_once('/').map(|(_, id)| format!("…/{id}")).unwrap_or_else(|| arn.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::observe::Member;

    fn member(id: &str, zone: &str, health: &str) -> Member {
        Member {
            id: id.into(),
            zone: zone.into(),
            lifecycle: LifecycleState::InService,
            health: health.into(),
            launch: None,
            target: None,
        }
    }
    fn group(members: Vec<Member>) -> Group {
        Group { name: "g".into(), min: 2, desired: 2, max: 4, launch: None, instances: members }
    }
    fn zs() -> Vec<String> {
        vec!["a".into(), "b".into()]
    }

    #[test]
    fn zones_ok_when_each_zone_has_a_healthy_instance() {
        let g = group(vec![member("i-1", "a", "Healthy"), member("i-2", "b", "Healthy")]);
        assert_eq!(zones(&zs(), &g).level, Level::Ok);
        assert_eq!(instances(&g).level, Level::Ok);
    }

    #[test]
    fn zone_without_healthy_instance_is_bad_even_at_full_capacity() {
        let g = group(vec![
            member("i-1", "a", "Healthy"),
            member("i-2", "a", "Healthy"),
            member("i-3", "b", "Unhealthy"),
        ]);
        let row = zones(&zs(), &g);
        assert_eq!((row.level, row.summary.as_str()), (Level::Bad, "no healthy instance in b"));
    }

    #[test]
    fn an_unhealthy_target_makes_the_instance_unhealthy() {
        let mut g = group(vec![member("i-1", "a", "Healthy"), member("i-2", "b", "Healthy")]);
        merge_targets(
            &mut g,
            &[Target { id: "i-2".into(), state: TargetHealthStateEnum::Unhealthy, reason: None }],
        );
        assert_eq!(zones(&zs(), &g).level, Level::Bad);
        assert_eq!(instances(&g).level, Level::Bad);
    }

    #[test]
    fn uneven_but_served_zones_are_a_note() {
        let mut g = group(vec![
            member("i-1", "a", "Healthy"),
            member("i-2", "a", "Healthy"),
            member("i-3", "b", "Healthy"),
        ]);
        g.desired = 2;
        assert_eq!(zones(&zs(), &g).level, Level::Note);
    }

    #[test]
    fn certificate_expiring_within_30_days_is_bad() {
        let now = Utc::now();
        let cert = |days: i64, status: &str| Certificate {
            arn: "arn:aws:acm:r:1:certificate/x".into(),
            domain: Some("d".into()),
            status: status.into(),
            not_after: Some(now + chrono::Duration::days(days)),
        };
        assert_eq!(certificate(&cert(90, "ISSUED"), now).level, Level::Ok);
        assert_eq!(certificate(&cert(10, "ISSUED"), now).level, Level::Bad);
        assert_eq!(certificate(&cert(90, "PENDING_VALIDATION"), now).level, Level::Bad);
    }

    #[test]
    fn delegation_compares_name_server_sets() {
        let ns = |v: &[&str]| Some(v.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        let mut d = Delegation {
            zone: "dev.x".into(),
            zone_ns: ns(&["a", "b"]),
            parent: "x".into(),
            parent_in_account: true,
            parent_ns: ns(&["a", "b"]),
        };
        assert_eq!(delegation(&d).level, Level::Ok);
        d.parent_ns = ns(&["a", "c"]);
        let row = delegation(&d);
        assert_eq!(
            (row.level, row.lines.clone()),
            (
                Level::Bad,
                vec!["missing in parent: b".to_string(), "stale in parent: c".to_string()]
            )
        );
        d.parent_ns = None;
        assert_eq!(delegation(&d).level, Level::Bad);
        d.parent_in_account = false;
        assert_eq!(delegation(&d).level, Level::Skipped);
    }

    #[test]
    fn wiring_and_image_rows() {
        assert_eq!(wiring(Some("arn/1"), &["arn/1".into()]).level, Level::Ok);
        assert_eq!(wiring(Some("arn/1"), &["arn/2".into()]).level, Level::Bad);
        assert_eq!(wiring(None, &[]).level, Level::Skipped);
        assert_eq!(image(Some("sha256:a"), Some("sha256:a")).level, Level::Ok);
        assert_eq!(image(Some("sha256:a"), Some("sha256:b")).level, Level::Note);
        assert_eq!(short_digest("sha256:0123456789abcdef"), "sha256:0123456789ab");
    }
}
