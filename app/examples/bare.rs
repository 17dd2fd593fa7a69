//! Bare hyper "hello" server: the performance baseline for `scripts/bench-app.sh`.
//!
//! Same runtime (tokio multi-thread), same HTTP/1 stack (hyper) and same
//! accept loop shape as the app, but no routing, middleware, logging or DB.
//! Usage: `bare [PORT]` (binds 127.0.0.1, default port 8090).

use std::convert::Infallible;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

async fn hello(_req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    Ok(Response::new(Full::new(Bytes::from_static(b"Hello, world!\n"))))
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let port: u16 = std::env::args().nth(1).and_then(|p| p.parse().ok()).unwrap_or(8090);
    let listener = TcpListener::bind(("127.0.0.1", port)).await?;
    eprintln!("bare hyper hello listening on {}", listener.local_addr()?);
    loop {
        let (stream, _) = listener.accept().await?;
        let _ = stream.set_nodelay(true);
        tokio::spawn(async move {
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service_fn(hello))
                .await;
        });
    }
}
