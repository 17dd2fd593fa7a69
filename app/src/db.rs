//! Database access: an enum over a SQLite and a Postgres pool.
//!
//! * Pools are created lazily, so start-up never fails when the database is
//!   down; connections are (re)opened on demand, so an outage never needs a
//!   restart. A short acquire timeout turns an outage into a quick 503.
//! * Migrations are embedded (`app/migrations`, see [`crate::migrations`]) and idempotent. On Postgres
//!   sqlx's migrator serialises concurrent runs with `pg_advisory_lock`; on
//!   SQLite (whose sqlx lock is a no-op) the loser of a race fails on the
//!   `_sqlx_migrations` primary key and simply re-runs, finding nothing to do.
//! * SQLite runs in WAL mode with a busy timeout so readers never block on
//!   the periodic hit-counter flush.
//! * Postgres credentials either sit in the URL or come from a Secrets Manager
//!   secret ([`crate::secret`]); with a secret, a refused login (`28P01`)
//!   re-reads it and the query is retried once on a fresh connection.

use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::reconnect::{Reconnect, Slot};
use serde::Serialize;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

/// Pool settings.
#[derive(Debug, Clone)]
pub struct DbOptions {
    pub url: String,
    pub max_connections: u32,
    pub acquire_timeout: Duration,
}

impl DbOptions {
    /// Defaults suitable for tests and local runs.
    pub fn new(url: impl Into<String>) -> Self {
        Self { url: url.into(), max_connections: 8, acquire_timeout: Duration::from_millis(1_500) }
    }
}

/// Which backend a [`Db`] talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DbKind {
    Sqlite,
    Postgres,
}

impl DbKind {
    pub fn as_str(self) -> &'static str {
        match self {
            DbKind::Sqlite => "sqlite",
            DbKind::Postgres => "postgres",
        }
    }
}

/// A connection pool for one of the supported backends.
#[derive(Debug, Clone)]
pub enum Db {
    /// The pool and its reconnect state.
    Sqlite(SqlitePool, Arc<Reconnect>),
    /// The pool, the secret its credentials come from (`None`: they are in the URL), and its
    /// reconnect state.
    Postgres(PgPool, Option<Arc<crate::secret::Credentials>>, Arc<Reconnect>),
}

const MESSAGE_SQL: &str = "SELECT body FROM messages WHERE id = 1";
const PG_ADD_HITS: &str = "INSERT INTO hits (instance_id, count) VALUES ($1, $2) \
     ON CONFLICT (instance_id) DO UPDATE SET count = hits.count + EXCLUDED.count RETURNING count";
const SQLITE_ADD_HITS: &str = "INSERT INTO hits (instance_id, count) VALUES (?1, ?2) \
     ON CONFLICT (instance_id) DO UPDATE SET count = hits.count + excluded.count RETURNING count";

/// True for errors that mean "this connection / the server is gone" and are
/// worth one retry on a fresh connection.
pub fn is_connection_error(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(_) | sqlx::Error::Protocol(_) | sqlx::Error::Tls(_) => true,
        sqlx::Error::Database(db) => {
            db.code().is_some_and(|c| c.starts_with("08") || c.starts_with("57P"))
        }
        _ => false,
    }
}

/// Run `op` on `db` with credentials in place. A connection error is retried on the pool's other
/// idle connections and then once on a fresh connection, by one request at a time, with backoff
/// (see [`crate::reconnect`]), within `max_connections` retries and the acquire timeout; a refused
/// login that brought new credentials from the secret is retried once.
macro_rules! retry_conn {
    ($db:expr, $op:expr) => {{
        let mut retry = Retry::new($db);
        let mut reauthenticated = false;
        loop {
            retry.before()?;
            let generation = $db.ensure_credentials().await?;
            match $op.await {
                Ok(v) => {
                    retry.reached();
                    break Ok(v);
                }
                Err(e) if retry.again(&e).await => {}
                Err(e) if !reauthenticated && $db.reauthenticate(generation, &e).await => {
                    reauthenticated = true
                }
                Err(e) => break Err(e),
            }
        }
    }};
}

/// One query's retries (see [`retry_conn!`]).
struct Retry<'a> {
    db: &'a Db,
    started: Instant,
    budget: Duration,
    max_retries: u32,
    retries: u32,
    /// Held while this query is the one reconnecting.
    slot: Option<Slot<'a>>,
    /// The attempt in progress may open a fresh connection (the pool had no idle one).
    fresh: bool,
}

impl<'a> Retry<'a> {
    fn new(db: &'a Db) -> Self {
        let (max_retries, budget) = db.retry_limits();
        Retry {
            db,
            started: Instant::now(),
            budget,
            max_retries,
            retries: 0,
            slot: None,
            fresh: false,
        }
    }

