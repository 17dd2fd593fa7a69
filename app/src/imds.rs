//! Minimal EC2 instance metadata (IMDSv2) client.
//!
//! IMDSv2 is session based: `PUT /latest/api/token` with
//! `X-aws-ec2-metadata-token-ttl-seconds` returns a token, which then goes in
//! `X-aws-ec2-metadata-token` on every `GET /latest/meta-data/...`. The token
//! is cached and renewed shortly before it expires; a `401` (token revoked or
//! expired early) drops the cached token and retries once with a fresh one.
//! Timeouts are short: the caller bounds the whole lookup to about a second.

use std::time::{Duration, Instant};

use tokio::sync::Mutex;

/// Header carrying the requested token lifetime on `PUT /latest/api/token`.
pub const TTL_HEADER: &str = "X-aws-ec2-metadata-token-ttl-seconds";
/// Header carrying the session token on metadata requests.
pub const TOKEN_HEADER: &str = "X-aws-ec2-metadata-token";

/// Errors from the metadata service.
#[derive(Debug, thiserror::Error)]
pub enum ImdsError {
    /// Transport failure (connection refused, timeout, ...).
    #[error("IMDS request failed: {0}")]
    Http(#[from] reqwest::Error),
    /// The service answered with an unexpected status.
    #[error("IMDS answered {status} for {path}")]
    Status { status: u16, path: String },
}

#[derive(Debug, Clone)]
struct CachedToken {
    value: String,
    renew_at: Instant,
}

/// IMDSv2 client with a cached, auto-renewed session token.
#[derive(Debug)]
pub struct ImdsClient {
    base: String,
    http: reqwest::Client,
    ttl: Duration,
    token: Mutex<Option<CachedToken>>,
}

impl ImdsClient {
    /// Client for `endpoint` (e.g. `http://169.254.169.254`) with 6 h tokens.
    pub fn new(endpoint: &str) -> Self {
        Self::with_ttl(endpoint, Duration::from_secs(21_600))
    }

    /// Client requesting tokens that live `ttl` (IMDS accepts 1 s ..= 6 h).
    pub fn with_ttl(endpoint: &str, ttl: Duration) -> Self {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_millis(300))
            .timeout(Duration::from_millis(800))
            .no_proxy()
            .build()
            .expect("reqwest client builds with static settings");
        Self {
            base: endpoint.trim_end_matches('/').to_string(),
            http,
            ttl: ttl.clamp(Duration::from_secs(1), Duration::from_secs(21_600)),
            token: Mutex::new(None),
        }
    }

    /// A valid session token, fetching a new one when none is cached or the
    /// cached one is about to expire (renewed after 80 % of its lifetime).
    pub async fn token(&self) -> Result<String, ImdsError> {
        let mut guard = self.token.lock().await;
        if let Some(t) = guard.as_ref() {
            if Instant::now() < t.renew_at {
                return Ok(t.value.clone());
            }
        }
        let requested_at = Instant::now();
        let resp = self
            .http
            .put(format!("{}/latest/api/token", self.base))
            .header(TTL_HEADER, self.ttl.as_secs().to_string())
            .send()
            .await?;
        if !resp.status().is_success() {
            return Err(ImdsError::Status {
                status: resp.status().as_u16(),
                path: "/latest/api/token".into(),
            });
        }
        let value = resp.text().await?.trim().to_string();
        let renew_at = requested_at + self.ttl.mul_f64(0.8);
        *guard = Some(CachedToken { value: value.clone(), renew_at });
        Ok(value)
    }

    /// Drop the cached token so the next call fetches a fresh one.
    pub async fn invalidate(&self) {
        *self.token.lock().await = None;
    }

    /// `GET /latest/meta-data/{path}`, retrying once with a new token on 401.
    pub async fn get_metadata(&self, path: &str) -> Result<String, ImdsError> {
        let path = format!("/latest/meta-data/{}", path.trim_start_matches('/'));
        for attempt in 0..2 {
            let token = self.token().await?;
            let resp = self
                .http
                .get(format!("{}{}", self.base, path))
                .header(TOKEN_HEADER, token)
                .send()
                .await?;
            let status = resp.status();
            if status == reqwest::StatusCode::UNAUTHORIZED && attempt == 0 {
                tracing::debug!(%path, "IMDS token rejected, fetching a new one");
                self.invalidate().await;
                continue;
            }
            if !status.is_success() {
                return Err(ImdsError::Status { status: status.as_u16(), path });
            }
            return Ok(resp.text().await?.trim().to_string());
        }
        unreachable!("loop returns on the second attempt")
    }

    /// The instance id (`i-...`).
    pub async fn instance_id(&self) -> Result<String, ImdsError> {
        self.get_metadata("instance-id").await
    }

    /// The availability zone (e.g. `eu-west-1a`).
    pub async fn availability_zone(&self) -> Result<String, ImdsError> {
        self.get_metadata("placement/availability-zone").await
    }
}
