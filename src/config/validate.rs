//! Semantic rules for a parsed stack, all reported at once: capacity bounds, zones, names,
//! domain syntax and health-check ranges (the ranges AWS accepts on the aws target).
use super::{Engine, Problem, Stack, Target};

/// Every problem found in `stack`; empty when it is valid.
pub(super) fn validate(stack: &Stack) -> Vec<Problem> {
    let mut out = Problems::default();
    capacity(stack, &mut out);
    scaling(stack, &mut out);
    zones(stack, &mut out);
    names(stack, &mut out);
    domain(stack, &mut out);
    health(stack, &mut out);
    backend(stack, &mut out);
    super::inputs::check(stack, &mut out);
    cost(stack, &mut out);
    slo(stack, &mut out);
    for (key, message) in super::rollout::problems(&stack.rollout, stack.slo.is_some()) {
        out.add(key, message);
    }
    out.0
}

#[derive(Default)]
pub(super) struct Problems(Vec<Problem>);

impl Problems {
    pub(super) fn add(&mut self, key: &str, message: impl Into<String>) {
        self.0.push(Problem { key: key.into(), line: None, message: message.into() });
    }
    pub(super) fn check(&mut self, ok: bool, key: &str, message: impl Into<String>) {
        if !ok {
            self.add(key, message);
        }
    }
}

fn scaling(s: &Stack, out: &mut Problems) {
    // Whether a group whose max exceeds its min has a policy is `orch check`'s rule (on the program).
    let Some(sc) = &s.scaling else { return };
    out.check(
        sc.target_requests_per_minute >= 1,
        "scaling.target_requests_per_minute",
        "must be at least 1",
    );
    out.check(
        (1..=3600).contains(&sc.scale_out_cooldown_seconds),
        "scaling.scale_out_cooldown_seconds",
        "must be 1–3600",
    );
    out.check(
        sc.scale_in_cooldown_seconds >= sc.scale_out_cooldown_seconds
            && sc.scale_in_cooldown_seconds <= 3600,
        "scaling.scale_in_cooldown_seconds",
        format!(
            "must be from scale_out_cooldown_seconds ({}) to 3600: scale in more slowly than out",
            sc.scale_out_cooldown_seconds
        ),
    );
    out.check((2..=600).contains(&sc.window_seconds), "scaling.window_seconds", "must be 2–600");
}

fn capacity(s: &Stack, out: &mut Problems) {
    let i = &s.instances;
    out.check(
        i.min <= i.desired,
        "instances.min",
        format!("min ({}) must be ≤ desired ({})", i.min, i.desired),
    );
    out.check(
        i.desired <= i.max,
        "instances.desired",
        format!("desired ({}) must be ≤ max ({})", i.desired, i.max),
    );
    out.check(i.max <= 20, "instances.max", format!("max ({}) is above the limit of 20", i.max));
    if s.target == Target::Aws {
        out.check(
            i.min >= 2,
            "instances.min",
            format!("min ({}) must be ≥ 2 on aws: one instance per zone at least", i.min),
        );
        if let Some(ami) = &i.ami {
            out.check(
                is_ami_id(ami),
                "instances.ami",
                format!("`{ami}` is not an AMI id (ami- and 8 or 17 hex digits)"),
            );
        }
        out.check(
            i.ami_parameter.starts_with('/'),
            "instances.ami_parameter",
            format!("`{}` is not an SSM parameter name (it starts with /)", i.ami_parameter),
        );
    }
    for name in i.env.keys() {
        let shaped = name.starts_with(|c: char| c.is_ascii_uppercase() || c == '_')
            && name.chars().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_');
        out.check(
            shaped && !RESERVED_ENV.contains(&name.as_str()),
            &format!("instances.env.{name}"),
            format!(
                "`{name}` must be an upper-case variable name and not one orch sets itself ({})",
                RESERVED_ENV.join(", ")
            ),
        );
    }
    out.check(
        i.port >= 1024,
        "instances.port",
        format!("port {} must be ≥ 1024 (the app runs as non-root)", i.port),
    );
}

/// Variables orch gives every instance itself.
const RESERVED_ENV: [&str; 6] =
    ["PORT", "BIND", "INSTANCE_ID", "AVAILABILITY_ZONE", "IMDS_ENDPOINT", "DATABASE_URL"];

/// `ami-` and 8 or 17 lowercase hex digits (EC2 image ids).
pub fn is_ami_id(id: &str) -> bool {
    id.strip_prefix("ami-").is_some_and(|h| {
        matches!(h.len(), 8 | 17)
            && h.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    })
}

