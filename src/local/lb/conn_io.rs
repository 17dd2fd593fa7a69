//! A client connection's byte stream as the load balancer's hyper server sees it, with two
//! additions: a client that stops reading its response (no byte taken for `limits.send_idle`)
//! is disconnected, and hyper's own automatic answers to a request head it cannot parse — a bare
//! `400 Bad Request` or `431 Request Header Fields Too Large` with an empty body — are replaced
//! by our page of the same status with the security headers (hyper has no hook for them).
use std::future::Future;
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use bytes::{Buf, Bytes};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

use super::proxy::Lb;

/// The automatic answers hyper writes for a head it cannot parse: their status line and status.
/// Only the headers `connection`, `content-length: 0` and `date` follow, and no body.
const AUTOMATIC: [(&[u8], u16); 3] = [
    (b"HTTP/1.1 400 Bad Request\r\n", 400),
    (b"HTTP/1.1 431 Request Header Fields Too Large\r\n", 431),
    (b"HTTP/1.1 414 URI Too Long\r\n", 414),
];

/// Is `buf` one of hyper's automatic answers? Its status, if so.
fn automatic(buf: &[u8]) -> Option<u16> {
    let &(line, status) = AUTOMATIC.iter().find(|(line, _)| buf.starts_with(line))?;
    let headers = buf.get(line.len()..)?.strip_suffix(b"\r\n\r\n")?;
    let mut zero_length = false;
    for header in headers.split(|&b| b == b'\n') {
        let header = header.strip_suffix(b"\r").unwrap_or(header).to_ascii_lowercase();
        if header == b"content-length: 0" {
            zero_length = true;
        } else if !header.starts_with(b"connection: ") && !header.starts_with(b"date: ") {
            return None;
        }
    }
    zero_length.then_some(status)
}

/// The stream of one client connection.
pub(in crate::local) struct ConnIo<S> {
    inner: S,
    lb: Arc<Lb>,
    https: bool,
    /// Our page, replacing an automatic answer, still to be written.
    replacement: Option<Bytes>,
    /// Whether hyper's automatic HTTP/1.1 answers are replaced (not on HTTP/2).
    intercepting: bool,
    send_idle: Duration,
    stalled: Option<Pin<Box<Sleep>>>,
    stalled_armed: bool,
}

impl<S> ConnIo<S> {
    pub(in crate::local) fn new(inner: S, lb: Arc<Lb>, https: bool) -> Self {
        let send_idle = lb.limits.send_idle;
        ConnIo {
            inner,
            lb,
            https,
            replacement: None,
            intercepting: true,
            send_idle,
            stalled: None,
            stalled_armed: false,
        }
    }

    /// The request-head (and keep-alive idle) timeout for hyper.
    pub(in crate::local) fn head_timeout(&self) -> Duration {
        self.lb.limits.head
    }

    /// The inner stream made no write progress: fail once it has made none for `send_idle`.
    fn stall(&mut self, cx: &mut Context<'_>) -> Poll<io::Error> {
        let deadline = Instant::now() + self.send_idle;
        let sleep =
            self.stalled.get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        if !self.stalled_armed {
            sleep.as_mut().reset(deadline);
            self.stalled_armed = true;
        }
        match sleep.as_mut().poll(cx) {
            Poll::Ready(()) => {
                Poll::Ready(io::Error::new(io::ErrorKind::TimedOut, "the client stopped reading"))
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<S: AsyncWrite + Unpin> ConnIo<S> {
    /// Write what is left of our replacement page.
    fn drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while let Some(rest) = self.replacement.as_mut().filter(|r| !r.is_empty()) {
            match Pin::new(&mut self.inner).poll_write(cx, rest) {
                Poll::Ready(Ok(0)) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                Poll::Ready(Ok(n)) => {
                    rest.advance(n);
                    self.stalled_armed = false;
                }
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return self.stall(cx).map(Err),
            }
        }
        Poll::Ready(Ok(()))
    }

    /// An HTTP/2 connection: frames, never hyper's HTTP/1.1 automatic answers, so nothing is
    /// intercepted (only the send-idle bound applies).
    pub(in crate::local) fn h2(mut self) -> Self {
        self.intercepting = false;
        self
    }

    /// `buf` is one of hyper's automatic answers: remember our page instead.
    fn intercept(&mut self, buf: &[u8]) -> bool {
        if !self.intercepting {
            return false;
        }
        let Some(status) = automatic(buf) else { return false };
        self.replacement = Some(self.lb.raw_error_page(status, self.https));
        true
    }

    fn progress<T>(
        &mut self,
        polled: Poll<io::Result<T>>,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<T>> {
        match polled {
            Poll::Ready(r) => {
                self.stalled_armed = false;
                Poll::Ready(r)
            }
            Poll::Pending => self.stall(cx).map(Err),
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for ConnIo<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for ConnIo<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        ready!(this.drain(cx))?;
        if this.intercept(buf) {
            return Poll::Ready(Ok(buf.len()));
        }
        let polled = Pin::new(&mut this.inner).poll_write(cx, buf);
        this.progress(polled, cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        ready!(this.drain(cx))?;
        let mut nonempty = bufs.iter().filter(|b| !b.is_empty());
        if let (Some(first), None) = (nonempty.next(), nonempty.next()) {
            if this.intercept(first) {
                return Poll::Ready(Ok(first.len()));
            }
        }
        let polled = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        this.progress(polled, cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.drain(cx))?;
        let polled = Pin::new(&mut this.inner).poll_flush(cx);
        this.progress(polled, cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.drain(cx))?;
        let polled = Pin::new(&mut this.inner).poll_shutdown(cx);
        this.progress(polled, cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_hypers_bare_answers_are_recognised() {
        let bare = b"HTTP/1.1 400 Bad Request\r\nconnection: close\r\ncontent-length: 0\r\ndate: Mon, 30 Nov 2026 20:03:47 GMT\r\n\r\n";
        assert_eq!(automatic(bare), Some(400));
        let bare = b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-length: 0\r\n\r\n";
        assert_eq!(automatic(bare), Some(431));
        let app =
            b"HTTP/1.1 400 Bad Request\r\ncontent-type: text/html\r\ncontent-length: 0\r\n\r\n";
        assert_eq!(automatic(app), None);
        let with_body = b"HTTP/1.1 400 Bad Request\r\ncontent-length: 5\r\n\r\n";
        assert_eq!(automatic(with_body), None);
        assert_eq!(automatic(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n"), None);
    }
}
