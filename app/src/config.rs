//! Command-line / environment configuration.
//!
//! Every flag has an environment fallback so the same binary runs under
//! systemd, in a container, or by hand. Only `Config` is parsed here; the
//! rest of the crate consumes the typed values.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use clap::Parser;

/// Runtime configuration of the `app` binary.
#[derive(Debug, Clone, Parser)]
#[command(name = "app", version, about = "Instance identity + database demo web service")]
pub struct Config {
    /// TCP port to listen on.
    #[arg(long, env = "PORT", default_value_t = 8080)]
    pub port: u16,

    /// Address to bind (use 127.0.0.1 for local testing).
    #[arg(long, env = "BIND", default_value = "0.0.0.0")]
    pub bind: IpAddr,

    /// Database URL: `sqlite://path?mode=rwc` or `postgres://user:pw@host/db?sslmode=require`
    /// (without the password when `DATABASE_SECRET_ARN` is set). `--help` never shows its value.
    #[arg(
        long,
        env = "DATABASE_URL",
        default_value = "sqlite://app.db?mode=rwc",
        hide_env_values = true
    )]
    pub database_url: String,

    /// Secrets Manager secret (ARN or name) holding JSON `username`/`password` for Postgres; read
    /// through the AWS SDK's standard chain (`AWS_REGION`, `AWS_ENDPOINT_URL`, instance role).
    #[arg(long, env = "DATABASE_SECRET_ARN")]
    pub database_secret_arn: Option<String>,

    /// Instance id override (skips IMDS for this field).
    #[arg(long, env = "INSTANCE_ID")]
    pub instance_id: Option<String>,

    /// Availability zone override (skips IMDS for this field).
    #[arg(long, env = "AVAILABILITY_ZONE")]
    pub availability_zone: Option<String>,

    /// EC2 instance metadata service base URL (default `http://169.254.169.254`).
    #[arg(long, env = "IMDS_ENDPOINT")]
    pub imds_endpoint: Option<String>,

    /// An explicit local run: never ask IMDS; fields without an override get an identity derived
    /// from the host name and the zone `local`. Without it the app stays not ready until IMDS answers.
    #[arg(long, env = "LOCAL_IDENTITY", action = clap::ArgAction::SetTrue,
          value_parser = clap::builder::BoolishValueParser::new())]
    pub local_identity: bool,

    /// Log filter (e.g. `info`, `debug`, `app=debug,sqlx=warn`).
    #[arg(long, env = "LOG_LEVEL", default_value = "info")]
    pub log_level: String,

    /// Log lines queued for stdout before further lines are dropped (and counted) instead of
    /// blocking a request while stdout stalls.
    #[arg(long, env = "LOG_QUEUE_LINES", default_value_t = crate::logging::DEFAULT_QUEUE_LINES)]
    pub log_queue_lines: usize,

    /// Per-request timeout in milliseconds (answered with the 504 page).
    #[arg(long, env = "REQUEST_TIMEOUT_MS", default_value_t = 10_000)]
    pub request_timeout_ms: u64,

    /// Time allowed for a request's head once its first byte has arrived, in milliseconds.
    #[arg(long, env = "HEADER_READ_TIMEOUT_MS", default_value_t = 5_000)]
    pub header_read_timeout_ms: u64,

    /// How long a keep-alive connection may sit idle between requests (and a new connection before
    /// its first request), in milliseconds. Behind a load balancer it must exceed the balancer's
    /// idle timeout (the ALB's 60 s), or the balancer reuses a connection the app is closing (502).
    #[arg(long, env = "KEEP_ALIVE_TIMEOUT_MS", default_value_t = 75_000)]
    pub keep_alive_timeout_ms: u64,

    /// Time allowed for one read of the database secret (all of the SDK's attempts together), in
    /// milliseconds; each attempt gets the same bound.
    #[arg(long, env = "SECRET_TIMEOUT_MS", default_value_t = 5_000)]
    pub secret_timeout_ms: u64,

    /// Maximum request body size in bytes.
    #[arg(long, env = "BODY_LIMIT_BYTES", default_value_t = 64 * 1024)]
    pub body_limit_bytes: usize,

    /// Grace period for draining in-flight requests on SIGTERM/SIGINT, in milliseconds.
    #[arg(long, env = "SHUTDOWN_GRACE_MS", default_value_t = 10_000)]
    pub shutdown_grace_ms: u64,

    /// How often the in-memory hit counter is flushed to the database, in milliseconds.
    #[arg(long, env = "HITS_FLUSH_MS", default_value_t = 1_000)]
    pub hits_flush_ms: u64,

    /// Freshness bound of the cached greeting in milliseconds (0: read the DB on every request).
    #[arg(long, env = "MESSAGE_TTL_MS", default_value_t = 1_000)]
    pub message_ttl_ms: u64,

    /// Maximum database connections in the pool.
    #[arg(long, env = "DB_MAX_CONNECTIONS", default_value_t = 8)]
    pub db_max_connections: u32,

    /// How long a request waits for a database connection before answering 503, in milliseconds.
    #[arg(long, env = "DB_ACQUIRE_TIMEOUT_MS", default_value_t = 1_500)]
    pub db_acquire_timeout_ms: u64,

    /// Drill: percent of `GET /` answered with 500, spread evenly (health checks untouched).
    #[arg(long, env = "FAULT_ERROR_PERCENT", default_value_t = 0.0)]
    pub fault_error_percent: f64,

    /// Drill: milliseconds added to every `GET /` (health checks untouched).
    #[arg(long, env = "FAULT_DELAY_MS", default_value_t = 0)]
    pub fault_delay_ms: u64,

    /// Self-check: GET this HTTPS URL trusting only SSL_CERT_FILE's CAs, print the status, exit.
    #[arg(long, hide = true, value_name = "URL")]
    pub probe: Option<String>,
}

