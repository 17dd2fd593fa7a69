//! Per-connection timeouts hyper has no setting for: a keep-alive idle timeout apart from the
//! request-head timeout.
//!
//! hyper 1.x has one timer, `header_read_timeout`, started whenever it begins waiting for a request
//! head: right after accept and again right after each response (hyper `proto/h1/conn.rs`,
//! `poll_read_head`; hyperium/hyper#3828). It bounds the idle time between requests and the time a
//! head takes together, so a short slow-client guard also closed idle keep-alive connections after 5 s,
//! while the ALB keeps its connections 60 s and answers 502 when the target closed one first.
//!
//! Here hyper's timer is set to the long keep-alive idle timeout, and [`GuardedIo`] adds the short
//! guard: once the first byte of a request arrives on a connection with no request in flight, the
//! head must be complete within the head timeout, else the read fails (`TimedOut`) and hyper closes
//! the connection. "In flight" is counted by [`Tracked`]: hyper calls the service when a head is
//! complete and drops the response body when the response is written. The guard's timer is only
//! set when a head does not arrive in one read.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::{Request, Response};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

/// Requests started (heads complete) and finished (response bodies dropped) on one connection.
#[derive(Debug, Default)]
pub struct Counts {
    heads: AtomicU32,
    done: AtomicU32,
}

impl Counts {
    fn idle(&self) -> bool {
        self.heads.load(Ordering::Relaxed) == self.done.load(Ordering::Relaxed)
    }
}

/// The connection's stream with the request-head guard.
#[derive(Debug)]
pub struct GuardedIo<T> {
    inner: T,
    counts: Arc<Counts>,
    head_timeout: Duration,
    /// Armed by a request's first byte: (heads counted then, deadline).
    armed: Option<(u32, Instant)>,
    timer: Option<Pin<Box<Sleep>>>,
    timer_set: bool,
}

impl<T> GuardedIo<T> {
    /// Wrap `inner`; `counts` is shared with the connection's [`Tracked`] service.
    pub fn new(inner: T, counts: Arc<Counts>, head_timeout: Duration) -> Self {
        Self { inner, counts, head_timeout, armed: None, timer: None, timer_set: false }
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
                    this.timer_set = false;
                }
                Poll::Ready(Ok(()))
            }
            Poll::Pending => {
                let Some((_, deadline)) = this.armed else { return Poll::Pending };
                let timer =
                    this.timer.get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
                if !this.timer_set {
                    timer.as_mut().reset(deadline);
                    this.timer_set = true;
                }
                match timer.as_mut().poll(cx) {
                    Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "request head not complete within the header read timeout",
                    ))),
                    Poll::Pending => Poll::Pending,
                }
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
        self.counts.done.fetch_add(1, Ordering::Relaxed);
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
