//! Keep-alive HTTP/1 connections from the load balancer to one instance: a stack of idle hyper
//! `SendRequest` handles per target. A request takes the most recently used idle connection (or
//! dials a new one: TCP_NODELAY, 1 s connect timeout); the handle goes back on the stack when the
//! response body has been read to its end, so a connection never carries two requests at once.
//! A connection idle for [`IDLE_TIMEOUT`] is dropped instead of reused: shorter than the app's
//! keep-alive (its 5 s header-read timeout), so the LB never writes to a connection the app is
//! closing. A failure is classified: the instance's (connection), the client's (its body), or
//! this process's (out of descriptors) — only the first may mark the instance suspect. Once the
//! response head is back, each wait for more of its body is bounded (`limits.response_idle`): a
//! body that stalls fails, and the client's connection is closed rather than held forever.
//! This replaces hyper-util's legacy client, which parses a URI, looks up a keyed pool and spawns a
//! task per request to hand the connection back (see docs/local.md, "Benchmark").
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{Either, Full};
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::client::conn::http1;
use hyper::client::conn::TrySendError;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::time::Sleep;

use super::clientbody::{ClientBody, ClientBodyError};
use super::limits::is_exhaustion;
use super::pool::Target;
use super::workers;

/// What goes upstream: a buffered body (idempotent requests, replayable) or the client's own stream.
pub type UpBody = Either<Full<Bytes>, ClientBody>;
type Sender = http1::SendRequest<UpBody>;

/// Idle connections kept per instance (more are closed when they come back).
const MAX_IDLE: usize = 512;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// Idle upstream connections older than this are closed, not reused (the app closes its idle
/// keep-alive connections after 5 s).
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(3);

/// Separate idle stacks per load-balancer worker thread (indexed modulo this), so a connection is
/// reused on the thread whose runtime drives it.
const SLOTS: usize = 8;

/// The idle connections to one instance, one stack per worker.
#[derive(Default)]
pub struct Conns {
    idle: [Mutex<Vec<(Sender, Instant)>>; SLOTS],
}

impl std::fmt::Debug for Conns {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Conns").finish_non_exhaustive()
    }
}

impl Conns {
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<(Sender, Instant)>> {
        self.idle[workers::current() % SLOTS]
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
    /// The most recently used idle connection; when it has been idle too long, so have all the
    /// ones below it: they are all closed.
    fn pop(&self) -> Option<Sender> {
        let mut idle = self.lock();
        let (sender, since) = idle.pop()?;
        if since.elapsed() < IDLE_TIMEOUT {
            return Some(sender);
        }
        idle.clear();
        None
    }
    fn push(&self, sender: Sender) {
        let mut idle = self.lock();
        if idle.len() < MAX_IDLE {
            idle.push((sender, Instant::now()));
        }
    }
}

/// Why no response head came back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendError {
    /// Connecting failed or the connection broke before a response head arrived: the instance's.
    Broken,
    /// The client's body failed (framing, hang-up, no progress): the client's.
    Client(ClientBodyError),
    /// This process could not open a connection (out of descriptors): nobody's instance.
    Exhausted,
}

fn failed<R>(e: &TrySendError<R>) -> SendError {
    match ClientBodyError::find(e.error()) {
        Some(client) => SendError::Client(client),
        None => SendError::Broken,
    }
}

/// Why a response body forwarded to the client ended early.
#[derive(Debug, thiserror::Error)]
pub enum ResponseError {
    #[error(transparent)]
    Upstream(#[from] hyper::Error),
    #[error("the instance sent no more of its response body within the response timeout")]
    Stalled,
}

/// Send `req` to `target` over an idle connection or a new one; its response body may wait at
/// most `idle` for each frame. A request that an idle connection
/// could not even start writing (it was closed meanwhile) moves on to the next one, so a stale
/// keep-alive connection never counts as an instance failure.
pub async fn send(
    target: &Arc<Target>,
    mut req: Request<UpBody>,
    idle: Duration,
) -> Result<Response<Returning>, SendError> {
    while let Some(mut sender) = target.conns.pop() {
        if sender.is_closed() || (!sender.is_ready() && sender.ready().await.is_err()) {
            continue;
        }
        match sender.try_send_request(req).await {
            Ok(resp) => return Ok(returning(resp, sender, target, idle)),
            Err(mut e) => match e.take_message() {
                Some(unsent) => req = unsent,
                None => return Err(failed(&e)),
            },
        }
    }
    let stream = match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(target.addr)).await
    {
        Ok(Ok(stream)) => stream,
        Ok(Err(e)) if is_exhaustion(&e) => return Err(SendError::Exhausted),
        _ => return Err(SendError::Broken),
    };
    let _ = stream.set_nodelay(true);
    let (mut sender, conn) =
        http1::handshake(TokioIo::new(stream)).await.map_err(|_| SendError::Broken)?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    match sender.try_send_request(req).await {
        Ok(resp) => Ok(returning(resp, sender, target, idle)),
        Err(e) => Err(failed(&e)),
    }
}

fn returning(
    resp: Response<Incoming>,
    sender: Sender,
    target: &Arc<Target>,
    idle: Duration,
) -> Response<Returning> {
    resp.map(|inner| Returning {
        inner,
        back: Some((sender, target.clone())),
        idle,
        stalled: None,
        armed: false,
    })
}

/// A response body that puts its connection back on the idle stack once read to the end (a body
/// dropped earlier takes its connection with it: hyper closes it), and fails when the instance
/// sends nothing for `idle` while it is waited for. The wait is counted from the first poll that
/// finds nothing, so a client that reads slowly (and so polls late) never counts against the
/// instance.
pub struct Returning {
    inner: Incoming,
    back: Option<(Sender, Arc<Target>)>,
    idle: Duration,
    /// Made the first time the body has to wait (a body that never waits never allocates it).
    stalled: Option<Pin<Box<Sleep>>>,
    /// The deadline counts from the current wait.
    armed: bool,
}

impl Returning {
    /// Nothing from the instance yet: fail once it has sent nothing for `idle` of this wait.
    fn wait(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, ResponseError>>> {
        let deadline = tokio::time::Instant::now() + self.idle;
        let sleep =
            self.stalled.get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        if !self.armed {
            sleep.as_mut().reset(deadline);
            self.armed = true;
        }
        match sleep.as_mut().poll(cx) {
            Poll::Ready(()) => {
                // The connection is mid-response: it cannot be reused.
                self.back = None;
                Poll::Ready(Some(Err(ResponseError::Stalled)))
            }
            Poll::Pending => Poll::Pending,
        }
    }

    fn give_back(&mut self) {
        if let Some((sender, target)) = self.back.take() {
            if !target.is_removed() {
                target.conns.push(sender);
            }
        }
    }
}

impl Body for Returning {
    type Data = Bytes;
    type Error = ResponseError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, ResponseError>>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(None) => this.give_back(),
            Poll::Ready(Some(Ok(_))) if this.inner.is_end_stream() => this.give_back(),
            Poll::Ready(Some(Err(_))) => this.back = None,
            Poll::Pending => return this.wait(cx),
            _ => {}
        }
        this.armed = false;
        polled.map(|frame| frame.map(|r| r.map_err(ResponseError::Upstream)))
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for Returning {
    fn drop(&mut self) {
        if self.inner.is_end_stream() {
            self.give_back();
        }
    }
}
