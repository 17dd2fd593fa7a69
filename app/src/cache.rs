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

use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::{ArcSwap, Guard};

use crate::db::Db;

/// The greeting and when it was read (`None`: never).
#[derive(Debug)]
pub struct Entry {
    message: Arc<str>,
    at: Option<Instant>,
}

/// The cached greeting. Requests read it through `arc-swap`: a read takes no lock and writes no
/// counter the other cores share (a `RwLock` and an `Arc` clone would pass their cache lines between
/// the cores serving requests on every read).
#[derive(Debug)]
pub struct MessageCache {
    ttl: Duration,
    entry: ArcSwap<Entry>,
}

/// The greeting a request shows: held in the cache, or just read from the database.
pub enum Message {
    Cached(Guard<Arc<Entry>>),
    Read(Arc<str>),
}

impl Message {
    pub fn text(&self) -> &Arc<str> {
        match self {
            Message::Cached(entry) => &entry.message,
            Message::Read(text) => text,
        }
    }
}

impl MessageCache {
    pub fn new(ttl: Duration) -> Self {
        Self { ttl, entry: ArcSwap::from_pointee(Entry { message: "".into(), at: None }) }
    }

    /// The freshness bound (zero = no caching).
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// The cached message if it is younger than the bound.
    pub fn fresh(&self) -> Option<Guard<Arc<Entry>>> {
        if self.ttl.is_zero() {
            return None;
        }
        let entry = self.entry.load();
        entry.at.is_some_and(|at| at.elapsed() < self.ttl).then_some(entry)
    }

    /// Read the message from the database and remember it.
    pub async fn refresh(&self, db: &Db) -> Result<Arc<str>, sqlx::Error> {
        let started = Instant::now();
        let message: Arc<str> = db.message().await?.into();
        if !self.ttl.is_zero() {
            self.entry.store(Arc::new(Entry { message: message.clone(), at: Some(started) }));
        }
        Ok(message)
    }

    /// Cached message if fresh, else a database read.
    pub async fn get(&self, db: &Db) -> Result<Message, sqlx::Error> {
        if let Some(entry) = self.fresh() {
            return Ok(Message::Cached(entry));
        }
        // Boxed: the database read's future is large, and inline it would make every request's
        // future (and its copies into axum's boxes) that large, fresh cache or not.
        Box::pin(self.refresh(db)).await.map(Message::Read)
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
        c.entry.store(Arc::new(Entry { message: "x".into(), at: Some(Instant::now()) }));
        assert!(c.fresh().is_none());
    }

    #[test]
    fn entries_expire() {
        let c = MessageCache::new(Duration::from_millis(20));
        assert!(c.fresh().is_none(), "nothing read yet");
        c.entry.store(Arc::new(Entry { message: "x".into(), at: Some(Instant::now()) }));
        assert_eq!(c.fresh().map(|e| e.message.to_string()).as_deref(), Some("x"));
        std::thread::sleep(Duration::from_millis(30));
        assert!(c.fresh().is_none());
    }
}
