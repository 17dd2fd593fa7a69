//! Database credentials from a Secrets Manager secret, end to end: the `app` binary as a child
//! process, moto's Secrets Manager (`ORCH_TEST_MOTO`) and a real Postgres whose `pwauth` roles must
//! give their password (`ORCH_TEST_PG_ADMIN_URL`, set up by scripts/lib/services.sh). Skipped without
//! them, failing when `CI` is set.

mod common;

use common::{free_port, Kill};

use std::io::Read;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_sdk_secretsmanager::config::{BehaviorVersion, Credentials, Region};
use sqlx::{Connection, PgConnection};

struct Env {
    moto: String,
    admin: String,
    host: String,
    port: u16,
}

fn env(test: &str) -> Option<Env> {
    let get = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    match (get("ORCH_TEST_MOTO"), get("ORCH_TEST_PG_ADMIN_URL")) {
        (Some(moto), Some(admin)) => {
            let u = url::Url::parse(&admin).unwrap();
            let host = u.host_str().unwrap_or("127.0.0.1").to_string();
            Some(Env { moto, port: u.port().unwrap_or(5432), host, admin })
        }
        _ => {
            assert!(
                std::env::var_os("CI").is_none(),
                "ORCH_TEST_MOTO and ORCH_TEST_PG_ADMIN_URL are required when CI is set"
            );
            eprintln!("SKIP {test}: ORCH_TEST_MOTO / ORCH_TEST_PG_ADMIN_URL not set");
            None
        }
    }
}

fn secrets(env: &Env) -> aws_sdk_secretsmanager::Client {
    let conf = aws_sdk_secretsmanager::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .endpoint_url(&env.moto)
        .credentials_provider(Credentials::new("testing", "testing", None, None, "test"))
        .http_client(app::aws::http_client())
        .build();
    aws_sdk_secretsmanager::Client::from_conf(conf)
}

fn secret_json(user: &str, password: &str) -> String {
    serde_json::json!({"username": user, "password": password, "engine": "postgres"}).to_string()
}

/// A secret `orch/<role>` in moto holding `role` and `password`; its ARN.
async fn create_secret(env: &Env, role: &str, password: &str) -> String {
    let created = secrets(env)
        .create_secret()
        .name(format!("orch/{role}"))
        .secret_string(secret_json(role, password))
        .send()
        .await
        .expect("create the secret in moto");
    created.arn().unwrap().to_string()
}

/// A fresh role in `pwauth` (password enforced) with its own schema; returns its name.
async fn create_role(env: &Env, password: &str) -> String {
    let role = format!("rot_{:x}", rand::random::<u32>());
    let mut admin =
        PgConnection::connect(&env.admin).await.expect("connect ORCH_TEST_PG_ADMIN_URL");
    for sql in [
        format!("CREATE ROLE {role} LOGIN PASSWORD '{password}' IN ROLE pwauth"),
        format!("CREATE SCHEMA {role} AUTHORIZATION {role}"),
    ] {
        sqlx::query(&sql).execute(&mut admin).await.unwrap();
    }
    // The test means nothing if Postgres accepts any password.
    let wrong = format!("postgres://{role}:wrong@{}:{}/orch", env.host, env.port);
    let err = PgConnection::connect(&wrong).await.expect_err("pg_hba must enforce passwords");
    assert!(app::secret::is_auth_error(&err), "{err}");
    role
}

/// The app binary with credentials from `arn`; stdout (the log) goes to `log`. `endpoint`: a
/// Secrets Manager endpoint other than moto, with a 1 s timeout per read.
fn start_app(
    env: &Env,
    role: &str,
    arn: &str,
    port: u16,
    log: &std::path::Path,
    endpoint: Option<&str>,
) -> Kill {
    let out = std::fs::File::create(log).unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_app"))
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("BIND", "127.0.0.1")
        .env("PORT", port.to_string())
        .env("DATABASE_URL", format!("postgres://{role}@{}:{}/orch", env.host, env.port))
        .env("DATABASE_SECRET_ARN", arn)
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ENDPOINT_URL", endpoint.unwrap_or(&env.moto))
        .env("SECRET_TIMEOUT_MS", if endpoint.is_some() { "1000" } else { "5000" })
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_CONFIG_FILE", "/nonexistent")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
        .env("INSTANCE_ID", common::unique_instance())
        .env("AVAILABILITY_ZONE", "local-a")
        .env("MESSAGE_TTL_MS", "0")
        .env("DB_ACQUIRE_TIMEOUT_MS", "3000")
        .env("LOG_LEVEL", "info")
        .stdout(out.try_clone().unwrap())
        .stderr(out)
        .stdin(Stdio::null())
        .spawn()
        .expect("start the app binary");
    Kill(child)
}

