//! Images a release uses are never expired. Every release tags its image `release-<env>-<time>`
//! before the stack changes, and the repository's lifecycle policy ([`super::ecr::lifecycle_policy`])
//! gives those tags a rule of their own ahead of the `keep` rule: "an image that matches the tagging
//! requirements of a higher priority rule cannot be expired by a rule with a lower priority" (Amazon
//! ECR User Guide, "How lifecycle policies work"). Before a release deploys an image it did not
//! build (`orch rollback`, `ORCH_IMAGE`), the image is looked up by digest (`DescribeImages`), so a
//! missing one stops the run before anything changes.
use aws_sdk_ecr::types::ImageIdentifier;
use aws_sdk_ecr::Client;

use super::ImageError;

/// The tag prefix the lifecycle policy protects.
pub const RELEASE_TAG_PREFIX: &str = "release-";

/// An image in ECR, by digest: `<account>.dkr.ecr.<region>.amazonaws.com/<repository>@sha256:…`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EcrImage {
    pub region: String,
    pub repository: String,
    pub digest: oci_spec::image::Digest,
}

/// The ECR image an image URI names; `None` for another registry.
pub fn ecr_image(uri: &str) -> Option<EcrImage> {
    let (host, rest) = uri.split_once('/')?;
    let (repository, digest) = rest.split_once('@')?;
    let mut labels = host.split('.');
    let (_account, dkr, ecr, region) =
        (labels.next()?, labels.next()?, labels.next()?, labels.next()?);
    if dkr != "dkr" || ecr != "ecr" || !host.ends_with(".amazonaws.com") {
        return None;
    }
    let digest = digest.parse().ok()?;
    Some(EcrImage { region: region.into(), repository: repository.into(), digest })
}

/// The tag that keeps a release's image: `release-<env>-<YYYYMMDDTHHMMSSmmm>` (ECR tags: up to
/// 300 characters of letters, digits, `_.-`).
pub fn release_tag(env: &str, time: &crate::clock::Time) -> String {
    format!("{RELEASE_TAG_PREFIX}{env}-{}", time.format("%Y%m%dT%H%M%S%3f"))
}

fn ecr_error(what: &str, e: impl std::error::Error + 'static) -> ImageError {
    ImageError::Ecr(format!("{what}: {}", crate::aws::describe(&e)))
}

/// Is the image in its repository? A missing repository or image is `false`, not an error.
pub async fn exists(client: &Client, image: &EcrImage) -> Result<bool, ImageError> {
    let id = ImageIdentifier::builder().image_digest(image.digest.as_ref()).build();
    match client.describe_images().repository_name(&image.repository).image_ids(id).send().await {
        Ok(out) => Ok(!out.image_details().is_empty()),
        Err(e)
            if e.as_service_error().is_some_and(|s| {
                s.is_image_not_found_exception() || s.is_repository_not_found_exception()
            }) =>
        {
            Ok(false)
        }
        Err(e) => Err(ecr_error(&format!("looking up {}@{}", image.repository, image.digest), e)),
    }
}

/// Add `tag` to the image (its manifest put again under the tag: `BatchGetImage`, `PutImage`).
/// An image that already carries the tag is left as it is.
pub async fn tag(client: &Client, image: &EcrImage, tag: &str) -> Result<(), ImageError> {
    let what = format!("tagging {}@{} as {tag}", image.repository, image.digest);
    let id = ImageIdentifier::builder().image_digest(image.digest.as_ref()).build();
    let got = client
        .batch_get_image()
        .repository_name(&image.repository)
        .image_ids(id)
        .send()
        .await
        .map_err(|e| ecr_error(&what, e))?;
    let Some(found) = got.images().first() else {
        return Err(ImageError::Ecr(format!("{what}: the image is not in the repository")));
    };
    let manifest = found.image_manifest().unwrap_or_default();
    let mut put = client
        .put_image()
        .repository_name(&image.repository)
        .image_manifest(manifest)
        .image_digest(image.digest.as_ref())
        .image_tag(tag);
    if let Some(media) = found.image_manifest_media_type() {
        put = put.image_manifest_media_type(media);
    }
    match put.send().await {
        Ok(_) => Ok(()),
        Err(e) if e.as_service_error().is_some_and(|s| s.is_image_already_exists_exception()) => {
            Ok(())
        }
        Err(e) => Err(ecr_error(&what, e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ecr_uris_are_recognised_and_other_registries_are_not() {
        let digest = format!("sha256:{}", "a".repeat(64));
        assert_eq!(
            ecr_image(&format!("123456789012.dkr.ecr.eu-west-1.amazonaws.com/orch-app@{digest}")),
            Some(EcrImage {
                region: "eu-west-1".into(),
                repository: "orch-app".into(),
                digest: digest.parse().unwrap()
            })
        );
        assert_eq!(ecr_image(&format!("127.0.0.1:5000/orch-app@{digest}")), None);
        assert_eq!(ecr_image("123456789012.dkr.ecr.eu-west-1.amazonaws.com/orch-app:latest"), None);
        let time = "2026-01-02T03:04:05.678Z".parse().unwrap();
        assert_eq!(release_tag("prod", &time), "release-prod-20260102T030405678");
    }
}
