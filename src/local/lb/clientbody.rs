//! The client's request body as the load balancer reads it: every frame must arrive within the
//! body-progress timeout, the whole body must stay within its size limit, and a failure is
//! classified as the client's — malformed framing (400), an upload cut short (the client hung up),
//! no progress (408), or too large (413: a chunked body is cut where it crosses the limit). These errors travel through
//! hyper's client when the body is streamed upstream, so the proxy can tell a client's failure
//! from the instance's and never marks an instance suspect for it.
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::StatusCode;
use tokio::time::{Instant, Sleep};

/// Why the client's body could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ClientBodyError {
    #[error("malformed request body framing")]
    Malformed,
    #[error("the client closed the connection before the body was complete")]
    Aborted,
    #[error("no request body byte within the body timeout")]
    Stalled,
    #[error("the request body is larger than the limit")]
    TooLarge,
}

impl ClientBodyError {
    /// The status the load balancer answers with (an aborted client never reads it).
    pub fn status(self) -> StatusCode {
        match self {
            ClientBodyError::Malformed | ClientBodyError::Aborted => StatusCode::BAD_REQUEST,
            ClientBodyError::Stalled => StatusCode::REQUEST_TIMEOUT,
            ClientBodyError::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        }
    }

    fn classify(e: &hyper::Error) -> Self {
        if e.is_incomplete_message() || e.is_closed() || e.is_canceled() {
            return ClientBodyError::Aborted;
        }
        let mut source = std::error::Error::source(e);
        while let Some(s) = source {
            if let Some(io) = s.downcast_ref::<std::io::Error>() {
                return match io.kind() {
                    std::io::ErrorKind::UnexpectedEof
                    | std::io::ErrorKind::ConnectionReset
                    | std::io::ErrorKind::BrokenPipe => ClientBodyError::Aborted,
                    _ => ClientBodyError::Malformed,
                };
            }
            source = s.source();
        }
        ClientBodyError::Malformed
    }

    /// The client-body failure somewhere in `e`'s chain of causes, if that is what `e` is.
    pub fn find(e: &(dyn std::error::Error + 'static)) -> Option<Self> {
        let mut current = Some(e);
        while let Some(err) = current {
            if let Some(found) = err.downcast_ref::<ClientBodyError>() {
                return Some(*found);
            }
            current = err.source();
        }
        None
    }
}

/// The client's body with a progress deadline, reset by every frame, and a size limit.
pub struct ClientBody {
    inner: Incoming,
    idle: Duration,
    /// Bytes the body may still carry.
    left: u64,
    /// Armed when the body first has to wait (a request without a body never allocates it).
    deadline: Option<Pin<Box<Sleep>>>,
    /// The last frame's arrival: the deadline is `idle` after it.
    last: Option<Instant>,
}

impl ClientBody {
    /// `inner` may carry at most `limit` bytes, each frame within `idle` of the last.
    pub fn new(inner: Incoming, idle: Duration, limit: u64) -> Self {
        ClientBody { inner, idle, left: limit, deadline: None, last: None }
    }

    /// Does the body declare (`Content-Length`) more than it may carry? Then it is answered 413
    /// before a byte of it is read (so no `100 Continue` goes out).
    pub fn declared_too_large(&self) -> bool {
        self.inner.size_hint().lower() > self.left
    }
}

impl Body for ClientBody {
    type Data = Bytes;
    type Error = ClientBodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, ClientBodyError>>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                let len = frame.data_ref().map_or(0, |d| d.len() as u64);
                match this.left.checked_sub(len) {
                    Some(left) => this.left = left,
                    None => return Poll::Ready(Some(Err(ClientBodyError::TooLarge))),
                }
                this.last = Some(Instant::now());
                if let Some(deadline) = this.deadline.as_mut() {
                    deadline.as_mut().reset(Instant::now() + this.idle);
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(ClientBodyError::classify(&e)))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => {
                let at = this.last.unwrap_or_else(Instant::now) + this.idle;
                let deadline =
                    this.deadline.get_or_insert_with(|| Box::pin(tokio::time::sleep_until(at)));
                match deadline.as_mut().poll(cx) {
                    Poll::Ready(()) => Poll::Ready(Some(Err(ClientBodyError::Stalled))),
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_failures_are_found_through_boxes() {
        let boxed: Box<dyn std::error::Error + Send + Sync> = Box::new(ClientBodyError::Stalled);
        assert_eq!(ClientBodyError::find(boxed.as_ref()), Some(ClientBodyError::Stalled));
        let other = std::io::Error::other("refused");
        assert_eq!(ClientBodyError::find(&other), None);
        assert_eq!(ClientBodyError::Stalled.status(), StatusCode::REQUEST_TIMEOUT);
        assert_eq!(ClientBodyError::Malformed.status(), StatusCode::BAD_REQUEST);
        assert_eq!(ClientBodyError::TooLarge.status(), StatusCode::PAYLOAD_TOO_LARGE);
    }
}
