//! Database behaviour: SQLite and Postgres, concurrent migrations, outage
//! and recovery. Postgres tests need `ORCH_TEST_PG_URL` (skipped without it,
//! failing when `CI` is set).

mod common;

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
    let Db::Sqlite(pool) = state.db() else { panic!("sqlite expected") };
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
