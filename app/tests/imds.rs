//! Identity resolution and the IMDS client (the AWS SDK's) against a strict
//! IMDSv2 test server on 127.0.0.1: tokens required, TTL honoured and
//! returned as real IMDS does. These tests never contact 169.254.169.254.

mod common;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use app::identity::{resolve, try_imds, IdentityOptions, Source};
use app::imds::{TOKEN_HEADER, TTL_HEADER};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, put};
use axum::Router;

/// A strict IMDSv2 imitation: tokens required, TTL honoured.
#[derive(Default)]
struct Imds {
    tokens: Mutex<HashMap<String, Instant>>,
    issued: AtomicUsize,
    unauthorized: AtomicUsize,
    /// Server-side cap on token lifetime (to expire tokens early).
    max_ttl: Mutex<Option<Duration>>,
}

impl Imds {
    fn revoke_all(&self) {
        self.tokens.lock().unwrap().clear();
    }
}

async fn issue(State(s): State<Arc<Imds>>, h: HeaderMap) -> axum::response::Response {
    let Some(ttl) = h
        .get(TTL_HEADER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        .filter(|t| (1..=21_600).contains(t))
    else {
        return StatusCode::BAD_REQUEST.into_response();
    };
    let mut ttl = Duration::from_secs(ttl);
    if let Some(cap) = *s.max_ttl.lock().unwrap() {
        ttl = ttl.min(cap);
    }
    let n = s.issued.fetch_add(1, Ordering::SeqCst) + 1;
    let token = format!("token-{n}");
    s.tokens.lock().unwrap().insert(token.clone(), Instant::now() + ttl);
    // Like IMDS: the granted lifetime comes back in the same header.
    ([(TTL_HEADER, ttl.as_secs().to_string())], token).into_response()
}

fn authorized(s: &Imds, h: &HeaderMap) -> bool {
    let ok = h
        .get(TOKEN_HEADER)
        .and_then(|v| v.to_str().ok())
        .and_then(|t| s.tokens.lock().unwrap().get(t).copied())
        .is_some_and(|exp| Instant::now() < exp);
    if !ok {
        s.unauthorized.fetch_add(1, Ordering::SeqCst);
    }
    ok
}

async fn instance_id(State(s): State<Arc<Imds>>, h: HeaderMap) -> (StatusCode, &'static str) {
    if authorized(&s, &h) {
        (StatusCode::OK, "i-0abcdef1234567890")
    } else {
        (StatusCode::UNAUTHORIZED, "")
    }
}

async fn zone(State(s): State<Arc<Imds>>, h: HeaderMap) -> (StatusCode, &'static str) {
    if authorized(&s, &h) {
        (StatusCode::OK, "eu-west-1b")
    } else {
        (StatusCode::UNAUTHORIZED, "")
    }
}

async fn start_imds() -> (String, Arc<Imds>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    start_imds_on(listener)
}

fn start_imds_on(listener: tokio::net::TcpListener) -> (String, Arc<Imds>) {
    let state = Arc::new(Imds::default());
    let app = Router::new()
        .route("/latest/api/token", put(issue))
        .route("/latest/meta-data/instance-id", get(instance_id))
        .route("/latest/meta-data/placement/availability-zone", get(zone))
        .with_state(state.clone());
    let addr: SocketAddr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}"), state)
}

fn opts(endpoint: &str) -> IdentityOptions {
    IdentityOptions {
        instance_id: None,
        availability_zone: None,
        imds_endpoint: endpoint.to_string(),
        local: false,
        attempt_deadline: Duration::from_secs(1),
    }
}