fn zones(s: &Stack, out: &mut Problems) {
    if s.zones.len() != 2 {
        out.add("zones", format!("exactly two zones are required, found {}", s.zones.len()));
    }
    if s.zones.len() == 2 && s.zones[0] == s.zones[1] {
        out.add("zones[1]", format!("zones must be distinct; `{}` is listed twice", s.zones[1]));
    }
    for (n, zone) in s.zones.iter().enumerate() {
        let key = format!("zones[{n}]");
        match s.target {
            Target::Aws => {
                let suffix = zone.strip_prefix(s.region.as_str());
                let ok = suffix
                    .is_some_and(|x| x.len() == 1 && x.chars().all(|c| c.is_ascii_lowercase()));
                out.check(
                    ok,
                    &key,
                    format!(
                        "`{zone}` is not a zone of region `{}` (expected e.g. {}a)",
                        s.region, s.region
                    ),
                );
            }
            Target::Local => out.check(
                zone.starts_with("local-") && zone.len() > 6,
                &key,
                format!("`{zone}` is not a local zone (expected e.g. local-a)"),
            ),
        }
    }
    match s.target {
        Target::Aws => out.check(
            is_region(&s.region),
            "region",
            format!("`{}` is not an AWS region like eu-west-1", s.region),
        ),
        Target::Local => {
            out.check(s.region == "local", "region", "the local target's region must be `local`");
        }
    }
    if s.target == Target::Local {
        let local = s.local_settings();
        out.check(
            local.loopback.len() == s.zones.len(),
            "local.loopback",
            "give one loopback range per zone",
        );
        for (n, range) in local.loopback.iter().enumerate() {
            out.check(
                super::loopback_net(range).is_some(),
                &format!("local.loopback[{n}]"),
                format!("`{range}` is not a 127.x.y.0/24 range"),
            );
        }
        out.check(
            local.http_port != local.https_port,
            "local.https_port",
            "http and https ports must differ",
        );
    }
}

fn is_region(r: &str) -> bool {
    let parts: Vec<&str> = r.split('-').collect();
    parts.len() >= 3
        && parts.iter().all(|p| {
            !p.is_empty() && p.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        })
        && parts.last().is_some_and(|p| p.chars().all(|c| c.is_ascii_digit()))
}

fn names(s: &Stack, out: &mut Problems) {
    let repo = &s.image.repository;
    let repo_ok = (2..=256).contains(&repo.len())
        && repo.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "-_./".contains(c))
        && repo.starts_with(|c: char| c.is_ascii_alphanumeric());
    out.check(
        repo_ok,
        "image.repository",
        format!("`{repo}` is not a valid repository name (lowercase, digits, - _ . /)"),
    );
    for (k, v) in &s.tags {
        out.check(
            !k.is_empty() && k.len() <= 128 && !k.starts_with("aws:"),
            &format!("tags.{k}"),
            "tag keys are 1–128 characters and may not start with aws:",
        );
        out.check(v.len() <= 256, &format!("tags.{k}"), "tag values are at most 256 characters");
    }
    let db = &s.database;
    if s.target == Target::Aws {
        out.check(
            db.engine == Engine::Postgres,
            "database.engine",
            "aws environments use postgres (RDS)",
        );
        out.check(
            db.instance_class.is_some(),
            "database.instance_class",
            "an RDS instance class like db.t3.micro is required on aws",
        );
        out.check(
            db.storage_gb.is_some_and(|g| (20..=65536).contains(&g)),
            "database.storage_gb",
            "storage_gb between 20 and 65536 is required on aws",
        );
        out.check(db.backup_days <= 35, "database.backup_days", "backup_days must be 0–35");
    }
    if let Some(var) = &db.url_env {
        let ok = !var.is_empty()
            && var.chars().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_');
        out.check(ok, "database.url_env", format!("`{var}` is not an environment variable name"));
    }
}

fn domain(s: &Stack, out: &mut Problems) {
    let Some(d) = &s.domain else { return };
    out.check(is_dns_name(&d.name), "domain.name", format!("`{}` is not a valid DNS name", d.name));
    out.check(
        is_dns_name(&d.parent_zone),
        "domain.parent_zone",
        format!("`{}` is not a valid DNS name", d.parent_zone),
    );
    let inside = d
        .name
        .trim_end_matches('.')
        .ends_with(&format!(".{}", d.parent_zone.trim_end_matches('.')));
    out.check(
        inside,
        "domain.name",
        format!("`{}` is not inside the parent zone `{}`", d.name, d.parent_zone),
    );
}

