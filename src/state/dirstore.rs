//! The directory store's compare-and-swap, for a `file://` backend (one machine, or a shared
//! folder): an object is a file, its version tag the sha256 of its bytes. Creating links a fully
//! written temporary file into place ([`crate::atomic::create_new`]: `link(2)` fails when the
//! name exists, as `O_EXCL` does); replacing or deleting compares the tag and renames or unlinks
//! while holding an exclusive `flock(2)` on a sibling `.<name>.lock`, so two writers never both
//! win. Every change is fsynced, with its folder.
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

use super::store::Versioned;
use super::StateError;

/// The version tag of a body.
pub(super) fn tag(body: &[u8]) -> String {
    hex::encode(Sha256::digest(body))
}

pub(super) fn read(path: &Path) -> Result<Option<Versioned>, StateError> {
    match std::fs::read(path) {
        Ok(body) => Ok(Some(Versioned { tag: tag(&body), body })),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(StateError::io(format!("reading {}", path.display()))(e)),
    }
}

/// Create `path` with `body` unless it exists; the new tag, or `None`.
pub(super) fn create(path: &Path, body: &[u8]) -> Result<Option<String>, StateError> {
    let created = crate::atomic::create_new(path, body)
        .map_err(StateError::io(format!("creating {}", path.display())))?;
    Ok(created.then(|| tag(body)))
}

/// With `path` still at version `expected`: replace it with `body` (or delete it for `None`).
/// The new tag (empty for a delete), or `None` when the file changed or is gone.
pub(super) fn replace(
    path: &Path,
    body: Option<&[u8]>,
    expected: &str,
) -> Result<Option<String>, StateError> {
    let lock = lock_path(path);
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock)
        .map_err(StateError::io(format!("opening {}", lock.display())))?;
    file.lock().map_err(StateError::io(format!("locking {}", lock.display())))?;
    let current = read(path)?;
    if current.is_none_or(|c| c.tag != expected) {
        return Ok(None);
    }
    let what = format!("writing {}", path.display());
    match body {
        Some(body) => {
            crate::atomic::write(path, body).map_err(StateError::io(what))?;
            Ok(Some(tag(body)))
        }
        None => {
            crate::atomic::remove(path).map_err(StateError::io(what))?;
            Ok(Some(String::new()))
        }
    }
    // The flock goes with `file`.
}

/// `.<name>.lock` beside `path` (dot-names are not objects: `Store::list` skips them).
fn lock_path(path: &Path) -> PathBuf {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    path.with_file_name(format!(".{name}.lock"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replace_and_delete_only_win_against_the_version_they_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("locks/dev.json");
        let first = create(&path, b"a").unwrap().unwrap();
        assert_eq!(create(&path, b"b").unwrap(), None, "exists");
        let second = replace(&path, Some(b"c"), &first).unwrap().unwrap();
        assert_eq!(replace(&path, Some(b"d"), &first).unwrap(), None, "an old tag loses");
        assert_eq!(replace(&path, None, &first).unwrap(), None);
        assert_eq!(std::fs::read(&path).unwrap(), b"c");
        assert!(replace(&path, None, &second).unwrap().is_some());
        assert_eq!(read(&path).unwrap(), None);
        assert_eq!(replace(&path, Some(b"e"), &second).unwrap(), None, "gone");
    }
}
