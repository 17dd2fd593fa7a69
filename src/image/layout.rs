//! The image as an OCI image layout directory (`oci-layout`, `index.json`, `blobs/sha256/…`):
//! config, manifest and index built with oci-spec types, serialized with sorted keys so the
//! same layers always give the same manifest digest.
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use oci_spec::image::{
    Arch, ConfigBuilder, Descriptor, DescriptorBuilder, Digest, ImageConfiguration,
    ImageConfigurationBuilder, ImageIndex, ImageIndexBuilder, ImageManifest, ImageManifestBuilder,
    MediaType, Os, RootFsBuilder,
};

use super::layer::Blob;
use super::source::Source;
use super::{sha256_digest, ImageError};

/// The annotation in index.json naming the tag the image is pushed under.
pub const REF_NAME: &str = "org.opencontainers.image.ref.name";

/// How the app is started inside the image.
#[derive(Debug, Clone)]
pub struct RunConfig {
    pub entrypoint: Vec<String>,
    pub env: Vec<(String, String)>,
    pub port: u16,
}

/// An image held in memory: the blobs and the manifest that ties them together.
#[derive(Debug, Clone)]
pub struct Image {
    pub layers: Vec<Blob>,
    pub config: Vec<u8>,
    pub manifest: Vec<u8>,
    /// `sha256:` of `manifest`: the image's identity everywhere downstream.
    pub digest: Digest,
}

/// An image layout on disk, as read back.
#[derive(Debug, Clone)]
pub struct Layout {
    pub dir: PathBuf,
    pub digest: Digest,
    pub tag: Option<String>,
    pub manifest_bytes: Vec<u8>,
    pub manifest: ImageManifest,
    pub config: ImageConfiguration,
}

impl Layout {
    /// The path of a blob in the layout.
    pub fn blob_path(&self, digest: &Digest) -> PathBuf {
        blob_path(&self.dir, digest)
    }
    /// Every blob of the image with its digest, size and media type: layers first, config last.
    pub fn blobs(&self) -> Vec<&Descriptor> {
        self.manifest.layers().iter().chain(std::iter::once(self.manifest.config())).collect()
    }
}

/// JSON with object keys sorted at every level: oci-spec keeps labels and annotations in hash maps.
pub fn canonical_json<T: serde::Serialize>(value: &T) -> Result<Vec<u8>, ImageError> {
    fn sort(value: serde_json::Value) -> serde_json::Value {
        match value {
            serde_json::Value::Object(map) => {
                let mut entries: Vec<_> = map.into_iter().collect();
                entries.sort_by(|a, b| a.0.cmp(&b.0));
                serde_json::Value::Object(entries.into_iter().map(|(k, v)| (k, sort(v))).collect())
            }
            serde_json::Value::Array(items) => {
                serde_json::Value::Array(items.into_iter().map(sort).collect())
            }
            other => other,
        }
    }
    let value = serde_json::to_value(value).map_err(ImageError::spec)?;
    serde_json::to_vec(&sort(value)).map_err(ImageError::spec)
}

fn descriptor(
    media_type: MediaType,
    digest: &Digest,
    size: usize,
) -> Result<Descriptor, ImageError> {
    DescriptorBuilder::default()
        .media_type(media_type)
        .digest(digest.clone())
        .size(size as u64)
        .build()
        .map_err(ImageError::spec)
}

