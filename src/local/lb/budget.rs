//! One budget of bytes for the request bodies the load balancer buffers (idempotent requests are
//! read whole so they can be sent twice): every connection's buffer draws on it, so 10 000
//! connections cannot each hold a megabyte. A request takes a [`Lease`] that grows with each frame
//! [`collect`] reads and gives its bytes back when dropped; a frame the budget cannot cover fails the request
//! (the proxy answers 503), it never waits.
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::{Bytes, BytesMut};
use http_body_util::BodyExt;

use super::clientbody::{ClientBody, ClientBodyError};

/// The bytes still free.
#[derive(Debug)]
pub(in crate::local) struct Budget {
    free: AtomicUsize,
}

impl Budget {
    pub(in crate::local) fn new(bytes: usize) -> Self {
        Budget { free: AtomicUsize::new(bytes) }
    }

    /// The bytes held by buffered bodies now, of `total`.
    pub(in crate::local) fn held(&self, total: usize) -> usize {
        total.saturating_sub(self.free.load(Ordering::Acquire))
    }

    /// An empty lease (costs nothing until it grows).
    pub(in crate::local) fn lease(&self) -> Lease<'_> {
        Lease { budget: self, held: 0 }
    }

    #[cfg(test)]
    fn free(&self) -> usize {
        self.free.load(Ordering::Relaxed)
    }
}

/// Bytes held by one request, given back on drop.
#[derive(Debug)]
pub(in crate::local) struct Lease<'a> {
    budget: &'a Budget,
    held: usize,
}

impl Lease<'_> {
    /// Take `n` more bytes; false (nothing taken) when the budget has fewer left.
    pub(in crate::local) fn grow(&mut self, n: usize) -> bool {
        let taken = self
            .budget
            .free
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |free| free.checked_sub(n))
            .is_ok();
        if taken {
            self.held += n;
        }
        taken
    }
}

impl Drop for Lease<'_> {
    fn drop(&mut self) {
        if self.held > 0 {
            self.budget.free.fetch_add(self.held, Ordering::AcqRel);
        }
    }
}

/// Why a body could not be buffered.
pub(in crate::local) enum Unbuffered {
    Client(ClientBodyError),
    Budget,
}

/// `body` read whole, each frame first covered by `lease` (one frame is kept as it is, zero-copy).
pub(in crate::local) async fn collect(
    mut body: ClientBody,
    lease: &mut Lease<'_>,
) -> Result<Bytes, Unbuffered> {
    let (mut first, mut more) = (None::<Bytes>, BytesMut::new());
    while let Some(frame) = body.frame().await {
        let Ok(data) = frame.map_err(Unbuffered::Client)?.into_data() else { continue };
        if !lease.grow(data.len()) {
            return Err(Unbuffered::Budget);
        }
        match &first {
            None => first = Some(data),
            Some(f) => {
                if more.is_empty() {
                    more.extend_from_slice(f);
                }
                more.extend_from_slice(&data);
            }
        }
    }
    Ok(if more.is_empty() { first.unwrap_or_default() } else { more.freeze() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leases_share_one_budget_and_give_it_back() {
        let budget = Budget::new(100);
        let mut a = budget.lease();
        let mut b = budget.lease();
        assert!(a.grow(60) && a.grow(20));
        assert!(!b.grow(30), "only 20 left");
        assert!(b.grow(20));
        assert_eq!(budget.free(), 0);
        drop(a);
        assert_eq!(budget.free(), 80);
        assert!(b.grow(80));
        drop(b);
        assert_eq!(budget.free(), 100);
    }
}