    /// Before an attempt: fail at once while backing off or while another query reconnects; after
    /// a backoff, this query becomes the reconnect.
    fn before(&mut self) -> Result<(), sqlx::Error> {
        let reconnect = self.db.reconnect();
        if self.slot.is_none() {
            reconnect.check().map_err(|left| unreachable_error(Some(left)))?;
            if reconnect.failures() > 0 {
                self.slot = Some(reconnect.try_begin().ok_or_else(|| unreachable_error(None))?);
            }
        }
        if let Some(slot) = &self.slot {
            self.fresh = self.db.idle_connections() == 0;
            if self.fresh {
                slot.attempt();
            }
        }
        Ok(())
    }

    /// The attempt succeeded: a reconnect in progress reached the database. (A query cancelled
    /// while reconnecting releases the slot without a verdict.)
    fn reached(&mut self) {
        if let Some(slot) = self.slot.take() {
            slot.done(true);
        }
    }

    /// After a failed attempt: whether to try again. Ends this query's reconnect otherwise.
    async fn again(&mut self, e: &sqlx::Error) -> bool {
        let unreachable = is_connection_error(e) || matches!(e, sqlx::Error::PoolTimedOut);
        let in_budget = self.retries < self.max_retries && self.started.elapsed() < self.budget;
        if !is_connection_error(e) || !in_budget || (self.slot.is_some() && self.fresh) {
            if let Some(slot) = self.slot.take() {
                slot.done(!unreachable);
            } else if matches!(e, sqlx::Error::PoolTimedOut) && self.db.connections() == 0 {
                // sqlx could not open any connection within the acquire timeout.
                if let Some(slot) = self.db.reconnect().try_begin() {
                    slot.done(false);
                }
            }
            return false;
        }
        self.retries += 1;
        if self.slot.is_none() {
            match self.db.reconnect().try_begin() {
                Some(slot) => self.slot = Some(slot),
                None => {
                    let left = self.budget.saturating_sub(self.started.elapsed());
                    self.db.reconnect().wait(left).await;
                }
            }
        }
        true
    }
}

/// The error of a query refused while the database is known unreachable (a 503 `database
/// unavailable`): backing off for `left`, or (None) another query is reconnecting.
fn unreachable_error(left: Option<Duration>) -> sqlx::Error {
    let msg = match left {
        Some(left) => format!(
            "the database is unreachable; the next reconnect attempt is in {} ms",
            left.as_millis()
        ),
        None => "the database is unreachable; a reconnect attempt is in flight".to_string(),
    };
    sqlx::Error::Io(std::io::Error::new(std::io::ErrorKind::NotConnected, msg))
}

