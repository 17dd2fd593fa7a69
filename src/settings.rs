//! Every `ORCH_*` environment variable orch reads, in one place: [`VARS`] names and documents them
//! (docs/operations.md lists the same), [`Settings`] holds their typed values, read once at start
//! by [`Settings::from_env`] (in `main_entry`, for every command and for `orch local serve`) and
//! handed down: [`Ctx`](crate::context::Ctx) carries them, and what needs one value gets it from
//! its caller. A malformed value is a usage error (exit 2) naming the variable. `ORCH_ENV` and
//! `ORCH_ROOT` are clap's (`--env`, `--root`), `ORCH_LOG` the log filter's, and `ORCH_LOCAL_TIER`,
//! `ORCH_APP_ENV`, `ORCH_APP_DIGEST` are how orch talks to the processes it starts.
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

/// `(name, what it does)` of every variable [`Settings`] reads.
#[cfg(test)]
pub(crate) const VARS: &[(&str, &str)] = &[
    ("ORCH_PULUMI", "the pulumi executable (default `pulumi` on PATH)"),
    ("ORCH_OFFLINE", "non-empty: skip the DNS delegation check"),
    ("ORCH_DNS_SERVER", "resolver for the delegation check, `ip` or `ip:port`"),
    (
        "ORCH_IMAGE",
        "deploy this image (`<registry>/<repository>@sha256:<64 hex>`) instead of building",
    ),
    ("ORCH_POLL_SECONDS", "seconds between status polls (ACM, instance refresh); default 15"),
    ("ORCH_LOCK_LEASE_SECONDS", "the deploy lock's lease, renewed every quarter of it; default 60"),
    ("ORCH_ACM_TIMEOUT", "seconds to wait for ACM validation; default 1800"),
    ("ORCH_VERIFY_TIMEOUT", "seconds `orch up` retries the acceptance suite; default 600"),
    (
        "ORCH_SNAPSHOT_TIMEOUT",
        "seconds `orch down --unprotect` waits for the final snapshot; default 3600",
    ),
    ("ORCH_VERIFY_CA", "a PEM file trusted besides the system roots by `orch verify` on AWS"),
    ("ORCH_APP_BINARY", "use this static app binary in the image instead of compiling it"),
    ("ORCH_BUILD_PROFILE", "`release` (default) or `dev`: the profile the app is compiled with"),
    (
        "ORCH_REGISTRY_USERNAME",
        "user for a configured `image.registry` (with ORCH_REGISTRY_PASSWORD)",
    ),
    ("ORCH_REGISTRY_PASSWORD", "its password (never printed)"),
    ("ORCH_APP_BIN", "local target: run this app binary instead of the image's entrypoint"),
    ("ORCH_LB_WORKERS", "local LB worker threads (default one per core; 0: none)"),
    ("ORCH_LB_TLS_TIMEOUT_MS", "local LB: TLS handshake timeout, ms"),
    ("ORCH_LB_HEAD_TIMEOUT_MS", "local LB: request head timeout, ms"),
    ("ORCH_LB_BODY_TIMEOUT_MS", "local LB: request body idle timeout, ms"),
    ("ORCH_LB_BODY_TOTAL_MS", "local LB: whole buffered body timeout, ms"),
    ("ORCH_LB_SEND_TIMEOUT_MS", "local LB: response send idle timeout, ms"),
    ("ORCH_LB_RESPONSE_TIMEOUT_MS", "local LB: instance response body idle timeout, ms"),
    ("ORCH_LB_MAX_BODY_BYTES", "local LB: largest streamed request body, bytes"),
    ("ORCH_LB_BUFFER_BYTES", "local LB: bytes of buffered request bodies, all connections"),
    ("ORCH_LB_MAX_HTTPS_CONNS", "local LB: HTTPS connection cap"),
    ("ORCH_LB_MAX_HTTP_CONNS", "local LB: HTTP connection cap"),
];

/// A variable with a value orch cannot use.
#[derive(Debug, thiserror::Error)]
#[error("environment variable {var}: {why} (got `{value}`)")]
pub struct SettingsError {
    pub var: &'static str,
    pub value: String,
    pub why: String,
}