/// Config and manifest for `layers` (base first), dated by `source`; `labels` go into the config's
/// labels and the manifest's annotations.
pub fn assemble(
    layers: Vec<Blob>,
    run: &RunConfig,
    source: &Source,
    labels: &BTreeMap<String, String>,
) -> Result<Image, ImageError> {
    let labels: HashMap<String, String> = labels.clone().into_iter().collect();
    let exec = ConfigBuilder::default()
        .user(format!("{uid}:{uid}", uid = super::rootfs::APP_UID))
        .entrypoint(run.entrypoint.clone())
        .env(run.env.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>())
        .exposed_ports(vec![format!("{}/tcp", run.port)])
        .working_dir("/")
        .labels(labels.clone())
        .stop_signal("SIGTERM")
        .build()
        .map_err(ImageError::spec)?;
    let rootfs = RootFsBuilder::default()
        .typ("layers")
        .diff_ids(layers.iter().map(|l| l.diff_id.to_string()).collect::<Vec<_>>())
        .build()
        .map_err(ImageError::spec)?;
    let config = ImageConfigurationBuilder::default()
        .created(source.created_rfc3339())
        .architecture(Arch::Amd64)
        .os(Os::Linux)
        .config(exec)
        .rootfs(rootfs)
        .build()
        .map_err(ImageError::spec)?;
    let config = canonical_json(&config)?;
    let layer_descriptors = layers
        .iter()
        .map(|l| descriptor(MediaType::ImageLayerGzip, &l.digest, l.gz.len()))
        .collect::<Result<Vec<_>, _>>()?;
    let manifest = ImageManifestBuilder::default()
        .schema_version(2u32)
        .media_type(MediaType::ImageManifest)
        .config(descriptor(MediaType::ImageConfig, &sha256_digest(&config), config.len())?)
        .layers(layer_descriptors)
        .annotations(labels)
        .build()
        .map_err(ImageError::spec)?;
    let manifest = canonical_json(&manifest)?;
    Ok(Image { digest: sha256_digest(&manifest), layers, config, manifest })
}

fn blob_path(dir: &Path, digest: &Digest) -> PathBuf {
    dir.join("blobs").join(digest.algorithm().as_ref()).join(digest.digest())
}

fn write(path: &Path, bytes: &[u8]) -> Result<(), ImageError> {
    if std::fs::read(path).is_ok_and(|old| old == bytes) {
        return Ok(());
    }
    std::fs::write(path, bytes)
        .map_err(|e| ImageError::io(format!("writing {}", path.display()), e))
}