/// RFC 1123 host name: labels of 1–63 letters, digits and inner hyphens; at most 253 characters; two labels at least.
pub fn is_dns_name(name: &str) -> bool {
    let name = name.strip_suffix('.').unwrap_or(name);
    let labels: Vec<&str> = name.split('.').collect();
    name.len() <= 253
        && labels.len() >= 2
        && labels.iter().all(|l| {
            (1..=63).contains(&l.len())
                && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        })
}

fn health(s: &Stack, out: &mut Problems) {
    let h = &s.health_check;
    let (lo, hi) = if s.target == Target::Aws { (5, 300) } else { (1, 300) };
    out.check(
        (lo..=hi).contains(&h.interval_seconds),
        "health_check.interval_seconds",
        format!("interval {} s is outside {lo}–{hi} s", h.interval_seconds),
    );
    out.check(
        (2..=10).contains(&h.healthy_threshold),
        "health_check.healthy_threshold",
        "healthy_threshold must be 2–10",
    );
    out.check(
        (2..=10).contains(&h.unhealthy_threshold),
        "health_check.unhealthy_threshold",
        "unhealthy_threshold must be 2–10",
    );
    let tmax = if s.target == Target::Aws { 120 } else { 60 };
    out.check(
        (1..=tmax).contains(&h.timeout_seconds),
        "health_check.timeout_seconds",
        format!("timeout_seconds must be 1–{tmax}"),
    );
    if s.target == Target::Aws {
        out.check(
            h.timeout_seconds >= 2 && h.timeout_seconds < h.interval_seconds,
            "health_check.timeout_seconds",
            "on aws the timeout must be 2 s or more and shorter than the interval",
        );
    }
    out.check(
        h.grace_period_seconds <= 7200,
        "health_check.grace_period_seconds",
        "grace_period_seconds must be 0–7200",
    );
}

fn cost(s: &Stack, out: &mut Problems) {
    let aws_only = |key: &str| format!("`{key}` applies to aws environments only");
    if s.target == Target::Local {
        out.check(s.cost.is_none(), "cost", aws_only("cost"));
        out.check(s.profile_choice.is_none(), "profile", aws_only("profile"));
    }
    let Some(c) = &s.cost else { return };
    for (key, value) in
        [("gb_out_per_month", c.gb_out_per_month), ("log_gb_per_month", c.log_gb_per_month)]
    {
        out.check(
            value.is_finite() && (0.0..=1e7).contains(&value),
            &format!("cost.{key}"),
            format!("{value} is not a number of GB from 0 to 10000000"),
        );
    }
    out.check(
        c.requests_per_month <= 1_000_000_000_000,
        "cost.requests_per_month",
        "at most 10^12 requests a month",
    );
    if let Some(b) = c.budget_monthly_usd {
        out.check(
            b.is_finite() && b > 0.0,
            "cost.budget_monthly_usd",
            format!("{b} is not a positive amount of US dollars"),
        );
    }
}

fn slo(s: &Stack, out: &mut Problems) {
    let Some(o) = &s.slo else { return };
    out.check(
        o.availability.is_finite() && o.availability > 0.0 && o.availability < 100.0,
        "slo.availability",
        format!("{} is not a percentage above 0 and below 100 (e.g. 99.9)", o.availability),
    );
    out.check((1..=60_000).contains(&o.latency_p99_ms), "slo.latency_p99_ms", "must be 1–60000 ms");
    out.check((1..=90).contains(&o.window_days), "slo.window_days", "must be 1–90 days");
}

fn backend(s: &Stack, out: &mut Problems) {
    // A malformed URL is refused when the file is parsed (`Backend`); here only its absence.
    out.check(
        s.pulumi.is_some() || s.target != Target::Aws,
        "pulumi",
        "aws environments need `pulumi.backend` (s3://bucket or file://path)",
    );
}

/// S3 bucket naming rules: 3–63 lowercase letters, digits, dots and hyphens, starting and ending alphanumeric.
pub(super) fn is_bucket(b: &str) -> bool {
    let b = b.split('/').next().unwrap_or("");
    (3..=63).contains(&b.len())
        && b.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.')
        && b.starts_with(|c: char| c.is_ascii_alphanumeric())
        && b.ends_with(|c: char| c.is_ascii_alphanumeric())
}
