//! The image's root filesystem as data: which files go in which layer, with fixed owners and
//! modes. A base layer holds what any static binary needs (users, name-service config, hosts,
//! CA certificates); the app layer holds `/app` and the error pages, so an app-only change
//! re-pushes one layer.
use std::path::{Path, PathBuf};

use super::ImageError;

/// The non-root user (and group) the app runs as; 65532 is the usual "nonroot" id.
pub const APP_UID: u64 = 65532;
/// Where the image keeps its CA bundle (the Debian path, which OpenSSL, rustls-native-certs and
/// most tools look at first).
pub const CA_BUNDLE_PATH: &str = "etc/ssl/certs/ca-certificates.crt";
/// Where the error pages live in the image.
pub const PAGES_PATH: &str = "pages";

/// One entry of a layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Relative path, no leading `/` (directories without a trailing `/`).
    pub path: String,
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
    /// `None` for a directory.
    pub data: Option<Vec<u8>>,
}

impl Entry {
    pub fn dir(path: &str, mode: u32) -> Self {
        Entry { path: path.into(), mode, uid: 0, gid: 0, data: None }
    }
    pub fn file(path: &str, mode: u32, data: impl Into<Vec<u8>>) -> Self {
        Entry { path: path.into(), mode, uid: 0, gid: 0, data: Some(data.into()) }
    }
}

/// A named layer's entries.
#[derive(Debug, Clone)]
pub struct LayerPlan {
    pub name: &'static str,
    pub entries: Vec<Entry>,
}

/// What goes into the image.
#[derive(Debug, Clone)]
pub struct Inputs {
    /// The static app executable.
    pub binary: PathBuf,
    /// The CA bundle (PEM), from a versioned source ([`super::cabundle`]), never the host's.
    pub ca_bundle: Vec<u8>,
    /// Extra PEM certificates appended to the bundle (`app/certs/*.pem`, e.g. the RDS CA bundle).
    pub extra_certs: Vec<PathBuf>,
    /// The error pages folder (`app/pages/`), if it exists.
    pub pages: Option<PathBuf>,
}

const PASSWD: &str =
    "root:x:0:0:root:/root:/sbin/nologin\napp:x:65532:65532:app:/nonexistent:/sbin/nologin\n";
const GROUP: &str = "root:x:0:\napp:x:65532:\n";
const NSSWITCH: &str = "passwd: files\ngroup: files\nhosts: files dns\nnetworks: files\n";
const HOSTS: &str = "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n";

fn read(what: &'static str, path: &Path, hint: &str) -> Result<Vec<u8>, ImageError> {
    std::fs::read(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => {
            ImageError::Missing { what, path: path.to_owned(), hint: hint.into() }
        }
        _ => ImageError::io(format!("reading {}", path.display()), e),
    })
}

/// The layers, base first.
pub fn plan(inputs: &Inputs) -> Result<Vec<LayerPlan>, ImageError> {
    let mut bundle = inputs.ca_bundle.clone();
    for extra in &inputs.extra_certs {
        if !bundle.ends_with(b"\n") {
            bundle.push(b'\n');
        }
        bundle.extend(read(
            "extra certificate",
            extra,
            "remove it from app/certs/ or fix the path",
        )?);
    }
    let base = vec![
        Entry::dir("etc", 0o755),
        Entry::file("etc/group", 0o644, GROUP),
        Entry::file("etc/hosts", 0o644, HOSTS),
        Entry::file("etc/nsswitch.conf", 0o644, NSSWITCH),
        Entry::file("etc/passwd", 0o644, PASSWD),
        Entry::dir("etc/ssl", 0o755),
        Entry::dir("etc/ssl/certs", 0o755),
        Entry::file(CA_BUNDLE_PATH, 0o644, bundle),
        Entry::dir("tmp", 0o1777),
    ];
    let binary = read(
        "app binary",
        &inputs.binary,
        "run `orch build` (or point ORCH_APP_BINARY at a static build)",
    )?;
    let mut app = vec![Entry::file("app", 0o755, binary)];
    if let Some(dir) = &inputs.pages {
        app.push(Entry::dir(PAGES_PATH, 0o755));
        for file in sorted_files(dir)? {
            let name = file.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_owned();
            app.push(Entry::file(
                &format!("{PAGES_PATH}/{name}"),
                0o644,
                read("error page", &file, "")?,
            ));
        }
    }
    Ok(vec![LayerPlan { name: "base", entries: base }, LayerPlan { name: "app", entries: app }])
}

/// The regular files directly inside `dir`, sorted by name (hidden files skipped).
pub fn sorted_files(dir: &Path) -> Result<Vec<PathBuf>, ImageError> {
    let listing = std::fs::read_dir(dir)
        .map_err(|e| ImageError::io(format!("listing {}", dir.display()), e))?;
    let mut files: Vec<PathBuf> = listing
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
        .map(|e| e.path())
        .collect();
    files.sort();
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_base_layer_carries_users_name_service_and_certificates() {
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, text: &str| {
            let p = dir.path().join(name);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(&p, text).unwrap();
            p
        };
        let inputs = Inputs {
            binary: write("app", "ELF"),
            ca_bundle: b"PINNED-CAS".to_vec(),
            extra_certs: vec![write("rds.pem", "RDS-CA\n")],
            pages: Some(write("pages/503.html", "down").parent().unwrap().to_owned()),
        };
        let layers = plan(&inputs).unwrap();
        let base = &layers[0].entries;
        let get = |path: &str| {
            base.iter()
                .find(|e| e.path == path)
                .and_then(|e| e.data.clone())
                .map(|d| String::from_utf8(d).unwrap())
        };
        assert!(get("etc/passwd").unwrap().contains("app:x:65532:65532:"));
        assert!(get("etc/nsswitch.conf").unwrap().contains("hosts: files dns"));
        assert_eq!(get(CA_BUNDLE_PATH).unwrap(), "PINNED-CAS\nRDS-CA\n");
        let app: Vec<_> = layers[1].entries.iter().map(|e| (e.path.as_str(), e.mode)).collect();
        assert_eq!(app, [("app", 0o755), ("pages", 0o755), ("pages/503.html", 0o644)]);
        let missing = Inputs { extra_certs: vec![dir.path().join("nope.pem")], ..inputs };
        assert!(matches!(
            plan(&missing),
            Err(ImageError::Missing { what: "extra certificate", .. })
        ));
    }
}
