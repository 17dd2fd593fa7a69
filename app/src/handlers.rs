//! Route handlers: the index page, liveness and readiness.
//!
//! * `GET /` reads the greeting from the database (through a short-lived
//!   cache, see [`crate::cache`]), counts the hit in memory (flushed
//!   periodically, see [`crate::hits`]) and answers HTML, or JSON for
//!   `Accept: application/json`.
//! * `GET /healthz` is liveness: it never touches the database, so a DB
//!   outage does not make the load balancer recycle healthy instances.
//! * `GET /readyz` is readiness: identity known, a DB round trip OK and
//!   migrations applied.

use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::{Html, IntoResponse, Response};
use axum::Json;
use serde::Serialize;

use crate::error::{wants_json, AppError};
use crate::state::AppState;

/// JSON shape of `GET /`.
#[derive(Debug, Serialize)]
pub struct IndexBody<'a> {
    pub instance_id: &'a str,
    pub availability_zone: &'a str,
    pub message: &'a str,
    pub hits: u64,
    pub db: &'static str,
}

/// `GET /`.
pub async fn index(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, AppError> {
    let Some(id) = state.identity() else {
        return Err(AppError::Unavailable("instance identity not known yet"));
    };
    if !state.is_db_ready() {
        return Err(AppError::Unavailable("database not ready yet"));
    }
    let message = state.message().await?;
    let hits = state.hits().record();
    let body = IndexBody {
        instance_id: &id.instance_id,
        availability_zone: &id.availability_zone,
        message: &message,
        hits,
        db: state.db().kind().as_str(),
    };
    let mut resp = if wants_json(&headers) {
        Json(body).into_response()
    } else {
        Html(render_index(&body, id.source.to_string().as_str())).into_response()
    };
    resp.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(resp)
}

fn render_index(b: &IndexBody<'_>, source: &str) -> String {
    format!(
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>orch app &middot; {id}</title>
<style>body{{margin:0;font:16px/1.5 system-ui,sans-serif;background:#f4f5f7;color:#1f2933;display:flex;justify-content:center}}
main{{max-width:40rem;margin:2rem 1rem;padding:2rem;background:#fff;border-radius:12px;box-shadow:0 2px 12px rgba(0,0,0,.08)}}
dt{{font-weight:600;margin-top:.75rem}}dd{{margin:0;font-family:ui-monospace,monospace}}</style></head>
<body><main><h1>Hello from {id}</h1>
<dl><dt>Instance</dt><dd id="instance-id">{id}</dd>
<dt>Availability zone</dt><dd id="availability-zone">{az}</dd>
<dt>Identity source</dt><dd>{source}</dd>
<dt>Message from the database ({db})</dt><dd id="message">{msg}</dd>
<dt>Hits served by this instance</dt><dd id="hits">{hits}</dd></dl></main></body></html>
"#,
        id = escape(b.instance_id),
        az = escape(b.availability_zone),
        source = escape(source),
        db = b.db,
        msg = escape(b.message),
        hits = b.hits,
    )
}

/// Minimal HTML escaping for text content.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// `GET /healthz`: liveness, no I/O.
pub async fn healthz() -> &'static str {
    "ok"
}

/// `GET /readyz`: identity known, the database answers (a refusal names its reason) and the
/// schema is applied.
pub async fn readyz(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, AppError> {
    if state.identity().is_none() {
        return Err(AppError::Unavailable("instance identity not known yet"));
    }
    state.db().ping().await?;
    if !state.is_db_ready() {
        return Err(AppError::Unavailable("database not ready yet"));
    }
    let db = state.db().kind().as_str();
    Ok(if wants_json(&headers) {
        Json(serde_json::json!({"status": "ready", "db": db})).into_response()
    } else {
        "ready".into_response()
    })
}

/// Fallback for unknown paths.
pub async fn not_found() -> AppError {
    AppError::NotFound
}

#[cfg(test)]
mod tests {
    #[test]
    fn escapes_markup() {
        assert_eq!(super::escape("<a href='x'>&</a>"), "&lt;a href=&#39;x&#39;&gt;&amp;&lt;/a&gt;");
    }
}
