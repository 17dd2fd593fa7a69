//! The Pulumi state bucket: exists, versioned, encrypted (SSE AES256) and closed to the public.
//! [`observe`] only reads; [`ensure`] fixes what is missing and leaves the rest alone.
use aws_sdk_s3::types::{
    BucketLocationConstraint, BucketVersioningStatus, CreateBucketConfiguration,
    PublicAccessBlockConfiguration, ServerSideEncryption, ServerSideEncryptionByDefault,
    ServerSideEncryptionConfiguration, ServerSideEncryptionRule, VersioningConfiguration,
};

use super::error::DeployError;

/// What the bucket looks like now.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub(crate) struct BucketState {
    pub exists: bool,
    pub versioning: bool,
    pub encryption: bool,
    pub public_access_blocked: bool,
}

impl BucketState {
    /// The settings still to apply, in words.
    pub(crate) fn missing(&self) -> Vec<&'static str> {
        let mut out = vec![];
        if !self.versioning {
            out.push("versioning");
        }
        if !self.encryption {
            out.push("encryption");
        }
        if !self.public_access_blocked {
            out.push("public access block");
        }
        out
    }
}

fn is_404(raw: Option<&aws_sdk_s3::config::http::HttpResponse>) -> bool {
    raw.is_some_and(|r| r.status().as_u16() == 404)
}

pub(crate) async fn observe(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
) -> Result<BucketState, DeployError> {
    match s3.head_bucket().bucket(bucket).send().await {
        Ok(_) => {}
        Err(e) if is_404(e.raw_response()) => return Ok(BucketState::default()),
        Err(e) => return Err(DeployError::aws(format!("looking up bucket {bucket}"))(e)),
    }
    let versioning = match s3.get_bucket_versioning().bucket(bucket).send().await {
        Ok(v) => v.status() == Some(&BucketVersioningStatus::Enabled),
        // moto answers with the root element `GetBucketVersioningResponse`, which the SDK rejects:
        // read the one `Status` element from the raw 200 body instead.
        Err(e) if e.raw_response().is_some_and(|r| r.status().as_u16() == 200) => e
            .raw_response()
            .and_then(|r| r.body().bytes())
            .is_some_and(|b| String::from_utf8_lossy(b).contains("<Status>Enabled</Status>")),
        Err(e) => return Err(DeployError::aws("reading bucket versioning")(e)),
    };
    // Not configured is a 404 (ServerSideEncryptionConfigurationNotFoundError,
    // NoSuchPublicAccessBlockConfiguration); any other failure (AccessDenied) is an error, never
    // "not set".
    let encryption = match s3.get_bucket_encryption().bucket(bucket).send().await {
        Ok(o) => o.server_side_encryption_configuration.is_some_and(|c| {
            c.rules().iter().any(|r| r.apply_server_side_encryption_by_default().is_some())
        }),
        Err(e) if is_404(e.raw_response()) => false,
        Err(e) => return Err(DeployError::aws(format!("reading the encryption of {bucket}"))(e)),
    };
    let pab = match s3.get_public_access_block().bucket(bucket).send().await {
        Ok(o) => o.public_access_block_configuration,
        Err(e) if is_404(e.raw_response()) => None,
        Err(e) => {
            return Err(DeployError::aws(format!("reading the public access block of {bucket}"))(e))
        }
    };
    let blocked = pab.is_some_and(|c| {
        c.block_public_acls() == Some(true)
            && c.block_public_policy() == Some(true)
            && c.ignore_public_acls() == Some(true)
            && c.restrict_public_buckets() == Some(true)
    });
    Ok(BucketState { exists: true, versioning, encryption, public_access_blocked: blocked })
}

/// Make the bucket match [`BucketState`]'s ideal; returns what was changed, in words.
pub(crate) async fn ensure(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    region: &str,
) -> Result<Vec<String>, DeployError> {
    let state = observe(s3, bucket).await?;
    let mut changed = vec![];
    if !state.exists {
        let mut req = s3.create_bucket().bucket(bucket);
        if region != "us-east-1" {
            req = req.create_bucket_configuration(
                CreateBucketConfiguration::builder()
                    .location_constraint(BucketLocationConstraint::from(region))
                    .build(),
            );
        }
        match req.send().await {
            Ok(_) => changed.push(format!("created bucket {bucket}")),
            Err(e) if e.as_service_error().is_some_and(|s| s.is_bucket_already_owned_by_you()) => {}
            Err(e) => return Err(DeployError::aws(format!("creating bucket {bucket}"))(e)),
        }
    }
    if !state.versioning {
        s3.put_bucket_versioning()
            .bucket(bucket)
            .versioning_configuration(
                VersioningConfiguration::builder().status(BucketVersioningStatus::Enabled).build(),
            )
            .send()
            .await
            .map_err(DeployError::aws("enabling bucket versioning"))?;
        changed.push("versioning".into());
    }
    if !state.encryption {
        let rule = ServerSideEncryptionRule::builder()
            .apply_server_side_encryption_by_default(
                ServerSideEncryptionByDefault::builder()
                    .sse_algorithm(ServerSideEncryption::Aes256)
                    .build()
                    .map_err(|e| DeployError::step("encryption rule", e.to_string()))?,
            )
            .build();
        let config = ServerSideEncryptionConfiguration::builder()
            .rules(rule)
            .build()
            .map_err(|e| DeployError::step("encryption rule", e.to_string()))?;
        s3.put_bucket_encryption()
            .bucket(bucket)
            .server_side_encryption_configuration(config)
            .send()
            .await
            .map_err(DeployError::aws("enabling bucket encryption"))?;
        changed.push("encryption".into());
    }
    if !state.public_access_blocked {
        let block = PublicAccessBlockConfiguration::builder()
            .block_public_acls(true)
            .block_public_policy(true)
            .ignore_public_acls(true)
            .restrict_public_buckets(true)
            .build();
        s3.put_public_access_block()
            .bucket(bucket)
            .public_access_block_configuration(block)
            .send()
            .await
            .map_err(DeployError::aws("blocking public access"))?;
        changed.push("public access block".into());
    }
    Ok(changed)
}

#[cfg(test)]
mod tests {
    #[test]
    fn bucket_names_come_from_s3_backends_only() {}
}
