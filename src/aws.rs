//! One place that builds the AWS SDK configuration from the standard environment
//! (`AWS_PROFILE`, credentials, `AWS_ENDPOINT_URL` for moto/localstack) for a given region.
use aws_config::{BehaviorVersion, Region, SdkConfig};

/// The shared SDK configuration for `region`; every AWS client orch makes starts from it.
pub async fn sdk_config(region: &str) -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest()).region(Region::new(region.to_owned())).load().await
}
