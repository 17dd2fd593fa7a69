//! Push an image layout with oci-client: a tag that already names another digest is refused
//! before anything is sent, blobs the registry already has (probed first) are skipped, the
//! manifest is put under its tag (which carries the digest), and the result is recorded by digest
//! in `pushed.json` beside the layout.
use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::errors::{OciDistributionError, OciErrorCode};
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference, RegistryOperation};
use oci_spec::image::Digest;
use serde::{Deserialize, Serialize};

use super::layout::Layout;
use super::ImageError;
use crate::printer::Printer;

/// Where to push, and how to authenticate (never printed: it may hold a password).
pub struct Destination {
    /// Registry host[:port], e.g. `127.0.0.1:5000` or `<account>.dkr.ecr.<region>.amazonaws.com`.
    pub registry: String,
    pub repository: String,
    pub auth: RegistryAuth,
}

/// What a push did; written to `build/<env>/image/pushed.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PushReport {
    pub registry: String,
    pub repository: String,
    pub tag: String,
    /// The manifest digest: deploys refer to `reference`, never to the tag.
    pub digest: Digest,
    /// `registry/repository@digest`.
    pub reference: String,
    /// Blob bytes sent (0 when the registry had every blob).
    pub bytes_uploaded: u64,
    pub blobs_uploaded: usize,
    pub blobs_skipped: usize,
    /// Whether the manifest had to be put (false when the tag already named this digest).
    pub manifest_uploaded: bool,
}

/// Plain HTTP for a registry on this machine, HTTPS for everything else.
pub fn protocol(registry: &str) -> ClientProtocol {
    if is_loopback(registry) {
        ClientProtocol::HttpsExcept(vec![registry.to_owned()])
    } else {
        ClientProtocol::Https
    }
}

/// Whether `registry` (`host[:port]`) is this machine, decided by parsing it as an URI authority
/// and its host as an IP address (`127.0.0.0/8`, `::1`) or the name `localhost`: a name such as
/// `127.0.0.1.example.com` is a remote host.
pub fn is_loopback(registry: &str) -> bool {
    let Ok(authority) = registry.parse::<hyper::http::uri::Authority>() else { return false };
    if authority.as_str().contains('@') {
        return false;
    }
    let host = authority.host();
    let bare = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host);
    match bare.parse::<std::net::IpAddr>() {
        Ok(ip) => ip.is_loopback(),
        Err(_) => host.eq_ignore_ascii_case("localhost"),
    }
}

fn registry_error(registry: &str, what: &str, e: OciDistributionError) -> ImageError {
    ImageError::Registry { registry: registry.to_owned(), reason: format!("{what}: {e}") }
}

/// Does this error say that the manifest (or the whole repository) does not exist?
fn not_found(e: &OciDistributionError) -> bool {
    match e {
        OciDistributionError::ImageManifestNotFoundError(_) => true,
        OciDistributionError::ServerError { code, .. } => *code == 404,
        OciDistributionError::RegistryError { envelope, .. } => envelope
            .errors
            .iter()
            .any(|e| matches!(e.code, OciErrorCode::ManifestUnknown | OciErrorCode::NameUnknown)),
        _ => false,
    }
}

/// The digest `reference` (a tag) names in the registry now; `None` when there is no such tag.
pub async fn tagged_digest(
    client: &Client,
    reference: &Reference,
    auth: &RegistryAuth,
    registry: &str,
) -> Result<Option<Digest>, ImageError> {
    match client.fetch_manifest_digest(reference, auth).await {
        Ok(digest) => digest.parse().map(Some).map_err(|e| ImageError::Registry {
            registry: registry.to_owned(),
            reason: format!("tag {} names `{digest}`, not a digest: {e}", reference.whole()),
        }),
        Err(e) if not_found(&e) => Ok(None),
        Err(e) => Err(registry_error(registry, &format!("reading tag {}", reference.whole()), e)),
    }
}

/// A client for `registry` (plain HTTP only on this machine).
pub fn client(registry: &str) -> Client {
    Client::new(ClientConfig { protocol: protocol(registry), ..Default::default() })
}

/// Does the repository already hold this blob? A one-byte ranged read through the client's auth;
/// anything but a clear "yes" counts as "no" (the upload then either works or says why).
async fn has_blob(client: &Client, reference: &Reference, digest: &Digest) -> bool {
    client.pull_blob_stream_partial(reference, &digest.as_ref(), 0, Some(1)).await.is_ok()
}

