//! Database behaviour: SQLite and Postgres, concurrent migrations, outage
//! and recovery. Postgres tests need `ORCH_TEST_PG_URL` (skipped without it,
//! failing when `CI` is set).

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use app::{Db, DbOptions};
use axum::http::StatusCode;
use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_concurrent_migrations_all_succeed() {
    let dir = tempfile::tempdir().unwrap();
    let url = sqlite_url(&dir);
    // Four "instances" racing on one fresh file, each on its own task.
    let dbs: Vec<Db> =
        (0..4).map(|_| Db::connect_lazy(&DbOptions::new(url.clone())).unwrap()).collect();
    let tasks: Vec<_> = dbs
        .iter()
        .cloned()
        .map(|d| tokio::spawn(async move { d.migrate().await.map_err(|e| e.to_string()) }))
        .collect();
    for t in tasks {
        t.await.unwrap().expect("concurrent migration");
    }
    for d in &dbs {
        assert!(d.message().await.unwrap().contains("Hello"));
    }
}

#[tokio::test]
async fn sqlite_uses_wal_and_persists_hits() {
    let dir = tempfile::tempdir().unwrap();
    let state = sqlite_state(&dir).await;
    let Db::Sqlite(pool, _) = state.db() else { panic!("sqlite expected") };
    let mode: String = sqlx::query_scalar("PRAGMA journal_mode").fetch_one(pool).await.unwrap();
    assert_eq!(mode, "wal");
    state.hits().record();
    state.hits().record();
    assert_eq!(state.flush_hits().await.unwrap(), 2);
    assert_eq!(state.db().stored_hits(INSTANCE).await.unwrap(), 2);
}

#[tokio::test]
async fn pg_index_reads_and_writes() {
    let Some(url) = pg_url("pg_index_reads_and_writes") else { return };
    let instance = unique_instance();
    let state = state_for(&url, &instance);
    state.prepare_db().await.expect("pg migrations");
    let app = app::router(state.clone());
    for expected in 1..=2u64 {
        let (status, _, body) = send(&app, get_json("/")).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["db"], "postgres");
        assert_eq!(v["instance_id"], instance.as_str());
        assert_eq!(v["hits"], expected);
        assert!(v["message"].as_str().unwrap().contains("Hello"));
    }
    assert_eq!(state.flush_hits().await.unwrap(), 2);
    assert_eq!(state.db().stored_hits(&instance).await.unwrap(), 2);
    let (status, _, _) = send(&app, get("/readyz")).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pg_concurrent_migrations_all_succeed() {
    let Some(url) = pg_url("pg_concurrent_migrations_all_succeed") else { return };
    // A fresh schema so the race happens on an empty database every run.
    let schema = format!("mig_{:x}", rand::random::<u32>());
    let admin = sqlx::PgPool::connect(&url).await.expect("connect ORCH_TEST_PG_URL");
    sqlx::query(&format!("CREATE SCHEMA {schema}")).execute(&admin).await.unwrap();
    let mut scoped = url::Url::parse(&url).unwrap();
    scoped.query_pairs_mut().append_pair("options[search_path]", &schema);

    let tasks: Vec<_> = (0..3)
        .map(|_| {
            let st = state_for(scoped.as_str(), &unique_instance());
            tokio::spawn(async move { st.prepare_db().await.map_err(|e| e.to_string()) })
        })
        .collect();
    let mut results = Vec::new();
    for t in tasks {
        results.push(t.await.unwrap());
    }
    let applied: i64 =
        sqlx::query_scalar(&format!("SELECT count(*) FROM {schema}._sqlx_migrations"))
            .fetch_one(&admin)
            .await
            .unwrap();
    let hit_rows: i64 = sqlx::query_scalar(&format!("SELECT count(*) FROM {schema}.hits"))
        .fetch_one(&admin)
        .await
        .unwrap();
    sqlx::query(&format!("DROP SCHEMA {schema} CASCADE")).execute(&admin).await.unwrap();
    for r in results {
        r.expect("every instance migrates");
    }
    assert_eq!(applied, 1, "migration applied exactly once");
    assert_eq!(hit_rows, 3, "one hits row per instance");
}

