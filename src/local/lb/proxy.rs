//! The load balancer's request path, on hyper: forward to the next healthy instance in round-robin
//! order with our X-Forwarded-For/Proto/Host/Port (the client's own dropped), answer a body over
//! its limit 413 (a declared one before reading it), retry an idempotent request once on another
//! instance when the connection fails, mark the failed instance suspect (passive detection) — only
//! for a failure of the upstream connection itself, never for the client's (bad framing, hang-up,
//! slow body) — and answer our own page (400, 408, 413, 502, 503, 504) with the security headers
//! when no instance can. Buffered bodies draw on one byte budget of all connections (`budget`).
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{combinators::UnsyncBoxBody, BodyExt, Either, Full};
use hyper::body::{Body as _, Incoming};
use hyper::header::{self, HeaderValue};
use hyper::http::request::Parts;
use hyper::{Method, Request, Response, StatusCode, Uri, Version};

use super::accesslog::{AccessLog, Entry};
use super::budget::{collect, Budget, Lease, Unbuffered};
use super::clientbody::{ClientBody, ClientBodyError};
use super::headers::{forwarded_headers, host_ok, security, strip_hop_by_hop, Forwarding};
use super::limits::Limits;
use super::pages::Pages;
use super::pool::{Pool, Target};
use super::upstream::{self, ResponseError, Returning, SendError, UpBody};

pub type Body = UnsyncBoxBody<Bytes, ResponseError>;

/// Idempotent request bodies are buffered (so they can be sent twice) up to this size.
const MAX_BUFFERED_BODY: usize = 1 << 20;

/// The shared state of both listeners.
pub struct Lb {
    pub pool: Arc<Pool>,
    pages: Pages,
    log: AccessLog,
    pub(in crate::local) https_port: u16,
    /// `X-Forwarded-Port`, made once.
    port_header: HeaderValue,
    /// Shared by the buffered bodies of all connections.
    budget: Budget,
    /// How long an instance may take to send response headers before the client gets our 504.
    timeout: Duration,
    pub(in crate::local) limits: Limits,
}

impl Lb {
    pub fn new(
        pool: Arc<Pool>,
        pages: Pages,
        log: AccessLog,
        https_port: u16,
        timeout: Duration,
        limits: Limits,
    ) -> Self {
        let port_header = HeaderValue::from(https_port);
        let budget = Budget::new(limits.buffer_budget);
        Lb { pool, pages, log, https_port, port_header, budget, timeout, limits }
    }

    /// Bytes of request bodies buffered now, over all connections (of `limits.buffer_budget`).
    pub(in crate::local) fn buffered_bytes(&self) -> usize {
        self.budget.held(self.limits.buffer_budget)
    }

    /// Forward one request to an instance (retrying idempotent ones once) or answer an error page.
    /// `client` is the peer's address as the `X-Forwarded-For` value (made once per connection).
    pub async fn forward(
        &self,
        req: Request<Incoming>,
        peer: SocketAddr,
        client: &HeaderValue,
    ) -> Response<Body> {
        let started = Instant::now();
        let (mut parts, body) = req.into_parts();
        let (method, uri) = (parts.method.clone(), parts.uri.clone());
        let seen = Seen {
            method: &method,
            path: uri.path_and_query().map(|p| p.as_str()).unwrap_or("/"),
            peer,
            started,
        };
        if parts.version == Version::HTTP_2 {
            // `:authority` stands for Host on HTTP/2 (RFC 9113 §8.3.1); the instances speak
            // HTTP/1.1, so the request they get carries it as its one Host header.
            if let Some(host) =
                parts.uri.authority().and_then(|a| HeaderValue::from_str(a.as_str()).ok())
            {
                parts.headers.insert(header::HOST, host);
            }
        }
        if !host_ok(parts.version, &parts.headers) {
            return self.error(&seen, StatusCode::BAD_REQUEST);
        }
        forwarded_headers(&mut parts.headers, &Forwarding { client, port: &self.port_header });
        let idempotent = matches!(parts.method, Method::GET | Method::HEAD | Method::OPTIONS);
        let limit = if idempotent { MAX_BUFFERED_BODY as u64 } else { self.limits.max_body };
        let body = ClientBody::new(body, self.limits.body_idle, limit);
        if body.declared_too_large() {
            return self.error(&seen, StatusCode::PAYLOAD_TOO_LARGE);
        }

        self.pool.count_request();
        let Some(first) = self.pool.pick(None) else {
            return self.error(&seen, StatusCode::SERVICE_UNAVAILABLE);
        };
        if !idempotent {
            let resp = self.send(&first, upstream_request(parts, Either::Right(body))).await;
            return self.finish(&seen, &first, resp, false);
        }
        let mut lease = self.budget.lease();
        let bytes = match self.buffer(body, &mut lease).await {
            Ok(bytes) => bytes,
            Err(status) => {
                let mut resp = self.error(&seen, status);
                // The body is half read: an HTTP/1.1 connection can carry no other request (an
                // HTTP/2 stream ends by itself; the header is not allowed there).
                if parts.version != Version::HTTP_2 {
                    resp.headers_mut()
                        .insert(header::CONNECTION, HeaderValue::from_static("close"));
                }
                return resp;
            }
        };
        let attempt = upstream_request(copy_head(&parts), Either::Left(Full::new(bytes.clone())));
        match self.send(&first, attempt).await {
            Err(Failure::Connection) => match self.pool.pick(Some(&first.id)) {
                Some(second) => {
                    let resp = self
                        .send(&second, upstream_request(parts, Either::Left(Full::new(bytes))))
                        .await;
                    self.finish(&seen, &second, resp, true)
                }
                None => self.error(&seen, StatusCode::BAD_GATEWAY),
            },
            other => self.finish(&seen, &first, other, false),
        }
    }

