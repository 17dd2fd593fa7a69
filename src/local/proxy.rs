//! The load balancer's request path, on hyper: the HTTP listener answers 301 to HTTPS (host kept,
//! port replaced, path and query kept); the HTTPS listener (tokio-rustls) forwards to the next
//! healthy instance in round-robin order with X-Forwarded-For/Proto/Host/Port, retries an
//! idempotent request once on another instance when the connection fails, marks the failed instance
//! suspect (passive detection), and answers our own 502/503/504 pages when no instance can.
use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{combinators::UnsyncBoxBody, BodyExt, Either, Full, Limited};
use hyper::body::{Body as _, Incoming};
use hyper::header::{self, HeaderMap, HeaderName, HeaderValue};
use hyper::http::request::Parts;
use hyper::{Method, Request, Response, StatusCode, Uri};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};

use super::accesslog::{AccessLog, Entry};
use super::pages::Pages;
use super::pool::{Pool, Target};
use super::upstream::{self, Returning, UpBody};
use super::workers::{self, Workers};

pub type Body = UnsyncBoxBody<Bytes, hyper::Error>;

/// Idempotent request bodies are buffered (so they can be sent twice) up to this size.
const MAX_BUFFERED_BODY: usize = 1 << 20;

/// The shared state of both listeners.
pub struct Lb {
    pub pool: Arc<Pool>,
    pages: Pages,
    log: AccessLog,
    https_port: u16,
    /// How long an instance may take to send response headers before the client gets our 504.
    timeout: Duration,
}

impl Lb {
    pub fn new(
        pool: Arc<Pool>,
        pages: Pages,
        log: AccessLog,
        https_port: u16,
        timeout: Duration,
    ) -> Self {
        Lb { pool, pages, log, https_port, timeout }
    }

    /// Serve HTTPS on `listener` until the task is aborted: connections are spread over one
    /// single-threaded worker per core (see `workers`).
    pub async fn serve_https(
        self: Arc<Self>,
        listener: TcpListener,
        tls: Arc<rustls::ServerConfig>,
    ) {
        let acceptor = tokio_rustls::TlsAcceptor::from(tls);
        let (lb, tls_acceptor) = (self.clone(), acceptor.clone());
        let workers = Workers::start(workers::count(), move |stream, peer| {
            lb.clone().serve_tls(stream, peer, tls_acceptor.clone())
        });
        let mut workers = match workers {
            Ok(w) => w,
            Err(e) => {
                tracing::error!("starting the load balancer's workers: {e}");
                return;
            }
        };
        loop {
            let Ok((stream, peer)) = listener.accept().await else { continue };
            let _ = stream.set_nodelay(true);
            if let Some((stream, peer)) = workers.dispatch(stream, peer) {
                tokio::spawn(self.clone().serve_tls(stream, peer, acceptor.clone()));
            }
        }
    }

    /// One HTTPS client connection: the TLS handshake, then HTTP/1.1 keep-alive requests.
    async fn serve_tls(
        self: Arc<Self>,
        stream: TcpStream,
        peer: SocketAddr,
        acceptor: tokio_rustls::TlsAcceptor,
    ) {
        let Ok(Ok(tls)) =
            tokio::time::timeout(Duration::from_secs(10), acceptor.accept(stream)).await
        else {
            return;
        };
        let service = hyper::service::service_fn(move |req| {
            let lb = self.clone();
            async move { Ok::<_, Infallible>(lb.forward(req, peer).await) }
        });
        let _ = hyper::server::conn::http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(Duration::from_secs(30))
            .serve_connection(TokioIo::new(tls), service)
            .await;
    }