/// Push the layout to `dest` under `tag`.
pub async fn push(
    layout: &Layout,
    dest: &Destination,
    tag: &str,
    printer: &Printer,
) -> Result<PushReport, ImageError> {
    let client = client(&dest.registry);
    let reference =
        Reference::with_tag(dest.registry.clone(), dest.repository.clone(), tag.to_owned());
    client
        .auth(&reference, &dest.auth, RegistryOperation::Push)
        .await
        .map_err(|e| registry_error(&dest.registry, "authentication failed", e))?;
    let current = tagged_digest(&client, &reference, &dest.auth, &dest.registry).await?;
    if let Some(existing) = current.as_ref().filter(|d| **d != layout.digest) {
        return Err(ImageError::TagTaken {
            registry: dest.registry.clone(),
            repository: dest.repository.clone(),
            tag: tag.to_owned(),
            existing: existing.to_string(),
            ours: layout.digest.to_string(),
        });
    }

    let mut missing = Vec::new();
    let mut skipped = 0;
    for blob in layout.blobs() {
        let digest = blob.digest().clone();
        if has_blob(&client, &reference, &digest).await {
            skipped += 1;
        } else {
            missing.push((digest, blob.size()));
        }
    }
    let total: u64 = missing.iter().map(|(_, size)| size).sum();
    let bar = printer.bytes_bar(
        format!(
            "pushing {} of {} blobs to {}/{}",
            missing.len(),
            missing.len() + skipped,
            dest.registry,
            dest.repository
        ),
        total,
    );
    for (digest, _) in &missing {
        let data: bytes::Bytes = std::fs::read(layout.blob_path(digest))
            .map_err(|e| ImageError::io(format!("reading blob {digest}"), e))?
            .into();
        let size = data.len() as u64;
        client
            .push_blob(&reference, data, digest.as_ref())
            .await
            .map_err(|e| registry_error(&dest.registry, &format!("uploading {digest}"), e))?;
        bar.inc(size);
    }
    bar.finish_and_clear();

    let manifest_uploaded = current.is_none();
    if manifest_uploaded {
        let media_type =
            oci_client::manifest::OCI_IMAGE_MEDIA_TYPE.parse().map_err(ImageError::spec)?;
        client
            .push_manifest_raw(&reference, layout.manifest_bytes.clone(), media_type)
            .await
            .map_err(|e| {
                registry_error(&dest.registry, &format!("putting the manifest as tag {tag}"), e)
            })?;
        let now = client
            .fetch_manifest_digest(&reference, &dest.auth)
            .await
            .map_err(|e| registry_error(&dest.registry, "reading the pushed manifest back", e))?;
        if now != layout.digest.as_ref() {
            return Err(ImageError::Registry {
                registry: dest.registry.clone(),
                reason: format!("tag {tag} names {now} after the push, expected {}", layout.digest),
            });
        }
    }
    Ok(PushReport {
        registry: dest.registry.clone(),
        repository: dest.repository.clone(),
        tag: tag.to_owned(),
        digest: layout.digest.clone(),
        reference: format!("{}/{}@{}", dest.registry, dest.repository, layout.digest),
        bytes_uploaded: total,
        blobs_uploaded: missing.len(),
        blobs_skipped: skipped,
        manifest_uploaded,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_registries_use_plain_http() {
        for local in ["127.0.0.1:5000", "localhost:5000", "127.0.0.1"] {
            assert!(
                matches!(protocol(local), ClientProtocol::HttpsExcept(v) if v == [local]),
                "{local}"
            );
        }
        for local in ["127.1.2.3:5000", "[::1]:5000", "LOCALHOST"] {
            assert!(is_loopback(local), "{local}");
        }
        for remote in [
            "123456789012.dkr.ecr.eu-west-1.amazonaws.com",
            "ghcr.io",
            "10.0.0.1:5000",
            "127.0.0.1.nip.example:5000",
            "127.evil.example",
            "localhost.example.com",
            "user@127.0.0.1:5000",
            "[::ffff:10.0.0.1]:5000",
        ] {
            assert!(matches!(protocol(remote), ClientProtocol::Https), "{remote}");
        }
    }
}
