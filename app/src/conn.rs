//! Per-connection timeouts, on one lazily re-armed timer per connection instead of hyper's
//! per-request one.
//!
//! hyper 1.x has one timer, `header_read_timeout`, started whenever it begins waiting for a request
//! head: right after accept and again right after each response (hyper `proto/h1/conn.rs`,
//! `poll_read_head`; hyperium/hyper#3828). It bounds the idle time between requests and the time a
//! head takes together, so a short slow-client guard also closed idle keep-alive connections after 5 s,
//! while the ALB keeps its connections 60 s and answers 502 when the target closed one first. And it
//! re-arms the timer for every request: a timer-wheel insert and removal, under the driver's lock,
//! per request.
//!
//! So hyper's timer is off ([`crate::server`]) and [`GuardedIo`] bounds both phases itself:
//! * **idle**: a connection with no request in flight (new, or between requests) is closed once it
//!   has been idle for the keep-alive timeout;
//! * **head**: once the first byte of a request arrives on an idle connection, the head must be
//!   complete within the head timeout, else the read fails (`TimedOut`) and hyper closes the
//!   connection.
//!
//! Either close is a failed read on a connection hyper is reading a head from: with nothing of a
//! head buffered hyper closes quietly, mid-head it answers 408 where it can (`on_read_head_error`).
//! "In flight" is counted by [`Tracked`]: hyper calls the service when a head is complete and drops
//! the response body when the response is written. The one timer is re-armed only when it fires
//! before the deadline now due (the connection was busy meanwhile) or when a deadline earlier than
//! its own is due (a head that did not arrive in one read): a busy connection costs one clock read
//! per request and one timer operation per keep-alive period.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::{Request, Response};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

/// Requests started (heads complete) and finished (response bodies dropped) on one connection, and
/// when the last one finished.
#[derive(Debug)]
pub struct Counts {
    heads: AtomicU32,
    done: AtomicU32,
    /// The accept.
    opened: Instant,
    /// When the last request finished, in nanoseconds after `opened` (0: none yet).
    last_done: AtomicU64,
}

impl Default for Counts {
    fn default() -> Self {
        Self {
            heads: AtomicU32::new(0),
            done: AtomicU32::new(0),
            opened: Instant::now(),
            last_done: AtomicU64::new(0),
        }
    }
}

impl Counts {
    fn idle(&self) -> bool {
        self.heads.load(Ordering::Relaxed) == self.done.load(Ordering::Relaxed)
    }

    /// Since when the connection is idle (meaningful when [`Counts::idle`]).
    fn idle_since(&self) -> Instant {
        self.opened + Duration::from_nanos(self.last_done.load(Ordering::Relaxed))
    }

    fn finished(&self) {
        let after = Instant::now().saturating_duration_since(self.opened);
        self.last_done.store(after.as_nanos().try_into().unwrap_or(u64::MAX), Ordering::Relaxed);
        self.done.fetch_add(1, Ordering::Relaxed);
    }
}

/// The connection's stream with the idle and request-head bounds.
#[derive(Debug)]
pub struct GuardedIo<T> {
    inner: T,
    counts: Arc<Counts>,
    head_timeout: Duration,
    idle_timeout: Duration,
    /// Armed by a request's first byte: (heads counted then, deadline).
    armed: Option<(u32, Instant)>,
    /// The one timer, and the deadline it is set to.
    timer: Option<(Pin<Box<Sleep>>, Instant)>,
}

impl<T> GuardedIo<T> {
    /// Wrap `inner`; `counts` (created at the accept) is shared with the connection's [`Tracked`]
    /// service.
    pub fn new(
        inner: T,
        counts: Arc<Counts>,
        head_timeout: Duration,
        idle_timeout: Duration,
    ) -> Self {
        Self { inner, counts, head_timeout, idle_timeout, armed: None, timer: None }
    }

    /// The deadline due now: the head's when one is arriving, else the idle one when no request is
    /// in flight, else none (a request in flight is bounded by the request timeout).
    fn due(&self) -> Option<Instant> {
        match self.armed {
            Some((_, deadline)) => Some(deadline),
            None if self.counts.idle() => Some(self.counts.idle_since() + self.idle_timeout),
            None => None,
        }
    }

    /// Ready when the deadline due has passed. The timer is set to that deadline when it is earlier
    /// than the timer's; with a request in flight it is left as it is (or set one idle timeout
    /// ahead) so that it fires and the deadline is looked at again.
    fn poll_due(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        loop {
            let due = self.due();
            let target = due.unwrap_or_else(|| match &self.timer {
                Some((_, set)) => *set,
                None => Instant::now() + self.idle_timeout,
            });
            let (timer, set) = self
                .timer
                .get_or_insert_with(|| (Box::pin(tokio::time::sleep_until(target)), target));
            if *set > target {
                timer.as_mut().reset(target);
                *set = target;
            }
            ready!(timer.as_mut().poll(cx));
            let now = Instant::now();
            if due.is_some_and(|due| now >= due) {
                return Poll::Ready(());
            }
            // Fired for a deadline that has moved on since (or, in flight, to look again).
            let next = due.filter(|d| *d > now).unwrap_or(now + self.idle_timeout);
            timer.as_mut().reset(next);
            *set = next;
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for GuardedIo<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.armed.is_some_and(|(heads, _)| this.counts.heads.load(Ordering::Relaxed) != heads) {
            this.armed = None;
        }
        let before = buf.filled().len();
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if buf.filled().len() > before && this.armed.is_none() && this.counts.idle() {
                    let heads = this.counts.heads.load(Ordering::Relaxed);
                    this.armed = Some((heads, Instant::now() + this.head_timeout));
                }
                Poll::Ready(Ok(()))
            }
            Poll::Pending => {
                let head = this.armed.is_some();
                ready!(this.poll_due(cx));
                Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    if head {
                        "request head not complete within the header read timeout"
                    } else {
                        "connection idle for the keep-alive timeout"
                    },
                )))
            }
            other => other,
        }
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for GuardedIo<T> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, b: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, b)
    }
    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

/// A hyper service that counts the requests of its connection in [`Counts`].
#[derive(Debug, Clone)]
pub struct Tracked<S> {
    inner: S,
    counts: Arc<Counts>,
}

impl<S> Tracked<S> {
    pub fn new(inner: S, counts: Arc<Counts>) -> Self {
        Self { inner, counts }
    }
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl<S, B> hyper::service::Service<Request<Incoming>> for Tracked<S>
where
    S: hyper::service::Service<Request<Incoming>, Response = Response<B>>,
    S::Future: Send + 'static,
    S::Error: 'static,
{
    type Response = Response<TrackedBody<B>>;
    type Error = S::Error;
    type Future = BoxFuture<Result<Self::Response, S::Error>>;

    fn call(&self, req: Request<Incoming>) -> Self::Future {
        self.counts.heads.fetch_add(1, Ordering::Relaxed);
        let counts = self.counts.clone();
        let fut = self.inner.call(req);
        Box::pin(async move {
            let resp = fut.await?;
            Ok(resp.map(|inner| TrackedBody { inner, counts }))
        })
    }
}

/// A response body that marks its request finished when hyper drops it.
#[derive(Debug)]
pub struct TrackedBody<B> {
    inner: B,
    counts: Arc<Counts>,
}

impl<B> Drop for TrackedBody<B> {
    fn drop(&mut self) {
        self.counts.finished();
    }
}

impl<B: Body + Unpin> Body for TrackedBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.get_mut().inner).poll_frame(cx)
    }
    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }
    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
