//! What an image was built from, recorded in its config labels and manifest annotations:
//! revision, toolchain (read from the executable's own `.comment` section, so it is true for a
//! prebuilt `ORCH_APP_BINARY` too), target and CA bundle. The toolchain must be the one
//! `rust-toolchain.toml` pins; anything else would give another digest.
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use object::{Object, ObjectSection};

use super::source::Source;
use super::ImageError;

/// Label: the rustc release that compiled the app (`rustc 1.95.0 (59807616e 2026-04-14)`).
pub const TOOLCHAIN: &str = "dev.orch.toolchain";
/// Label: the target triple of the app.
pub const TARGET: &str = "dev.orch.target";
/// Label: where the CA bundle comes from (crate and version, count, digest).
pub const CA_BUNDLE: &str = "dev.orch.ca-bundle";
/// Label: the other compilers named in the executable (the host's C compiler that built `libc.a`
/// and the C dependencies): not pinned by orch, recorded so a difference is visible.
pub const HOST_TOOLS: &str = "dev.orch.host-tools";

/// The compilers an executable names in its ELF `.comment` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Toolchain {
    /// `rustc 1.95.0 (59807616e 2026-04-14)`.
    pub rustc: String,
    /// Everything else, e.g. `Linker: LLD 22.1.2 (…)`, `GCC: (Debian 12.2.0-14) 12.2.0`.
    pub others: Vec<String>,
}

/// Read the toolchain from the executable at `path`.
pub fn toolchain_of(path: &Path) -> Result<Toolchain, ImageError> {
    let bytes = std::fs::read(path)
        .map_err(|e| ImageError::io(format!("reading {}", path.display()), e))?;
    let unknown = |reason: &str| ImageError::UnknownToolchain {
        path: path.to_owned(),
        reason: reason.into(),
    };
    let file = object::File::parse(&*bytes).map_err(|e| unknown(&e.to_string()))?;
    let comment = file
        .section_by_name(".comment")
        .ok_or_else(|| unknown("it has no .comment section"))?
        .data()
        .map_err(|e| unknown(&e.to_string()))?;
    let mut rustc = None;
    let mut others = Vec::new();
    for entry in comment.split(|b| *b == 0).map(String::from_utf8_lossy) {
        let entry = entry.trim();
        match entry.strip_prefix("rustc version ") {
            Some(version) => rustc = Some(format!("rustc {version}")),
            None if !entry.is_empty() && !others.iter().any(|o| o == entry) => {
                others.push(entry.to_owned());
            }
            None => {}
        }
    }
    let rustc = rustc.ok_or_else(|| unknown(".comment names no rustc version"))?;
    Ok(Toolchain { rustc, others })
}

/// The channel `rust-toolchain.toml` in `workspace` pins, if there is such a file.
pub fn pinned_channel(workspace: &Path) -> Result<Option<String>, ImageError> {
    #[derive(serde::Deserialize)]
    struct File {
        toolchain: Pinned,
    }
    #[derive(serde::Deserialize)]
    struct Pinned {
        channel: String,
    }
    let path = workspace.join("rust-toolchain.toml");
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(ImageError::io(format!("reading {}", path.display()), e)),
    };
    let file: File = toml::from_str(&text).map_err(|e| ImageError::Layout {
        path: path.clone(),
        reason: format!("not a toolchain file with [toolchain] channel: {e}"),
    })?;
    Ok(Some(file.toolchain.channel))
}

/// Fail unless `toolchain` is the pinned release (a channel such as `stable` is not checked).
pub fn check_pinned(
    toolchain: &Toolchain,
    pinned: Option<&str>,
    binary: &Path,
) -> Result<(), ImageError> {
    let Some(pinned) = pinned.filter(|c| c.starts_with(|ch: char| ch.is_ascii_digit())) else {
        return Ok(());
    };
    if toolchain.rustc.starts_with(&format!("rustc {pinned} ")) {
        return Ok(());
    }
    Err(ImageError::ToolchainMismatch {
        binary: PathBuf::from(binary),
        found: toolchain.rustc.clone(),
        pinned: pinned.to_owned(),
    })
}

/// Every label of the image (also its manifest's annotations), in key order.
pub fn labels(
    source: &Source,
    toolchain: &Toolchain,
    target: &str,
    ca_bundle: &str,
) -> BTreeMap<String, String> {
    let mut labels: BTreeMap<String, String> = [
        ("org.opencontainers.image.revision", source.label()),
        ("org.opencontainers.image.created", source.created_rfc3339()),
        ("org.opencontainers.image.title", "app".to_string()),
        (TOOLCHAIN, toolchain.rustc.clone()),
        (TARGET, target.to_string()),
        (CA_BUNDLE, ca_bundle.to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    let host: Vec<&str> =
        toolchain.others.iter().map(String::as_str).filter(|o| !o.starts_with("Linker:")).collect();
    if !host.is_empty() {
        labels.insert(HOST_TOOLS.into(), host.join("; "));
    }
    labels
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toolchain(rustc: &str) -> Toolchain {
        Toolchain { rustc: rustc.into(), others: vec!["GCC: (Debian 12.2.0-14) 12.2.0".into()] }
    }

    #[test]
    fn the_toolchain_comes_from_the_executable() {
        // The test binary is compiled by the same rustc as orch: its .comment names it.
        let exe = std::env::current_exe().unwrap();
        let found = toolchain_of(&exe).unwrap();
        assert!(found.rustc.starts_with("rustc 1."), "{found:?}");
        let text = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(text.path(), "#!/bin/sh\n").unwrap();
        assert!(matches!(toolchain_of(text.path()), Err(ImageError::UnknownToolchain { .. })));
    }

    #[test]
    fn the_pinned_release_is_required_and_a_channel_name_is_not_checked() {
        let bin = Path::new("/b/app");
        let ours = toolchain("rustc 1.95.0 (59807616e 2026-04-14)");
        check_pinned(&ours, Some("1.95.0"), bin).unwrap();
        check_pinned(&ours, Some("stable"), bin).unwrap();
        check_pinned(&ours, None, bin).unwrap();
        let err = check_pinned(&ours, Some("1.95.1"), bin).unwrap_err();
        assert!(err.to_string().contains("1.95.1") && err.to_string().contains("1.95.0"), "{err}");
        assert!(check_pinned(&toolchain("rustc 1.95.01 (x)"), Some("1.95.0"), bin).is_err());
    }

    #[test]
    fn the_repository_pins_the_toolchain_it_is_built_with() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let pinned = pinned_channel(root).unwrap().expect("rust-toolchain.toml");
        let exe = std::env::current_exe().unwrap();
        check_pinned(&toolchain_of(&exe).unwrap(), Some(&pinned), &exe).unwrap();
        assert_eq!(pinned_channel(Path::new("/nonexistent")).unwrap(), None);
    }

    #[test]
    fn labels_name_revision_toolchain_target_bundle_and_host_tools() {
        let source = Source::unknown();
        let mut tc = toolchain("rustc 1.95.0 (x)");
        tc.others.insert(0, "Linker: LLD 22.1.2".into());
        let labels = labels(&source, &tc, "x86_64-unknown-linux-gnu", "webpki-root-certs 1");
        assert_eq!(labels[TOOLCHAIN], "rustc 1.95.0 (x)");
        assert_eq!(labels[TARGET], "x86_64-unknown-linux-gnu");
        assert_eq!(labels[HOST_TOOLS], "GCC: (Debian 12.2.0-14) 12.2.0");
        assert_eq!(labels["org.opencontainers.image.revision"], "unknown");
    }
}
