//! ECR for AWS environments: make sure the repository exists with scan-on-push, immutable tags and
//! a lifecycle policy keeping the last N images (a pure [`plan`] from what is observed, then
//! [`apply`]), and turn an authorization token into registry credentials for the push.
use aws_sdk_ecr::types::{ImageScanningConfiguration, ImageTagMutability};
use aws_sdk_ecr::Client;
use base64::Engine;
use oci_client::secrets::RegistryAuth;

use super::ImageError;

/// The repository as found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observed {
    pub uri: String,
    pub immutable: bool,
    pub scan_on_push: bool,
    pub lifecycle_policy: Option<String>,
}

/// One change to make.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Create,
    SetImmutableTags,
    SetScanOnPush,
    PutLifecyclePolicy(String),
}

/// The lifecycle policy text: images tagged as a release's (`release-…`, [`super::retention`]) are
/// matched first by a rule that keeps up to 9999 of them, so the `keep` rule, evaluated last as ECR
/// requires of a `tagStatus: any` rule, never expires an image a release uses; of the rest it keeps
/// the newest `keep` (Amazon ECR User Guide, "Lifecycle policy properties" and "How lifecycle
/// policies work").
pub fn lifecycle_policy(keep: u32) -> String {
    serde_json::json!({
        "rules": [{
            "rulePriority": 1,
            "description": "never expire an image a release uses",
            "selection": {"tagStatus": "tagged", "tagPrefixList": [super::retention::RELEASE_TAG_PREFIX], "countType": "imageCountMoreThan", "countNumber": 9999},
            "action": {"type": "expire"}
        }, {
            "rulePriority": 2,
            "description": format!("keep the last {keep} images"),
            "selection": {"tagStatus": "any", "countType": "imageCountMoreThan", "countNumber": keep},
            "action": {"type": "expire"}
        }]
    })
    .to_string()
}

fn same_json(a: &str, b: &str) -> bool {
    match (
        serde_json::from_str::<serde_json::Value>(a),
        serde_json::from_str::<serde_json::Value>(b),
    ) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    }
}

/// What to change so the repository is as configured.
pub fn plan(observed: Option<&Observed>, keep: u32) -> Vec<Action> {
    let policy = lifecycle_policy(keep);
    let Some(repo) = observed else {
        return vec![Action::Create, Action::PutLifecyclePolicy(policy)];
    };
    let mut actions = vec![];
    if !repo.immutable {
        actions.push(Action::SetImmutableTags);
    }
    if !repo.scan_on_push {
        actions.push(Action::SetScanOnPush);
    }
    if !repo.lifecycle_policy.as_deref().is_some_and(|p| same_json(p, &policy)) {
        actions.push(Action::PutLifecyclePolicy(policy));
    }
    actions
}

fn ecr_error(what: &str, e: impl std::error::Error + 'static) -> ImageError {
    ImageError::Ecr(format!("{what}: {}", crate::aws::describe(&e)))
}

/// Look the repository up (`None` when it does not exist).
pub async fn observe(client: &Client, name: &str) -> Result<Option<Observed>, ImageError> {
    let found = match client.describe_repositories().repository_names(name).send().await {
        Ok(out) => out.repositories.unwrap_or_default().into_iter().next(),
        Err(e) if e.as_service_error().is_some_and(|s| s.is_repository_not_found_exception()) => {
            None
        }
        Err(e) => return Err(ecr_error(&format!("describing repository {name}"), e)),
    };
    let Some(repo) = found else { return Ok(None) };
    let lifecycle_policy = match client.get_lifecycle_policy().repository_name(name).send().await {
        Ok(out) => out.lifecycle_policy_text,
        Err(e)
            if e.as_service_error()
                .is_some_and(|s| s.is_lifecycle_policy_not_found_exception()) =>
        {
            None
        }
        Err(e) => return Err(ecr_error(&format!("reading the lifecycle policy of {name}"), e)),
    };
    Ok(Some(Observed {
        uri: repo.repository_uri.unwrap_or_default(),
        immutable: repo.image_tag_mutability == Some(ImageTagMutability::Immutable),
        scan_on_push: repo.image_scanning_configuration.is_some_and(|c| c.scan_on_push),
        lifecycle_policy,
    }))
}

