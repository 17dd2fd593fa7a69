//! EC2 instance metadata (IMDSv2) through the AWS SDK's client (`aws_config::imds`).
//!
//! IMDSv2 is session based: `PUT /latest/api/token` with
//! `X-aws-ec2-metadata-token-ttl-seconds` returns a token (and its lifetime in the same header),
//! which then goes in `X-aws-ec2-metadata-token` on every `GET /latest/meta-data/...`. The SDK's
//! client caches the token and renews it 120 s before it expires (so a token shorter than that is
//! fetched for every request) and retries 5xx and 401 answers. It is the app's only IMDS client;
//! the SDK's credential chain uses the same implementation for the instance role.
//!
//! Timeouts are short (300 ms connect, 800 ms per read): the caller retries a failed lookup with
//! backoff on a fresh client (see [`crate::identity`]), which also drops a token the service no
//! longer accepts.

use std::time::Duration;

pub use aws_config::imds::client::error::ImdsError;
pub use aws_config::imds::Client;

/// Header carrying the requested token lifetime on `PUT /latest/api/token`.
pub const TTL_HEADER: &str = "X-aws-ec2-metadata-token-ttl-seconds";
/// Header carrying the session token on metadata requests.
pub const TOKEN_HEADER: &str = "X-aws-ec2-metadata-token";
/// Where IMDS answers on EC2.
pub const DEFAULT_ENDPOINT: &str = "http://169.254.169.254";

/// Client for `endpoint` (e.g. `http://169.254.169.254`) with 6 h tokens.
pub fn client(endpoint: &str) -> Result<Client, String> {
    client_with_ttl(endpoint, Duration::from_secs(21_600))
}

/// Client requesting tokens that live `ttl` (IMDS accepts 1 s ..= 6 h).
pub fn client_with_ttl(endpoint: &str, ttl: Duration) -> Result<Client, String> {
    let config = aws_config::provider_config::ProviderConfig::default()
        .with_http_client(crate::aws::http_client());
    Ok(Client::builder()
        .configure(&config)
        .endpoint(endpoint)
        .map_err(|e| format!("IMDS endpoint {endpoint:?}: {e}"))?
        .token_ttl(ttl.clamp(Duration::from_secs(1), Duration::from_secs(21_600)))
        .connect_timeout(Duration::from_millis(300))
        .read_timeout(Duration::from_millis(800))
        .max_attempts(2)
        .build())
}

/// `GET /latest/meta-data/{path}`, trimmed.
pub async fn get_metadata(client: &Client, path: &str) -> Result<String, ImdsError> {
    let path = format!("/latest/meta-data/{}", path.trim_start_matches('/'));
    Ok(client.get(path).await?.as_ref().trim().to_string())
}

/// The instance id (`i-...`).
pub async fn instance_id(client: &Client) -> Result<String, ImdsError> {
    get_metadata(client, "instance-id").await
}

/// The availability zone (e.g. `eu-west-1a`).
pub async fn availability_zone(client: &Client) -> Result<String, ImdsError> {
    get_metadata(client, "placement/availability-zone").await
}