impl Config {
    /// Socket address to listen on.
    pub fn listen_addr(&self) -> SocketAddr {
        SocketAddr::new(self.bind, self.port)
    }

    /// Database pool settings derived from the flags.
    pub fn db_options(&self) -> crate::db::DbOptions {
        crate::db::DbOptions {
            url: self.database_url.clone(),
            max_connections: self.db_max_connections,
            acquire_timeout: Duration::from_millis(self.db_acquire_timeout_ms),
        }
    }

    /// HTTP hardening settings derived from the flags.
    pub fn http_settings(&self) -> crate::state::HttpSettings {
        crate::state::HttpSettings {
            request_timeout: Duration::from_millis(self.request_timeout_ms),
            body_limit: self.body_limit_bytes,
            message_ttl: Duration::from_millis(self.message_ttl_ms),
            fault: crate::fault::FaultSettings {
                error_percent: self.fault_error_percent,
                delay: Duration::from_millis(self.fault_delay_ms),
            },
        }
    }

    /// Connection timeouts and the shutdown grace period.
    pub fn serve_options(&self) -> crate::server::ServeOptions {
        crate::server::ServeOptions {
            header_read_timeout: Duration::from_millis(self.header_read_timeout_ms),
            keep_alive_timeout: Duration::from_millis(self.keep_alive_timeout_ms),
            shutdown_grace: Duration::from_millis(self.shutdown_grace_ms),
        }
    }

    /// Identity overrides and IMDS endpoint.
    pub fn identity_options(&self) -> crate::identity::IdentityOptions {
        crate::identity::IdentityOptions {
            instance_id: self.instance_id.clone().filter(|s| !s.is_empty()),
            availability_zone: self.availability_zone.clone().filter(|s| !s.is_empty()),
            imds_endpoint: self
                .imds_endpoint
                .clone()
                .filter(|s| !s.is_empty())
                .unwrap_or_else(|| crate::imds::DEFAULT_ENDPOINT.into()),
            local: self.local_identity,
            attempt_deadline: Duration::from_millis(1_000),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_parse() {
        let c = Config::try_parse_from(["app", "--port", "9000", "--bind", "127.0.0.1"]).unwrap();
        assert_eq!(c.listen_addr().to_string(), "127.0.0.1:9000");
        assert_eq!(c.body_limit_bytes, 65536);
        assert!(!c.local_identity);
        assert!(Config::try_parse_from(["app", "--local-identity"]).unwrap().local_identity);
    }
}
