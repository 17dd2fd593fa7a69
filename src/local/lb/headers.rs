//! Header work of the load balancer: hop-by-hop headers out (never `Host` or the framing headers,
//! whatever `Connection` names), the client's forwarding headers (`Forwarded`, `X-Real-IP`,
//! `X-Forwarded-*`) replaced by ours, the request's `Host` checked (RFC 9112 §3.2: an HTTP/1.1 request without one, or any request with more than
//! one, is answered 400), the security headers of the responses it generates itself (HSTS on
//! HTTPS, `nosniff` everywhere) and the HTTP listener's 301 to HTTPS.
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::header::{self, HeaderMap, HeaderName, HeaderValue};
use hyper::{Request, Response, StatusCode, Version};

use super::proxy::Body;

/// `Strict-Transport-Security` of HTTPS answers: one year, like ALB's and HAProxy's usual setting.
const HSTS: HeaderValue = HeaderValue::from_static("max-age=31536000");

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

/// Does the request carry exactly the `Host` headers RFC 9112 §3.2 requires (one; none only
/// before HTTP/1.1)?
pub fn host_ok(version: Version, headers: &HeaderMap) -> bool {
    match headers.get_all(header::HOST).iter().count() {
        1 => true,
        0 => version < Version::HTTP_11,
        _ => false,
    }
}

/// `nosniff` on every generated answer, and HSTS on those sent over HTTPS.
pub fn security(headers: &mut HeaderMap, https: bool) {
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    if https {
        headers.insert(header::STRICT_TRANSPORT_SECURITY, HSTS);
    }
}

/// Headers a `Connection` header may not remove: the request's validated `Host` and the message
/// framing (RFC 9110 §7.6.1 lists what `Connection` may name; these are end-to-end).
const KEPT: [HeaderName; 3] = [header::HOST, header::CONTENT_LENGTH, header::TRANSFER_ENCODING];

/// Hop-by-hop headers out: the fixed list and whatever `Connection` names, except [`KEPT`].
pub fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .filter(|name| !KEPT.contains(name))
        .collect();
    for name in named {
        headers.remove(name);
    }
    for name in HOP_BY_HOP {
        headers.remove(name);
    }
    headers.remove(header::TRANSFER_ENCODING);
}

/// What the load balancer says about a request: the client's address (`X-Forwarded-For`, made once
/// per connection) and the listener's port (`X-Forwarded-Port`, made once).
pub struct Forwarding<'a> {
    pub client: &'a HeaderValue,
    pub port: &'a HeaderValue,
}

/// Is `name` a forwarding header a client could forge (`Forwarded`, `X-Real-IP`, `X-Forwarded-*`)?
fn forged(name: &HeaderName) -> bool {
    let name = name.as_str();
    name == "forwarded" || name == "x-real-ip" || name.starts_with("x-forwarded-")
}

/// Hop-by-hop headers out; the client's forwarding headers out and ours in: X-Forwarded-For (the
/// client's address only: this is the edge), -Proto, -Host (the validated Host) and -Port.
pub fn forwarded_headers(headers: &mut HeaderMap, ours: &Forwarding<'_>) {
    strip_hop_by_hop(headers);
    // Rare: a loop that finds nothing allocates nothing.
    while let Some(name) = headers.keys().find(|k| forged(k)).cloned() {
        headers.remove(name);
    }
    headers.insert("x-forwarded-for", ours.client.clone());
    headers.insert("x-forwarded-proto", HeaderValue::from_static("https"));
    headers.insert("x-forwarded-port", ours.port.clone());
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
    security(resp.headers_mut(), false);
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

    fn forward(h: &mut HeaderMap) {
        let (client, port) = (HeaderValue::from_static("127.0.0.1"), HeaderValue::from(8443u16));
        forwarded_headers(h, &Forwarding { client: &client, port: &port });
    }

    #[test]
    fn forwarded_headers_replace_the_clients_and_strip() {
        let mut h = HeaderMap::new();
        h.insert(header::HOST, HeaderValue::from_static("localhost:8443"));
        h.insert("x-forwarded-for", HeaderValue::from_static("10.0.0.1"));
        h.insert("x-forwarded-host", HeaderValue::from_static("evil.example"));
        h.append("x-forwarded-host", HeaderValue::from_static("evil2.example"));
        h.insert("x-forwarded-server", HeaderValue::from_static("evil"));
        h.insert("x-forwarded-proto", HeaderValue::from_static("http"));
        h.insert("forwarded", HeaderValue::from_static("for=10.0.0.2;host=evil"));
        h.insert("x-real-ip", HeaderValue::from_static("10.0.0.3"));
        h.insert(header::CONNECTION, HeaderValue::from_static("keep-alive, x-secret-hop"));
        h.insert("x-secret-hop", HeaderValue::from_static("1"));
        forward(&mut h);
        assert_eq!(h["x-forwarded-for"], "127.0.0.1");
        assert_eq!(h["x-forwarded-proto"], "https");
        assert_eq!(h.get_all("x-forwarded-host").iter().collect::<Vec<_>>(), ["localhost:8443"]);
        assert_eq!(h["x-forwarded-port"], "8443");
        for gone in ["x-secret-hop", "connection", "forwarded", "x-real-ip", "x-forwarded-server"] {
            assert!(h.get(gone).is_none(), "{gone} passed");
        }
    }

    #[test]
    fn connection_never_removes_host_or_framing() {
        let mut h = HeaderMap::new();
        h.insert(header::HOST, HeaderValue::from_static("localhost:8443"));
        h.insert(header::CONTENT_LENGTH, HeaderValue::from_static("5"));
        h.insert(
            header::CONNECTION,
            HeaderValue::from_static("host, Content-Length, x-forwarded-host"),
        );
        h.insert("x-forwarded-host", HeaderValue::from_static("evil.example"));
        forward(&mut h);
        assert_eq!(h[header::HOST], "localhost:8443");
        assert_eq!(h[header::CONTENT_LENGTH], "5");
        assert_eq!(h["x-forwarded-host"], "localhost:8443");
        // Transfer-Encoding goes anyway: the client connection's framing is hyper's to redo.
        let mut h = HeaderMap::new();
        h.insert(header::TRANSFER_ENCODING, HeaderValue::from_static("chunked"));
        h.insert(header::CONNECTION, HeaderValue::from_static("transfer-encoding"));
        strip_hop_by_hop(&mut h);
        assert!(h.is_empty());
    }

    #[test]
    fn exactly_one_host_on_http11() {
        let mut h = HeaderMap::new();
        assert!(!host_ok(Version::HTTP_11, &h));
        assert!(host_ok(Version::HTTP_10, &h));
        h.append(header::HOST, HeaderValue::from_static("a"));
        assert!(host_ok(Version::HTTP_11, &h));
        h.append(header::HOST, HeaderValue::from_static("b"));
        assert!(!host_ok(Version::HTTP_11, &h) && !host_ok(Version::HTTP_10, &h));
    }
}