impl Db {
    /// Build a lazy pool for `opts.url`; only fails on a malformed URL.
    pub fn connect_lazy(opts: &DbOptions) -> Result<Self, sqlx::Error> {
        let url = opts.url.as_str();
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let conn = PgConnectOptions::from_str(url)?;
            let pool = PgPoolOptions::new()
                .max_connections(opts.max_connections)
                .acquire_timeout(opts.acquire_timeout)
                .test_before_acquire(false)
                .idle_timeout(Some(Duration::from_secs(300)))
                .connect_lazy_with(conn);
            Ok(Db::Postgres(pool, None, Arc::default()))
        } else if url.starts_with("sqlite:") {
            let conn = SqliteConnectOptions::from_str(url)?
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Normal)
                .busy_timeout(Duration::from_secs(5));
            let pool = SqlitePoolOptions::new()
                .max_connections(opts.max_connections)
                .acquire_timeout(opts.acquire_timeout)
                .test_before_acquire(false)
                .connect_lazy_with(conn);
            Ok(Db::Sqlite(pool, Arc::default()))
        } else {
            Err(sqlx::Error::Configuration(
                format!(
                    "unsupported DATABASE_URL scheme (want sqlite: or postgres:): {}",
                    redact(url)
                )
                .into(),
            ))
        }
    }

    /// The reconnect state of this pool.
    pub fn reconnect(&self) -> &Reconnect {
        match self {
            Db::Sqlite(_, r) | Db::Postgres(_, _, r) => r,
        }
    }

    /// Idle connections in the pool.
    fn idle_connections(&self) -> usize {
        match self {
            Db::Sqlite(p, _) => p.num_idle(),
            Db::Postgres(p, ..) => p.num_idle(),
        }
    }

    /// Open connections in the pool (idle or in use).
    fn connections(&self) -> u32 {
        match self {
            Db::Sqlite(p, _) => p.size(),
            Db::Postgres(p, ..) => p.size(),
        }
    }

    /// Backend kind.
    pub fn kind(&self) -> DbKind {
        match self {
            Db::Sqlite(..) => DbKind::Sqlite,
            Db::Postgres(..) => DbKind::Postgres,
        }
    }

    /// Apply embedded migrations; safe to call from several instances at once.
    pub async fn migrate(&self) -> Result<(), sqlx::migrate::MigrateError> {
        let m = crate::migrations::migrator().await?;
        match self {
            Db::Postgres(p, ..) => {
                let generation = self.ensure_credentials().await?;
                let result = m.run(p).await;
                if let Err(sqlx::migrate::MigrateError::Execute(e)) = &result {
                    self.reauthenticate(generation, e).await;
                }
                result
            }
            Db::Sqlite(p, _) => {
                let mut attempt = 0;
                loop {
                    match m.run(p).await {
                        Err(e) if attempt < 5 => {
                            attempt += 1;
                            tracing::debug!(error = %e, attempt, "sqlite migration raced, retrying");
                            tokio::time::sleep(Duration::from_millis(20 * attempt)).await;
                        }
                        other => return other,
                    }
                }
            }
        }
    }

    /// The greeting seeded by the migration (read on every `GET /`).
    pub async fn message(&self) -> Result<String, sqlx::Error> {
        let body: Option<String> = match self {
            Db::Postgres(p, ..) => {
                retry_conn!(self, sqlx::query_scalar(MESSAGE_SQL).fetch_optional(p))?
            }
            Db::Sqlite(p, _) => {
                retry_conn!(self, sqlx::query_scalar(MESSAGE_SQL).fetch_optional(p))?
            }
        };
        Ok(body.unwrap_or_else(|| "(no message row)".into()))
    }

    /// Add `n` hits for `instance_id` (upsert) and return the stored total.
    pub async fn add_hits(&self, instance_id: &str, n: i64) -> Result<i64, sqlx::Error> {
        match self {
            Db::Postgres(p, ..) => {
                retry_conn!(
                    self,
                    sqlx::query_scalar(PG_ADD_HITS).bind(instance_id).bind(n).fetch_one(p)
                )
            }
            Db::Sqlite(p, _) => {
                retry_conn!(
                    self,
                    sqlx::query_scalar(SQLITE_ADD_HITS).bind(instance_id).bind(n).fetch_one(p)
                )
            }
        }
    }

    /// Stored hit count for `instance_id` (0 when absent).
    pub async fn stored_hits(&self, instance_id: &str) -> Result<i64, sqlx::Error> {
        let n: Option<i64> = match self {
            Db::Postgres(p, ..) => {
                self.ensure_credentials().await?;
                sqlx::query_scalar("SELECT count FROM hits WHERE instance_id = $1")
                    .bind(instance_id)
                    .fetch_optional(p)
                    .await?
            }
            Db::Sqlite(p, _) => {
                sqlx::query_scalar("SELECT count FROM hits WHERE instance_id = ?1")
                    .bind(instance_id)
                    .fetch_optional(p)
                    .await?
            }
        };
        Ok(n.unwrap_or(0))
    }

    /// Cheap round trip used by `/readyz`.
    pub async fn ping(&self) -> Result<(), sqlx::Error> {
        match self {
            Db::Postgres(p, ..) => retry_conn!(self, sqlx::query("SELECT 1").execute(p)).map(drop),
            Db::Sqlite(p, _) => retry_conn!(self, sqlx::query("SELECT 1").execute(p)).map(drop),
        }
    }

    /// Close the pool (graceful shutdown).
    pub async fn close(&self) {
        match self {
            Db::Postgres(p, ..) => p.close().await,
            Db::Sqlite(p, _) => p.close().await,
        }
    }
}

/// `url` with any password replaced by `***`, for logs: the userinfo's (`user:pw@`) and the value
/// of any query parameter whose name holds "password" (`?password=`, `&sslpassword=`).
pub fn redact(url: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let mut out = match (base.find("://"), base.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &base[s + 3..at];
            match creds.find(':') {
                Some(c) => format!("{}{}:***{}", &base[..s + 3], &creds[..c], &base[at..]),
                None => base.to_string(),
            }
        }
        _ => base.to_string(),
    };
    if let Some(query) = query {
        let params: Vec<String> = query
            .split('&')
            .map(|param| match param.split_once('=') {
                Some((key, _)) if key.to_ascii_lowercase().contains("password") => {
                    format!("{key}=***")
                }
                _ => param.to_string(),
            })
            .collect();
        out.push('?');
        out.push_str(&params.join("&"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_password() {
        assert_eq!(redact("postgres://u:secret@h:5432/db"), "postgres://u:***@h:5432/db");
        assert_eq!(redact("sqlite://app.db"), "sqlite://app.db");
        assert_eq!(
            redact("postgres://h:5432/db?user=u&password=secret&sslmode=require"),
            "postgres://h:5432/db?user=u&password=***&sslmode=require"
        );
        assert_eq!(
            redact("postgresql://u:pw@h/db?PassWord=x&sslpassword=y"),
            "postgresql://u:***@h/db?PassWord=***&sslpassword=***"
        );
        assert_eq!(redact("sqlite:///a.db?mode=rwc"), "sqlite:///a.db?mode=rwc");
    }

    #[test]
    fn rejects_unknown_scheme() {
        assert!(Db::connect_lazy(&DbOptions::new("mysql://x")).is_err());
    }
}