    /// Serve the HTTP → HTTPS redirect on `listener` until the task is aborted.
    pub async fn serve_http(self: Arc<Self>, listener: TcpListener) {
        loop {
            let Ok((stream, peer)) = listener.accept().await else { continue };
            let lb = self.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                    let lb = lb.clone();
                    async move {
                        let started = Instant::now();
                        let resp = redirect(&req, lb.https_port);
                        let path = req.uri().path_and_query().map(|p| p.as_str()).unwrap_or("/");
                        lb.record(
                            &Seen { method: req.method(), path, peer, started },
                            resp.status(),
                            None,
                            false,
                        );
                        Ok::<_, Infallible>(resp)
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    }

    /// Forward one request to an instance (retrying idempotent ones once) or answer an error page.
    pub async fn forward(&self, req: Request<Incoming>, peer: SocketAddr) -> Response<Body> {
        let started = Instant::now();
        let (mut parts, body) = req.into_parts();
        let (method, uri) = (parts.method.clone(), parts.uri.clone());
        let seen = Seen {
            method: &method,
            path: uri.path_and_query().map(|p| p.as_str()).unwrap_or("/"),
            peer,
            started,
        };
        forwarded_headers(&mut parts.headers, peer.ip(), self.https_port);
        let idempotent = matches!(parts.method, Method::GET | Method::HEAD | Method::OPTIONS);

        let Some(first) = self.pool.pick(None) else {
            return self.error(&seen, StatusCode::SERVICE_UNAVAILABLE);
        };
        if !idempotent {
            let resp = self.send(&first, upstream_request(parts, Either::Right(body))).await;
            return self.finish(&seen, &first, resp, false);
        }
        let bytes = if body.is_end_stream() {
            Bytes::new()
        } else {
            match Limited::new(body, MAX_BUFFERED_BODY).collect().await {
                Ok(collected) => collected.to_bytes(),
                Err(_) => return self.error(&seen, StatusCode::PAYLOAD_TOO_LARGE),
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

    async fn send(
        &self,
        target: &Arc<Target>,
        req: Request<UpBody>,
    ) -> Result<Response<Returning>, Failure> {
        match tokio::time::timeout(self.timeout, upstream::send(target, req)).await {
            Ok(Ok(resp)) => Ok(resp),
            Ok(Err(upstream::Broken)) => {
                if target.mark_suspect() {
                    tracing::info!(instance = %target.id, "connection failed: instance marked suspect");
                }
                Err(Failure::Connection)
            }
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
            Err(Failure::Connection) => self.error(seen, StatusCode::BAD_GATEWAY),
            Err(Failure::Timeout) => self.error(seen, StatusCode::GATEWAY_TIMEOUT),
        }
    }

    fn error(&self, seen: &Seen<'_>, status: StatusCode) -> Response<Body> {
        self.record(seen, status, None, false);
        let page = self.pages.for_status(status.as_u16());
        let mut resp =
            Response::new(Full::new(page).map_err(|never| match never {}).boxed_unsync());
        *resp.status_mut() = status;
        let headers = resp.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        if status == StatusCode::SERVICE_UNAVAILABLE {
            headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        resp
    }

    fn record(
        &self,
        seen: &Seen<'_>,
        status: StatusCode,
        instance: Option<&Arc<Target>>,
        retried: bool,
    ) {
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
            micros: seen.started.elapsed().as_micros() as u64,
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
struct Seen<'a> {
    method: &'a Method,
    path: &'a str,
    peer: SocketAddr,
    started: Instant,
}

/// Why forwarding to one instance did not produce a response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Failure {
    /// Connecting or talking to it failed (refused, reset, closed): safe to retry if idempotent.
    Connection,
    /// No response headers within the timeout.
    Timeout,
}

const HOP_BY_HOP: [&str; 8] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "upgrade",
];

fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect();
    for name in named {
        headers.remove(name);
    }
    for name in HOP_BY_HOP {
        headers.remove(name);
    }
    headers.remove(header::TRANSFER_ENCODING);
}

/// Hop-by-hop headers out; X-Forwarded-For (appended), -Proto, -Host and -Port in.
pub fn forwarded_headers(headers: &mut HeaderMap, client: IpAddr, https_port: u16) {
    strip_hop_by_hop(headers);
    let xff = match headers.get("x-forwarded-for").and_then(|v| v.to_str().ok()) {
        Some(prev) => format!("{prev}, {client}"),
        None => client.to_string(),
    };
    if let Ok(v) = HeaderValue::from_str(&xff) {
        headers.insert("x-forwarded-for", v);
    }
    headers.insert("x-forwarded-proto", HeaderValue::from_static("https"));
    headers.insert("x-forwarded-port", HeaderValue::from(https_port));
    if let Some(host) = headers.get(header::HOST).cloned() {
        headers.insert("x-forwarded-host", host);
    }
}

/// The 301 answer of the HTTP listener: same host (port replaced), path and query, over HTTPS.
pub fn redirect<B>(req: &Request<B>, https_port: u16) -> Response<Body> {
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| req.uri().host())
        .unwrap_or("");
    let location =
        location(host, req.uri().path_and_query().map(|pq| pq.as_str()).unwrap_or("/"), https_port);
    let mut resp = Response::new(
        Full::new(Bytes::from_static(b"Moved to HTTPS\n"))
            .map_err(|never| match never {})
            .boxed_unsync(),
    );
    *resp.status_mut() = StatusCode::MOVED_PERMANENTLY;
    if let Ok(v) = HeaderValue::from_str(&location) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    resp
}

/// `https://HOST[:PORT]PATH` for a Host header value; a missing or odd host becomes 127.0.0.1.
pub fn location(host: &str, path_and_query: &str, https_port: u16) -> String {
    let name = if host.starts_with('[') {
        host.split_inclusive(']').next().unwrap_or(host)
    } else {
        match host.rsplit_once(':') {
            Some((name, port)) if port.parse::<u16>().is_ok() => name,
            _ => host,
        }
    };
    let valid =
        !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || "-.:[]".contains(c));
    let name = if valid { name } else { "127.0.0.1" };
    let port = if https_port == 443 { String::new() } else { format!(":{https_port}") };
    let path = if path_and_query.starts_with('/') { path_and_query } else { "/" };
    format!("https://{name}{port}{path}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn location_keeps_host_path_and_query_and_replaces_the_port() {
        assert_eq!(
            location("localhost:8080", "/a/b?x=1&y=2", 8443),
            "https://localhost:8443/a/b?x=1&y=2"
        );
        assert_eq!(location("example.com", "/", 443), "https://example.com/");
        assert_eq!(location("[::1]:8080", "/p", 8443), "https://[::1]:8443/p");
        assert_eq!(location("", "/p", 8443), "https://127.0.0.1:8443/p");
        assert_eq!(location("evil.com/x@y", "/p", 8443), "https://127.0.0.1:8443/p");
    }

    #[test]
    fn forwarded_headers_append_and_strip() {
        let mut h = HeaderMap::new();
        h.insert(header::HOST, HeaderValue::from_static("localhost:8443"));
        h.insert("x-forwarded-for", HeaderValue::from_static("10.0.0.1"));
        h.insert(header::CONNECTION, HeaderValue::from_static("keep-alive, x-secret-hop"));
        h.insert("x-secret-hop", HeaderValue::from_static("1"));
        forwarded_headers(&mut h, "127.0.0.1".parse().unwrap(), 8443);
        assert_eq!(h["x-forwarded-for"], "10.0.0.1, 127.0.0.1");
        assert_eq!(h["x-forwarded-proto"], "https");
        assert_eq!(h["x-forwarded-host"], "localhost:8443");
        assert_eq!(h["x-forwarded-port"], "8443");
        assert!(h.get("x-secret-hop").is_none() && h.get(header::CONNECTION).is_none());
    }
}
