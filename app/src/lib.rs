//! `app`: the web service orch deploys behind its load balancer.
//!
//! It shows which instance answered (EC2 instance id + availability zone,
//! resolved via IMDSv2, or given explicitly) and proves a
//! working database (a message read on every request, a per-instance hit
//! counter persisted periodically). See `docs/app.md` for the design.
//!
//! The router is built by [`router`]; [`harden`] puts any `Router<AppState>` inside the edge
//! middleware (error pages, security headers, access log, panic catching, request timeout, body
//! limit): [`App`], what the server serves and the tests call.

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
pub mod routes;
pub mod secret;
pub mod server;
pub mod state;

use axum::routing::get;
use axum::Router;

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

/// The served application: the routes inside the edge middleware ([`edge`]).
pub type App = edge::Edge<routes::Routes>;

/// The complete, hardened application router, `GET /` answered without the route lookup
/// ([`routes::Routes`]).
pub fn router(state: AppState) -> App {
    let router = routes().with_state(state.clone());
    edge::Edge::new(routes::Routes::with_index(router, state.clone()), state)
}

/// Put `routes` inside the edge middleware (body limit 413, request timeout 504, caught panics
/// 500, error pages, security headers, access log; see [`edge`]), once around the whole router.
pub fn harden(routes: Router<AppState>, state: AppState) -> App {
    edge::Edge::new(routes::Routes::router(routes.with_state(state.clone())), state)
}
