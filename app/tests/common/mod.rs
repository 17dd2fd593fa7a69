//! Shared helpers for the integration tests: states, requests, the
//! Postgres URL policy and a cuttable TCP proxy.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use app::{AppState, Db, DbOptions, HttpSettings, Identity};
use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode};
use http_body_util::BodyExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tower::ServiceExt;

pub(crate) const INSTANCE: &str = "i-0123456789abcdef0";
pub(crate) const ZONE: &str = "local-a";
/// Marker present in every error page of ours.
pub(crate) const MARKER: &str = "orch-app-error-page";

/// A migrated SQLite-backed state in `dir`.
pub(crate) async fn sqlite_state(dir: &tempfile::TempDir) -> AppState {
    let st = sqlite_state_unprepared(dir, HttpSettings::default());
    st.prepare_db().await.expect("sqlite migrations");
    st
}

pub(crate) fn sqlite_url(dir: &tempfile::TempDir) -> String {
    format!("sqlite://{}/app.db?mode=rwc", dir.path().display())
}

pub(crate) fn sqlite_state_unprepared(dir: &tempfile::TempDir, http: HttpSettings) -> AppState {
    let db = Db::connect_lazy(&DbOptions::new(sqlite_url(dir))).unwrap();
    AppState::new(Identity::fixed(INSTANCE, ZONE), db, http)
}

/// Message-cache freshness bound used by `state_for` states.
pub(crate) const MESSAGE_TTL: Duration = Duration::from_millis(200);

/// A state for `url` with a short acquire timeout and the given identity.
pub(crate) fn state_for(url: &str, instance_id: &str) -> AppState {
    let opts = DbOptions {
        url: url.to_string(),
        max_connections: 4,
        acquire_timeout: Duration::from_millis(700),
    };
    let db = Db::connect_lazy(&opts).unwrap();
    let http = HttpSettings { message_ttl: MESSAGE_TTL, ..HttpSettings::default() };
    AppState::new(Identity::fixed(instance_id, ZONE), db, http)
}

pub(crate) fn get(path: &str) -> Request<Body> {
    Request::get(path).body(Body::empty()).unwrap()
}

pub(crate) fn get_json(path: &str) -> Request<Body> {
    Request::get(path).header("accept", "application/json").body(Body::empty()).unwrap()
}

/// Send one request through the router, collecting the body as text.
pub(crate) async fn send(app: &app::App, req: Request<Body>) -> (StatusCode, HeaderMap, String) {
    let resp = app.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    let headers = resp.headers().clone();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    (status, headers, String::from_utf8(bytes.to_vec()).unwrap())
}

/// `ORCH_TEST_PG_URL`, or `None` (skip) — but under CI a missing URL fails.
pub(crate) fn pg_url(test: &str) -> Option<String> {
    match std::env::var("ORCH_TEST_PG_URL") {
        Ok(u) if !u.trim().is_empty() => Some(u),
        _ => {
            if std::env::var_os("CI").is_some() {
                panic!("ORCH_TEST_PG_URL not set (required when CI is set)");
            }
            eprintln!("SKIP {test}: ORCH_TEST_PG_URL not set");
            None
        }
    }
}

/// A unique instance id so Postgres tests never share a `hits` row.
pub(crate) fn unique_instance() -> String {
    format!("i-{:017x}", rand::random::<u64>() as u128 | (1u128 << 64))
}

/// A TCP proxy on 127.0.0.1 that can be cut (all connections dropped, new
/// ones refused) and restored, to simulate a database outage.
pub(crate) struct Proxy {
    pub addr: SocketAddr,
    enabled: Arc<AtomicBool>,
    conns: Arc<Mutex<Vec<JoinHandle<()>>>>,
    accept: JoinHandle<()>,
}

impl Proxy {
    pub(crate) async fn start(target: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let enabled = Arc::new(AtomicBool::new(true));
        let conns: Arc<Mutex<Vec<JoinHandle<()>>>> = Arc::default();
        let (en, cs) = (enabled.clone(), conns.clone());
        let accept = tokio::spawn(async move {
            loop {
                let Ok((mut client, _)) = listener.accept().await else { continue };
                if !en.load(Ordering::SeqCst) {
                    drop(client);
                    continue;
                }
                let h = tokio::spawn(async move {
                    if let Ok(mut server) = TcpStream::connect(target).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                });
                cs.lock().unwrap().push(h);
            }
        });
        Proxy { addr, enabled, conns, accept }
    }

    /// Drop every proxied connection and refuse new ones.
    pub(crate) fn cut(&self) {
        self.enabled.store(false, Ordering::SeqCst);
        for h in self.conns.lock().unwrap().drain(..) {
            h.abort();
        }
    }

    /// Accept and forward connections again.
    pub(crate) fn restore(&self) {
        self.enabled.store(true, Ordering::SeqCst);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.cut();
        self.accept.abort();
    }
}

/// `pg_url` rewritten to go through a new proxy; returns (url, proxy).
pub(crate) async fn pg_via_proxy(pg_url: &str) -> (String, Proxy) {
    let mut url = url::Url::parse(pg_url).unwrap();
    let host = url.host_str().unwrap_or("127.0.0.1").to_string();
    let port = url.port().unwrap_or(5432);
    let target = tokio::net::lookup_host((host.as_str(), port)).await.unwrap().next().unwrap();
    let proxy = Proxy::start(target).await;
    url.set_host(Some("127.0.0.1")).unwrap();
    url.set_port(Some(proxy.addr.port())).unwrap();
    (url.to_string(), proxy)
}

/// A client for the plain-HTTP servers of these tests. reqwest builds its TLS setup even so, and
/// the app's reqwest has no crypto provider of its own: the app's one (ring) is installed first.
pub(crate) fn http() -> reqwest::Client {
    let _ = rustls::crypto::CryptoProvider::install_default(
        app::probe::crypto_provider().as_ref().clone(),
    );
    reqwest::Client::new()
}

/// A child process killed (and reaped) when dropped.
pub(crate) struct Kill(pub(crate) std::process::Child);

impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A TCP port free on 127.0.0.1 right now.
pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}