    /// Read an idempotent request's whole body (to send it twice if need be), within the body
    /// limits and the shared budget; the status to answer when the client's body is too large,
    /// malformed or too slow (4xx), or the budget is spent (503).
    async fn buffer(&self, body: ClientBody, lease: &mut Lease<'_>) -> Result<Bytes, StatusCode> {
        if body.is_end_stream() {
            return Ok(Bytes::new());
        }
        match tokio::time::timeout(self.limits.body_buffered, collect(body, lease)).await {
            Ok(Ok(bytes)) => Ok(bytes),
            Ok(Err(Unbuffered::Client(e))) => Err(e.status()),
            Ok(Err(Unbuffered::Budget)) => {
                tracing::debug!("request bodies hold the whole buffer budget: answering 503");
                Err(StatusCode::SERVICE_UNAVAILABLE)
            }
            Err(_) => Err(StatusCode::REQUEST_TIMEOUT),
        }
    }

    async fn send(
        &self,
        target: &Arc<Target>,
        req: Request<UpBody>,
    ) -> Result<Response<Returning>, Failure> {
        let sent = upstream::send(target, req, self.limits.response_idle);
        match tokio::time::timeout(self.timeout, sent).await {
            Ok(Ok(resp)) => Ok(resp),
            Ok(Err(SendError::Broken)) => {
                if target.mark_suspect() {
                    tracing::info!(instance = %target.id, "connection failed: instance marked suspect");
                }
                Err(Failure::Connection)
            }
            Ok(Err(SendError::Client(why))) => Err(Failure::Client(why)),
            Ok(Err(SendError::Exhausted)) => Err(Failure::Exhausted),
            Err(_) => Err(Failure::Timeout),
        }
    }

    fn finish(
        &self,
        seen: &Seen<'_>,
        target: &Arc<Target>,
        resp: Result<Response<Returning>, Failure>,
        retried: bool,
    ) -> Response<Body> {
        match resp {
            Ok(resp) => {
                let (mut parts, body) = resp.into_parts();
                strip_hop_by_hop(&mut parts.headers);
                self.record(seen, parts.status, Some(target), retried);
                Response::from_parts(parts, body.boxed_unsync())
            }
            // The instance's failure to answer counts against its release (a canary's split);
            // the client's own failures and ours do not.
            Err(Failure::Connection) => {
                self.pool.observe(target, 502, seen.started.elapsed().as_micros() as u64);
                self.error(seen, StatusCode::BAD_GATEWAY)
            }
            Err(Failure::Timeout) => {
                self.pool.observe(target, 504, seen.started.elapsed().as_micros() as u64);
                self.error(seen, StatusCode::GATEWAY_TIMEOUT)
            }
            Err(Failure::Client(why)) => self.error(seen, why.status()),
            Err(Failure::Exhausted) => self.error(seen, StatusCode::SERVICE_UNAVAILABLE),
        }
    }

