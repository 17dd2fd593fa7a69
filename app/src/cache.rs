//! Short-lived cache of the greeting read from the database.
//!
//! A `SELECT` per request through sqlx costs more CPU than the rest of the
//! request (channel hops to the SQLite worker thread, a ping on connection
//! release), so `GET /` serves the message from memory as long as it is
//! younger than a freshness bound (`MESSAGE_TTL_MS`, default 1 s), and a
//! background task re-reads it from the database twice per bound. While the
//! database is healthy requests therefore never wait on it; when it goes
//! away the background read fails, the entry ages past the bound, requests
//! read the database themselves and answer 503 — so an outage shows up on
//! `/` within one bound. A bound of 0 disables the cache (a DB read on every
//! request).

use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use crate::db::Db;

/// The cached greeting and when it was read.
#[derive(Debug, Default)]
pub struct MessageCache {
    ttl: Duration,
    entry: RwLock<Option<(Arc<str>, Instant)>>,
}

impl MessageCache {
    pub fn new(ttl: Duration) -> Self {
        Self { ttl, entry: RwLock::new(None) }
    }

    /// The freshness bound (zero = no caching).
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// The cached message if it is younger than the bound.
    pub fn fresh(&self) -> Option<Arc<str>> {
        if self.ttl.is_zero() {
            return None;
        }
        let guard = self.entry.read().unwrap_or_else(|e| e.into_inner());
        match &*guard {
            Some((msg, at)) if at.elapsed() < self.ttl => Some(msg.clone()),
            _ => None,
        }
    }

    /// Read the message from the database and remember it.
    pub async fn refresh(&self, db: &Db) -> Result<Arc<str>, sqlx::Error> {
        let started = Instant::now();
        let msg: Arc<str> = db.message().await?.into();
        if !self.ttl.is_zero() {
            *self.entry.write().unwrap_or_else(|e| e.into_inner()) = Some((msg.clone(), started));
        }
        Ok(msg)
    }

    /// Cached message if fresh, else a database read.
    pub async fn get(&self, db: &Db) -> Result<Arc<str>, sqlx::Error> {
        match self.fresh() {
            Some(m) => Ok(m),
            None => self.refresh(db).await,
        }
    }
}

/// Keep the cache warm: re-read every half bound while the schema is ready.
pub async fn refresh_loop(state: crate::state::AppState) {
    let ttl = state.messages().ttl();
    if ttl.is_zero() {
        return;
    }
    let mut tick = tokio::time::interval((ttl / 2).max(Duration::from_millis(10)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if state.is_db_ready() {
            if let Err(e) = state.messages().refresh(state.db()).await {
                tracing::debug!(error = %e, "message refresh failed");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_ttl_never_serves_from_cache() {
        let c = MessageCache::new(Duration::ZERO);
        *c.entry.write().unwrap() = Some(("x".into(), Instant::now()));
        assert!(c.fresh().is_none());
    }

    #[test]
    fn entries_expire() {
        let c = MessageCache::new(Duration::from_millis(20));
        *c.entry.write().unwrap() = Some(("x".into(), Instant::now()));
        assert_eq!(c.fresh().as_deref(), Some("x"));
        std::thread::sleep(Duration::from_millis(30));
        assert!(c.fresh().is_none());
    }
}
