//! `orch build --verify DIGEST`: rebuild the current checkout (into `build/<env>/verify/`, so the
//! layout `orch build` wrote stays) and say whether it gives `DIGEST`. When it does not, the
//! expected image is read — from `build/<env>/image/` if that is it, else from the registry — and
//! compared layer by layer and label by label, so the difference has a name.
use std::collections::{BTreeMap, BTreeSet};

use oci_client::Reference;
use oci_spec::image::{ImageConfiguration, ImageManifest};

use super::layout::{self, Layout};
use super::pipeline::{self, Built};
use super::push::{self, Destination};
use super::{sha256_digest, ImageError};
use crate::config::Stack;
use crate::printer::Printer;
use crate::project::Project;
use crate::runner::Duct;
use crate::settings::Settings;

/// What `--verify` was given: a digest, optionally with the `registry/repository@` to read it from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expected {
    pub digest: oci_spec::image::Digest,
    /// `(registry, repository)` of a full reference.
    pub location: Option<(String, String)>,
}

/// Parse `sha256:<64 hex>` or `registry/repository@sha256:<64 hex>`.
pub fn parse(arg: &str) -> Result<Expected, ImageError> {
    let bad = || ImageError::BadDigest(arg.to_owned());
    let (location, digest) = match arg.rsplit_once('@') {
        Some((_, digest)) => {
            let uri = super::uri::parse(arg).map_err(|_| bad())?;
            (Some((uri.registry, uri.repository)), digest)
        }
        None => (None, arg),
    };
    let hex = digest.strip_prefix("sha256:").ok_or_else(bad)?;
    let sha: oci_spec::image::Sha256Digest = hex.parse().map_err(|_| bad())?;
    Ok(Expected { digest: sha.into(), location })
}

/// One layer position, ours against the expected image's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerRow {
    pub name: String,
    /// `(digest, compressed bytes)`; `None` when that image has no layer at this position.
    pub ours: Option<(String, u64)>,
    pub theirs: Option<(String, u64)>,
}

impl LayerRow {
    pub fn same(&self) -> bool {
        self.ours == self.theirs
    }
}

/// A label that differs: `(key, ours, theirs)`, `None` where an image lacks it.
pub type LabelDiff = (String, Option<String>, Option<String>);

/// The outcome of a verification.
#[derive(Debug, Clone)]
pub struct Verdict {
    pub expected: oci_spec::image::Digest,
    pub rebuilt: Built,
    /// Layer by layer, base first; empty when the digests are equal or the expected image could
    /// not be read.
    pub layers: Vec<LayerRow>,
    /// Labels that differ: `(key, ours, theirs)`.
    pub labels: Vec<LabelDiff>,
    /// Why the expected image could not be compared, if it could not.
    pub unreadable: Option<String>,
}

impl Verdict {
    pub fn same(&self) -> bool {
        self.rebuilt.digest == self.expected
    }
}

/// The expected image's manifest and config.
struct Theirs {
    manifest: ImageManifest,
    config: ImageConfiguration,
}

fn from_layout(layout: Layout) -> Theirs {
    Theirs { manifest: layout.manifest, config: layout.config }
}

async fn from_registry(
    dest: &Destination,
    digest: &oci_spec::image::Digest,
) -> Result<Theirs, ImageError> {
    let client = push::client(&dest.registry);
    let reference =
        Reference::with_digest(dest.registry.clone(), dest.repository.clone(), digest.to_string());
    let fail = |what: &str, e: oci_client::errors::OciDistributionError| ImageError::Registry {
        registry: dest.registry.clone(),
        reason: format!("{what} {}: {e}", reference.whole()),
    };
    let media = [oci_client::manifest::OCI_IMAGE_MEDIA_TYPE];
    let (bytes, _) = client
        .pull_manifest_raw(&reference, &dest.auth, &media)
        .await
        .map_err(|e| fail("reading the manifest of", e))?;
    if sha256_digest(&bytes) != *digest {
        return Err(ImageError::Spec(format!(
            "the registry's manifest for {digest} has another digest"
        )));
    }
    let manifest: ImageManifest = serde_json::from_slice(&bytes).map_err(ImageError::spec)?;
    let mut config = Vec::new();
    client
        .pull_blob(&reference, manifest.config().digest().as_ref(), &mut config)
        .await
        .map_err(|e| fail("reading the config of", e))?;
    let config = serde_json::from_slice(&config).map_err(ImageError::spec)?;
    Ok(Theirs { manifest, config })
}

