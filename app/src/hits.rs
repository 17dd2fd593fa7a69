//! Per-instance hit counter: counted in memory, persisted periodically.
//!
//! Writing the counter on every request would serialise all requests on the
//! database's write lock (SQLite allows one writer at a time), so requests
//! only bump an `AtomicU64`; a background task flushes the pending delta
//! with one upsert (`count = count + delta`) every interval. The first flush
//! (run right after migrations) reads back the total stored by earlier runs
//! via `RETURNING count` and adds it to the in-memory total, so the number
//! shown is monotonic, exact for this process, and persisted within one
//! flush interval. A failed flush keeps the delta for the next attempt.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use crate::db::Db;

/// In-memory hit counter with a persisted base.
#[derive(Debug, Default)]
pub struct HitCounter {
    /// Total shown to clients: stored base + every hit of this process.
    total: AtomicU64,
    /// Hits counted since the last successful flush.
    pending: AtomicU64,
    /// Whether the stored base has been added to `total` yet.
    base_loaded: AtomicBool,
}

impl HitCounter {
    pub fn new() -> Self {
        Self::default()
    }

    /// Count one hit; returns the total including it.
    pub fn record(&self) -> u64 {
        self.pending.fetch_add(1, Ordering::Relaxed);
        self.total.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// Current total (stored + pending).
    pub fn total(&self) -> u64 {
        self.total.load(Ordering::Relaxed)
    }

    /// Hits not yet written to the database.
    pub fn pending(&self) -> u64 {
        self.pending.load(Ordering::Relaxed)
    }

    /// Write pending hits for `instance_id` to `db` (also creates the row and
    /// loads the stored total on the first call). Returns the stored total.
    pub async fn flush(&self, db: &Db, instance_id: &str) -> Result<u64, sqlx::Error> {
        let delta = self.pending.swap(0, Ordering::AcqRel);
        let stored = match db.add_hits(instance_id, delta as i64).await {
            Ok(n) => u64::try_from(n).unwrap_or(0),
            Err(e) => {
                self.pending.fetch_add(delta, Ordering::AcqRel);
                return Err(e);
            }
        };
        if !self.base_loaded.swap(true, Ordering::AcqRel) {
            // Hits stored by earlier runs of this instance.
            self.total.fetch_add(stored.saturating_sub(delta), Ordering::AcqRel);
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
    }
}
