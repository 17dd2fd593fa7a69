//! Instance identity: who am I, and in which availability zone?
//!
//! Per field: explicit override (`INSTANCE_ID`, `AVAILABILITY_ZONE`) → IMDSv2. IMDS is asked in
//! rounds bounded by a short deadline (≈1 s), retried with backoff (250 ms doubling to 5 s) for as
//! long as it takes: until it answers the app is not ready (`/` and `/readyz` answer 503), because
//! serving an invented id would defeat the service's purpose. Each round uses a fresh client, so a
//! token the service stopped accepting costs one round.
//!
//! Only an explicit local run (`LOCAL_IDENTITY=1`) skips IMDS: fields without an override get `i-`
//! followed by 17 hex digits derived from the host name (stable across restarts) and the zone
//! `local`. Where the identity came from is recorded in [`Source`].

use std::fmt;
use std::time::Duration;

use serde::Serialize;

/// Where the identity came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    /// Both fields were given explicitly.
    Override,
    /// At least one field came from the metadata service.
    Imds,
    /// An explicit local run (`LOCAL_IDENTITY`): derived from the host name.
    Local,
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Source::Override => "override",
            Source::Imds => "imds",
            Source::Local => "local",
        })
    }
}

/// The resolved identity of this instance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Identity {
    pub instance_id: String,
    pub availability_zone: String,
    pub source: Source,
}

impl Identity {
    /// An explicit identity (tests, overrides).
    pub fn fixed(instance_id: impl Into<String>, availability_zone: impl Into<String>) -> Self {
        Self {
            instance_id: instance_id.into(),
            availability_zone: availability_zone.into(),
            source: Source::Override,
        }
    }
}

/// Inputs to identity resolution.
#[derive(Debug, Clone)]
pub struct IdentityOptions {
    pub instance_id: Option<String>,
    pub availability_zone: Option<String>,
    /// IMDS base URL (`http://169.254.169.254` on EC2).
    pub imds_endpoint: String,
    /// An explicit local run: never ask IMDS.
    pub local: bool,
    /// Upper bound for one IMDS round (both fields).
    pub attempt_deadline: Duration,
}

/// The identity known without asking IMDS: both overrides, or an explicit local run.
pub fn known(opts: &IdentityOptions) -> Option<Identity> {
    if let (Some(id), Some(az)) = (&opts.instance_id, &opts.availability_zone) {
        return Some(Identity::fixed(id, az));
    }
    opts.local.then(|| Identity {
        instance_id: opts.instance_id.clone().unwrap_or_else(|| fallback_instance_id(&hostname())),
        availability_zone: opts.availability_zone.clone().unwrap_or_else(|| "local".into()),
        source: Source::Local,
    })
}

/// One IMDS round, bounded by `opts.attempt_deadline`.
pub async fn try_imds(opts: &IdentityOptions) -> Result<Identity, String> {
    let client = crate::imds::client(&opts.imds_endpoint)?;
    let lookup = async {
        let instance_id = match &opts.instance_id {
            Some(v) => v.clone(),
            None => crate::imds::instance_id(&client).await?,
        };
        let availability_zone = match &opts.availability_zone {
            Some(v) => v.clone(),
            None => crate::imds::availability_zone(&client).await?,
        };
        Ok::<_, crate::imds::ImdsError>(Identity {
            instance_id,
            availability_zone,
            source: Source::Imds,
        })
    };
    match tokio::time::timeout(opts.attempt_deadline, lookup).await {
        Ok(Ok(ident)) => Ok(ident),
        Ok(Err(e)) => Err(aws_sdk_secretsmanager::error::DisplayErrorContext(&e).to_string()),
        Err(_) => Err(format!("no answer within {:?}", opts.attempt_deadline)),
    }
}

/// Resolve the identity: at once when [`known`], else IMDS until it answers (never invented).
pub async fn resolve(opts: &IdentityOptions) -> Identity {
    let ident = match known(opts) {
        Some(ident) => ident,
        None => {
            let mut delay = Duration::from_millis(250);
            let mut attempt = 1u32;
            loop {
                match try_imds(opts).await {
                    Ok(ident) => break ident,
                    Err(reason) => {
                        tracing::warn!(endpoint = %opts.imds_endpoint, %reason, attempt, retry_in_ms = delay.as_millis() as u64, "IMDS did not give the instance identity; not ready until it does");
                        tokio::time::sleep(delay).await;
                        delay = (delay * 2).min(Duration::from_secs(5));
                        attempt += 1;
                    }
                }
            }
        }
    };
    tracing::info!(instance_id = %ident.instance_id, availability_zone = %ident.availability_zone, source = %ident.source, "identity resolved");
    ident
}

/// This machine's host name (best effort).
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "localhost".into())
}

/// `i-` + 17 lowercase hex digits derived from `host` (FNV-1a, stable across
/// Rust versions and restarts, unlike `DefaultHasher`).
pub fn fallback_instance_id(host: &str) -> String {
    fn fnv1a(bytes: &[u8], seed: u64) -> u64 {
        bytes.iter().fold(0xcbf2_9ce4_8422_2325 ^ seed, |h, b| {
            (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
        })
    }
    let hi = fnv1a(host.as_bytes(), 0);
    let lo = fnv1a(host.as_bytes(), 0x9e37_79b9_7f4a_7c15);
    let hex = format!("{hi:016x}{lo:016x}");
    format!("i-{}", &hex[..17])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fallback_id_is_stable_and_well_formed() {
        let a = fallback_instance_id("web-1");
        assert_eq!(a, fallback_instance_id("web-1"));
        assert_ne!(a, fallback_instance_id("web-2"));
        assert_eq!(a.len(), 19);
        assert!(a.starts_with("i-"));
        assert!(a[2..].chars().all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
    }

    #[tokio::test]
    async fn overrides_skip_imds() {
        let opts = IdentityOptions {
            instance_id: Some("i-0123456789abcdef0".into()),
            availability_zone: Some("local-a".into()),
            // Would hang if contacted: TEST-NET-1 address, never routed.
            imds_endpoint: "http://192.0.2.1".into(),
            local: false,
            attempt_deadline: Duration::from_secs(5),
        };
        let started = std::time::Instant::now();
        let id = resolve(&opts).await;
        assert_eq!(id.source, Source::Override);
        assert_eq!(id.instance_id, "i-0123456789abcdef0");
        assert!(started.elapsed() < Duration::from_millis(100));
    }
}