    /// Our page for `status` on the HTTPS listener.
    fn error(&self, seen: &Seen<'_>, status: StatusCode) -> Response<Body> {
        self.error_page(seen, status, true)
    }

    /// Our page for `status`, with the security headers (HSTS when `https`), logged.
    pub(in crate::local) fn error_page(
        &self,
        seen: &Seen<'_>,
        status: StatusCode,
        https: bool,
    ) -> Response<Body> {
        self.record(seen, status, None, false);
        let page = self.pages.for_status(status.as_u16());
        let mut resp =
            Response::new(Full::new(page).map_err(|never| match never {}).boxed_unsync());
        *resp.status_mut() = status;
        let headers = resp.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        security(headers, https);
        match status {
            StatusCode::SERVICE_UNAVAILABLE => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            }
            s if s.is_client_error() => {
                // The client's request may be half read: do not read another from this connection.
                headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
            }
            _ => {}
        }
        resp
    }

    /// Our page for `status` as a whole HTTP/1.1 response closing the connection (what replaces
    /// hyper's own bare answer to a head it cannot parse, see `conn_io`).
    pub(in crate::local) fn raw_error_page(&self, status: u16, https: bool) -> Bytes {
        let page = self.pages.for_status(status);
        let reason =
            StatusCode::from_u16(status).ok().and_then(|s| s.canonical_reason()).unwrap_or("Error");
        let hsts = if https { "strict-transport-security: max-age=31536000\r\n" } else { "" };
        let head = format!(
            "HTTP/1.1 {status} {reason}\r\ncontent-type: text/html; charset=utf-8\r\n\
             content-length: {}\r\ncache-control: no-store\r\nx-content-type-options: nosniff\r\n\
             {hsts}connection: close\r\n\r\n",
            page.len()
        );
        let mut raw = Vec::with_capacity(head.len() + page.len());
        raw.extend_from_slice(head.as_bytes());
        raw.extend_from_slice(&page);
        Bytes::from(raw)
    }

    pub(in crate::local) fn record(
        &self,
        seen: &Seen<'_>,
        status: StatusCode,
        instance: Option<&Arc<Target>>,
        retried: bool,
    ) {
        let micros = seen.started.elapsed().as_micros() as u64;
        if let Some(target) = instance {
            self.pool.observe(target, status.as_u16(), micros);
        }
        if !self.log.enabled() {
            return;
        }
        self.log.log(Entry {
            at: std::time::SystemTime::now(),
            client: seen.peer.ip(),
            method: seen.method.clone(),
            path: seen.path.to_string(),
            status: status.as_u16(),
            instance: instance.cloned(),
            retried,
            micros,
        });
    }
}

/// The request to send upstream: the client's head (hop-by-hop headers already out, X-Forwarded-*
/// in) with the URI in origin form, over HTTP/1.1.
fn upstream_request(parts: Parts, body: UpBody) -> Request<UpBody> {
    let mut req = Request::new(body);
    *req.method_mut() = parts.method;
    *req.uri_mut() = if parts.uri.scheme().is_some() || parts.uri.authority().is_some() {
        let path = parts.uri.path_and_query().map(|pq| pq.as_str()).unwrap_or("/");
        Uri::try_from(path).unwrap_or_else(|_| Uri::from_static("/"))
    } else {
        parts.uri
    };
    *req.headers_mut() = parts.headers;
    req
}

/// A copy of the parts of a request head the upstream request needs (kept for the retry).
fn copy_head(parts: &Parts) -> Parts {
    let mut copy = Request::new(()).into_parts().0;
    copy.method = parts.method.clone();
    copy.uri = parts.uri.clone();
    copy.headers = parts.headers.clone();
    copy
}

/// What the access log needs to know about a request.
pub(in crate::local) struct Seen<'a> {
    pub method: &'a Method,
    pub path: &'a str,
    pub peer: SocketAddr,
    pub started: Instant,
}

/// Why forwarding to one instance did not produce a response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Failure {
    /// Connecting or talking to it failed (refused, reset, closed): safe to retry if idempotent.
    Connection,
    /// No response headers within the timeout.
    Timeout,
    /// The client's body failed: the client's fault, the instance's health is untouched.
    Client(ClientBodyError),
    /// This process is out of descriptors: no instance is to blame.
    Exhausted,
}