/// The typed values of [`VARS`]; `None` where unset (or empty).
#[derive(Clone, Default)]
pub(crate) struct Settings {
    pub pulumi: Option<String>,
    pub offline: bool,
    pub dns_server: Option<SocketAddr>,
    pub image: Option<crate::image::uri::ImageUri>,
    pub poll: Option<Duration>,
    pub acm_timeout: Option<Duration>,
    pub lock_lease: Option<Duration>,
    pub verify_timeout: Option<Duration>,
    pub snapshot_timeout: Option<Duration>,
    pub verify_ca: Option<PathBuf>,
    pub app_binary: Option<PathBuf>,
    /// `true` for the dev profile.
    pub dev_build: bool,
    pub registry_user: Option<String>,
    pub registry_password: Option<String>,
    pub app_bin: Option<PathBuf>,
    pub lb_workers: Option<usize>,
    pub lb_tls_timeout: Option<Duration>,
    pub lb_head_timeout: Option<Duration>,
    pub lb_body_timeout: Option<Duration>,
    pub lb_body_total: Option<Duration>,
    pub lb_send_timeout: Option<Duration>,
    pub lb_response_timeout: Option<Duration>,
    pub lb_max_body: Option<usize>,
    pub lb_buffer_bytes: Option<usize>,
    pub lb_max_https_conns: Option<usize>,
    pub lb_max_http_conns: Option<usize>,
}

impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the registry password.
        f.debug_struct("Settings")
            .field("pulumi", &self.pulumi)
            .field("image", &self.image)
            .field("registry_user", &self.registry_user)
            .finish_non_exhaustive()
    }
}

struct Reader<F: Fn(&str) -> Option<String>>(F);

impl<F: Fn(&str) -> Option<String>> Reader<F> {
    fn text(&self, var: &str) -> Option<String> {
        (self.0)(var).filter(|v| !v.is_empty())
    }
    fn parsed<T>(
        &self,
        var: &'static str,
        why: &str,
        parse: impl Fn(&str) -> Option<T>,
    ) -> Result<Option<T>, SettingsError> {
        let Some(value) = self.text(var) else { return Ok(None) };
        parse(value.trim()).map(Some).ok_or_else(|| SettingsError { var, value, why: why.into() })
    }
    fn count(&self, var: &'static str) -> Result<Option<usize>, SettingsError> {
        self.parsed(var, "must be a whole number", |v| v.parse().ok())
    }
    fn seconds(&self, var: &'static str) -> Result<Option<Duration>, SettingsError> {
        self.parsed(var, "must be a whole number of seconds", |v| {
            v.parse().ok().map(Duration::from_secs)
        })
    }
    fn millis(&self, var: &'static str) -> Result<Option<Duration>, SettingsError> {
        self.parsed(var, "must be a whole number of milliseconds above 0", |v| {
            v.parse().ok().filter(|n| *n > 0).map(Duration::from_millis)
        })
    }
}

fn dns_server(v: &str) -> Option<SocketAddr> {
    v.parse().ok().or_else(|| v.parse::<IpAddr>().ok().map(|ip| SocketAddr::new(ip, 53)))
}

fn image(v: &str) -> Option<crate::image::uri::ImageUri> {
    crate::image::uri::parse(v).ok()
}