/// Compare the rebuilt image with the expected one.
fn compare(built: &Built, theirs: &Theirs) -> (Vec<LayerRow>, Vec<LabelDiff>) {
    let their_layers = theirs.manifest.layers();
    let rows = (0..built.layers.len().max(their_layers.len()))
        .map(|i| LayerRow {
            name: built.layers.get(i).map_or_else(|| format!("layer {i}"), |l| l.0.clone()),
            ours: built.layers.get(i).map(|l| (l.1.clone(), l.2)),
            theirs: their_layers.get(i).map(|d| (d.digest().to_string(), d.size())),
        })
        .collect();
    let their_labels: BTreeMap<String, String> = theirs
        .config
        .config()
        .as_ref()
        .and_then(|c| c.labels().clone())
        .unwrap_or_default()
        .into_iter()
        .collect();
    let keys: BTreeSet<&String> = built.labels.keys().chain(their_labels.keys()).collect();
    let labels = keys
        .into_iter()
        .map(|k| (k.clone(), built.labels.get(k).cloned(), their_labels.get(k).cloned()))
        .filter(|(_, a, b)| a != b)
        .collect();
    (rows, labels)
}

/// The credentials to read `registry` with: `ORCH_REGISTRY_USERNAME`/`_PASSWORD` belong to the
/// configured `image.registry` only; any other registry a `--verify` reference names is read
/// anonymously, so the reference cannot send them elsewhere.
fn auth_for(
    stack: &Stack,
    registry: &str,
    settings: &Settings,
) -> oci_client::secrets::RegistryAuth {
    if stack.image.registry.as_deref() == Some(registry) {
        pipeline::registry_auth(settings)
    } else {
        oci_client::secrets::RegistryAuth::Anonymous
    }
}

/// Rebuild `project` and compare it with `arg` (see [`parse`]).
pub(crate) async fn verify(
    project: &Project,
    stack: &Stack,
    printer: &Printer,
    arg: &str,
    settings: &Settings,
) -> Result<Verdict, ImageError> {
    let expected = parse(arg)?;
    let dir = project.build_dir(&stack.name).join("verify");
    let rebuilt = pipeline::build_into(project, &Duct, printer, &dir, settings)?;
    let mut verdict = Verdict {
        expected: expected.digest.clone(),
        rebuilt,
        layers: vec![],
        labels: vec![],
        unreadable: None,
    };
    if verdict.same() {
        return Ok(verdict);
    }
    let local = layout::read_layout(&project.build_dir(&stack.name).join("image"))
        .ok()
        .filter(|l| l.digest == expected.digest);
    let theirs = match (local, expected.location) {
        (Some(layout), _) => Ok(from_layout(layout)),
        (None, Some((registry, repository))) => {
            let auth = auth_for(stack, &registry, settings);
            from_registry(&Destination { registry, repository, auth }, &expected.digest).await
        }
        (None, None) => match pipeline::destination(stack, printer, settings).await {
            Ok(dest) => from_registry(&dest, &expected.digest).await,
            Err(e) => Err(e),
        },
    };
    match theirs {
        Ok(theirs) => (verdict.layers, verdict.labels) = compare(&verdict.rebuilt, &theirs),
        Err(e) => verdict.unreadable = Some(e.to_string()),
    }
    Ok(verdict)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_digest_or_a_reference_is_accepted_and_anything_else_refused() {
        let hex = "a".repeat(64);
        assert_eq!(
            parse(&format!("sha256:{hex}")).unwrap(),
            Expected { digest: format!("sha256:{hex}").parse().unwrap(), location: None }
        );
        let full = parse(&format!("127.0.0.1:5000/orch/app@sha256:{hex}")).unwrap();
        assert_eq!(full.location, Some(("127.0.0.1:5000".into(), "orch/app".into())));
        for bad in
            ["sha256:abc", &format!("sha512:{hex}"), &format!("app@sha256:{hex}"), &"A".repeat(71)]
        {
            assert!(matches!(parse(bad), Err(ImageError::BadDigest(_))), "{bad}");
        }
        let quoted = format!("r.io/app'x@sha256:{hex}");
        assert!(matches!(parse(&quoted), Err(ImageError::BadDigest(_))));
    }

    #[test]
    fn registry_credentials_go_only_to_the_configured_registry() {
        let text = include_str!("../../stacks/dev.yaml").replace(
            "  repository: orch-app\n",
            "  repository: orch-app\n  registry: 127.0.0.1:5000\n",
        );
        let stack =
            crate::config::load_str(&text, "dev", std::path::Path::new("stacks/dev.yaml")).unwrap();
        assert_eq!(stack.image.registry.as_deref(), Some("127.0.0.1:5000"));
        let settings = Settings {
            registry_user: Some("ci".into()),
            registry_password: Some("secret".into()),
            ..Settings::default()
        };
        assert!(matches!(
            auth_for(&stack, "127.0.0.1:5000", &settings),
            oci_client::secrets::RegistryAuth::Basic(..)
        ));
        for elsewhere in ["attacker.example", "127.0.0.1:5001", "127.0.0.1.attacker.example:5000"] {
            assert!(
                matches!(
                    auth_for(&stack, elsewhere, &settings),
                    oci_client::secrets::RegistryAuth::Anonymous
                ),
                "{elsewhere}"
            );
        }
    }
}
