//! Database credentials from the Secrets Manager secret named by `DATABASE_SECRET_ARN`.
//!
//! The secret is the one RDS manages for the master user: a JSON document with `username` and
//! `password` (and more keys we ignore). [`Credentials`] caches what was read and re-reads the
//! secret when the database refuses authentication (SQLSTATE `28P01`), with backoff: a re-read that
//! brings nothing new (or fails) doubles the wait before the next one, from 1 s up to 30 s; a
//! re-read that brings a new password installs it as the pool's connect options, so connections
//! opened afterwards use it while open ones keep working. Reads are single-flight: one call to
//! Secrets Manager at a time, and callers that arrive meanwhile wait for it (at most 1 s) and take
//! its outcome. Every call has an operation timeout (`SECRET_TIMEOUT_MS`), and no lock is held
//! across it except the single-flight one, so an endpoint that accepts and never answers fails
//! the read, which is retried on the backoff, instead of keeping the app never-ready.
//!
//! The password never leaves this module except into the connect options: it is not in `Debug`,
//! in logs or in errors. The `impl Db` block at the end is the glue `db.rs` calls around queries.

use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use sqlx::postgres::{PgConnectOptions, PgPool};

use crate::db::{redact, Db};
use tokio::sync::Mutex;

/// First backoff after a re-read that brought nothing new; doubled up to [`MAX_BACKOFF`].
pub const MIN_BACKOFF: Duration = Duration::from_secs(1);
/// Longest wait between two reads of the secret while the database keeps refusing.
pub const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// How long a request may wait for the next allowed re-read instead of failing at once.
const MAX_WAIT_IN_REQUEST: Duration = Duration::from_millis(1_000);

/// A database user name and password. `Debug` never shows the password.
#[derive(Clone, PartialEq, Eq)]
pub struct DbCredentials {
    pub username: String,
    password: String,
}

impl std::fmt::Debug for DbCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DbCredentials").field("username", &self.username).finish_non_exhaustive()
    }
}

impl DbCredentials {
    /// Parse the secret string: JSON with string fields `username` and `password`.
    pub fn from_secret_string(s: &str) -> Result<Self, String> {
        #[derive(serde::Deserialize)]
        struct Doc {
            username: Option<String>,
            password: Option<String>,
        }
        // serde_json's message names the position, never the content.
        let doc: Doc = serde_json::from_str(s).map_err(|e| format!("not a JSON object: {e}"))?;
        match (doc.username, doc.password) {
            (Some(username), Some(password)) if !username.is_empty() => {
                Ok(Self { username, password })
            }
            _ => Err("the JSON lacks a non-empty \"username\" or a \"password\"".into()),
        }
    }
}

/// Reads the secret through the AWS SDK.
#[derive(Debug, Clone)]
pub struct SecretSource {
    client: aws_sdk_secretsmanager::Client,
    arn: String,
}

impl SecretSource {
    /// A reader whose every `GetSecretValue` ends within `timeout` (the SDK's operation timeout;
    /// each attempt gets half of it, a connection 3 s at most), so an endpoint that accepts and
    /// never answers fails the read instead of holding it forever.
    pub fn new(config: &aws_config::SdkConfig, arn: impl Into<String>, timeout: Duration) -> Self {
        let timeouts = aws_sdk_secretsmanager::config::timeout::TimeoutConfig::builder()
            .connect_timeout(timeout.min(Duration::from_secs(3)))
            .operation_attempt_timeout((timeout / 2).max(Duration::from_millis(100)))
            .operation_timeout(timeout)
            .build();
        let conf = aws_sdk_secretsmanager::config::Builder::from(config).timeout_config(timeouts);
        Self { client: aws_sdk_secretsmanager::Client::from_conf(conf.build()), arn: arn.into() }
    }

    /// The secret's ARN (or name), for logs.
    pub fn arn(&self) -> &str {
        &self.arn
    }

    /// `GetSecretValue` (the `AWSCURRENT` version), parsed.
    pub async fn fetch(&self) -> Result<DbCredentials, String> {
        let out =
            self.client.get_secret_value().secret_id(&self.arn).send().await.map_err(|e| {
                format!(
                    "GetSecretValue {}: {}",
                    self.arn,
                    aws_sdk_secretsmanager::error::DisplayErrorContext(&e)
                )
            })?;
        let s = out
            .secret_string()
            .ok_or_else(|| format!("secret {} has no SecretString", self.arn))?;
        DbCredentials::from_secret_string(s).map_err(|e| format!("secret {}: {e}", self.arn))
    }
}

