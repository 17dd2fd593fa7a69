//! The routes behind the edge: `GET /` straight to its handler, everything else through the axum
//! router.
//!
//! `GET /` is the request the load balancer's clients make; through the router it costs a route
//! lookup, a clone of the boxed route, two more boxes around the handler's future and a
//! path-parameters extension (callgrind: about 2 500 instructions a request, an eighth of the
//! app's). [`Routes`] answers it by calling [`handlers::index`] itself, the same function the
//! router's `/` route calls, so both give the same response (a test holds them equal); `HEAD /`,
//! other methods and every other path go through the router as before.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use axum::extract::{Request, State};
use axum::http::Method;
use axum::response::{IntoResponse, Response};
use axum::routing::future::RouteFuture;
use axum::Router;
use futures_util::future::Either;
use tower::Service;

use crate::handlers;
use crate::state::AppState;

type IndexFuture = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

/// See the module documentation.
#[derive(Debug, Clone)]
pub struct Routes {
    router: Router,
    /// The state `GET /` is answered with directly; `None`: everything goes through the router.
    index: Option<AppState>,
}

impl Routes {
    /// `router` alone.
    pub fn router(router: Router) -> Self {
        Self { router, index: None }
    }

    /// `router`, with `GET /` answered by [`handlers::index`] directly.
    pub fn with_index(router: Router, state: AppState) -> Self {
        Self { router, index: Some(state) }
    }
}

impl Service<Request> for Routes {
    type Response = Response;
    type Error = Infallible;
    type Future = Either<IndexFuture, RouteFuture<Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        // The router is always ready (axum's `Router::poll_ready`), and so is the index.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request) -> Self::Future {
        match &self.index {
            Some(state) if req.method() == Method::GET && req.uri().path() == "/" => {
                let state = state.clone();
                Either::Left(Box::pin(async move {
                    Ok(handlers::index(State(state), req).await.into_response())
                }))
            }
            _ => Either::Right(self.router.call(req)),
        }
    }
}
