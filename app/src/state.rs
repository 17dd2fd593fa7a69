//! Shared application state and its background tasks.
//!
//! `AppState` is cheap to clone (one `Arc`). It owns the identity (set once
//! it is known: see [`crate::identity`]), the database pool, the in-memory
//! hit counter, the message cache and a "schema ready" flag.
//! Until the identity is known and migrations have succeeded, data routes
//! answer 503; a background task keeps retrying migrations with back-off, so
//! the app can start before its database and recovers by itself.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::cache::MessageCache;
use crate::db::Db;
use crate::hits::HitCounter;
use crate::identity::Identity;

/// HTTP hardening knobs applied by [`crate::router`].
#[derive(Debug, Clone)]
pub struct HttpSettings {
    /// Requests running longer are answered with the 504 page.
    pub request_timeout: Duration,
    /// Larger request bodies are answered with the 413 page.
    pub body_limit: usize,
    /// Freshness bound of the cached greeting (zero: read the DB per request).
    pub message_ttl: Duration,
    /// Injected faults for release drills (none by default).
    pub fault: crate::fault::FaultSettings,
}

impl Default for HttpSettings {
    fn default() -> Self {
        Self {
            request_timeout: Duration::from_secs(10),
            body_limit: 64 * 1024,
            message_ttl: Duration::from_millis(1_000),
            fault: crate::fault::FaultSettings::default(),
        }
    }
}

#[derive(Debug)]
struct Inner {
    /// Shared with the access-log records, which name the instance when they are written.
    identity: Arc<IdentityCell>,
    db: Db,
    hits: HitCounter,
    messages: MessageCache,
    pages: crate::index_page::IndexPages,
    http: HttpSettings,
    faults: crate::fault::Faults,
    ready: AtomicBool,
    ready_tx: watch::Sender<bool>,
}

/// The identity, set once it is known.
#[derive(Debug, Default)]
struct IdentityCell(OnceLock<Identity>);

impl crate::logging::InstanceName for IdentityCell {
    fn instance_name(&self) -> &str {
        self.0.get().map_or("-", |id| id.instance_id.as_str())
    }
}

/// State shared by all handlers.
#[derive(Debug, Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

/// Handles of the background tasks; abort them on shutdown.
#[derive(Debug)]
pub struct Background {
    pub migrate: JoinHandle<()>,
    pub flush: JoinHandle<()>,
    pub refresh: JoinHandle<()>,
}

impl Background {
    pub fn abort(&self) {
        self.migrate.abort();
        self.flush.abort();
        self.refresh.abort();
    }
}

impl AppState {
    /// State with a known identity.
    pub fn new(identity: Identity, db: Db, http: HttpSettings) -> Self {
        let state = Self::unidentified(db, http);
        state.set_identity(identity);
        state
    }

    /// State whose identity is set later ([`set_identity`](Self::set_identity)).
    pub fn unidentified(db: Db, http: HttpSettings) -> Self {
        let (ready_tx, _) = watch::channel(false);
        Self {
            inner: Arc::new(Inner {
                identity: Arc::default(),
                db,
                hits: HitCounter::new(),
                messages: MessageCache::new(http.message_ttl),
                pages: crate::index_page::IndexPages::default(),
                faults: crate::fault::Faults::new(http.fault),
                http,
                ready: AtomicBool::new(false),
                ready_tx,
            }),
        }
    }

    /// The identity, once known.
    pub fn identity(&self) -> Option<&Identity> {
        self.inner.identity.0.get()
    }

    /// What names this instance in access-log lines (its id once known, `-` before).
    pub fn instance_name(&self) -> Arc<dyn crate::logging::InstanceName> {
        self.inner.identity.clone()
    }

    /// Record the identity (the first call wins).
    pub fn set_identity(&self, identity: Identity) {
        let _ = self.inner.identity.0.set(identity);
    }

    pub fn db(&self) -> &Db {
        &self.inner.db
    }

    pub fn hits(&self) -> &HitCounter {
        &self.inner.hits
    }

    pub fn messages(&self) -> &MessageCache {
        &self.inner.messages
    }

    /// The greeting: cached while fresh, else read from the database.
    pub async fn message(&self) -> Result<crate::cache::Message, sqlx::Error> {
        self.inner.messages.get(&self.inner.db).await
    }

    /// The index page, rendered once per greeting.
    pub fn index_pages(&self) -> &crate::index_page::IndexPages {
        &self.inner.pages
    }

    pub fn faults(&self) -> &crate::fault::Faults {
        &self.inner.faults
    }

    pub fn http(&self) -> &HttpSettings {
        &self.inner.http
    }

    /// Whether migrations have been applied (the DB may still be down now).
    pub fn is_db_ready(&self) -> bool {
        self.inner.ready.load(Ordering::Acquire)
    }

    /// Apply migrations, create/load this instance's hit row, mark ready.
    pub async fn prepare_db(&self) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        self.inner.db.migrate().await?;
        if self.identity().is_some() {
            self.flush_hits().await?;
        }
        self.inner.messages.refresh(&self.inner.db).await?;
        self.inner.ready.store(true, Ordering::Release);
        self.inner.ready_tx.send_replace(true);
        Ok(())
    }

    /// Persist pending hits now; returns the stored total (0 while the identity is unknown).
    pub async fn flush_hits(&self) -> Result<u64, sqlx::Error> {
        match self.identity() {
            Some(id) => self.inner.hits.flush(&self.inner.db, &id.instance_id).await,
            None => Ok(0),
        }
    }

    /// Wait until [`prepare_db`](Self::prepare_db) succeeded, up to `timeout`.
    pub async fn wait_ready(&self, timeout: Duration) -> bool {
        let mut rx = self.inner.ready_tx.subscribe();
        let ok = tokio::time::timeout(timeout, rx.wait_for(|r| *r)).await.is_ok();
        ok
    }

    /// Start the migration retry loop and the periodic hit flush.
    pub fn spawn_background(&self, flush_every: Duration) -> Background {
        let st = self.clone();
        let migrate = tokio::spawn(async move {
            let mut delay = Duration::from_millis(250);
            loop {
                match st.prepare_db().await {
                    Ok(()) => {
                        tracing::info!(
                            db = st.db().kind().as_str(),
                            "database ready (migrations applied)"
                        );
                        return;
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, retry_in_ms = delay.as_millis() as u64, "database not ready; retrying");
                        tokio::time::sleep(delay).await;
                        delay = (delay * 2).min(Duration::from_secs(5));
                    }
                }
            }
        });
        let flush = tokio::spawn(crate::hits::flush_loop(self.clone(), flush_every));
        let refresh = tokio::spawn(crate::cache::refresh_loop(self.clone()));
        Background { migrate, flush, refresh }
    }
}
