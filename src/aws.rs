//! One place that builds the AWS SDK configuration from the standard environment
//! (`AWS_PROFILE`, credentials, `AWS_ENDPOINT_URL` for moto/localstack) for a given region, with
//! the SDK's default timeouts or the caller's own.
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};

/// The shared SDK configuration for `region`; every AWS client orch makes starts from it.
pub async fn sdk_config(region: &str) -> SdkConfig {
    sdk_config_with(region, None).await
}

/// [`sdk_config`] with `timeouts` instead of the SDK defaults (e.g. short ones for read-only
/// reports, so a dead endpoint fails one check quickly). Endpoints and credentials come from the
/// environment exactly as in [`sdk_config`].
pub async fn sdk_config_with(region: &str, timeouts: Option<TimeoutConfig>) -> SdkConfig {
    let loader = aws_config::defaults(BehaviorVersion::latest()).region(Region::new(region.to_owned()));
    match timeouts {
        Some(t) => loader.timeout_config(t),
        None => loader,
    }
    .load()
    .await
}
