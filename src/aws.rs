//! One place that builds the AWS SDK configuration from the standard environment
//! (`AWS_PROFILE`, credentials, `AWS_ENDPOINT_URL` for moto/localstack) for a given region, with
//! the SDK's default timeouts or the caller's own; and the S3 client, path-style under an emulator.
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
    let loader =
        aws_config::defaults(BehaviorVersion::latest()).region(Region::new(region.to_owned()));
    match timeouts {
        Some(t) => loader.timeout_config(t),
        None => loader,
    }
    .load()
    .await
}

/// True when AWS calls go to an emulator (any `AWS_ENDPOINT_URL*` set): it answers on one host name,
/// public DNS cannot see its zones, and the names it returns are fake.
pub fn emulated() -> bool {
    std::env::vars_os().any(|(k, v)| {
        !v.is_empty() && k.to_str().is_some_and(|k| k.starts_with("AWS_ENDPOINT_URL"))
    })
}

/// The S3 client for `sdk`: path-style addressing under an emulator, where virtual-hosted bucket
/// names would not resolve.
pub fn s3_client(sdk: &SdkConfig) -> aws_sdk_s3::Client {
    aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(sdk).force_path_style(emulated()).build(),
    )
}

/// An AWS SDK failure as a person reads it: the causes' messages joined (no debug dump of the
/// SDK's structs), or one sentence when no credentials were found. `-v` gives the SDK's full
/// context as well.
pub fn describe(e: &(dyn std::error::Error + 'static)) -> String {
    use aws_credential_types::provider::error::CredentialsError;
    let mut parts: Vec<String> = vec![];
    let mut next = Some(e);
    while let Some(err) = next {
        if let Some(CredentialsError::CredentialsNotLoaded(_)) = err.downcast_ref() {
            return NO_CREDENTIALS.into();
        }
        let text = err.to_string();
        if !parts.last().is_some_and(|p| p.contains(&text)) {
            parts.push(text);
        }
        next = err.source();
    }
    let short = parts.join(": ");
    if tracing::enabled!(target: "orch", tracing::Level::DEBUG) {
        format!("{short} [{e:?}]")
    } else {
        short
    }
}

/// What [`describe`] says when the SDK's credential chain found nothing.
pub const NO_CREDENTIALS: &str = "no AWS credentials found (tried the environment variables, the \
     shared config and credentials files for the profile, web identity, the ECS container and \
     instance metadata)";
/// The next step for [`NO_CREDENTIALS`].
pub const NO_CREDENTIALS_HINT: &str = "set AWS_PROFILE to a configured profile (or run `aws sso \
     login` / `aws configure`), check with `aws sts get-caller-identity`, then rerun";
