//! `app`: the web service orch deploys behind its load balancer.
//!
//! It shows which instance answered (EC2 instance id + availability zone,
//! resolved via IMDSv2, or given explicitly) and proves a
//! working database (a message read on every request, a per-instance hit
//! counter persisted periodically). See `docs/app.md` for the design.
//!
//! The router is built by [`router`]; [`harden`] applies the middleware
//! stack (error pages, security headers, access log, panic catching,
//! request timeout, body limit) to any `Router<AppState>`.

pub mod aws;
pub mod cache;
pub mod config;
pub mod conn;
pub mod db;
pub mod edge;
pub mod error;
pub mod fault;
pub mod handlers;
pub mod hits;
pub mod identity;
pub mod imds;
pub mod index_page;
pub mod logging;
pub mod migrations;
pub mod pages;
pub mod probe;
pub mod reconnect;
pub mod secret;
pub mod server;
pub mod state;

use axum::routing::get;
use axum::Router;
use tower_http::catch_panic::CatchPanicLayer;

pub use config::Config;
pub use db::{Db, DbKind, DbOptions};
pub use error::AppError;
pub use identity::{Identity, Source};
pub use state::{AppState, HttpSettings};

/// The app's routes, before hardening.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(handlers::index))
        .route("/healthz", get(handlers::healthz))
        .route("/readyz", get(handlers::readyz))
        .fallback(handlers::not_found)
}

/// The complete, hardened application router.
pub fn router(state: AppState) -> Router {
    harden(routes(), state)
}

/// Wrap `routes` in the middleware stack (outermost first): edge (body
/// limit 413, request timeout 504, error pages, security headers, access
/// log; see [`edge`]) → tower-http `CatchPanicLayer` (500).
pub fn harden(routes: Router<AppState>, state: AppState) -> Router {
    routes
        .layer(CatchPanicLayer::custom(error::panic_response))
        .layer(edge::EdgeLayer { state: state.clone() })
        .with_state(state)
}
