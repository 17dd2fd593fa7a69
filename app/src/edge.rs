//! The middleware around the whole router: body limit, request timeout, panic catching, error
//! pages, security headers and the access log — in one hand-written tower service.
//!
//! One service around the router (instead of `from_fn` + tower-http timeout, limit and
//! catch-panic layers, each with its own boxing and body wrapper, and instead of axum's
//! `Router::layer`, which wraps — and boxes, per request — every route on its own) keeps the
//! per-request overhead low:
//! * a declared `Content-Length` over the limit is refused with 413 before
//!   the handler runs; a streamed body is wrapped in `http_body_util::Limited`;
//! * the handler gets `request_timeout`, after which the client gets 504;
//! * a panic in the router or a handler is caught and answered 500 (the payload is not shown);
//! * any 4xx/5xx response (ours, axum's 405, the 413/504 above, the 500 of
//!   a caught panic) is rendered as our HTML page, or JSON when the client
//!   `Accept`s JSON;
//! * security headers go on every response — HSTS only when the request
//!   came in over HTTPS (`X-Forwarded-Proto: https` from the LB);
//! * one structured JSON log line per request with instance id, method,
//!   path, status and latency (queued here, formatted by the log writer).

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use std::panic::AssertUnwindSafe;

use axum::body::{Body, Bytes, HttpBody};
use axum::extract::Request;
use axum::http::{header, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use futures_util::FutureExt;
use tower::Service;

use crate::error::{rerender, wants_json, ErrorInfo};
use crate::state::AppState;

/// The Content-Security-Policy sent with every response.
pub const CSP: &str =
    "default-src 'none'; style-src 'unsafe-inline'; img-src 'self'; frame-ancestors 'none'";
/// HSTS value sent on HTTPS requests.
pub const HSTS: &str = "max-age=31536000; includeSubDomains";

const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");

/// Whether the original request used HTTPS (as reported by the load balancer).
fn forwarded_https<B>(req: &axum::http::Request<B>) -> bool {
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

/// See the module documentation.
#[derive(Debug, Clone)]
pub struct Edge<S> {
    inner: S,
    state: AppState,
}

impl<S> Edge<S> {
    /// `inner` (the router) behind the edge.
    pub fn new(inner: S, state: AppState) -> Self {
        Self { inner, state }
    }
}

impl<S, B> Service<axum::http::Request<B>> for Edge<S>
where
    S: Service<Request, Response = Response, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
    B: HttpBody<Data = Bytes> + Send + 'static,
    B::Error: Into<axum::BoxError>,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: axum::http::Request<B>) -> Self::Future {
        let started = Instant::now();
        let json = wants_json(req.headers());
        let https = forwarded_https(&req);
        // What the access log needs, taken only when it is written.
        let log = crate::logging::access_enabled();
        let logged = log.then(|| (req.method().clone(), Box::<str>::from(req.uri().path())));
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
        let instance = log.then(|| self.state.instance_name());

        Box::pin(async move {
            let mut resp = if declared.is_some_and(|n| n > limit as u64) {
                StatusCode::PAYLOAD_TOO_LARGE.into_response()
            } else {
                let req = if req.body().size_hint().exact() == Some(0) {
                    req.map(Body::new)
                } else {
                    req.map(|b| Body::new(http_body_util::Limited::new(b, limit)))
                };
                // A panic while routing or in the handler's future: 500, not a dropped connection.
                let call = std::panic::catch_unwind(AssertUnwindSafe(|| inner.call(req)));
                let handled = async move {
                    match call {
                        Ok(fut) => AssertUnwindSafe(fut).catch_unwind().await,
                        Err(panic) => Err(panic),
                    }
                };
                match tokio::time::timeout(timeout, handled).await {
                    Ok(Ok(Ok(resp))) => resp,
                    Ok(Ok(Err(never))) => match never {},
                    Ok(Err(panic)) => crate::error::panic_response(panic),
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

            if let (Some((method, path)), Some(instance)) = (logged, instance) {
                crate::logging::access(crate::logging::Access {
                    at: std::time::SystemTime::now(),
                    instance,
                    method,
                    path,
                    status: status.as_u16(),
                    latency: started.elapsed(),
                });
            }
            Ok(resp)
        })
    }
}
