//! The data the templates see: the stack's values, reshaped for templating (one entry per zone with its
//! subnets and NAT choice, production-only switches), plus the 404 page and pinned versions.
use serde_json::{json, Value};

use crate::config::Stack;

/// The TLS policy of the HTTPS listener: TLS 1.3 and 1.2 only.
pub const TLS_POLICY: &str = "ELBSecurityPolicy-TLS13-1-2-2021-06";
/// The classic `aws` provider version, used only by the alias record.
pub const AWS_CLASSIC_VERSION: &str = "7.48.0";
/// The app's keep-alive idle timeout on AWS (`KEEP_ALIVE_TIMEOUT_MS` in the user data): above the ALB's
/// idle timeout (`idle_timeout.timeout_seconds`, 60 s in pulumi/partials/loadbalancer.hbs), so the ALB
/// always closes an idle connection first; the `app-idle-timeout` check rule proves the order.
pub(crate) const APP_KEEP_ALIVE_MS: u64 = 75_000;
/// The database role the app logs in as on AWS (never the RDS master user `orch`).
const APP_DB_USER: &str = "orch_app";
/// An ALB fixed response body holds at most 1024 bytes.
pub const PAGE_404_MAX: usize = 1024;

/// The template data for `stack`. Production (a `protected` stack) gets deletion protection and longer
/// log retention; the `standard` profile a NAT gateway per zone, `economy` one shared (docs/programs.md).
pub fn context(stack: &Stack, page404: &str) -> Value {
    let production = stack.protected;
    let nat_per_zone = stack.profile() == crate::config::Profile::Standard;
    let zones: Vec<Value> = stack
        .zones
        .iter()
        .enumerate()
        .map(|(i, name)| {
            let suffix = zone_suffix(i);
            json!({
                "name": name,
                "index": i,
                "suffix": suffix,
                "publicCidr": format!("10.0.{}.0/24", i),
                "privateCidr": format!("10.0.{}.0/24", 10 + i),
                "hasNat": nat_per_zone || i == 0,
                "natSuffix": if nat_per_zone { suffix } else { zone_suffix(0) },
            })
        })
        .collect();
    let aws_native = stack
        .pulumi
        .as_ref()
        .map(|p| p.aws_native_version.clone())
        .unwrap_or_else(crate::config::default_aws_native);
    let db = &stack.database;
    json!({
        "env": stack.name,
        "project": format!("orch-{}", stack.name),
        "region": stack.region,
        "production": production,
        "zones": zones,
        "domain": stack.domain.as_ref().map(|d| json!({"name": d.name, "parentZone": d.parent_zone})),
        "network": {"vpcCidr": "10.0.0.0/16"},
        "awsNativeVersion": aws_native,
        "awsClassicVersion": AWS_CLASSIC_VERSION,
        "tlsPolicy": TLS_POLICY,
        "page404": page404,
        "logRetentionDays": if production { 90 } else { 30 },
        "app": {"port": stack.instances.port, "keepAliveTimeoutMs": APP_KEEP_ALIVE_MS},
        "instances": {
            "type": stack.instances.instance_type,
            "min": stack.instances.min,
            "desired": stack.instances.desired,
            "max": stack.instances.max,
        },
        "scaling": stack.scaling.as_ref().map(|s| json!({
            "target": s.target_requests_per_minute,
            "warmup": s.scale_out_cooldown_seconds,
        })),
        "health": {
            "path": stack.health_check.path,
            "interval": stack.health_check.interval_seconds,
            "timeout": stack.health_check.timeout_seconds,
            "healthy": stack.health_check.healthy_threshold,
            "unhealthy": stack.health_check.unhealthy_threshold,
            "grace": stack.health_check.grace_period_seconds,
            "deregistrationDelay": 30,
        },
        "database": {
            "name": "orch",
            "appUser": APP_DB_USER,
            "engineVersion": "17",
            "instanceClass": db.instance_class.clone().unwrap_or_else(|| "db.t3.micro".into()),
            "storageGb": db.storage_gb.unwrap_or(20),
            "multiAz": db.multi_az,
            "backupDays": db.backup_days,
        },
        "slo": stack.slo.as_ref().map(|o| json!({
            // Rounded to what the stack says (99.9 → 0.1, not 0.0999…).
            "errorPercent": ((100.0 - o.availability) * 1e4).round() / 1e4,
            "latencyMs": o.latency_p99_ms,
            "latencySeconds": o.latency_p99_ms as f64 / 1000.0,
        })),
        "image": {"repository": stack.image.repository},
        "tags": stack.tags,
    })
}

/// `A`, `B`, ... for resource names (`publicSubnetA`).
fn zone_suffix(i: usize) -> String {
    char::from(b'A' + (i % 26) as u8).to_string()
}
