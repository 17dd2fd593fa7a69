//! The `app` binary as a process: a stdout nobody reads never stalls the server, and `--help`
//! never prints the database URL it was given.

mod common;

use common::{free_port, Kill};

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The `app` binary on SQLite in `dir`, at `port` on 127.0.0.1, access log on, stdout piped.
fn spawn_app(port: u16, dir: &tempfile::TempDir, env: &[(&str, &str)]) -> std::process::Child {
    Command::new(env!("CARGO_BIN_EXE_app"))
        .env_clear()
        .env("BIND", "127.0.0.1")
        .env("PORT", port.to_string())
        .env("DATABASE_URL", common::sqlite_url(dir))
        .env("INSTANCE_ID", common::INSTANCE)
        .env("AVAILABILITY_ZONE", common::ZONE)
        .env("LOG_LEVEL", "info")
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the app binary")
}

/// Wait until the app at `base` answers `/` with 200 (20 s at most).
async fn serving(http: &reqwest::Client, base: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while http.get(format!("{base}/")).send().await.map(|r| r.status().as_u16()).ok() != Some(200) {
        assert!(Instant::now() < deadline, "the app never served /");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[test]
fn help_never_shows_the_database_url_value() {
    let out = Command::new(env!("CARGO_BIN_EXE_app"))
        .arg("--help")
        .env("DATABASE_URL", "postgres://orch:S3cret-pw@db.internal/orch")
        .output()
        .expect("run app --help");
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{help}");
    assert!(help.contains("DATABASE_URL"), "the variable is still named: {help}");
    assert!(!help.contains("S3cret-pw") && !help.contains("db.internal"), "{help}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthz_answers_while_nobody_reads_stdout() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut child = spawn_app(port, &dir, &[("LOG_QUEUE_LINES", "512")]);
    // Held, never read until the end: the pipe (64 KiB) fills after a few hundred lines.
    let mut stdout = child.stdout.take().unwrap();
    let _app = Kill(child);
    let (http, base) = (common::http(), format!("http://127.0.0.1:{port}"));
    serving(&http, &base).await;

    // Thousands of requests, each an access-log line, from 4 clients.
    let clients: Vec<_> = (0..4)
        .map(|_| {
            let (http, url) = (http.clone(), format!("{base}/"));
            tokio::spawn(async move {
                let mut slowest = Duration::ZERO;
                for _ in 0..1_000 {
                    let started = Instant::now();
                    let status = http.get(&url).send().await.expect("request").status();
                    assert_eq!(status.as_u16(), 200);
                    slowest = slowest.max(started.elapsed());
                }
                slowest
            })
        })
        .collect();
    for c in clients {
        let slowest = c.await.unwrap();
        assert!(slowest < Duration::from_secs(1), "a request took {slowest:?}");
    }
    let started = Instant::now();
    let healthz = tokio::time::timeout(
        Duration::from_secs(1),
        reqwest::Client::new().get(format!("{base}/healthz")).send(),
    )
    .await
    .expect("/healthz did not answer within 1 s")
    .unwrap();
    assert_eq!(healthz.status().as_u16(), 200);
    assert!(started.elapsed() < Duration::from_secs(1));

    // Once stdout is read again the writer reports what it dropped.
    let reader = std::thread::spawn(move || {
        let mut text = Vec::new();
        let mut buf = [0u8; 65536];
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            match stdout.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => text.extend_from_slice(&buf[..n]),
            }
            let s = String::from_utf8_lossy(&text);
            if let Some(line) = s.lines().find(|l| l.contains("log lines dropped")) {
                return Some(line.to_string());
            }
        }
        None
    });
    // A request after reading resumed makes the writer take a line and write its report.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !reader.is_finished() && Instant::now() < deadline {
        let _ = http.get(format!("{base}/healthz")).send().await;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let line = reader.join().unwrap().expect("no `log lines dropped` line on stdout");
    let v: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert!(v["dropped_total"].as_u64().unwrap() > 0, "{line}");
}

/// The access log as the binary writes it: one JSON line per request, formatted by the log writer,
/// naming the instance, method, path (without the query), status and latency.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn access_lines_name_the_instance_and_the_request() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut child = spawn_app(port, &dir, &[]);
    let stdout = child.stdout.take().unwrap();
    let _app = Kill(child);
    let (tx, rx) = std::sync::mpsc::channel::<serde_json::Value>();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stdout).lines().map_while(Result::ok) {
            let v: serde_json::Value = serde_json::from_str(&line).expect("a JSON line");
            if v["target"] == "app::access" && tx.send(v).is_err() {
                return;
            }
        }
    });
    let (http, base) = (common::http(), format!("http://127.0.0.1:{port}"));
    serving(&http, &base).await;
    let missing = http.get(format!("{base}/nope?secret=1")).send().await.unwrap();
    assert_eq!(missing.status().as_u16(), 404);
    let mut seen = Vec::new();
    while !seen.iter().any(|v: &serde_json::Value| v["status"] == 404) {
        seen.push(rx.recv_timeout(Duration::from_secs(5)).expect("no access line for /nope"));
    }
    let ok = seen.iter().find(|v| v["status"] == 200).expect("an access line for /");
    assert_eq!(ok["instance_id"], common::INSTANCE, "{ok}");
    assert_eq!(
        (&ok["method"], &ok["path"], &ok["level"]),
        (&"GET".into(), &"/".into(), &"INFO".into())
    );
    assert!(ok["latency_ms"].as_f64().is_some_and(|ms| ms >= 0.0), "{ok}");
    assert!(ok["timestamp"].as_str().is_some_and(|t| t.len() == 27 && t.ends_with('Z')), "{ok}");
    let nope = seen.last().unwrap();
    assert_eq!(nope["path"], "/nope", "the query is not logged: {nope}");
}
