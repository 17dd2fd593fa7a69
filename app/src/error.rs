//! The single error type of the app and the error-page renderer.
//!
//! `AppError` implements `IntoResponse` by rendering our embedded HTML page
//! for its status. It also attaches an [`ErrorInfo`] extension so the edge
//! middleware can re-render the same error as JSON when the client asked for
//! `Accept: application/json`. Responses produced by the framework or by
//! tower layers (405, 413, 504, ...) carry no `ErrorInfo`; the edge
//! middleware renders those from the status code alone.

use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::pages;

/// Every error the app's own handlers can return.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// No route for the path.
    #[error("no such page")]
    NotFound,
    /// The database is unreachable or failed.
    #[error("database unavailable: {0}")]
    Database(#[from] sqlx::Error),
    /// Not ready yet (e.g. migrations pending).
    #[error("service unavailable: {0}")]
    Unavailable(&'static str),
    /// Anything unexpected, including caught panics.
    #[error("internal error: {0}")]
    Internal(String),
}

/// Attached to error responses so they can be re-rendered per `Accept`.
#[derive(Debug, Clone)]
pub struct ErrorInfo {
    /// Client-safe one-line explanation.
    pub detail: &'static str,
}

impl AppError {
    pub fn status(&self) -> StatusCode {
        match self {
            AppError::NotFound => StatusCode::NOT_FOUND,
            AppError::Database(_) | AppError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            AppError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// What the client is told (internals stay in the logs).
    pub fn detail(&self) -> &'static str {
        match self {
            AppError::NotFound => "no such page",
            AppError::Database(e) if crate::secret::is_auth_error(e) => {
                "database refused the credentials (SQLSTATE 28P01)"
            }
            AppError::Database(sqlx::Error::Configuration(_)) => "database credentials unavailable",
            AppError::Database(_) => "database unavailable",
            AppError::Unavailable(d) => d,
            AppError::Internal(_) => "internal server error",
        }
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let status = self.status();
        if status.is_server_error() {
            tracing::warn!(status = status.as_u16(), error = %self, "request failed");
        }
        let detail = self.detail();
        let mut resp = render(status, Some(detail), false);
        resp.extensions_mut().insert(ErrorInfo { detail });
        resp
    }
}

/// Whether the client prefers JSON (`Accept` names a JSON media type).
pub fn wants_json(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.contains("application/json") || v.contains("+json"))
}

/// Render an error response for `status`: our HTML page, or a small JSON
/// document `{"status":..,"error":..,"detail":..}`.
pub fn render(status: StatusCode, detail: Option<&str>, json: bool) -> Response {
    let reason = status.canonical_reason().unwrap_or("Error");
    let mut resp = if json {
        let body = serde_json::json!({
            "status": status.as_u16(),
            "error": reason,
            "detail": detail.unwrap_or(reason),
        });
        (status, axum::Json(body)).into_response()
    } else {
        let page = pages::page_or_generic(status.as_u16());
        (
            status,
            [(header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"))],
            page,
        )
            .into_response()
    };
    resp.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

/// Re-render `resp` (an error) as our page/JSON, keeping its other headers
/// (e.g. `Allow` on a 405).
pub fn rerender(resp: Response, json: bool) -> Response {
    let detail = resp.extensions().get::<ErrorInfo>().map(|i| i.detail);
    let (mut parts, _body) = resp.into_parts();
    let fresh = render(parts.status, detail, json);
    let (fresh_parts, body) = fresh.into_parts();
    parts.headers.remove(header::CONTENT_LENGTH);
    for (name, value) in fresh_parts.headers.iter() {
        parts.headers.insert(name.clone(), value.clone());
    }
    Response::from_parts(parts, body)
}

/// Response for a caught panic (see [`crate::edge`]).
pub fn panic_response(err: Box<dyn std::any::Any + Send + 'static>) -> Response {
    let msg = err
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| err.downcast_ref::<&str>().copied())
        .unwrap_or("(non-string panic payload)");
    AppError::Internal(format!("handler panicked: {msg}")).into_response()
}
