//! One layer as a byte-identical gzip tar: entries sorted by path, one fixed mtime (the commit
//! time), fixed owners and modes, no user/group names, and a gzip header without name or time.
use flate2::{Compression, GzBuilder};

use super::rootfs::Entry;
use super::{sha256_digest, ImageError};

/// A finished layer.
#[derive(Debug, Clone)]
pub struct Blob {
    /// The gzip-compressed tar (what is stored and pushed).
    pub gz: Vec<u8>,
    /// `sha256:` of `gz`: the layer's digest in the manifest.
    pub digest: oci_spec::image::Digest,
    /// `sha256:` of the uncompressed tar: the layer's diff id in the config.
    pub diff_id: oci_spec::image::Digest,
}

/// The uncompressed tar of `entries`, sorted by path, every entry dated `mtime`.
pub fn tar(entries: &[Entry], mtime: u64) -> Result<Vec<u8>, ImageError> {
    let mut sorted: Vec<&Entry> = entries.iter().collect();
    sorted.sort_by(|a, b| a.path.cmp(&b.path));
    let mut builder = tar::Builder::new(Vec::new());
    for entry in sorted {
        let mut header = tar::Header::new_ustar();
        header.set_mode(entry.mode);
        header.set_uid(entry.uid);
        header.set_gid(entry.gid);
        header.set_mtime(mtime);
        let write = |e| ImageError::io(format!("adding {} to a layer", entry.path), e);
        match &entry.data {
            Some(data) => {
                header.set_entry_type(tar::EntryType::Regular);
                header.set_size(data.len() as u64);
                builder.append_data(&mut header, &entry.path, data.as_slice()).map_err(write)?;
            }
            None => {
                header.set_entry_type(tar::EntryType::Directory);
                header.set_size(0);
                builder
                    .append_data(&mut header, format!("{}/", entry.path), std::io::empty())
                    .map_err(write)?;
            }
        }
    }
    builder.into_inner().map_err(|e| ImageError::io("finishing a layer", e))
}

/// The gzip of `tar` with a fixed header (no file name, mtime 0, unknown OS).
pub fn gzip(tar: &[u8]) -> Result<Vec<u8>, ImageError> {
    use std::io::Write;
    let mut gz =
        GzBuilder::new().mtime(0).operating_system(255).write(Vec::new(), Compression::default());
    gz.write_all(tar).map_err(|e| ImageError::io("compressing a layer", e))?;
    gz.finish().map_err(|e| ImageError::io("compressing a layer", e))
}

/// The finished layer for `entries`.
pub fn build(entries: &[Entry], mtime: u64) -> Result<Blob, ImageError> {
    let tar = tar(entries, mtime)?;
    let gz = gzip(&tar)?;
    Ok(Blob { digest: sha256_digest(&gz), diff_id: sha256_digest(&tar), gz })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries() -> Vec<Entry> {
        vec![
            Entry::file("etc/hosts", 0o644, "127.0.0.1 localhost\n"),
            Entry::dir("etc", 0o755),
            Entry::file("app", 0o755, "bin"),
        ]
    }

    #[test]
    fn same_entries_in_any_order_give_the_same_bytes() {
        let a = build(&entries(), 1_700_000_000).unwrap();
        let mut reversed = entries();
        reversed.reverse();
        let b = build(&reversed, 1_700_000_000).unwrap();
        assert_eq!(a.gz, b.gz);
        assert_eq!((a.digest.clone(), a.diff_id.clone()), (b.digest, b.diff_id));
        assert_ne!(
            a.digest,
            build(&entries(), 1_700_000_001).unwrap().digest,
            "mtime is part of the content"
        );
        assert_eq!(&a.gz[4..8], &[0, 0, 0, 0], "gzip header mtime is zero");
    }

    #[test]
    fn entries_come_out_sorted_with_fixed_metadata() {
        let tar = tar(&entries(), 42).unwrap();
        let mut archive = tar::Archive::new(tar.as_slice());
        let seen: Vec<(String, u32, u64, u64)> = archive
            .entries()
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                let h = e.header();
                (
                    e.path().unwrap().display().to_string(),
                    h.mode().unwrap(),
                    h.uid().unwrap(),
                    h.mtime().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            seen,
            [
                ("app".into(), 0o755, 0, 42),
                ("etc/".into(), 0o755, 0, 42),
                ("etc/hosts".into(), 0o644, 0, 42)
            ]
        );
    }
}