#[derive(Debug)]
struct RefreshState {
    current: Option<DbCredentials>,
    next_allowed: Instant,
    backoff: Duration,
    last_error: Option<String>,
}

/// Cached credentials for one Postgres pool, re-read on refusal.
#[derive(Debug)]
pub struct Credentials {
    source: SecretSource,
    base: PgConnectOptions,
    /// Incremented each time new credentials are installed; 0 = none yet.
    generation: AtomicU64,
    /// Cache and backoff; held for short sections only, never across a call to Secrets Manager.
    state: std::sync::Mutex<RefreshState>,
    /// Held by the one read in flight (single-flight): others wait for it, briefly, and take its
    /// outcome instead of calling Secrets Manager themselves.
    flight: Mutex<()>,
    /// Reads completed (whatever their outcome).
    reads: AtomicU64,
}

impl Credentials {
    /// `base` carries host, port, database and TLS settings (no password).
    pub fn new(source: SecretSource, base: PgConnectOptions) -> Self {
        Self {
            source,
            base,
            generation: AtomicU64::new(0),
            state: std::sync::Mutex::new(RefreshState {
                current: None,
                next_allowed: Instant::now(),
                backoff: MIN_BACKOFF,
                last_error: None,
            }),
            flight: Mutex::new(()),
            reads: AtomicU64::new(0),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, RefreshState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Generation of the installed credentials (0: none yet).
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Make sure credentials are installed in `pool`; reads the secret the first time (and, after a
    /// failed first read, at most once per backoff interval). Returns the generation in use.
    pub async fn ensure(&self, pool: &PgPool) -> Result<u64, String> {
        let gen = self.generation();
        if gen > 0 {
            return Ok(gen);
        }
        {
            let st = self.state();
            if Instant::now() < st.next_allowed {
                return Err(st.last_error.clone().unwrap_or_else(|| "secret not read yet".into()));
            }
        }
        self.read(pool).await?;
        match self.generation() {
            0 => Err("secret not read yet".into()),
            gen => Ok(gen),
        }
    }

    /// The database refused the credentials of generation `failed`: re-read the secret unless
    /// someone already did or the backoff forbids it. True when new credentials are installed
    /// (a retry on a fresh connection may succeed).
    pub async fn on_auth_failure(&self, pool: &PgPool, failed: u64, cause: &sqlx::Error) -> bool {
        if self.generation() != failed {
            return true;
        }
        let wait = self.state().next_allowed.saturating_duration_since(Instant::now());
        if wait > MAX_WAIT_IN_REQUEST {
            return false;
        }
        tokio::time::sleep(wait).await;
        if self.generation() != failed {
            return true;
        }
        tracing::warn!(secret = %self.source.arn(), cause = %cause, "the database refused the credentials (SQLSTATE 28P01); re-reading the secret");
        let _ = self.read(pool).await;
        self.generation() != failed
    }

    /// Read the secret, single-flight: when a read is in flight, wait for it (at most
    /// [`MAX_WAIT_IN_REQUEST`]) and take its outcome. Ok(true) when new credentials were installed.
    async fn read(&self, pool: &PgPool) -> Result<bool, String> {
        let seen = self.reads.load(Ordering::Acquire);
        let Ok(_flight) = tokio::time::timeout(MAX_WAIT_IN_REQUEST, self.flight.lock()).await
        else {
            return Err("a read of the database secret is in flight and slow".into());
        };
        if self.reads.load(Ordering::Acquire) != seen {
            return match &self.state().last_error {
                Some(e) => Err(e.clone()),
                None => Ok(true),
            };
        }
        let result = self.source.fetch().await;
        let outcome = self.install(pool, result);
        self.reads.fetch_add(1, Ordering::AcqRel);
        outcome
    }

    /// Install fetched credentials if they differ from the current ones. Ok(true) when something
    /// new was installed. Sets the backoff either way.
    fn install(
        &self,
        pool: &PgPool,
        result: Result<DbCredentials, String>,
    ) -> Result<bool, String> {
        let mut st = self.state();
        let now = Instant::now();
        match result {
            Ok(creds) if st.current.as_ref() != Some(&creds) => {
                pool.set_connect_options(
                    self.base.clone().username(&creds.username).password(&creds.password),
                );
                let gen = self.generation.fetch_add(1, Ordering::AcqRel) + 1;
                tracing::info!(secret = %self.source.arn(), username = %creds.username, generation = gen, "database credentials loaded from the secret; new connections use them");
                st.current = Some(creds);
                st.backoff = MIN_BACKOFF;
                st.next_allowed = now + MIN_BACKOFF;
                st.last_error = None;
                Ok(true)
            }
            Ok(_) => {
                let msg = format!(
                    "the secret {} still holds the credentials the database refused",
                    self.source.arn()
                );
                tracing::warn!(secret = %self.source.arn(), retry_in_ms = st.backoff.as_millis() as u64, "the secret still holds the credentials the database refused; will re-read it");
                back_off(&mut st, now, msg.clone());
                Ok(false)
            }
            Err(e) => {
                tracing::warn!(error = %e, retry_in_ms = st.backoff.as_millis() as u64, "reading the database secret failed");
                back_off(&mut st, now, e.clone());
                Err(e)
            }
        }
    }
}

fn back_off(st: &mut RefreshState, now: Instant, error: String) {
    st.next_allowed = now + st.backoff;
    st.backoff = (st.backoff * 2).min(MAX_BACKOFF);
    st.last_error = Some(error);
}

/// True when Postgres refused the user name or password (`28P01`, or `28000`).
pub fn is_auth_error(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Database(db) => db.code().is_some_and(|c| c == "28P01" || c == "28000"),
        _ => false,
    }
}

/// The credential side of [`Db`]: a pool built from the URL, then switched to the secret.
impl Db {
    /// Take Postgres credentials from `source` instead of the URL, which must carry none.
    pub fn with_secret(self, url: &str, source: SecretSource) -> Result<Self, sqlx::Error> {
        let config = |msg: &str| Err(sqlx::Error::Configuration(msg.to_string().into()));
        match self {
            Db::Postgres(pool, _, reconnect) if redact(url) == url => {
                let base = PgConnectOptions::from_str(url)?;
                Ok(Db::Postgres(pool, Some(Arc::new(Credentials::new(source, base))), reconnect))
            }
            Db::Postgres(..) => config(
                "DATABASE_URL carries a password while DATABASE_SECRET_ARN is set; \
                 the password comes from the secret only",
            ),
            Db::Sqlite(..) => config("DATABASE_SECRET_ARN needs a postgres:// DATABASE_URL"),
        }
    }

    /// Install credentials from the secret if none are yet; their generation (0 without a secret).
    pub(crate) async fn ensure_credentials(&self) -> Result<u64, sqlx::Error> {
        match self {
            Db::Postgres(pool, Some(creds), _) => creds.ensure(pool).await.map_err(|e| {
                sqlx::Error::Configuration(format!("database credentials unavailable: {e}").into())
            }),
            _ => Ok(0),
        }
    }

    /// After `e`: if it is a refused login and the secret now holds other credentials, true.
    pub(crate) async fn reauthenticate(&self, generation: u64, e: &sqlx::Error) -> bool {
        match self {
            Db::Postgres(pool, Some(creds), _) if is_auth_error(e) => {
                creds.on_auth_failure(pool, generation, e).await
            }
            _ => false,
        }
    }

    /// (retries, time budget) for connection errors.
    pub(crate) fn retry_limits(&self) -> (u32, Duration) {
        let o = match self {
            Db::Sqlite(p, _) => p.options().get_max_connections(),
            Db::Postgres(p, ..) => p.options().get_max_connections(),
        };
        let t = match self {
            Db::Sqlite(p, _) => p.options().get_acquire_timeout(),
            Db::Postgres(p, ..) => p.options().get_acquire_timeout(),
        };
        (o.max(2), t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_rds_secret_and_hides_password() {
        let c = DbCredentials::from_secret_string(
            r#"{"username":"orch","password":"s3cr3t!","engine":"postgres"}"#,
        )
        .unwrap();
        assert_eq!(c.username, "orch");
        assert!(!format!("{c:?}").contains("s3cr3t"));
    }

    #[test]
    fn malformed_secret_errors_do_not_echo_content() {
        let e = DbCredentials::from_secret_string(r#"{"password":"s3cr3t!"}"#).unwrap_err();
        assert!(!e.contains("s3cr3t"), "{e}");
        let e = DbCredentials::from_secret_string("s3cr3t!").unwrap_err();
        assert!(!e.contains("s3cr3t"), "{e}");
    }
}
