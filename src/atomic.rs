//! Files written so that a crash never leaves half of one: the bytes go to a temporary file in the
//! same folder, which is flushed to disk (`fsync`), then renamed over the target (or linked into
//! place when the target must not exist yet), and the folder itself is flushed so the rename
//! survives a power cut (rename(2) is atomic, but durable only once the directory is synced).
use std::io::Write;
use std::path::Path;

/// Replace `path` with `bytes` atomically and durably.
pub(crate) fn write(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = staged(path, bytes)?;
    tmp.persist(path).map_err(|e| e.error)?;
    sync_dir(path)
}

/// Create `path` holding `bytes` only if nothing is there (the staged file is hard-linked into
/// place, which fails with `AlreadyExists` when the name is taken); false when it exists. Readers
/// never see a partly written file.
pub(crate) fn create_new(path: &Path, bytes: &[u8]) -> std::io::Result<bool> {
    let tmp = staged(path, bytes)?;
    match tmp.persist_noclobber(path) {
        Ok(_) => sync_dir(path).map(|()| true),
        Err(e) if e.error.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(e.error),
    }
}

/// Remove `path` durably; a missing file is fine.
pub(crate) fn remove(path: &Path) -> std::io::Result<()> {
    match std::fs::remove_file(path) {
        Ok(()) => sync_dir(path),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

/// `bytes` in a flushed temporary file beside `path` (a dot-name, removed if not persisted).
fn staged(path: &Path, bytes: &[u8]) -> std::io::Result<tempfile::NamedTempFile> {
    let dir = folder(path);
    std::fs::create_dir_all(dir)?;
    let mut tmp = tempfile::Builder::new().prefix(".tmp-").tempfile_in(dir)?;
    tmp.write_all(bytes)?;
    tmp.as_file().sync_all()?;
    Ok(tmp)
}

fn folder(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// Flush the folder holding `path`, so a rename or unlink in it is on disk.
pub(crate) fn sync_dir(path: &Path) -> std::io::Result<()> {
    std::fs::File::open(folder(path))?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_replaces_and_create_new_never_overwrites() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/state.json");
        write(&path, b"one").unwrap();
        write(&path, b"two").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"two");
        assert!(!create_new(&path, b"three").unwrap());
        assert_eq!(std::fs::read(&path).unwrap(), b"two");
        remove(&path).unwrap();
        assert!(create_new(&path, b"four").unwrap());
        assert_eq!(std::fs::read(&path).unwrap(), b"four");
        let names: Vec<_> = std::fs::read_dir(path.parent().unwrap()).unwrap().flatten().collect();
        assert_eq!(names.len(), 1, "no temporary file is left behind");
    }
}
