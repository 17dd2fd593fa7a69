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

use askama::Template;
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
    if state.faults().apply().await {
        return Err(AppError::Internal("injected fault (FAULT_ERROR_PERCENT)".into()));
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
        Html(render_index(&body, &id.source)?).into_response()
    };
    resp.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(resp)
}

/// The index page: `app/templates/index.html`, every value HTML-escaped by askama.
#[derive(Template)]
#[template(path = "index.html")]
struct IndexPage<'a> {
    body: &'a IndexBody<'a>,
    source: &'a dyn std::fmt::Display,
}

fn render_index(body: &IndexBody<'_>, source: &dyn std::fmt::Display) -> Result<String, AppError> {
    IndexPage { body, source }.render().map_err(|e| AppError::Internal(e.to_string()))
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
    use super::*;

    #[test]
    fn escapes_markup() {
        let body = IndexBody {
            instance_id: "i-0abc",
            availability_zone: "zone-a",
            message: "<a href='x'>&</a>",
            hits: 1,
            db: "sqlite",
        };
        let html = render_index(&body, &"imds").unwrap();
        assert!(!html.contains("<a href"), "{html}");
        assert!(
            html.contains(r#"<dd id="message">&#60;a href=&#39;x&#39;&#62;&#38;&#60;/a&#62;</dd>"#),
            "{html}"
        );
        assert!(html.contains("<title>orch app &middot; i-0abc</title>"), "{html}");
    }
}
