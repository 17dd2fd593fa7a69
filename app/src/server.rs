//! HTTP serving: accept loop, header-read timeout, graceful shutdown, and
//! the `run` entry point used by `main`.
//!
//! `axum::serve` does not expose hyper's connection builder, so we drive
//! hyper's HTTP/1 server directly: that lets us turn off its per-request
//! `header_read_timeout` ([`crate::conn`] bounds the keep-alive idle time and
//! the request head on one timer per connection) and gives us `hyper_util`'s `GracefulShutdown`, which on
//! SIGTERM/SIGINT stops accepting, lets in-flight requests finish, closes
//! idle keep-alive connections, and gives up after the grace period.

use std::future::Future;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;

use crate::config::Config;
use crate::conn::{Counts, GuardedIo, Tracked};
use crate::db::{redact, Db};
use crate::secret::SecretSource;
use crate::state::AppState;

/// Connection-level settings.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// From a request's first byte to the end of its head.
    pub header_read_timeout: Duration,
    /// A connection without a request in flight (new, or between requests) is closed after this.
    pub keep_alive_timeout: Duration,
    pub shutdown_grace: Duration,
}

/// Serve `app` on `listener` until `shutdown` resolves, then drain.
pub async fn serve(
    listener: TcpListener,
    app: crate::App,
    opts: ServeOptions,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let graceful = GracefulShutdown::new();
    let mut builder = http1::Builder::new();
    // hyper's per-request timer is off: `GuardedIo` bounds the idle time and the head on one timer
    // per connection.
    builder.header_read_timeout(None).keep_alive(true);
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, _peer) = match accepted {
                    Ok(x) => x,
                    Err(e) => {
                        // EMFILE and friends: back off instead of spinning.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let counts = std::sync::Arc::new(Counts::default());
                let io = GuardedIo::new(
                    stream,
                    counts.clone(),
                    opts.header_read_timeout,
                    opts.keep_alive_timeout,
                );
                let service = Tracked::new(TowerToHyperService::new(app.clone()), counts);
                let conn = builder.serve_connection(TokioIo::new(io), service);
                let conn = graceful.watch(conn);
                tokio::spawn(async move {
                    if let Err(e) = conn.await {
                        tracing::debug!(error = %e, "connection ended with error");
                    }
                });
            }
            () = &mut shutdown => break,
        }
    }
    drop(listener);
    tracing::info!(
        grace_ms = opts.shutdown_grace.as_millis() as u64,
        "shutting down: draining in-flight requests"
    );
    match tokio::time::timeout(opts.shutdown_grace, graceful.shutdown()).await {
        Ok(()) => tracing::info!("all connections drained"),
        Err(_) => tracing::warn!("grace period elapsed; closing remaining connections"),
    }
    Ok(())
}

/// Resolves on SIGTERM or SIGINT.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => tracing::info!(signal = "SIGINT", "shutdown requested"),
        () = term => tracing::info!(signal = "SIGTERM", "shutdown requested"),
    }
}

/// Open the pool (credentials from the secret when `DATABASE_SECRET_ARN` is set), start serving at
/// once (liveness), resolve the identity in the background and then start the database tasks;
/// serve until a signal, then flush the hit counter and close the pool.
pub async fn run(config: Config) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let mut db = Db::connect_lazy(&config.db_options())?;
    match config.database_secret_arn.as_deref().filter(|s| !s.is_empty()) {
        Some(arn) => {
            let sdk = crate::aws::sdk_config().await;
            db = db.with_secret(
                &config.database_url,
                SecretSource::new(&sdk, arn, Duration::from_millis(config.secret_timeout_ms)),
            )?;
            tracing::info!(db = db.kind().as_str(), url = %redact(&config.database_url), secret = %arn, "database configured; credentials from the secret");
        }
        None => {
            tracing::info!(db = db.kind().as_str(), url = %redact(&config.database_url), "database configured");
        }
    }
    let state = AppState::unidentified(db, config.http_settings());
    let identity_opts = config.identity_options();
    let flush_every = Duration::from_millis(config.hits_flush_ms.max(10));
    let st = state.clone();
    let background = tokio::spawn(async move {
        st.set_identity(crate::identity::resolve(&identity_opts).await);
        st.spawn_background(flush_every)
    });

    let listener = TcpListener::bind(config.listen_addr()).await?;
    tracing::info!(addr = %listener.local_addr()?, "listening");
    serve(listener, crate::router(state.clone()), config.serve_options(), shutdown_signal())
        .await?;

    if background.is_finished() {
        if let Ok(tasks) = background.await {
            tasks.abort();
        }
    } else {
        background.abort();
    }
    if state.is_db_ready() {
        match tokio::time::timeout(Duration::from_secs(2), state.flush_hits()).await {
            Ok(Ok(total)) => tracing::info!(hits = total, "hit counter flushed"),
            Ok(Err(e)) => tracing::warn!(error = %e, "final hit counter flush failed"),
            Err(_) => tracing::warn!("final hit counter flush timed out"),
        }
    }
    state.db().close().await;
    tracing::info!("bye");
    crate::logging::flush();
    Ok(())
}
