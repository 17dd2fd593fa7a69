//! What instances run. One decision point: [`resolve`] returns the program and its environment.
//! Today it builds the `app` crate with cargo (release, or debug when `ORCH_BUILD_PROFILE=dev`, as
//! tests set) and runs the binary; `ORCH_APP_BIN` names a prebuilt binary instead (the detached
//! supervisor gets it this way so it never builds). Once `orch build` lands, this unpacks the OCI
//! image and returns its entrypoint, so what runs locally is the artifact we ship.
use std::path::{Path, PathBuf};

use crate::project::Project;
use crate::runner::{Cmd, Runner};

/// The program every instance runs.
#[derive(Debug, Clone)]
pub struct Artifact {
    pub program: PathBuf,
    pub env: Vec<(String, String)>,
}

/// Why there is nothing to run.
#[derive(Debug, thiserror::Error)]
pub enum ArtifactError {
    #[error("ORCH_APP_BIN names {0}, which is not an executable file")]
    NotExecutable(PathBuf),
    #[error("no app crate to build: neither {0} nor orch's own checkout has app/Cargo.toml")]
    NoSources(PathBuf),
    #[error("running cargo: {0}")]
    Spawn(#[source] std::io::Error),
    #[error("`{command}` failed:\n{stderr}")]
    Build { command: String, stderr: String },
    #[error("cargo built no `app` executable (command: {0})")]
    NoExecutable(String),
}

/// The app program: `ORCH_APP_BIN` if set, else the `app` binary built by cargo.
pub fn resolve(project: &Project, runner: &dyn Runner) -> Result<Artifact, ArtifactError> {
    if let Some(bin) = std::env::var_os("ORCH_APP_BIN").filter(|v| !v.is_empty()) {
        let bin = PathBuf::from(bin);
        return if is_executable(&bin) { Ok(Artifact { program: bin, env: vec![] }) } else { Err(ArtifactError::NotExecutable(bin)) };
    }
    let manifest = manifest(&project.root).ok_or_else(|| ArtifactError::NoSources(project.root.clone()))?;
    let release = std::env::var("ORCH_BUILD_PROFILE").map(|p| p != "dev").unwrap_or(true);
    let mut args = vec!["build", "-p", "app", "--bin", "app", "--message-format=json-render-diagnostics", "--manifest-path"];
    let manifest_str = manifest.to_string_lossy().into_owned();
    args.push(&manifest_str);
    if release {
        args.push("--release");
    }
    let cmd = Cmd::new("cargo", args);
    let out = runner.run(&cmd).map_err(ArtifactError::Spawn)?;
    if !out.success() {
        let tail: Vec<&str> = out.stderr.lines().rev().take(30).collect();
        let stderr = tail.into_iter().rev().collect::<Vec<_>>().join("\n");
        return Err(ArtifactError::Build { command: cmd.display(), stderr });
    }
    let program = executable_from_messages(&out.stdout).ok_or_else(|| ArtifactError::NoExecutable(cmd.display()))?;
    Ok(Artifact { program, env: vec![] })
}

/// The workspace manifest holding the app: the project's own, or the checkout orch was built from.
fn manifest(root: &Path) -> Option<PathBuf> {
    let own = root.join("app").join("Cargo.toml");
    if own.is_file() && root.join("Cargo.toml").is_file() {
        return Some(root.join("Cargo.toml"));
    }
    let checkout = Path::new(env!("CARGO_MANIFEST_DIR"));
    checkout.join("app").join("Cargo.toml").is_file().then(|| checkout.join("Cargo.toml"))
}

/// The `app` executable from cargo's JSON messages.
fn executable_from_messages(stdout: &str) -> Option<PathBuf> {
    stdout
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|m| m["reason"] == "compiler-artifact" && m["target"]["name"] == "app")
        .filter_map(|m| m["executable"].as_str().map(PathBuf::from))
        .next_back()
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runner::{Output, Recording};

    #[test]
    fn builds_with_cargo_and_finds_the_executable() {
        let messages = r#"{"reason":"compiler-artifact","target":{"name":"serde"},"executable":null}
{"reason":"compiler-artifact","target":{"name":"app"},"executable":"/t/debug/app"}
{"reason":"build-finished","success":true}"#;
        let rec = Recording::new([Output { code: Some(0), stdout: messages.into(), stderr: String::new() }]);
        let project = Project { root: PathBuf::from(env!("CARGO_MANIFEST_DIR")) };
        if std::env::var_os("ORCH_APP_BIN").is_some() {
            return;
        }
        let art = resolve(&project, &rec).unwrap();
        assert_eq!(art.program, PathBuf::from("/t/debug/app"));
        let call = &rec.calls()[0];
        assert!(call.display().starts_with("cargo build -p app --bin app"), "{}", call.display());
    }

    #[test]
    fn a_failed_build_is_reported_with_cargo_output() {
        let rec = Recording::new([Output { code: Some(101), stdout: String::new(), stderr: "error[E0308]: mismatched types".into() }]);
        let project = Project { root: PathBuf::from(env!("CARGO_MANIFEST_DIR")) };
        if std::env::var_os("ORCH_APP_BIN").is_some() {
            return;
        }
        let err = resolve(&project, &rec).unwrap_err().to_string();
        assert!(err.contains("E0308"), "{err}");
    }
}
