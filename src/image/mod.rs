//! The app's OCI image without a Docker daemon: a static binary ([`binary`]), deterministic layers
//! ([`layer`]) of a planned root filesystem ([`rootfs`]), an OCI image layout under
//! `build/<env>/image/` ([`layout`]), unpacking for the local tier ([`unpack`]), and pushing it
//! ([`push`], with ECR on AWS in [`ecr`]). The CA bundle comes from a pinned crate
//! ([`cabundle`]), what the image was built from is recorded in its labels ([`provenance`]), and
//! [`verify`] rebuilds a checkout to compare it with a given digest; [`uri`] checks image references
//! wherever they enter. [`pipeline`] strings these
//! together for the commands.
pub mod binary;
pub mod cabundle;
pub mod ecr;
pub mod layer;
pub mod layout;
pub mod pipeline;
pub mod provenance;
pub mod push;
pub mod retention;
pub mod rootfs;
pub mod source;
pub mod unpack;
pub mod uri;
pub mod verify;

pub use layout::Layout;
pub use pipeline::Built;
pub(crate) use pipeline::{build, publish};
pub use push::PushReport;
pub use unpack::{unpack, Unpacked};

use std::path::PathBuf;

/// Every way building, unpacking or pushing the image can fail.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("`{command}` failed (exit {code:?}):\n{stderr}")]
    Compile { command: String, code: Option<i32>, stderr: String },
    #[error("{path} is not a static executable: {reason}")]
    NotStatic { path: PathBuf, reason: String },
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{what} not found at {path}")]
    Missing { what: &'static str, path: PathBuf, hint: String },
    #[error("invalid OCI data: {0}")]
    Spec(String),
    #[error("{path} is not a usable OCI image layout: {reason}")]
    Layout { path: PathBuf, reason: String },
    #[error("refusing to unpack layer entry `{entry}`: {reason}")]
    UnsafeEntry { entry: String, reason: String },
    #[error("refusing to unpack into {path}: it is not empty and was not unpacked by orch")]
    DestNotEmpty { path: PathBuf },
    #[error("registry {registry}: {reason}")]
    Registry { registry: String, reason: String },
    #[error("ECR: {0}")]
    Ecr(String),
    #[error("environment `{env}` has no registry to push to")]
    NoRegistry { env: String },
    #[error("cannot tell which toolchain compiled {path}: {reason}")]
    UnknownToolchain { path: PathBuf, reason: String },
    #[error("{binary} was compiled by {found}, but rust-toolchain.toml pins {pinned}")]
    ToolchainMismatch { binary: PathBuf, found: String, pinned: String },
    #[error(
        "tag {tag} in {registry}/{repository} already names {existing}; refusing to point it at {ours}"
    )]
    TagTaken { registry: String, repository: String, tag: String, existing: String, ours: String },
    #[error(
        "`{0}` is not an image digest (sha256:<64 hex>) or a reference ending in @sha256:<64 hex>"
    )]
    BadDigest(String),
}

impl ImageError {
    pub(crate) fn io(what: impl Into<String>, source: std::io::Error) -> Self {
        ImageError::Io { what: what.into(), source }
    }
    pub(crate) fn spec(e: impl std::fmt::Display) -> Self {
        ImageError::Spec(e.to_string())
    }

    /// The next thing to try.
    pub fn hint(&self) -> Option<String> {
        Some(match self {
            ImageError::Compile { .. } => "fix the build error above, then run `orch build` again".into(),
            ImageError::NotStatic { .. } => {
                "build with `RUSTFLAGS='-C target-feature=+crt-static' --target x86_64-unknown-linux-gnu` (what `orch build` does), or unset ORCH_APP_BINARY".into()
            }
            ImageError::Missing { hint, .. } => hint.clone(),
            ImageError::Layout { .. } => "run `orch build` to write the image layout again".into(),
            ImageError::UnsafeEntry { .. } => "rebuild the image with `orch build`; never unpack layouts from elsewhere".into(),
            ImageError::DestNotEmpty { .. } => "choose an empty or new directory".into(),
            ImageError::Registry { .. } => "check that the registry is reachable and the credentials (ORCH_REGISTRY_USERNAME/PASSWORD, or the AWS environment) are right".into(),
            ImageError::Ecr(_) => "check AWS_REGION / AWS_PROFILE / AWS_ENDPOINT_URL and the credentials (`aws sts get-caller-identity`)".into(),
            ImageError::NoRegistry { env } => format!("set `image.registry` in stacks/{env}.yaml (e.g. 127.0.0.1:5000), or build without --push"),
            ImageError::UnknownToolchain { .. } => "build the binary with `orch build` (unset ORCH_APP_BINARY), which compiles it with the pinned toolchain".into(),
            ImageError::ToolchainMismatch { pinned, .. } => format!("build with rustup so rust-toolchain.toml applies (`rustup toolchain install {pinned}`), then run `orch build` again"),
            ImageError::TagTaken { .. } => "tags orch writes carry the digest (`<revision>-<12 hex>`): rebuild with `orch build --push` instead of retagging, and deploy by digest".into(),
            ImageError::BadDigest(_) => "pass the digest `orch build` printed, e.g. `orch build --verify sha256:…` (see build/<env>/image/pushed.json)".into(),
            ImageError::Io { .. } | ImageError::Spec(_) => return None,
        })
    }
}

/// The `sha256:<hex>` digest of some bytes, as oci-spec's type.
pub fn sha256_digest(bytes: &[u8]) -> oci_spec::image::Digest {
    use sha2::Digest;
    let hex = hex::encode(sha2::Sha256::digest(bytes));
    let sha: oci_spec::image::Sha256Digest =
        hex.parse().expect("a SHA-256 in lowercase hex is a sha256 digest");
    sha.into()
}