/// Make the changes in `actions`.
pub async fn apply(client: &Client, name: &str, actions: &[Action]) -> Result<(), ImageError> {
    let scan = ImageScanningConfiguration::builder().scan_on_push(true).build();
    for action in actions {
        match action {
            Action::Create => client
                .create_repository()
                .repository_name(name)
                .image_tag_mutability(ImageTagMutability::Immutable)
                .image_scanning_configuration(scan.clone())
                .send()
                .await
                .map(drop)
                .map_err(|e| ecr_error(&format!("creating repository {name}"), e))?,
            Action::SetImmutableTags => client
                .put_image_tag_mutability()
                .repository_name(name)
                .image_tag_mutability(ImageTagMutability::Immutable)
                .send()
                .await
                .map(drop)
                .map_err(|e| ecr_error(&format!("making the tags of {name} immutable"), e))?,
            Action::SetScanOnPush => client
                .put_image_scanning_configuration()
                .repository_name(name)
                .image_scanning_configuration(scan.clone())
                .send()
                .await
                .map(drop)
                .map_err(|e| ecr_error(&format!("turning on scan-on-push for {name}"), e))?,
            Action::PutLifecyclePolicy(text) => client
                .put_lifecycle_policy()
                .repository_name(name)
                .lifecycle_policy_text(text)
                .send()
                .await
                .map(drop)
                .map_err(|e| ecr_error(&format!("setting the lifecycle policy of {name}"), e))?,
        }
    }
    Ok(())
}

/// Ensure the repository; returns its URI (`<registry>/<name>`) and the actions taken.
pub async fn ensure_repository(
    client: &Client,
    name: &str,
    keep: u32,
) -> Result<(String, Vec<Action>), ImageError> {
    let actions = plan(observe(client, name).await?.as_ref(), keep);
    apply(client, name, &actions).await?;
    let repo = observe(client, name).await?.ok_or_else(|| {
        ImageError::Ecr(format!("repository {name} is missing right after creating it"))
    })?;
    Ok((repo.uri, actions))
}

/// Registry credentials from an ECR authorization token: `(registry host, basic auth)`.
pub async fn login(client: &Client) -> Result<(String, RegistryAuth), ImageError> {
    let out = client
        .get_authorization_token()
        .send()
        .await
        .map_err(|e| ecr_error("getting an authorization token", e))?;
    let data = out
        .authorization_data
        .unwrap_or_default()
        .into_iter()
        .next()
        .ok_or_else(|| ImageError::Ecr("no authorization data returned".into()))?;
    let token = data
        .authorization_token
        .ok_or_else(|| ImageError::Ecr("no authorization token returned".into()))?;
    let endpoint = data.proxy_endpoint.unwrap_or_default();
    let (user, password) = decode_token(&token)?;
    let host = endpoint
        .trim_start_matches("https://")
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_owned();
    Ok((host, RegistryAuth::Basic(user, password)))
}

/// `base64("user:password")` → `(user, password)`.
pub fn decode_token(token: &str) -> Result<(String, String), ImageError> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(token.trim())
        .map_err(|_| ImageError::Ecr("the authorization token is not base64".into()))?;
    let text = String::from_utf8(bytes)
        .map_err(|_| ImageError::Ecr("the authorization token is not text".into()))?;
    let (user, password) = text
        .split_once(':')
        .ok_or_else(|| ImageError::Ecr("the authorization token is not `user:password`".into()))?;
    Ok((user.to_owned(), password.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_repository_is_created_with_its_policy_and_a_conforming_one_is_left_alone() {
        let policy = lifecycle_policy(10);
        assert_eq!(plan(None, 10), [Action::Create, Action::PutLifecyclePolicy(policy.clone())]);
        let good = Observed {
            uri: "r/x".into(),
            immutable: true,
            scan_on_push: true,
            lifecycle_policy: Some(policy.clone()),
        };
        assert_eq!(plan(Some(&good), 10), []);
        let drifted = Observed {
            immutable: false,
            scan_on_push: false,
            lifecycle_policy: Some(lifecycle_policy(3)),
            ..good
        };
        assert_eq!(
            plan(Some(&drifted), 10),
            [Action::SetImmutableTags, Action::SetScanOnPush, Action::PutLifecyclePolicy(policy)]
        );
        let v: serde_json::Value = serde_json::from_str(&lifecycle_policy(7)).unwrap();
        assert_eq!(v["rules"][1]["selection"]["countNumber"], 7);
        assert_eq!(v["rules"][1]["selection"]["tagStatus"], "any", "the catch-all rule comes last");
        assert_eq!(v["rules"][0]["selection"]["tagPrefixList"][0], "release-");
    }

    #[test]
    fn tokens_decode_to_basic_credentials() {
        assert_eq!(
            decode_token("QVdTOnNlY3JldA==").unwrap(),
            ("AWS".to_string(), "secret".to_string())
        );
        assert!(decode_token("!!").is_err());
        assert!(decode_token("bm9jb2xvbg==").is_err());
    }
}
