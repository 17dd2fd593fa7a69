//! Identity resolution against a local IMDSv2 test server on 127.0.0.1.
//! These tests never contact 169.254.169.254.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use app::identity::{resolve, IdentityOptions, Source};
use app::imds::{ImdsClient, TOKEN_HEADER, TTL_HEADER};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
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

async fn issue(State(s): State<Arc<Imds>>, h: HeaderMap) -> (StatusCode, String) {
    let Some(ttl) = h
        .get(TTL_HEADER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        .filter(|t| (1..=21_600).contains(t))
    else {
        return (StatusCode::BAD_REQUEST, String::new());
    };
    let mut ttl = Duration::from_secs(ttl);
    if let Some(cap) = *s.max_ttl.lock().unwrap() {
        ttl = ttl.min(cap);
    }
    let n = s.issued.fetch_add(1, Ordering::SeqCst) + 1;
    let token = format!("token-{n}");
    s.tokens.lock().unwrap().insert(token.clone(), Instant::now() + ttl);
    (StatusCode::OK, token)
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
    let state = Arc::new(Imds::default());
    let app = Router::new()
        .route("/latest/api/token", put(issue))
        .route("/latest/meta-data/instance-id", get(instance_id))
        .route("/latest/meta-data/placement/availability-zone", get(zone))
        .with_state(state.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr: SocketAddr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}"), state)
}

fn opts(endpoint: &str) -> IdentityOptions {
    IdentityOptions {
        instance_id: None,
        availability_zone: None,
        imds_endpoint: endpoint.to_string(),
        deadline: Duration::from_secs(1),
    }
}

#[tokio::test]
async fn test_server_requires_token() {
    let (base, imds) = start_imds().await;
    let http = reqwest::Client::new();
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
    let c = ImdsClient::new(&base);
    for _ in 0..3 {
        assert_eq!(c.instance_id().await.unwrap(), "i-0abcdef1234567890");
    }
    assert_eq!(imds.issued.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn revoked_token_gets_401_then_refetched() {
    let (base, imds) = start_imds().await;
    let c = ImdsClient::new(&base);
    c.instance_id().await.unwrap();
    imds.revoke_all();
    assert_eq!(c.availability_zone().await.unwrap(), "eu-west-1b");
    assert_eq!(imds.unauthorized.load(Ordering::SeqCst), 1);
    assert_eq!(imds.issued.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn token_renewed_before_expiry() {
    let (base, imds) = start_imds().await;
    let c = ImdsClient::with_ttl(&base, Duration::from_secs(1));
    c.instance_id().await.unwrap();
    // Past 80 % of the 1 s lifetime: the client renews proactively, so the
    // server never sees an expired token.
    tokio::time::sleep(Duration::from_millis(850)).await;
    c.instance_id().await.unwrap();
    tokio::time::sleep(Duration::from_millis(850)).await;
    c.instance_id().await.unwrap();
    assert_eq!(imds.issued.load(Ordering::SeqCst), 3);
    assert_eq!(imds.unauthorized.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn server_side_expiry_is_honoured_and_recovered() {
    let (base, imds) = start_imds().await;
    // The server grants shorter tokens than the client asked for.
    *imds.max_ttl.lock().unwrap() = Some(Duration::from_millis(1000));
    let c = ImdsClient::with_ttl(&base, Duration::from_secs(600));
    c.instance_id().await.unwrap();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(c.instance_id().await.unwrap(), "i-0abcdef1234567890");
    assert_eq!(imds.unauthorized.load(Ordering::SeqCst), 1, "expired token was rejected");
    assert_eq!(imds.issued.load(Ordering::SeqCst), 2, "and replaced");
}

#[tokio::test]
async fn falls_back_quickly_when_imds_unreachable() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    }; // closed now
    let started = Instant::now();
    let id = resolve(&opts(&format!("http://127.0.0.1:{port}"))).await;
    assert!(started.elapsed() < Duration::from_millis(1500), "took {:?}", started.elapsed());
    assert_eq!(id.source, Source::Fallback);
    assert_eq!(id.availability_zone, "local");
    assert_eq!(id.instance_id, app::identity::fallback_instance_id(&app::identity::hostname()));
    assert_eq!(id.instance_id.len(), 19);
}

#[tokio::test]
async fn falls_back_within_deadline_when_imds_hangs() {
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
    let id = resolve(&opts(&format!("http://{addr}"))).await;
    let took = started.elapsed();
    assert!(took < Duration::from_millis(1500), "took {took:?}");
    assert_eq!(id.source, Source::Fallback);
    hold.abort();
}
