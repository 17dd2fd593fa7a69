//! The load balancer's two listeners and what bounds them. Each accept loop first takes a slot of
//! its listener's connection cap (a semaphore; at the cap, new connections wait in the kernel's
//! backlog and cost no descriptor) and pauses after an accept error (EMFILE, ENFILE...) instead of
//! spinning. Every connection state is bounded in time: the TLS handshake, the request head and
//! keep-alive idle (hyper's `header_read_timeout`), the request body's progress (`clientbody`)
//! and a client that stops reading its response (`conn_io`). See `limits` for the values.
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use hyper::body::Incoming;
use hyper::header::HeaderValue;
use hyper::{Request, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::conn_io::ConnIo;
use super::headers;
use super::proxy::{Lb, Seen};
use super::workers::Workers;

/// A slot of a listener's connection cap, held as long as the connection lives.
type Slot = OwnedSemaphorePermit;

/// Accept connections on `listener` forever, at most `cap` at once, and hand each to `handle`.
async fn accept_loop<F>(listener: TcpListener, cap: usize, lb: &Lb, mut handle: F)
where
    F: FnMut(TcpStream, SocketAddr, Slot),
{
    let slots = Arc::new(Semaphore::new(cap));
    let mut last_warning: Option<Instant> = None;
    loop {
        let Ok(slot) = slots.clone().acquire_owned().await else { return };
        match listener.accept().await {
            Ok((stream, peer)) => {
                let _ = stream.set_nodelay(true);
                handle(stream, peer, slot);
            }
            Err(e) => {
                if last_warning.is_none_or(|t| t.elapsed().as_secs() >= 5) {
                    tracing::warn!(
                        "accept on {:?} failed: {e}; pausing {:?}",
                        listener.local_addr().ok(),
                        lb.limits.accept_backoff
                    );
                    last_warning = Some(Instant::now());
                }
                drop(slot);
                tokio::time::sleep(lb.limits.accept_backoff).await;
            }
        }
    }
}

impl Lb {
    /// Serve HTTPS on `listener` until the task is aborted: connections are spread over `workers`
    /// single-threaded workers (one per core by default, see [`count`](super::workers::count)).
    pub async fn serve_https(
        self: Arc<Self>,
        listener: TcpListener,
        tls: Arc<rustls::ServerConfig>,
        workers: usize,
    ) {
        let acceptor = tokio_rustls::TlsAcceptor::from(tls);
        let (lb, tls_acceptor) = (self.clone(), acceptor.clone());
        let workers = Workers::start(workers, move |stream, peer, slot| {
            lb.clone().serve_tls(stream, peer, tls_acceptor.clone(), slot)
        });
        let mut workers = match workers {
            Ok(w) => w,
            Err(e) => {
                tracing::error!("starting the load balancer's workers: {e}");
                return;
            }
        };
        let cap = self.limits.https_conns;
        accept_loop(listener, cap, &self.clone(), |stream, peer, slot| {
            if let Some((stream, peer, slot)) = workers.dispatch(stream, peer, slot) {
                tokio::spawn(self.clone().serve_tls(stream, peer, acceptor.clone(), slot));
            }
        })
        .await;
    }

    /// One HTTPS client connection: the TLS handshake, then HTTP/2 (ALPN `h2`) or HTTP/1.1
    /// keep-alive requests.
    async fn serve_tls(
        self: Arc<Self>,
        stream: TcpStream,
        peer: SocketAddr,
        acceptor: tokio_rustls::TlsAcceptor,
        _slot: Slot,
    ) {
        let Ok(Ok(tls)) =
            tokio::time::timeout(self.limits.tls_handshake, acceptor.accept(stream)).await
        else {
            return;
        };
        let h2 = tls.get_ref().1.alpn_protocol() == Some(b"h2");
        let io = ConnIo::new(tls, self.clone(), true);
        let head_timeout = io.head_timeout();
        // X-Forwarded-For, made once for all the requests of this connection.
        let Ok(client) = HeaderValue::try_from(peer.ip().to_string()) else { return };
        let lb = self.clone();
        let service = hyper::service::service_fn(move |req| {
            let (lb, client) = (lb.clone(), client.clone());
            async move { Ok::<_, Infallible>(lb.forward(req, peer, &client).await) }
        });
        if h2 {
            let _ = h2_builder(&self.limits).serve_connection(TokioIo::new(io.h2()), service).await;
            return;
        }
        let _ = hyper::server::conn::http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(head_timeout)
            .serve_connection(TokioIo::new(io), service)
            .await;
    }

    /// Serve the HTTP → HTTPS redirect on `listener` until the task is aborted.
    pub async fn serve_http(self: Arc<Self>, listener: TcpListener) {
        let cap = self.limits.http_conns;
        accept_loop(listener, cap, &self.clone(), |stream, peer, slot| {
            tokio::spawn(self.clone().serve_redirects(stream, peer, slot));
        })
        .await;
    }

    /// One HTTP client connection: every request answered 301 (400 without a proper Host).
    async fn serve_redirects(self: Arc<Self>, stream: TcpStream, peer: SocketAddr, _slot: Slot) {
        let io = ConnIo::new(stream, self.clone(), false);
        let head_timeout = io.head_timeout();
        let service = hyper::service::service_fn(move |req: Request<Incoming>| {
            let lb = self.clone();
            async move {
                let started = Instant::now();
                let path = req.uri().path_and_query().map(|p| p.as_str()).unwrap_or("/");
                let seen = Seen { method: req.method(), path, peer, started };
                let resp = if headers::host_ok(req.version(), req.headers()) {
                    let resp = headers::redirect(&req, lb.https_port);
                    lb.record(&seen, resp.status(), None, false);
                    resp
                } else {
                    lb.error_page(&seen, StatusCode::BAD_REQUEST, false)
                };
                Ok::<_, Infallible>(resp)
            }
        });
        let _ = hyper::server::conn::http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(head_timeout)
            .serve_connection(TokioIo::new(io), service)
            .await;
    }
}

/// HTTP/2 for clients, bounded as HTTP/1.1 is: at most 128 concurrent streams (what the ALB accepts),
/// a 64 KiB header list (as many bytes as the HTTP/1.1 head allows), windows of hyper's defaults so
/// a client that never reads holds little, and the rapid-reset guards: streams the client resets
/// before we accept them (CVE-2023-44487) and streams we reset for its errors are capped, beyond
/// which the connection ends with GOAWAY. A connection idle past `head` is pinged and dropped
/// when the ping goes unanswered.
fn h2_builder(
    limits: &super::limits::Limits,
) -> hyper::server::conn::http2::Builder<TokioExecutor> {
    let mut b = hyper::server::conn::http2::Builder::new(TokioExecutor::new());
    b.timer(TokioTimer::new())
        .max_concurrent_streams(128)
        .max_header_list_size(64 << 10)
        .max_pending_accept_reset_streams(Some(20))
        .max_local_error_reset_streams(Some(256))
        .keep_alive_interval(Some(limits.head))
        .keep_alive_timeout(limits.head);
    b
}
