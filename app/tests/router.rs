//! Router behaviour on SQLite: pages, errors, headers, limits.

mod common;

use std::time::Duration;

use app::HttpSettings;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::routing::get as route_get;
use axum::Router;
use common::*;

#[tokio::test]
async fn index_html_shows_identity_zone_and_db_message() {
    let dir = tempfile::tempdir().unwrap();
    let app = app::router(sqlite_state(&dir).await);
    let (status, headers, body) = send(&app, get("/")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(headers["content-type"].to_str().unwrap().starts_with("text/html"));
    assert!(body.contains("i-0123456789abcdef0"), "{body}");
    assert!(body.contains("local-a"));
    assert!(body.contains("Hello from the database!"));
    assert!(body.contains(r#"<dd id="hits">1</dd>"#));
}

#[tokio::test]
async fn index_json_carries_identity_and_counts_hits() {
    let dir = tempfile::tempdir().unwrap();
    let state = sqlite_state(&dir).await;
    let app = app::router(state.clone());
    let mut last = 0;
    for _ in 0..3 {
        let (status, headers, body) = send(&app, get_json("/")).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(headers["content-type"], "application/json");
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["instance_id"], INSTANCE);
        assert_eq!(v["availability_zone"], ZONE);
        assert_eq!(v["db"], "sqlite");
        assert!(v["message"].as_str().unwrap().contains("Hello"));
        last = v["hits"].as_u64().unwrap();
    }
    assert_eq!(last, 3);
    // The write side: the periodic flush persists the counter.
    assert_eq!(state.flush_hits().await.unwrap(), 3);
    assert_eq!(state.db().stored_hits(INSTANCE).await.unwrap(), 3);
}

#[tokio::test]
async fn hits_survive_restart() {
    let dir = tempfile::tempdir().unwrap();
    let first = sqlite_state(&dir).await;
    let app = app::router(first.clone());
    send(&app, get("/")).await;
    send(&app, get("/")).await;
    first.flush_hits().await.unwrap();
    first.db().close().await;

    let second = sqlite_state(&dir).await;
    let (_, _, body) = send(&app::router(second), get_json("/")).await;
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["hits"], 3);
}

#[tokio::test]
async fn unknown_path_is_our_404_page() {
    let dir = tempfile::tempdir().unwrap();
    let app = app::router(sqlite_state(&dir).await);
    let (status, headers, body) = send(&app, get("/no-such-page")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(headers["content-type"].to_str().unwrap().starts_with("text/html"));
    assert!(body.contains(MARKER));
    assert!(body.contains(r#"data-status="404""#));
    assert_eq!(body, app::pages::page(404).unwrap());
}

#[tokio::test]
async fn errors_answer_json_when_accepted() {
    let dir = tempfile::tempdir().unwrap();
    let app = app::router(sqlite_state(&dir).await);
    let (status, headers, body) = send(&app, get_json("/no-such-page")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(headers["content-type"], "application/json");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["status"], 404);

    let req = Request::post("/").header("accept", "application/json").body(Body::empty()).unwrap();
    let (status, _, body) = send(&app, req).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(serde_json::from_str::<serde_json::Value>(&body).unwrap()["status"], 405);
}

#[tokio::test]
async fn post_index_is_405_page() {
    let dir = tempfile::tempdir().unwrap();
    let app = app::router(sqlite_state(&dir).await);
    let (status, headers, body) = send(&app, Request::post("/").body(Body::empty()).unwrap()).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert!(body.contains(MARKER) && body.contains(r#"data-status="405""#));
    assert!(headers["allow"].to_str().unwrap().contains("GET"));
    assert!(headers["content-type"].to_str().unwrap().starts_with("text/html"));
}

#[tokio::test]
async fn healthz_and_readyz() {
    let dir = tempfile::tempdir().unwrap();
    let app = app::router(sqlite_state(&dir).await);
    let (status, _, body) = send(&app, get("/healthz")).await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "ok"));
    let (status, _, body) = send(&app, get("/readyz")).await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "ready"));
    let (status, _, body) = send(&app, get_json("/readyz")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.contains(r#""db":"sqlite""#));
}

#[tokio::test]
async fn not_ready_serves_503_but_stays_live() {
    let dir = tempfile::tempdir().unwrap();
    // Migrations not applied yet.
    let app = app::router(sqlite_state_unprepared(&dir, HttpSettings::default()));
    let (status, _, body) = send(&app, get("/")).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(body.contains(r#"data-status="503""#));
    let (status, _, _) = send(&app, get("/readyz")).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    let (status, _, _) = send(&app, get("/healthz")).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn security_headers_present_hsts_only_over_https() {
    let dir = tempfile::tempdir().unwrap();
    let app = app::router(sqlite_state(&dir).await);
    for path in ["/", "/healthz", "/no-such-page"] {
        let (_, h, _) = send(&app, get(path)).await;
        assert_eq!(h["x-content-type-options"], "nosniff");
        assert_eq!(
            h["content-security-policy"],
            "default-src 'none'; style-src 'unsafe-inline'; img-src 'self'; frame-ancestors 'none'"
        );
        assert_eq!(h["referrer-policy"], "no-referrer");
        assert!(h.get("strict-transport-security").is_none(), "no HSTS over plain http");
    }
    let req = Request::get("/").header("x-forwarded-proto", "https").body(Body::empty()).unwrap();
    let (_, h, _) = send(&app, req).await;
    assert!(h["strict-transport-security"].to_str().unwrap().starts_with("max-age="));
    let req = Request::get("/").header("x-forwarded-proto", "http").body(Body::empty()).unwrap();
    let (_, h, _) = send(&app, req).await;
    assert!(h.get("strict-transport-security").is_none());
}

#[tokio::test]
async fn oversized_body_is_413_page() {
    let dir = tempfile::tempdir().unwrap();
    let app = app::router(sqlite_state(&dir).await);
    let big = vec![b'x'; 65 * 1024];
    let req = Request::post("/").header("content-length", big.len()).body(Body::from(big)).unwrap();
    let (status, _, body) = send(&app, req).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(body.contains(r#"data-status="413""#));
}

#[tokio::test]
async fn panic_is_caught_as_500_page() {
    let dir = tempfile::tempdir().unwrap();
    let routes = Router::new().route(
        "/boom",
        route_get(|| async {
            panic!("kaboom");
            #[allow(unreachable_code)]
            ""
        }),
    );
    let app = app::harden(routes, sqlite_state(&dir).await);
    let (status, h, body) = send(&app, get("/boom")).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(body.contains(r#"data-status="500""#));
    assert!(!body.contains("kaboom"), "panic message must not leak");
    assert_eq!(h["x-content-type-options"], "nosniff");
    let (status, _, body) = send(&app, get_json("/boom")).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(body.contains(r#""status":500"#));
}

#[tokio::test]
async fn slow_request_times_out_with_504_page() {
    let dir = tempfile::tempdir().unwrap();
    let http =
        HttpSettings { request_timeout: Duration::from_millis(100), ..HttpSettings::default() };
    let state = sqlite_state_unprepared(&dir, http);
    let routes = Router::new().route(
        "/slow",
        route_get(|| async {
            tokio::time::sleep(Duration::from_secs(5)).await;
            "late"
        }),
    );
    let app = app::harden(routes, state);
    let started = std::time::Instant::now();
    let (status, _, body) = send(&app, get("/slow")).await;
    assert_eq!(status, StatusCode::GATEWAY_TIMEOUT);
    assert!(body.contains(r#"data-status="504""#));
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[tokio::test]
async fn database_down_at_start_gives_503_not_a_crash() {
    // Nothing listens on this port: the pool is lazy, so building the state
    // succeeds; data routes answer 503, liveness stays 200.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let state = state_for(&format!("postgres://orch:orch@127.0.0.1:{port}/orch"), INSTANCE);
    let bg = state.spawn_background(Duration::from_millis(200));
    let app = app::router(state.clone());
    let (status, _, body) = send(&app, get("/")).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(body.contains(MARKER));
    let (status, _, body) = send(&app, get_json("/readyz")).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(body.contains(r#""status":503"#));
    assert_eq!(send(&app, get("/healthz")).await.0, StatusCode::OK);
    assert!(!state.wait_ready(Duration::from_millis(300)).await);
    bg.abort();
}

#[tokio::test]
async fn message_changes_show_up_within_the_freshness_bound() {
    for ttl_ms in [0u64, 150] {
        let dir = tempfile::tempdir().unwrap();
        let http =
            HttpSettings { message_ttl: Duration::from_millis(ttl_ms), ..HttpSettings::default() };
        let state = sqlite_state_unprepared(&dir, http);
        state.prepare_db().await.unwrap();
        let app = app::router(state.clone());
        assert!(send(&app, get("/")).await.2.contains("Hello from the database!"));
        let app::Db::Sqlite(pool, _) = state.db() else { unreachable!() };
        sqlx::query("UPDATE messages SET body = 'changed <b>' WHERE id = 1")
            .execute(pool)
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(ttl_ms + 10)).await;
        let (_, _, body) = send(&app, get("/")).await;
        assert!(body.contains("changed &#60;b&#62;"), "ttl {ttl_ms}: {body}");
    }
}

#[tokio::test]
async fn injected_faults_fail_and_slow_the_index_but_never_the_health_checks() {
    let dir = tempfile::tempdir().unwrap();
    let fault = app::fault::FaultSettings { error_percent: 50.0, delay: Duration::from_millis(50) };
    let state = sqlite_state_unprepared(&dir, HttpSettings { fault, ..HttpSettings::default() });
    state.prepare_db().await.unwrap();
    let app = app::router(state);
    let started = std::time::Instant::now();
    let mut statuses = vec![];
    for _ in 0..4 {
        statuses.push(send(&app, get("/")).await.0.as_u16());
    }
    assert_eq!(statuses, [200, 500, 200, 500], "one in two, spread evenly");
    assert!(started.elapsed() >= Duration::from_millis(200), "each waited the delay");
    let (status, _, body) = send(&app, get("/")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.contains("Hello from the database!"));
    let (status, _, body) = send(&app, get("/")).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(body.contains(r#"data-status="500""#), "our error page: {body}");
    for path in ["/healthz", "/readyz"] {
        let quick = std::time::Instant::now();
        assert_eq!(send(&app, get(path)).await.0, StatusCode::OK, "{path}");
        assert!(quick.elapsed() < Duration::from_millis(50), "{path} is not delayed");
    }
}

/// `GET /` answered by `Routes` directly gives what the router's `/` route gives: same status,
/// headers and body (two fresh states, so the hit counts agree), HTML and JSON, errors included.
/// Only `content-length` is left out of the comparison: axum's route sets it from the body, and
/// without it hyper writes the same header from the body's exact size (hyper 1.x
/// `proto/h1/role.rs`, `Server::encode`, `BodyLength::Known`), so the bytes on the wire agree.
#[tokio::test]
async fn the_direct_index_answers_as_the_router_does() {
    async fn both(direct: &app::App, routed: &app::App, req: fn() -> Request<Body>) {
        let (d, r) = (send(direct, req()).await, send(routed, req()).await);
        let strip = |(status, mut headers, body): (StatusCode, axum::http::HeaderMap, String)| {
            headers.remove("content-length");
            (status, headers, body)
        };
        assert_eq!(strip(d), strip(r));
    }
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let direct = app::router(sqlite_state(&a).await);
    let routed = app::harden(app::routes(), sqlite_state(&b).await);
    for req in [|| get("/"), || get_json("/"), || get("/?x=1"), || get("/healthz")] {
        both(&direct, &routed, req).await;
    }
    both(&direct, &routed, || Request::head("/").body(Body::empty()).unwrap()).await;
    let post = || Request::post("/").body(Body::empty()).unwrap();
    let (status, _, _) = send(&direct, post()).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    both(&direct, &routed, post).await;
    // Not ready: the same 503 page from both.
    let (c, d) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let direct = app::router(sqlite_state_unprepared(&c, HttpSettings::default()));
    let routed = app::harden(app::routes(), sqlite_state_unprepared(&d, HttpSettings::default()));
    let (status, _, _) = send(&direct, get("/")).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    both(&direct, &routed, || get("/")).await;
    both(&direct, &routed, || get_json("/")).await;
}