impl Settings {
    /// The settings from `lookup` (the process environment in [`from_env`](Self::from_env)).
    pub(crate) fn from_lookup(
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, SettingsError> {
        let r = Reader(lookup);
        let dev_build = r
            .parsed("ORCH_BUILD_PROFILE", "must be `release` or `dev`", |v| match v {
                "release" => Some(false),
                "dev" | "debug" => Some(true),
                _ => None,
            })?
            .unwrap_or(false);
        Ok(Settings {
            pulumi: r.text("ORCH_PULUMI"),
            offline: r.text("ORCH_OFFLINE").is_some(),
            dns_server: r.parsed("ORCH_DNS_SERVER", "must be ip or ip:port", dns_server)?,
            image: r.parsed(
                "ORCH_IMAGE",
                "must be <registry>/<repository>@sha256:<64 hex>",
                image,
            )?,
            poll: r.seconds("ORCH_POLL_SECONDS")?,
            acm_timeout: r.seconds("ORCH_ACM_TIMEOUT")?,
            lock_lease: r.parsed(
                "ORCH_LOCK_LEASE_SECONDS",
                "must be a whole number of seconds, at least 2",
                |v| v.parse().ok().filter(|n| *n >= 2).map(Duration::from_secs),
            )?,
            verify_timeout: r.seconds("ORCH_VERIFY_TIMEOUT")?,
            snapshot_timeout: r.seconds("ORCH_SNAPSHOT_TIMEOUT")?,
            verify_ca: r.text("ORCH_VERIFY_CA").map(PathBuf::from),
            app_binary: r.text("ORCH_APP_BINARY").map(PathBuf::from),
            dev_build,
            registry_user: r.text("ORCH_REGISTRY_USERNAME"),
            registry_password: (r.0)("ORCH_REGISTRY_PASSWORD"),
            app_bin: r.text("ORCH_APP_BIN").map(PathBuf::from),
            lb_workers: r.count("ORCH_LB_WORKERS")?,
            lb_tls_timeout: r.millis("ORCH_LB_TLS_TIMEOUT_MS")?,
            lb_head_timeout: r.millis("ORCH_LB_HEAD_TIMEOUT_MS")?,
            lb_body_timeout: r.millis("ORCH_LB_BODY_TIMEOUT_MS")?,
            lb_body_total: r.millis("ORCH_LB_BODY_TOTAL_MS")?,
            lb_send_timeout: r.millis("ORCH_LB_SEND_TIMEOUT_MS")?,
            lb_response_timeout: r.millis("ORCH_LB_RESPONSE_TIMEOUT_MS")?,
            lb_max_body: r.count("ORCH_LB_MAX_BODY_BYTES")?,
            lb_buffer_bytes: r.count("ORCH_LB_BUFFER_BYTES")?,
            lb_max_https_conns: r.count("ORCH_LB_MAX_HTTPS_CONNS")?,
            lb_max_http_conns: r.count("ORCH_LB_MAX_HTTP_CONNS")?,
        })
    }

    /// The settings of the process environment, read once at start; the error names the
    /// variable at fault.
    pub(crate) fn from_env() -> Result<Self, SettingsError> {
        Self::from_lookup(|var| std::env::var(var).ok())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn of(pairs: &[(&str, &str)]) -> Result<Settings, SettingsError> {
        let map: std::collections::BTreeMap<String, String> =
            pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Settings::from_lookup(|k| map.get(k).cloned())
    }

    #[test]
    fn values_are_typed_and_empty_means_unset() {
        let s = of(&[
            ("ORCH_POLL_SECONDS", "0"),
            ("ORCH_DNS_SERVER", "127.0.0.1"),
            ("ORCH_LB_TLS_TIMEOUT_MS", "250"),
            ("ORCH_BUILD_PROFILE", "dev"),
            ("ORCH_PULUMI", ""),
        ])
        .unwrap();
        assert_eq!(s.poll, Some(Duration::ZERO), "no wait between polls (tests)");
        assert_eq!(s.dns_server, Some("127.0.0.1:53".parse().unwrap()));
        assert_eq!(s.lb_tls_timeout, Some(Duration::from_millis(250)));
        assert!(s.dev_build);
        assert_eq!(s.pulumi, None);
    }

    #[test]
    fn a_bad_value_names_its_variable() {
        for (var, value) in [
            ("ORCH_POLL_SECONDS", "soon"),
            ("ORCH_VERIFY_TIMEOUT", "-5"),
            ("ORCH_DNS_SERVER", "dns.example"),
            ("ORCH_IMAGE", "registry/app:latest"),
            ("ORCH_BUILD_PROFILE", "fast"),
            ("ORCH_LB_MAX_HTTP_CONNS", "-1"),
        ] {
            let e = of(&[(var, value)]).unwrap_err();
            assert_eq!(e.var, var);
            assert!(e.to_string().contains(value), "{e}");
        }
    }

    #[test]
    fn every_variable_read_is_listed_and_documented() {
        let source = include_str!("settings.rs");
        let docs = include_str!("../docs/operations.md");
        for (var, _) in VARS {
            assert!(
                source.matches(&format!("\"{var}\"")).count() >= 2,
                "{var} is listed but never read"
            );
            assert!(docs.contains(var), "docs/operations.md does not list {var}");
        }
    }
}