fn read(path: &std::path::Path) -> String {
    let mut s = String::new();
    if let Ok(mut f) = std::fs::File::open(path) {
        let _ = f.read_to_string(&mut s);
    }
    s
}

async fn status(http: &reqwest::Client, url: &str) -> Option<u16> {
    http.get(url).send().await.ok().map(|r| r.status().as_u16())
}

async fn wait_until<F: std::future::Future<Output = bool>>(
    what: &str,
    limit: Duration,
    cond: impl Fn() -> F,
) {
    let deadline = Instant::now() + limit;
    while !cond().await {
        assert!(Instant::now() < deadline, "{what}: not within {limit:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotated_password_is_picked_up_without_restart_or_failed_requests() {
    let Some(env) = env("rotated_password_is_picked_up_without_restart_or_failed_requests") else {
        return;
    };
    let (old_pw, new_pw) = ("Old-pw-7f3a", "New-pw-9c1e");
    let role = create_role(&env, old_pw).await;
    let sm = secrets(&env);
    let arn = create_secret(&env, &role, old_pw).await;
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("app.log");
    let port = free_port();
    let _app = start_app(&env, &role, &arn, port, &log, None);
    let http = common::http();
    let index = format!("http://127.0.0.1:{port}/");
    wait_until("app serving / from Postgres", Duration::from_secs(20), || async {
        status(&http, &index).await == Some(200)
    })
    .await;

    // A client requesting / back to back for the whole rotation, each result timestamped.
    let stop = Arc::new(AtomicBool::new(false));
    let client = {
        let (http, index, stop) = (http.clone(), index.clone(), stop.clone());
        tokio::spawn(async move {
            let mut results = Vec::new();
            while !stop.load(Ordering::SeqCst) {
                let at = Instant::now();
                let s = status(&http, &index).await;
                results.push((at, s));
            }
            results
        })
    };

    let mut admin = PgConnection::connect(&env.admin).await.unwrap();
    sqlx::query(&format!("ALTER ROLE {role} PASSWORD '{new_pw}'"))
        .execute(&mut admin)
        .await
        .unwrap();
    sm.put_secret_value()
        .secret_id(&arn)
        .secret_string(secret_json(&role, new_pw))
        .send()
        .await
        .unwrap();
    let updated = Instant::now();
    let terminated: Vec<bool> = sqlx::query_scalar(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = $1",
    )
    .bind(&role)
    .fetch_all(&mut admin)
    .await
    .unwrap();
    assert!(!terminated.is_empty(), "the app had connections to terminate");
    let cut = Instant::now();

    // New connections (with the new password) serve / again within 10 s.
    let reconnected = || {
        let (admin_url, role) = (env.admin.clone(), role.clone());
        async move {
            let mut c = PgConnection::connect(&admin_url).await.unwrap();
            let n: i64 =
                sqlx::query_scalar("SELECT count(*) FROM pg_stat_activity WHERE usename = $1")
                    .bind(&role)
                    .fetch_one(&mut c)
                    .await
                    .unwrap();
            n > 0
        }
    };
    wait_until("app reconnected with the new password", Duration::from_secs(10), reconnected).await;
    wait_until("/ answers 200 after the rotation", Duration::from_secs(10), || async {
        status(&http, &index).await == Some(200)
    })
    .await;
    let recovered = cut.elapsed();
    // Keep the client going a little longer on the new connections.
    let more = Instant::now() + Duration::from_millis(500);
    wait_until("more requests", Duration::from_secs(5), || async { Instant::now() > more }).await;
    stop.store(true, Ordering::SeqCst);
    let results = client.await.unwrap();

    let after: Vec<_> = results.iter().filter(|(at, _)| *at >= updated).collect();
    let failed: Vec<_> = after.iter().filter(|(_, s)| *s != Some(200)).collect();
    assert!(after.len() >= 5, "too few requests after the update: {}", after.len());
    assert!(
        failed.is_empty(),
        "{} of {} requests after the secret update failed: {:?}",
        failed.len(),
        after.len(),
        failed.iter().map(|(at, s)| (at.duration_since(updated), *s)).collect::<Vec<_>>()
    );
    assert!(recovered < Duration::from_secs(10));
    let logs = read(&log);
    assert!(logs.contains("re-reading the secret"), "{logs}");
    for pw in [old_pw, new_pw] {
        assert!(!logs.contains(pw), "the log shows a password");
    }
    eprintln!(
        "{} requests after the secret update, all 200; / served again {recovered:?} after the cut",
        after.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_password_in_secret_is_not_ready_with_503_page_and_logged_cause() {
    let Some(env) = env("wrong_password_in_secret_is_not_ready_with_503_page_and_logged_cause")
    else {
        return;
    };
    let (right, wrong) = ("Right-pw-51d2", "Wrong-pw-0e77");
    let role = create_role(&env, right).await;
    let arn = create_secret(&env, &role, wrong).await;
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("app.log");
    let port = free_port();
    let _app = start_app(&env, &role, &arn, port, &log, None);
    let http = common::http();
    let url = |p: &str| format!("http://127.0.0.1:{port}{p}");
    wait_until("log names the refusal", Duration::from_secs(20), || async {
        read(&log).contains("28P01")
    })
    .await;

    for path in ["/readyz", "/"] {
        let r = http.get(url(path)).send().await.unwrap();
        assert_eq!(r.status(), 503, "{path}");
        let body = r.text().await.unwrap();
        assert!(body.contains(common::MARKER) && body.contains(r#"data-status="503""#), "{body}");
    }
    let r = http.get(url("/readyz")).header("accept", "application/json").send().await.unwrap();
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v["detail"], "database refused the credentials (SQLSTATE 28P01)", "{v}");
    assert_eq!(status(&http, &url("/healthz")).await, Some(200));

    let logs = read(&log);
    assert!(logs.contains("password authentication failed"), "{logs}");
    assert!(logs.contains("the secret still holds the credentials the database refused"), "{logs}");
    for pw in [right, wrong] {
        assert!(!logs.contains(pw), "the log shows a password");
    }
    for line in logs.lines().filter(|l| l.contains("28P01") || l.contains("still holds")).take(2) {
        eprintln!("log: {line}");
    }
}

/// A Secrets Manager endpoint that accepts connections and never answers, until `answer` is set:
/// then it forwards new connections to moto.
struct Hanging {
    addr: std::net::SocketAddr,
    answer: Arc<AtomicBool>,
    accepted: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Hanging {
    async fn start(moto: &str) -> Hanging {
        let u = url::Url::parse(moto).unwrap();
        let target = format!("{}:{}", u.host_str().unwrap(), u.port_or_known_default().unwrap());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (answer, accepted) = (Arc::new(AtomicBool::new(false)), Arc::new(AtomicUsize::new(0)));
        let (ans, acc) = (answer.clone(), accepted.clone());
        let task = tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                acc.fetch_add(1, Ordering::SeqCst);
                let forward = ans.load(Ordering::SeqCst);
                let target = target.clone();
                tokio::spawn(async move {
                    if forward {
                        if let Ok(mut server) = tokio::net::TcpStream::connect(&target).await {
                            let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                        }
                    } else {
                        // Read the request and never answer.
                        let mut sink = tokio::io::sink();
                        let _ = tokio::io::copy(&mut client, &mut sink).await;
                    }
                });
            }
        });
        Hanging { addr, answer, accepted, task }
    }
}

impl Drop for Hanging {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_secrets_endpoint_that_never_answers_is_retried_until_one_answers() {
    let Some(env) = env("a_secrets_endpoint_that_never_answers_is_retried_until_one_answers")
    else {
        return;
    };
    let pw = "Hang-pw-3b8d";
    let role = create_role(&env, pw).await;
    let arn = create_secret(&env, &role, pw).await;
    let hanging = Hanging::start(&env.moto).await;
    let endpoint = format!("http://{}", hanging.addr);
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("app.log");
    let port = free_port();
    let _app = start_app(&env, &role, &arn, port, &log, Some(&endpoint));
    let http = common::http();
    let url = |p: &str| format!("http://127.0.0.1:{port}{p}");

    // The first read hangs; it times out and the app tries again on a new connection.
    wait_until("a second connection to the endpoint", Duration::from_secs(15), || async {
        hanging.accepted.load(Ordering::SeqCst) >= 2
    })
    .await;
    // Meanwhile the app is live and answers not-ready quickly.
    let started = Instant::now();
    assert_eq!(status(&http, &url("/healthz")).await, Some(200));
    assert_eq!(status(&http, &url("/readyz")).await, Some(503));
    assert!(started.elapsed() < Duration::from_secs(3), "not-ready took {:?}", started.elapsed());

    hanging.answer.store(true, Ordering::SeqCst);
    let answering = Instant::now();
    wait_until("ready once the endpoint answers", Duration::from_secs(40), || async {
        status(&http, &url("/readyz")).await == Some(200)
    })
    .await;
    assert_eq!(status(&http, &url("/")).await, Some(200));
    let logs = read(&log);
    assert!(logs.contains("reading the database secret failed"), "{logs}");
    assert!(!logs.contains(pw), "the log shows the password");
    eprintln!(
        "{} connections to the endpoint; ready {:?} after it answered",
        hanging.accepted.load(Ordering::SeqCst),
        answering.elapsed()
    );
}