#[tokio::test]
async fn test_server_requires_token() {
    let (base, imds) = start_imds().await;
    let http = common::http();
    let r = http.get(format!("{base}/latest/meta-data/instance-id")).send().await.unwrap();
    assert_eq!(r.status(), 401);
    let r = http
        .get(format!("{base}/latest/meta-data/instance-id"))
        .header(TOKEN_HEADER, "forged")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let r = http.put(format!("{base}/latest/api/token")).send().await.unwrap();
    assert_eq!(r.status(), 400, "TTL header is mandatory");
    assert_eq!(imds.issued.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn resolves_identity_via_imdsv2() {
    let (base, imds) = start_imds().await;
    let id = resolve(&opts(&base)).await;
    assert_eq!(id.source, Source::Imds);
    assert_eq!(id.instance_id, "i-0abcdef1234567890");
    assert_eq!(id.availability_zone, "eu-west-1b");
    assert_eq!(imds.issued.load(Ordering::SeqCst), 1, "one token for both lookups");
    assert_eq!(imds.unauthorized.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn overrides_win_per_field() {
    let (base, _imds) = start_imds().await;
    let mut o = opts(&base);
    o.instance_id = Some("i-0123456789abcdef0".into());
    let id = resolve(&o).await;
    assert_eq!(id.instance_id, "i-0123456789abcdef0");
    assert_eq!(id.availability_zone, "eu-west-1b");
    assert_eq!(id.source, Source::Imds);
    o.availability_zone = Some("local-a".into());
    let id = resolve(&o).await;
    assert_eq!((id.availability_zone.as_str(), id.source), ("local-a", Source::Override));
}

#[tokio::test]
async fn token_is_cached_between_calls() {
    let (base, imds) = start_imds().await;
    let c = app::imds::client(&base).unwrap();
    for _ in 0..3 {
        assert_eq!(app::imds::instance_id(&c).await.unwrap(), "i-0abcdef1234567890");
    }
    assert_eq!(imds.issued.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn revoked_token_costs_one_round_then_a_fresh_client_recovers() {
    let (base, imds) = start_imds().await;
    let c = app::imds::client(&base).unwrap();
    app::imds::instance_id(&c).await.unwrap();
    imds.revoke_all();
    // The SDK client retries a 401 but keeps its cached (unexpired) token, so this client fails;
    // identity::resolve uses a fresh client per round, which fetches a new token.
    let stale = app::imds::availability_zone(&c).await;
    assert!(imds.unauthorized.load(Ordering::SeqCst) >= 1);
    let fresh = app::imds::client(&base).unwrap();
    assert_eq!(app::imds::availability_zone(&fresh).await.unwrap(), "eu-west-1b");
    eprintln!("revoked token, same client: {:?}", stale.map_err(|e| e.to_string()));
    let id = resolve(&opts(&base)).await;
    assert_eq!((id.instance_id.as_str(), id.source), ("i-0abcdef1234567890", Source::Imds));
}

#[tokio::test]
async fn short_tokens_are_renewed_before_expiry() {
    let (base, imds) = start_imds().await;
    let c = app::imds::client_with_ttl(&base, Duration::from_secs(1)).unwrap();
    app::imds::instance_id(&c).await.unwrap();
    // The SDK renews a token within 120 s of its expiry, so a 1 s token is renewed for every
    // request and the server never sees an expired one.
    tokio::time::sleep(Duration::from_millis(850)).await;
    app::imds::instance_id(&c).await.unwrap();
    tokio::time::sleep(Duration::from_millis(850)).await;
    app::imds::instance_id(&c).await.unwrap();
    assert_eq!(imds.issued.load(Ordering::SeqCst), 3);
    assert_eq!(imds.unauthorized.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn server_granted_lifetime_is_honoured() {
    let (base, imds) = start_imds().await;
    // The server grants shorter tokens than the client asked for, and says so in the TTL header.
    *imds.max_ttl.lock().unwrap() = Some(Duration::from_millis(1000));
    let c = app::imds::client_with_ttl(&base, Duration::from_secs(600)).unwrap();
    app::imds::instance_id(&c).await.unwrap();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(app::imds::instance_id(&c).await.unwrap(), "i-0abcdef1234567890");
    assert_eq!(imds.unauthorized.load(Ordering::SeqCst), 0, "never sent an expired token");
    assert_eq!(imds.issued.load(Ordering::SeqCst), 2, "renewed");
}

#[tokio::test]
async fn unreachable_imds_fails_a_round_quickly_and_is_never_replaced_by_an_invented_identity() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    }; // closed now
    let o = opts(&format!("http://127.0.0.1:{port}"));
    let started = Instant::now();
    assert!(try_imds(&o).await.is_err());
    assert!(started.elapsed() < Duration::from_millis(1500), "took {:?}", started.elapsed());
    // resolve keeps retrying: it does not return an identity while IMDS is away.
    assert!(tokio::time::timeout(Duration::from_secs(2), resolve(&o)).await.is_err());
}

#[tokio::test]
async fn hanging_imds_fails_a_round_within_its_deadline() {
    // Accepts connections but never answers.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let hold = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = listener.accept().await {
            held.push(s);
        }
    });
    let started = Instant::now();
    assert!(try_imds(&opts(&format!("http://{addr}"))).await.is_err());
    let took = started.elapsed();
    assert!(took < Duration::from_millis(1500), "took {took:?}");
    hold.abort();
}

#[tokio::test]
async fn explicit_local_run_derives_a_local_identity_without_imds() {
    let mut o = opts("http://192.0.2.1"); // never routed: would hang if contacted
    o.local = true;
    let started = Instant::now();
    let id = resolve(&o).await;
    assert!(started.elapsed() < Duration::from_millis(100));
    assert_eq!(id.source, Source::Local);
    assert_eq!(id.availability_zone, "local");
    assert_eq!(id.instance_id, app::identity::fallback_instance_id(&app::identity::hostname()));
}

/// The app started with IMDS_ENDPOINT on a port where IMDS comes up only later: alive but not ready
/// (and never showing an invented id) until then, then ready with IMDS's identity.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn late_imds_app_stays_not_ready_then_serves_the_real_identity() {
    let imds_port = free_port();
    let app_port = free_port();
    let dir = tempfile::tempdir().unwrap();
    let config = <app::Config as clap::Parser>::try_parse_from([
        "app",
        "--bind",
        "127.0.0.1",
        "--port",
        &app_port.to_string(),
        "--database-url",
        &format!("sqlite://{}/app.db?mode=rwc", dir.path().display()),
        "--imds-endpoint",
        &format!("http://127.0.0.1:{imds_port}"),
    ])
    .unwrap();
    let server = tokio::spawn(app::server::run(config));
    let http = common::http();
    let url = |p: &str| format!("http://127.0.0.1:{app_port}{p}");
    let status = |p: &'static str| {
        let (http, u) = (http.clone(), url(p));
        async move { http.get(u).send().await.ok().map(|r| r.status().as_u16()) }
    };
    wait_for(Duration::from_secs(10), || status("/healthz"), |s| *s == Some(200)).await;
    // IMDS is down for a while: liveness green, readiness and / not.
    let until = Instant::now() + Duration::from_millis(1500);
    while Instant::now() < until {
        assert_eq!(status("/readyz").await, Some(503));
        let r = http.get(url("/")).header("accept", "application/json").send().await.unwrap();
        assert_eq!(r.status(), 503);
        assert!(r.text().await.unwrap().contains("identity"));
        assert_eq!(status("/healthz").await, Some(200));
    }
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", imds_port)).await.unwrap();
    let (_base, imds) = start_imds_on(listener);
    wait_for(Duration::from_secs(15), || status("/readyz"), |s| *s == Some(200)).await;
    let body: serde_json::Value = http
        .get(url("/"))
        .header("accept", "application/json")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(body["instance_id"], "i-0abcdef1234567890");
    assert_eq!(body["availability_zone"], "eu-west-1b");
    assert!(imds.issued.load(Ordering::SeqCst) >= 1);
    server.abort();
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Poll `probe` until `done` holds for its output; panics after `limit`.
async fn wait_for<T: std::fmt::Debug, F: std::future::Future<Output = T>>(
    limit: Duration,
    probe: impl Fn() -> F,
    done: impl Fn(&T) -> bool,
) {
    let deadline = Instant::now() + limit;
    loop {
        let v = probe().await;
        if done(&v) {
            return;
        }
        assert!(Instant::now() < deadline, "condition not reached within {limit:?}; last: {v:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