#[tokio::test]
async fn pg_outage_and_recovery_without_restart() {
    let Some(url) = pg_url("pg_outage_and_recovery_without_restart") else { return };
    let (proxied, proxy) = pg_via_proxy(&url).await;
    let state = state_for(&proxied, &unique_instance());
    state.prepare_db().await.expect("migrations through proxy");
    let app = app::router(state.clone());
    // Warm several pooled connections.
    for _ in 0..4 {
        assert_eq!(send(&app, get("/")).await.0, StatusCode::OK);
    }

    proxy.cut();
    // The cached greeting may serve for up to one freshness bound.
    tokio::time::sleep(MESSAGE_TTL + Duration::from_millis(20)).await;
    let started = Instant::now();
    let (status, _, body) = send(&app, get("/")).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(body.contains(MARKER) && body.contains(r#"data-status="503""#));
    assert!(started.elapsed() < Duration::from_secs(3), "503 must be quick");
    assert_eq!(send(&app, get("/readyz")).await.0, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(send(&app, get("/healthz")).await.0, StatusCode::OK);

    proxy.restore();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (status, _, _) = send(&app, get("/")).await;
        if status == StatusCode::OK {
            break;
        }
        assert!(Instant::now() < deadline, "did not recover after DB came back");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Once recovered, requests keep succeeding (dead connections were purged).
    for _ in 0..8 {
        assert_eq!(send(&app, get("/")).await.0, StatusCode::OK);
    }
    assert_eq!(send(&app, get("/readyz")).await.0, StatusCode::OK);
}

#[tokio::test]
async fn pg_down_at_start_then_migrates_in_background() {
    let Some(url) = pg_url("pg_down_at_start_then_migrates_in_background") else { return };
    let (proxied, proxy) = pg_via_proxy(&url).await;
    proxy.cut();
    let state = state_for(&proxied, &unique_instance());
    let bg = state.spawn_background(Duration::from_millis(100));
    let app = app::router(state.clone());
    assert_eq!(send(&app, get("/")).await.0, StatusCode::SERVICE_UNAVAILABLE);
    assert!(!state.wait_ready(Duration::from_millis(500)).await);

    proxy.restore();
    assert!(
        state.wait_ready(Duration::from_secs(10)).await,
        "background migration never succeeded"
    );
    assert_eq!(send(&app, get("/")).await.0, StatusCode::OK);
    bg.abort();
}

/// A "database" that accepts connections and closes each after 50 ms without a word: every
/// connection fails. Counts the connections and the most open at once.
struct Failing {
    addr: std::net::SocketAddr,
    accepted: Arc<AtomicUsize>,
    open: Arc<AtomicUsize>,
    most_open: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Failing {
    async fn start() -> Failing {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (accepted, open, most_open) =
            <(Arc<AtomicUsize>, Arc<AtomicUsize>, Arc<AtomicUsize>)>::default();
        let (acc, op, most) = (accepted.clone(), open.clone(), most_open.clone());
        let task = tokio::spawn(async move {
            while let Ok((conn, _)) = listener.accept().await {
                acc.fetch_add(1, Ordering::SeqCst);
                let now = op.fetch_add(1, Ordering::SeqCst) + 1;
                most.fetch_max(now, Ordering::SeqCst);
                let op = op.clone();
                tokio::spawn(async move {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    drop(conn);
                    op.fetch_sub(1, Ordering::SeqCst);
                });
            }
        });
        Failing { addr, accepted, open, most_open, task }
    }
}

impl Drop for Failing {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_database_gets_one_reconnect_at_a_time_with_backoff() {
    let db = Failing::start().await;
    let state = state_for(&format!("postgres://u:p@{}/db", db.addr), &unique_instance());
    let run = |ms: u64| {
        let state = state.clone();
        async move {
            let clients: Vec<_> = (0..8)
                .map(|_| {
                    let state = state.clone();
                    tokio::spawn(async move {
                        let until = Instant::now() + Duration::from_millis(ms);
                        let mut failed = 0;
                        while Instant::now() < until {
                            assert!(state.db().ping().await.is_err(), "the database cannot answer");
                            failed += 1;
                            tokio::time::sleep(Duration::from_millis(5)).await;
                        }
                        failed
                    })
                })
                .collect();
            let mut failed = 0;
            for c in clients {
                failed += c.await.unwrap();
            }
            failed
        }
    };
    // The first burst: the pool's first connections, then one reconnect that fails.
    run(300).await;
    let after_burst = db.accepted.load(Ordering::SeqCst);
    db.most_open.store(db.open.load(Ordering::SeqCst), Ordering::SeqCst);
    // Then 8 clients back to back for 3 s: the backoff (100 ms doubling to 5 s) allows a handful of
    // reconnects, one at a time; before, every query made up to 8 connections of its own.
    let failed = run(3_000).await;
    let reconnects = db.accepted.load(Ordering::SeqCst) - after_burst;
    let most = db.most_open.load(Ordering::SeqCst);
    eprintln!("{failed} failed queries, {after_burst} connections in the burst, then {reconnects} reconnects, at most {most} open");
    assert!(failed > 100, "queries failed fast: {failed}");
    assert!((1..=8).contains(&reconnects), "{reconnects} reconnects in 3 s");
    assert!(most <= 1, "{most} connections open at once while reconnecting");
    assert!(state.db().reconnect().failures() >= 3);
}
