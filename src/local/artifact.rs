//! What instances run: the entrypoint of the image `orch build` makes, unpacked from its OCI layout
//! into `.orch/<env>/rootfs/`, so what runs locally is the artifact we ship. [`resolve`] is the one
//! decision point; `ORCH_APP_BIN` (+ `ORCH_APP_ENV`, JSON pairs) hands an already unpacked
//! entrypoint to the detached supervisor so it never builds.
use std::path::{Path, PathBuf};

use crate::config::Stack;
use crate::image::{self, ImageError};
use crate::printer::Printer;
use crate::project::Project;
use crate::runner::Runner;
use crate::settings::Settings;

/// The program every instance runs, the environment the image gives it, and the image digest.
#[derive(Debug, Clone)]
pub struct Artifact {
    pub program: PathBuf,
    pub env: Vec<(String, String)>,
    pub digest: String,
}

/// Why there is nothing to run.
#[derive(Debug, thiserror::Error)]
pub enum ArtifactError {
    #[error("ORCH_APP_BIN names {0}, which is not an executable file")]
    NotExecutable(PathBuf),
    #[error("ORCH_APP_ENV is not a JSON list of [name, value] pairs: {0}")]
    BadEnv(String),
    #[error("building or unpacking the app image: {0}")]
    Image(#[from] ImageError),
    #[error("the image has no entrypoint")]
    NoEntrypoint,
}

/// The variable carrying the artifact's environment to the detached supervisor.
pub const ENV_VAR: &str = "ORCH_APP_ENV";
/// The variable carrying the artifact's image digest to the detached supervisor.
pub const DIGEST_VAR: &str = "ORCH_APP_DIGEST";

/// `ORCH_APP_BIN` if set; else build the image for `stack`, unpack it and return its entrypoint.
pub(crate) fn resolve(
    project: &Project,
    stack: &Stack,
    runner: &dyn Runner,
    printer: &Printer,
    settings: &Settings,
) -> Result<Artifact, ArtifactError> {
    if let Some(program) = settings.app_bin.clone() {
        if !is_executable(&program) {
            return Err(ArtifactError::NotExecutable(program));
        }
        let env = match std::env::var(ENV_VAR) {
            Ok(text) if !text.is_empty() => {
                serde_json::from_str(&text).map_err(|e| ArtifactError::BadEnv(e.to_string()))?
            }
            _ => vec![],
        };
        let digest = match std::env::var(DIGEST_VAR) {
            Ok(d) if !d.is_empty() => d,
            _ => file_digest(&program)?,
        };
        return Ok(Artifact { program, env, digest });
    }
    let built = image::build(project, stack, runner, printer, settings)?;
    // One folder per image: instances of the running release keep their files while another
    // release is unpacked beside it.
    let short: String = built.digest.digest().chars().take(12).collect();
    let dir = project.state_dir(&stack.name).join("releases").join(short);
    let rootfs = dir.join("rootfs");
    let done = dir.join("unpacked");
    if !done.exists() {
        if dir.exists() {
            std::fs::remove_dir_all(&dir)
                .map_err(|e| ImageError::io(format!("clearing {}", dir.display()), e))?;
        }
        let unpacked = image::unpack(&built.layout_dir, &rootfs)?;
        let meta = serde_json::json!({"entrypoint": unpacked.entrypoint, "env": unpacked.env});
        std::fs::write(&done, meta.to_string())
            .map_err(|e| ImageError::io(format!("writing {}", done.display()), e))?;
    }
    let meta: serde_json::Value =
        std::fs::read(&done).ok().and_then(|b| serde_json::from_slice(&b).ok()).unwrap_or_default();
    let entrypoint: Vec<String> =
        serde_json::from_value(meta["entrypoint"].clone()).unwrap_or_default();
    let image_env: Vec<(String, String)> =
        serde_json::from_value(meta["env"].clone()).unwrap_or_default();
    printer.progress(&format!(
        "instances run image {} unpacked in {}",
        built.digest,
        rootfs.display()
    ));
    let entry = entrypoint.first().ok_or(ArtifactError::NoEntrypoint)?;
    let program = inside(&rootfs, entry);
    let env = image_env.into_iter().map(|(k, v)| (k, remap(&rootfs, v))).collect();
    Ok(Artifact { program, env, digest: built.digest.to_string() })
}

/// `sha256:<hex>` of a program's bytes (a program handed over without an image).
fn file_digest(path: &Path) -> Result<String, ArtifactError> {
    use sha2::{Digest, Sha256};
    let bytes = std::fs::read(path).map_err(|_| ArtifactError::NotExecutable(path.into()))?;
    Ok(format!("sha256:{}", hex::encode(Sha256::digest(&bytes))))
}

/// A path inside the image, as seen from this machine.
fn inside(rootfs: &Path, path: &str) -> PathBuf {
    rootfs.join(path.trim_start_matches('/'))
}

/// Values naming a file inside the image (e.g. `SSL_CERT_FILE=/etc/ssl/...`) point into the rootfs.
fn remap(rootfs: &Path, value: String) -> String {
    if value.starts_with('/') && inside(rootfs, &value).exists() {
        inside(rootfs, &value).display().to_string()
    } else {
        value
    }
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_paths_are_remapped_into_the_rootfs_and_others_kept() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("etc/ssl/certs")).unwrap();
        std::fs::write(dir.path().join("etc/ssl/certs/ca.crt"), "x").unwrap();
        let mapped = remap(dir.path(), "/etc/ssl/certs/ca.crt".into());
        assert_eq!(PathBuf::from(mapped), dir.path().join("etc/ssl/certs/ca.crt"));
        assert_eq!(remap(dir.path(), "0.0.0.0".into()), "0.0.0.0");
        assert_eq!(remap(dir.path(), "/not/there".into()), "/not/there");
        assert_eq!(inside(dir.path(), "/app"), dir.path().join("app"));
    }
}