/// Write `image` as an OCI layout into `dir`, tagged `tag`; blobs of earlier builds are removed.
pub fn write_layout(dir: &Path, image: &Image, tag: &str) -> Result<(), ImageError> {
    let blobs = dir.join("blobs").join("sha256");
    std::fs::create_dir_all(&blobs)
        .map_err(|e| ImageError::io(format!("creating {}", blobs.display()), e))?;
    let config_digest = sha256_digest(&image.config);
    let mut keep = vec![config_digest.clone(), image.digest.clone()];
    for layer in &image.layers {
        write(&blob_path(dir, &layer.digest), &layer.gz)?;
        keep.push(layer.digest.clone());
    }
    write(&blob_path(dir, &config_digest), &image.config)?;
    write(&blob_path(dir, &image.digest), &image.manifest)?;
    for stale in std::fs::read_dir(&blobs).into_iter().flatten().flatten() {
        let name = stale.file_name().to_string_lossy().into_owned();
        if !keep.iter().any(|d| d.digest() == name) {
            let _ = std::fs::remove_file(stale.path());
        }
    }
    let mut manifest = descriptor(MediaType::ImageManifest, &image.digest, image.manifest.len())?;
    manifest.set_annotations(Some([(REF_NAME.to_string(), tag.to_string())].into()));
    let index = ImageIndexBuilder::default()
        .schema_version(2u32)
        .media_type(MediaType::ImageIndex)
        .manifests(vec![manifest])
        .build()
        .map_err(ImageError::spec)?;
    write(&dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#)?;
    write(&dir.join("index.json"), &canonical_json(&index)?)
}

/// Read the layout in `dir` back, checking the manifest and config against their digests.
pub fn read_layout(dir: &Path) -> Result<Layout, ImageError> {
    let bad = |reason: String| ImageError::Layout { path: dir.to_owned(), reason };
    let read = |path: PathBuf| {
        std::fs::read(&path).map_err(|e| bad(format!("cannot read {}: {e}", path.display())))
    };
    let index: ImageIndex = serde_json::from_slice(&read(dir.join("index.json"))?)
        .map_err(|e| bad(format!("index.json: {e}")))?;
    let [entry] = index.manifests().as_slice() else {
        return Err(bad(format!(
            "index.json lists {} manifests, expected 1",
            index.manifests().len()
        )));
    };
    let digest = entry.digest().clone();
    let tag = entry.annotations().as_ref().and_then(|a| a.get(REF_NAME).cloned());
    let manifest_bytes = read(blob_path(dir, &digest))?;
    if sha256_digest(&manifest_bytes) != digest {
        return Err(bad(format!("manifest blob does not match its digest {digest}")));
    }
    let manifest: ImageManifest =
        serde_json::from_slice(&manifest_bytes).map_err(|e| bad(format!("manifest: {e}")))?;
    let config_digest = manifest.config().digest().clone();
    let config_bytes = read(blob_path(dir, &config_digest))?;
    if sha256_digest(&config_bytes) != config_digest {
        return Err(bad(format!("config blob does not match its digest {config_digest}")));
    }
    let config: ImageConfiguration =
        serde_json::from_slice(&config_bytes).map_err(|e| bad(format!("config: {e}")))?;
    Ok(Layout { dir: dir.to_owned(), digest, tag, manifest_bytes, manifest, config })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::layer;
    use crate::image::rootfs::Entry;

    fn image() -> Image {
        let layers = vec![layer::build(&[Entry::file("app", 0o755, "bin")], 7).unwrap()];
        let run = RunConfig {
            entrypoint: vec!["/app".into()],
            env: vec![("PORT".into(), "8080".into())],
            port: 8080,
        };
        let source = Source {
            revision: Some("abc".into()),
            short: Some("abc".into()),
            dirty: false,
            created: "2024-01-01T00:00:00Z".parse().unwrap(),
        };
        let labels = [("org.opencontainers.image.revision".to_string(), source.label())].into();
        assemble(layers, &run, &source, &labels).unwrap()
    }

    #[test]
    fn config_carries_entrypoint_user_port_and_labels_with_sorted_keys() {
        let img = image();
        assert_eq!(img.digest, image().digest, "deterministic");
        let config: serde_json::Value = serde_json::from_slice(&img.config).unwrap();
        assert_eq!(config["config"]["Entrypoint"], serde_json::json!(["/app"]));
        assert_eq!(config["config"]["User"], "65532:65532");
        assert_eq!(config["config"]["ExposedPorts"], serde_json::json!({"8080/tcp": {}}));
        assert_eq!(config["config"]["Labels"]["org.opencontainers.image.revision"], "abc");
        assert_eq!(config["created"], "2024-01-01T00:00:00Z");
        let text = String::from_utf8(img.config.clone()).unwrap();
        let a = text.find("\"Entrypoint\"").unwrap();
        assert!(a < text.find("\"Labels\"").unwrap(), "keys are sorted: {text}");
        let manifest: serde_json::Value = serde_json::from_slice(&img.manifest).unwrap();
        assert_eq!(manifest["annotations"]["org.opencontainers.image.revision"], "abc");
    }

    #[test]
    fn a_written_layout_reads_back_and_stale_blobs_go() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("blobs/sha256")).unwrap();
        std::fs::write(dir.path().join("blobs/sha256/00stale"), "x").unwrap();
        let img = image();
        write_layout(dir.path(), &img, "abc").unwrap();
        let layout = read_layout(dir.path()).unwrap();
        assert_eq!((&layout.digest, layout.tag.as_deref()), (&img.digest, Some("abc")));
        assert_eq!(layout.blobs().len(), 2);
        assert!(!dir.path().join("blobs/sha256/00stale").exists());
        std::fs::write(layout.blob_path(&layout.digest), "tampered").unwrap();
        assert!(matches!(read_layout(dir.path()), Err(ImageError::Layout { .. })));
    }
}
