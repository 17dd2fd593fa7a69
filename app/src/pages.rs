//! Custom error pages, embedded at compile time from `app/pages/*.html`.
//!
//! Every error the app answers with (unknown path, wrong method, database
//! down, timeout, caught panic, oversized body) is rendered from one of these
//! self-contained pages (inline CSS, no external resources, so they satisfy
//! the strict Content-Security-Policy). The orch load balancer crate embeds
//! the same files by path (`app/pages/*.html`), and `404-alb.html` is small
//! enough (≤ 1024 bytes) to be an AWS ALB fixed-response body.

/// 404 page served by the app itself.
pub const NOT_FOUND: &str = include_str!("../pages/404.html");
/// 405 page (path exists, method does not).
pub const METHOD_NOT_ALLOWED: &str = include_str!("../pages/405.html");
/// 408 page (request did not arrive in time).
pub const REQUEST_TIMEOUT: &str = include_str!("../pages/408.html");
/// 413 page (request body over the limit).
pub const PAYLOAD_TOO_LARGE: &str = include_str!("../pages/413.html");
/// 500 page (caught panic, unexpected error).
pub const INTERNAL_SERVER_ERROR: &str = include_str!("../pages/500.html");
/// 502 page (for the load balancer: bad answer from a target).
pub const BAD_GATEWAY: &str = include_str!("../pages/502.html");
/// 503 page (database unavailable, not ready).
pub const SERVICE_UNAVAILABLE: &str = include_str!("../pages/503.html");
/// 504 page (request took longer than the request timeout).
pub const GATEWAY_TIMEOUT: &str = include_str!("../pages/504.html");
/// Compact 404 page for an ALB fixed-response action (≤ 1024 bytes).
pub const ALB_NOT_FOUND: &str = include_str!("../pages/404-alb.html");

/// Maximum body size AWS accepts for an ALB fixed-response action.
pub const ALB_FIXED_RESPONSE_MAX_BYTES: usize = 1024;

/// Marker present in every page, handy for tests and probes.
pub const MARKER: &str = "orch-app-error-page";

/// The HTML page for `status`, if we have one.
pub fn page(status: u16) -> Option<&'static str> {
    Some(match status {
        404 => NOT_FOUND,
        405 => METHOD_NOT_ALLOWED,
        408 => REQUEST_TIMEOUT,
        413 => PAYLOAD_TOO_LARGE,
        500 => INTERNAL_SERVER_ERROR,
        502 => BAD_GATEWAY,
        503 => SERVICE_UNAVAILABLE,
        504 => GATEWAY_TIMEOUT,
        _ => return None,
    })
}

/// The page for `status`, falling back to the generic 500 page for 5xx codes
/// and the 404 page for other 4xx codes we have no dedicated page for.
pub fn page_or_generic(status: u16) -> &'static str {
    page(status).unwrap_or(if status >= 500 { INTERNAL_SERVER_ERROR } else { NOT_FOUND })
}

/// All pages as `(file name, contents)`, e.g. for the load balancer to serve.
pub fn all() -> [(&'static str, &'static str); 9] {
    [
        ("404.html", NOT_FOUND),
        ("405.html", METHOD_NOT_ALLOWED),
        ("408.html", REQUEST_TIMEOUT),
        ("413.html", PAYLOAD_TOO_LARGE),
        ("500.html", INTERNAL_SERVER_ERROR),
        ("502.html", BAD_GATEWAY),
        ("503.html", SERVICE_UNAVAILABLE),
        ("504.html", GATEWAY_TIMEOUT),
        ("404-alb.html", ALB_NOT_FOUND),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alb_page_fits_fixed_response_limit() {
        assert!(
            ALB_NOT_FOUND.len() <= ALB_FIXED_RESPONSE_MAX_BYTES,
            "404-alb.html is {} bytes, ALB allows {}",
            ALB_NOT_FOUND.len(),
            ALB_FIXED_RESPONSE_MAX_BYTES
        );
    }

    #[test]
    fn pages_are_self_contained_and_marked() {
        for (name, html) in all() {
            assert!(html.contains(MARKER), "{name} lacks marker");
            for bad in ["http://", "https://", "<script", "<link", "src=\"", "@import"] {
                assert!(!html.contains(bad), "{name} references external resource: {bad}");
            }
        }
    }

    #[test]
    fn lookup_by_status() {
        assert!(page(404).unwrap().contains("data-status=\"404\""));
        assert!(page(503).unwrap().contains("data-status=\"503\""));
        assert!(page(418).is_none());
        assert!(page_or_generic(599).contains("data-status=\"500\""));
    }
}
