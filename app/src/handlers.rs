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

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::{Html, IntoResponse, Response};
use axum::Json;
use serde::Serialize;

use crate::error::{wants_json, AppError};
use crate::index_page::PageValues;
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

/// `GET /`. The request is taken whole (its headers are read, not copied).
pub async fn index(State(state): State<AppState>, req: Request) -> Result<Response, AppError> {
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
    let message = message.text();
    let hits = state.hits().record();
    let db = state.db().kind().as_str();
    let mut resp = if wants_json(req.headers()) {
        let (instance_id, availability_zone) = (&*id.instance_id, &*id.availability_zone);
        Json(IndexBody { instance_id, availability_zone, message, hits, db }).into_response()
    } else {
        let values = PageValues {
            instance_id: &id.instance_id,
            availability_zone: &id.availability_zone,
            source: &id.source,
            message,
            db,
        };
        Html(state.index_pages().page(&values, message, hits)?).into_response()
    };
    // Room for the edge's security headers too: one allocation, not a second to grow into.
    resp.headers_mut().reserve(8);
    resp.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(resp)
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
