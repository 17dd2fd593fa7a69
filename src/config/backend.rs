//! The pulumi backend of a stack (`pulumi.backend`), parsed once when the stack file is read: an
//! S3 bucket (with an optional key prefix and URL parameters) or a directory. Everything else —
//! the URL pulumi is given, orch's own state store — is derived from it.
use std::fmt;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// Where pulumi (and orch's deployment records) keep state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum Backend {
    /// `s3://bucket[/prefix][?params]`: `rest` is what follows the bucket, verbatim.
    S3 { bucket: String, rest: String },
    /// `file://path`.
    File(PathBuf),
}

impl Backend {
    /// The bucket of an S3 backend.
    pub fn bucket(&self) -> Option<&str> {
        match self {
            Backend::S3 { bucket, .. } => Some(bucket),
            Backend::File(_) => None,
        }
    }

    /// The URL pulumi is given: an S3 backend names the stack's region (`?region=`, a gocloud.dev
    /// s3blob URL parameter), so pulumi's DIY backend does not fall back to the operator's ambient
    /// AWS region, which may differ from the one orch's own calls use.
    pub fn pulumi_url(&self, region: &str) -> String {
        match self {
            Backend::S3 { rest, .. } if !rest.contains("region=") => {
                let sep = if rest.contains('?') { '&' } else { '?' };
                format!("{self}{sep}region={region}")
            }
            _ => self.to_string(),
        }
    }
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Backend::S3 { bucket, rest } => write!(f, "s3://{bucket}{rest}"),
            Backend::File(path) => write!(f, "file://{}", path.display()),
        }
    }
}

impl TryFrom<String> for Backend {
    type Error = String;
    fn try_from(url: String) -> Result<Self, String> {
        let bad = || format!("backend `{url}` is neither s3://<valid bucket name> nor file://path");
        if let Some(after) = url.strip_prefix("s3://") {
            let end = after.find(['/', '?']).unwrap_or(after.len());
            let (bucket, rest) = after.split_at(end);
            if !super::validate::is_bucket(bucket) {
                return Err(bad());
            }
            return Ok(Backend::S3 { bucket: bucket.into(), rest: rest.into() });
        }
        match url.strip_prefix("file://") {
            Some(path) if !path.is_empty() => Ok(Backend::File(PathBuf::from(path))),
            _ => Err(bad()),
        }
    }
}

impl From<Backend> for String {
    fn from(b: Backend) -> String {
        b.to_string()
    }
}

impl std::str::FromStr for Backend {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Backend::try_from(s.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_buckets_and_directories_and_refuses_the_rest() {
        let b: Backend = "s3://orch-state-dev/team?awssdk=v2".parse().unwrap();
        assert_eq!(b.bucket(), Some("orch-state-dev"));
        assert_eq!(b.to_string(), "s3://orch-state-dev/team?awssdk=v2");
        assert_eq!(
            b.pulumi_url("eu-west-1"),
            "s3://orch-state-dev/team?awssdk=v2&region=eu-west-1"
        );
        let plain: Backend = "s3://b-1".parse().unwrap();
        assert_eq!(plain.pulumi_url("us-east-1"), "s3://b-1?region=us-east-1");
        let pinned: Backend = "s3://b-1?region=us-east-1".parse().unwrap();
        assert_eq!(pinned.pulumi_url("eu-west-1"), "s3://b-1?region=us-east-1");
        let file: Backend = "file:///tmp/state".parse().unwrap();
        assert_eq!((file.bucket(), file.pulumi_url("x")), (None, "file:///tmp/state".into()));
        for bad in ["gs://x", "s3://", "s3://UPPER", "file://", "orch-state"] {
            assert!(bad.parse::<Backend>().unwrap_err().contains(bad), "{bad}");
        }
    }
}
