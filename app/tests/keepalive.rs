//! Connection timeouts of the real server (`server::serve` over TCP): a keep-alive connection left
//! idle longer than the load balancer's idle timeout is still answered (the ALB would otherwise
//! reuse a connection the app closed and answer 502), while a client that starts a request head and
//! stalls is cut off after the short head timeout. Scaled down as in the issue: an "ALB" idle
//! timeout of 2 s against the app's 3 s keep-alive, a 1 s head timeout.

mod common;

use std::time::{Duration, Instant};

use app::Config;
use clap::Parser;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// The load balancer's idle timeout of this scaled-down setting.
const ALB_IDLE: Duration = Duration::from_secs(2);
const HEAD_TIMEOUT: Duration = Duration::from_secs(1);

/// Serve the app as on AWS (keep-alive above the balancer's idle timeout); returns its address.
async fn start(dir: &tempfile::TempDir) -> std::net::SocketAddr {
    let config = Config::try_parse_from([
        "app",
        "--keep-alive-timeout-ms",
        "3000",
        "--header-read-timeout-ms",
        &HEAD_TIMEOUT.as_millis().to_string(),
    ])
    .unwrap();
    let opts = config.serve_options();
    assert!(opts.keep_alive_timeout > ALB_IDLE);
    let state = common::sqlite_state(dir).await;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = app::router(state);
    tokio::spawn(app::server::serve(listener, app, opts, std::future::pending()));
    addr
}

const GET: &[u8] = b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n";

/// Read one response to a `GET /healthz` (its body is `ok`); None when the connection is closed.
async fn response(s: &mut TcpStream) -> Option<String> {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while !got.ends_with(b"\r\n\r\nok") {
        match s.read(&mut buf).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    }
    Some(String::from_utf8_lossy(&got).into_owned())
}

/// How long until the peer closes `s` (reading and discarding), up to `limit`.
async fn closed_after(s: &mut TcpStream, limit: Duration) -> Option<Duration> {
    let started = Instant::now();
    let mut buf = [0u8; 1024];
    tokio::time::timeout(limit, async {
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => return started.elapsed(),
                Ok(_) => {}
            }
        }
    })
    .await
    .ok()
}

#[tokio::test]
async fn keep_alive_connection_idle_longer_than_the_alb_timeout_is_still_answered() {
    let dir = tempfile::tempdir().unwrap();
    let addr = start(&dir).await;
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(GET).await.unwrap();
    let first = response(&mut s).await.expect("first response");
    assert!(first.starts_with("HTTP/1.1 200"), "{first}");
    // Idle as long as the balancer keeps its side open (and past the 1 s head timeout, which
    // closed idle connections before the keep-alive timeout was its own setting).
    tokio::time::sleep(ALB_IDLE + Duration::from_millis(200)).await;
    s.write_all(GET).await.unwrap();
    let second = response(&mut s).await.expect("the idle connection was closed by the app");
    assert!(second.starts_with("HTTP/1.1 200"), "{second}");
    // And the idle connection is closed once the keep-alive timeout has passed.
    let closed = closed_after(&mut s, Duration::from_secs(6)).await.expect("never closed");
    assert!(closed >= Duration::from_millis(2_500), "closed after {closed:?}");
}

#[tokio::test]
async fn a_new_connection_that_sends_nothing_is_closed_after_the_keep_alive_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let addr = start(&dir).await;
    let mut s = TcpStream::connect(addr).await.unwrap();
    let closed = closed_after(&mut s, Duration::from_secs(6)).await.expect("never closed");
    assert!(closed >= Duration::from_millis(2_500), "closed after {closed:?}");
    // A connection kept busy past the keep-alive timeout stays open: the bound is idle time.
    let mut s = TcpStream::connect(addr).await.unwrap();
    let started = Instant::now();
    while started.elapsed() < Duration::from_millis(3_600) {
        s.write_all(GET).await.unwrap();
        response(&mut s).await.expect("a busy connection was closed");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

#[tokio::test]
async fn a_stalled_request_head_is_cut_off_after_the_head_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let addr = start(&dir).await;
    // On a new connection.
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: t\r\n").await.unwrap();
    let closed = closed_after(&mut s, Duration::from_secs(5)).await.expect("never cut off");
    assert!(closed < HEAD_TIMEOUT + Duration::from_millis(700), "cut off after {closed:?}");

    // On a keep-alive connection that served a request, idle for a while first.
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(GET).await.unwrap();
    response(&mut s).await.expect("first response");
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    s.write_all(b"GET /healthz HTTP/1.1\r\n").await.unwrap();
    let closed = closed_after(&mut s, Duration::from_secs(5)).await.expect("never cut off");
    assert!(closed < HEAD_TIMEOUT + Duration::from_millis(700), "cut off after {closed:?}");

    // A head sent byte by byte, each gap well within the head timeout, is still bounded as a whole.
    let mut s = TcpStream::connect(addr).await.unwrap();
    let started = Instant::now();
    let mut cut = false;
    for b in b"GET /healthz HTTP/1.1\r\nHost: t\r\nX-Slow: aaaaaaaaaaaaaaaaaaaa\r\n" {
        if s.write_all(&[*b]).await.is_err() {
            cut = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let closed = if cut {
        Some(started.elapsed())
    } else {
        closed_after(&mut s, Duration::from_secs(5)).await
    };
    let closed = closed.expect("a trickled head was never cut off");
    assert!(closed < HEAD_TIMEOUT + Duration::from_millis(900), "cut off after {closed:?}");
}
