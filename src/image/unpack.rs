//! Unpack an image layout into a root filesystem (what the local tier runs): layers verified
//! against their digests, applied in order, and only plain files and directories with relative,
//! `..`-free paths accepted.
use std::io::Read;
use std::path::{Component, Path, PathBuf};

use super::layout::read_layout;
use super::{sha256_digest, ImageError};

/// Marker file in an unpacked root: the manifest digest it was unpacked from.
pub const MARKER: &str = ".orch-image-digest";

/// An unpacked image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unpacked {
    /// The root filesystem (the `dest` given to [`unpack`]); the app is `<rootfs>/app`.
    pub rootfs: PathBuf,
    /// The image's entrypoint, e.g. `["/app"]` (paths inside the image).
    pub entrypoint: Vec<String>,
    /// The image's environment, in order.
    pub env: Vec<(String, String)>,
    /// The manifest digest, `sha256:…`.
    pub digest: oci_spec::image::Digest,
}

/// Extract the image in `layout_dir` into `dest`. `dest` may be missing, empty, or an earlier
/// unpack (same digest: left as is; other digest: replaced); anything else is refused.
pub fn unpack(layout_dir: &Path, dest: &Path) -> Result<Unpacked, ImageError> {
    let layout = read_layout(layout_dir)?;
    let exec = layout.config.config().clone().unwrap_or_default();
    let unpacked = Unpacked {
        rootfs: dest.to_owned(),
        entrypoint: exec.entrypoint().clone().unwrap_or_default(),
        env: exec
            .env()
            .iter()
            .flatten()
            .map(|kv| {
                kv.split_once('=')
                    .map(|(k, v)| (k.to_owned(), v.to_owned()))
                    .unwrap_or((kv.clone(), String::new()))
            })
            .collect(),
        digest: layout.digest.clone(),
    };
    let marker = dest.join(MARKER);
    let non_empty = std::fs::read_dir(dest).is_ok_and(|mut listing| listing.next().is_some());
    if non_empty {
        match std::fs::read_to_string(&marker) {
            Ok(digest) if digest == layout.digest.as_ref() => return Ok(unpacked),
            Ok(_) => std::fs::remove_dir_all(dest)
                .map_err(|e| ImageError::io(format!("removing {}", dest.display()), e))?,
            Err(_) => return Err(ImageError::DestNotEmpty { path: dest.to_owned() }),
        }
    }
    std::fs::create_dir_all(dest)
        .map_err(|e| ImageError::io(format!("creating {}", dest.display()), e))?;
    for layer in layout.manifest.layers() {
        let digest = layer.digest();
        let gz = std::fs::read(layout.blob_path(digest))
            .map_err(|e| ImageError::io(format!("reading layer {digest}"), e))?;
        if sha256_digest(&gz) != *digest {
            return Err(ImageError::Layout {
                path: layout_dir.to_owned(),
                reason: format!("layer {digest} does not match its digest"),
            });
        }
        extract(flate2::read::GzDecoder::new(gz.as_slice()), dest)?;
    }
    std::fs::write(&marker, layout.digest.as_ref())
        .map_err(|e| ImageError::io(format!("writing {}", marker.display()), e))?;
    Ok(unpacked)
}

/// Extract one (uncompressed) tar stream into `dest`, refusing anything but safe files and dirs.
pub fn extract(tar: impl Read, dest: &Path) -> Result<(), ImageError> {
    let mut archive = tar::Archive::new(tar);
    archive.set_preserve_permissions(true);
    archive.set_preserve_mtime(true);
    let entries = archive.entries().map_err(|e| ImageError::io("reading a layer", e))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| ImageError::io("reading a layer entry", e))?;
        let path =
            entry.path().map_err(|e| ImageError::io("reading a layer entry path", e))?.into_owned();
        let name = path.display().to_string();
        let unsafe_entry =
            |reason: &str| ImageError::UnsafeEntry { entry: name.clone(), reason: reason.into() };
        for component in path.components() {
            match component {
                Component::Normal(part) if part.to_string_lossy().starts_with(".wh.") => {
                    return Err(unsafe_entry("whiteouts are not supported"))
                }
                Component::Normal(_) | Component::CurDir => {}
                Component::ParentDir => return Err(unsafe_entry("the path contains `..`")),
                Component::RootDir | Component::Prefix(_) => {
                    return Err(unsafe_entry("the path is absolute"))
                }
            }
        }
        let kind = entry.header().entry_type();
        if !(kind.is_file() || kind.is_dir()) {
            return Err(unsafe_entry("only regular files and directories are allowed"));
        }
        let unpacked =
            entry.unpack_in(dest).map_err(|e| ImageError::io(format!("extracting {name}"), e))?;
        if !unpacked {
            return Err(unsafe_entry("it would land outside the destination"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw_tar(path: &str, kind: tar::EntryType) -> Vec<u8> {
        let mut header = tar::Header::new_gnu();
        // Write the name bytes directly: the tar crate's setters refuse `..` themselves.
        header.as_old_mut().name[..path.len()].copy_from_slice(path.as_bytes());
        header.set_entry_type(kind);
        header.set_size(0);
        header.set_mode(0o644);
        header.set_cksum();
        let mut bytes = header.as_bytes().to_vec();
        bytes.extend([0u8; 1024]);
        bytes
    }

    #[test]
    fn traversal_absolute_and_link_entries_are_refused() {
        let dest = tempfile::tempdir().unwrap();
        for (path, kind, why) in [
            ("../evil", tar::EntryType::Regular, ".."),
            ("a/../../evil", tar::EntryType::Regular, ".."),
            ("/etc/evil", tar::EntryType::Regular, "absolute"),
            ("link", tar::EntryType::Symlink, "regular files"),
        ] {
            let err = extract(raw_tar(path, kind).as_slice(), dest.path()).unwrap_err();
            assert!(
                matches!(&err, ImageError::UnsafeEntry { reason, .. } if reason.contains(why)),
                "{path}: {err}"
            );
        }
        assert_eq!(std::fs::read_dir(dest.path()).unwrap().count(), 0);
    }

    #[test]
    fn a_foreign_non_empty_destination_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("precious"), "x").unwrap();
        let layout = tempfile::tempdir().unwrap();
        // No layout at all: the layout error comes first.
        assert!(matches!(unpack(layout.path(), dir.path()), Err(ImageError::Layout { .. })));
    }
}
