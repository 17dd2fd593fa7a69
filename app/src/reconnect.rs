//! Reconnecting to a failing database, one attempt at a time, with backoff.
//!
//! A query that fails with a connection error (see [`crate::db::is_connection_error`]) is retried:
//! first on the pool's other idle connections (cheap: after a failover or `pg_terminate_backend`
//! they may all be dead, and each retry purges one), then on one fresh connection — the
//! *reconnect*. Only one request at a time may reconnect (it holds the [`Slot`]); requests that
//! meet a connection error meanwhile wait for its outcome (within their time budget) instead of
//! opening connections of their own. A failed reconnect starts a backoff — 100 ms, doubling to
//! 5 s — during which queries fail at once (503) without touching the pool; after it, the next
//! query is the one attempt. A reconnect that reaches the database (any answer) ends the backoff.
//! An acquire timeout on a pool that holds no connection at all counts as a failed reconnect.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The first wait after a failed reconnect; doubled per further failure up to [`MAX_BACKOFF`].
pub const FIRST_BACKOFF: Duration = Duration::from_millis(100);
/// The longest wait between two reconnect attempts.
pub const MAX_BACKOFF: Duration = Duration::from_secs(5);

#[derive(Debug, Default)]
struct Backoff {
    failures: u32,
    until: Option<Instant>,
}

/// The reconnect state of one pool.
#[derive(Debug, Default)]
pub struct Reconnect {
    slot: tokio::sync::Mutex<()>,
    backoff: Mutex<Backoff>,
    attempts: AtomicU64,
}

/// The right to reconnect, held by one request; report the outcome with [`Slot::done`].
#[derive(Debug)]
pub struct Slot<'a> {
    owner: &'a Reconnect,
    _guard: tokio::sync::MutexGuard<'a, ()>,
}

impl Reconnect {
    fn backoff(&self) -> std::sync::MutexGuard<'_, Backoff> {
        self.backoff.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Err(time left) while backing off after a failed reconnect.
    pub fn check(&self) -> Result<(), Duration> {
        match self.backoff().until {
            Some(t) if Instant::now() < t => Err(t - Instant::now()),
            _ => Ok(()),
        }
    }

    /// Consecutive failed reconnects (0: the database was reachable last time).
    pub fn failures(&self) -> u32 {
        self.backoff().failures
    }

    /// Reconnect attempts made so far (fresh connections tried after a connection error).
    pub fn attempts(&self) -> u64 {
        self.attempts.load(Ordering::Relaxed)
    }

    /// The reconnect slot, unless another request holds it.
    pub fn try_begin(&self) -> Option<Slot<'_>> {
        let guard = self.slot.try_lock().ok()?;
        Some(Slot { owner: self, _guard: guard })
    }

    /// Wait (at most `limit`) for the reconnect in flight, if any, to end.
    pub async fn wait(&self, limit: Duration) {
        let _ = tokio::time::timeout(limit, self.slot.lock()).await;
    }

    fn record(&self, reached: bool) {
        let mut b = self.backoff();
        if reached {
            *b = Backoff::default();
        } else {
            b.failures = b.failures.saturating_add(1);
            let wait = FIRST_BACKOFF.saturating_mul(1 << (b.failures - 1).min(16)).min(MAX_BACKOFF);
            b.until = Some(Instant::now() + wait);
            tracing::warn!(
                failures = b.failures,
                retry_in_ms = wait.as_millis() as u64,
                "reconnecting to the database failed; backing off"
            );
        }
    }
}

impl Slot<'_> {
    /// A fresh connection is about to be tried.
    pub fn attempt(&self) {
        self.owner.attempts.fetch_add(1, Ordering::Relaxed);
    }

    /// The reconnect ended: `reached` when the database answered (whatever it answered).
    pub fn done(self, reached: bool) {
        self.owner.record(reached);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn one_slot_and_a_doubling_capped_backoff() {
        let r = Reconnect::default();
        let slot = r.try_begin().expect("free");
        assert!(r.try_begin().is_none(), "a second reconnect while one is in flight");
        slot.done(false);
        let first = r.check().expect_err("backing off");
        assert!(first <= FIRST_BACKOFF, "{first:?}");
        for _ in 0..10 {
            r.try_begin().unwrap().done(false);
        }
        let capped = r.check().expect_err("backing off");
        assert!(capped > MAX_BACKOFF / 2 && capped <= MAX_BACKOFF, "{capped:?}");
        assert_eq!(r.failures(), 11);
        r.try_begin().unwrap().done(true);
        assert_eq!(r.failures(), 0);
        assert!(r.check().is_ok());
    }
}
