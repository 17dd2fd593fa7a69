//! Outermost middleware: body limit, request timeout, error pages, security
//! headers and the access log — in one hand-written tower layer.
//!
//! One layer (instead of `from_fn` + tower-http timeout + limit, each with
//! its own boxing and body wrapper) keeps per-request overhead low:
//! * a declared `Content-Length` over the limit is refused with 413 before
//!   the handler runs; a streamed body is wrapped in `http_body_util::Limited`;
//! * the handler gets `request_timeout`, after which the client gets 504;
//! * any 4xx/5xx response (ours, axum's 405, the 413/504 above, the 500 of
//!   a caught panic) is rendered as our HTML page, or JSON when the client
//!   `Accept`s JSON;
//! * security headers go on every response — HSTS only when the request
//!   came in over HTTPS (`X-Forwarded-Proto: https` from the LB);
//! * one structured JSON log line per request with instance id, method,
//!   path, status and latency.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use axum::body::{Body, HttpBody};
use axum::extract::Request;
use axum::http::{header, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use tower::{Layer, Service};

use crate::error::{rerender, wants_json, ErrorInfo};
use crate::state::AppState;

/// The Content-Security-Policy sent with every response.
pub const CSP: &str =
    "default-src 'none'; style-src 'unsafe-inline'; img-src 'self'; frame-ancestors 'none'";
/// HSTS value sent on HTTPS requests.
pub const HSTS: &str = "max-age=31536000; includeSubDomains";

const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");

/// Whether the original request used HTTPS (as reported by the load balancer).
fn forwarded_https(req: &Request) -> bool {
    req.headers()
        .get(X_FORWARDED_PROTO)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(',').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("https"))
}

/// Add the security headers to `resp`.
pub fn apply_security_headers(resp: &mut Response, https: bool) {
    let h = resp.headers_mut();
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    if https {
        h.insert(header::STRICT_TRANSPORT_SECURITY, HeaderValue::from_static(HSTS));
    }
}

/// Layer installing [`Edge`].
#[derive(Debug, Clone)]
pub struct EdgeLayer {
    pub state: AppState,
}

impl<S> Layer<S> for EdgeLayer {
    type Service = Edge<S>;
    fn layer(&self, inner: S) -> Edge<S> {
        Edge { inner, state: self.state.clone() }
    }
}

/// See the module documentation.
#[derive(Debug, Clone)]
pub struct Edge<S> {
    inner: S,
    state: AppState,
}

impl<S> Service<Request> for Edge<S>
where
    S: Service<Request, Response = Response, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request) -> Self::Future {
        let started = Instant::now();
        let json = wants_json(req.headers());
        let https = forwarded_https(&req);
        // What the access log needs, taken only when it is written.
        let log = crate::logging::access_enabled();
        let method = req.method().clone();
        let path = if log { req.uri().path().to_owned() } else { String::new() };
        let http = self.state.http();
        let (limit, timeout) = (http.body_limit, http.request_timeout);
        let declared = req
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        // Take the service that was driven to readiness, leave a clone.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let state = log.then(|| self.state.clone());

        Box::pin(async move {
            let mut resp = if declared.is_some_and(|n| n > limit as u64) {
                StatusCode::PAYLOAD_TOO_LARGE.into_response()
            } else {
                let req = if req.body().size_hint().exact() == Some(0) {
                    req
                } else {
                    req.map(|b| Body::new(http_body_util::Limited::new(b, limit)))
                };
                match tokio::time::timeout(timeout, inner.call(req)).await {
                    Ok(Ok(resp)) => resp,
                    Ok(Err(never)) => match never {},
                    Err(_elapsed) => StatusCode::GATEWAY_TIMEOUT.into_response(),
                }
            };

            let status = resp.status();
            if status.is_client_error() || status.is_server_error() {
                // Our own errors are already HTML pages; re-render only when
                // the client wants JSON or the response came from elsewhere.
                if json || resp.extensions().get::<ErrorInfo>().is_none() {
                    resp = rerender(resp, json);
                }
            }
            apply_security_headers(&mut resp, https);

            if let Some(state) = state {
                let latency_ms = started.elapsed().as_micros() as f64 / 1000.0;
                crate::logging::access(
                    state.identity().map_or("-", |id| id.instance_id.as_str()),
                    method.as_str(),
                    &path,
                    status.as_u16(),
                    latency_ms,
                );
            }
            Ok(resp)
        })
    }
}
