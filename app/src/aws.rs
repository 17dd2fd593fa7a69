//! The AWS SDK set-up shared by the secret reader and the IMDS client.
//!
//! One HTTPS client for every SDK call: hyper + rustls on **ring**, the crypto the app already
//! links for sqlx and reqwest (the SDK's `default-https-client` would add aws-lc-rs as a second
//! stack). Region, endpoint and credentials come from the SDK's standard chains: `AWS_REGION`,
//! `AWS_ENDPOINT_URL` (tests point it at moto), environment keys, and on EC2 the instance role
//! through IMDSv2.

use aws_config::BehaviorVersion;
use aws_sdk_secretsmanager::config::SharedHttpClient;
use aws_smithy_http_client::tls::{rustls_provider::CryptoMode, Provider};

/// The HTTPS client every SDK call of the app uses.
pub fn http_client() -> SharedHttpClient {
    aws_smithy_http_client::Builder::new()
        .tls_provider(Provider::Rustls(CryptoMode::Ring))
        .build_https()
}

/// SDK configuration from the standard environment (no I/O unless the region must come from IMDS).
pub async fn sdk_config() -> aws_config::SdkConfig {
    aws_config::defaults(BehaviorVersion::latest()).http_client(http_client()).load().await
}
