//! Instance identity: who am I, and in which availability zone?
//!
//! Resolution order per field: explicit override (`INSTANCE_ID`,
//! `AVAILABILITY_ZONE`) → IMDSv2 → a stable local fallback. The IMDS lookup
//! is bounded by a short deadline (≈1 s) so start-up never hangs off EC2.
//! The fallback id is `i-` followed by 17 hex digits derived from a hash of
//! the host name, so it is stable across restarts of the same machine; the
//! zone is `local`. Where the identity came from is recorded in [`Source`].

use std::fmt;
use std::time::Duration;

use serde::Serialize;

use crate::imds::ImdsClient;

/// Where the identity came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    /// Both fields were given explicitly.
    Override,
    /// At least one field came from the metadata service.
    Imds,
    /// IMDS did not answer in time; a local identity was derived.
    Fallback,
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Source::Override => "override",
            Source::Imds => "imds",
            Source::Fallback => "fallback",
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
    pub imds_endpoint: String,
    /// Upper bound for the whole IMDS lookup.
    pub deadline: Duration,
}

/// Resolve the identity; never takes much longer than `opts.deadline`.
pub async fn resolve(opts: &IdentityOptions) -> Identity {
    if let (Some(id), Some(az)) = (&opts.instance_id, &opts.availability_zone) {
        let ident = Identity::fixed(id, az);
        tracing::info!(instance_id = %ident.instance_id, availability_zone = %ident.availability_zone, source = %ident.source, "identity resolved");
        return ident;
    }
    let client = ImdsClient::new(&opts.imds_endpoint);
    let lookup = async {
        let id = match &opts.instance_id {
            Some(v) => v.clone(),
            None => client.instance_id().await?,
        };
        let az = match &opts.availability_zone {
            Some(v) => v.clone(),
            None => client.availability_zone().await?,
        };
        Ok::<_, crate::imds::ImdsError>((id, az))
    };
    let ident = match tokio::time::timeout(opts.deadline, lookup).await {
        Ok(Ok((instance_id, availability_zone))) => {
            Identity { instance_id, availability_zone, source: Source::Imds }
        }
        outcome => {
            let reason = match outcome {
                Ok(Err(e)) => e.to_string(),
                _ => format!("no answer within {:?}", opts.deadline),
            };
            tracing::warn!(endpoint = %opts.imds_endpoint, %reason, "IMDS unavailable, using local identity");
            Identity {
                instance_id: opts
                    .instance_id
                    .clone()
                    .unwrap_or_else(|| fallback_instance_id(&hostname())),
                availability_zone: opts.availability_zone.clone().unwrap_or_else(|| "local".into()),
                source: Source::Fallback,
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
            deadline: Duration::from_secs(5),
        };
        let started = std::time::Instant::now();
        let id = resolve(&opts).await;
        assert_eq!(id.source, Source::Override);
        assert_eq!(id.instance_id, "i-0123456789abcdef0");
        assert!(started.elapsed() < Duration::from_millis(100));
    }
}
