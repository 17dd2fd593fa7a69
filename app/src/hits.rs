//! Per-instance hit counter: counted in memory, persisted periodically.
//!
//! Writing the counter on every request would serialise all requests on the
//! database's write lock (SQLite allows one writer at a time), so requests
//! only bump one `AtomicU64`; a background task flushes the pending delta
//! with one upsert (`count = count + delta`) every interval. The first flush
//! (run right after migrations) reads back the total stored by earlier runs
//! via `RETURNING count` and adds it to the in-memory total, so the number
//! shown is monotonic, exact for this process, and persisted within one
//! flush interval. A failed flush keeps the delta for the next attempt.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use crate::db::Db;

/// In-memory hit counter with a persisted base.
///
/// A request touches one shared atomic ([`record`](Self::record): `counted`); what was flushed and
/// the base stored by earlier runs change once per flush, so the cores serving requests keep their
/// copies of them and do not pass the line back and forth.
#[derive(Debug, Default)]
pub struct HitCounter {
    /// Hits of this process.
    counted: AtomicU64,
    /// The part of `counted` stored in the database (written by the flush only).
    flushed: AtomicU64,
    /// Hits stored by earlier runs of this instance (known after the first flush).
    base: AtomicU64,
    /// Whether `base` has been read yet.
    base_loaded: AtomicBool,
    /// One flush at a time (the periodic one and the one at shutdown).
    flushing: tokio::sync::Mutex<()>,
}

impl HitCounter {
    pub fn new() -> Self {
        Self::default()
    }

    /// Count one hit; returns the total including it.
    pub fn record(&self) -> u64 {
        self.base.load(Ordering::Relaxed) + self.counted.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// Current total (stored base + this process's hits).
    pub fn total(&self) -> u64 {
        self.base.load(Ordering::Relaxed) + self.counted.load(Ordering::Relaxed)
    }

    /// Hits not yet written to the database.
    pub fn pending(&self) -> u64 {
        self.counted.load(Ordering::Relaxed) - self.flushed.load(Ordering::Relaxed)
    }

    /// Write pending hits for `instance_id` to `db` (also creates the row and
    /// loads the stored total on the first call). Returns the stored total.
    pub async fn flush(&self, db: &Db, instance_id: &str) -> Result<u64, sqlx::Error> {
        let _one = self.flushing.lock().await;
        let upto = self.counted.load(Ordering::Acquire);
        let delta = upto - self.flushed.load(Ordering::Acquire);
        let stored = u64::try_from(db.add_hits(instance_id, delta as i64).await?).unwrap_or(0);
        self.flushed.store(upto, Ordering::Release);
        if !self.base_loaded.swap(true, Ordering::AcqRel) {
            // Hits stored by earlier runs of this instance: the stored total less this process's.
            self.base.store(stored.saturating_sub(upto), Ordering::Release);
        }
        Ok(stored)
    }
}

/// Flush `counter` every `every` until the task is aborted. Errors are
/// logged (at most once per outage) and retried on the next tick.
pub async fn flush_loop(state: crate::state::AppState, every: Duration) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut failing = false;
    loop {
        tick.tick().await;
        if !state.is_db_ready() || state.hits().pending() == 0 {
            continue;
        }
        match state.flush_hits().await {
            Ok(_) if failing => {
                failing = false;
                tracing::info!("hit counter flush recovered");
            }
            Ok(_) => {}
            Err(e) if !failing => {
                failing = true;
                tracing::warn!(error = %e, "hit counter flush failed; will retry");
            }
            Err(_) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_counts_locally() {
        let c = HitCounter::new();
        assert_eq!(c.record(), 1);
        assert_eq!(c.record(), 2);
        assert_eq!(c.pending(), 2);
        assert_eq!(c.total(), 2);
        c.flushed.store(2, Ordering::Relaxed);
        c.base.store(40, Ordering::Relaxed);
        assert_eq!(c.record(), 43);
        assert_eq!((c.pending(), c.total()), (1, 43));
    }
}
