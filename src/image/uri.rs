//! Image references orch deploys and the registries it talks to, checked wherever they enter
//! (`ORCH_IMAGE`, `image.registry`, a release record) with the OCI reference grammar (oci-spec's
//! parser): `<registry>/<repository>@sha256:<64 lowercase hex>`, the registry named explicitly (no
//! Docker Hub default), no tag. The grammar admits no quote, space or shell metacharacter, so a
//! checked reference is safe in the rendered program and in the instances' user data.
use oci_client::Reference;
use oci_spec::image::{Digest, Sha256Digest};

/// A checked image reference, pinned by digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageUri {
    pub registry: String,
    pub repository: String,
    pub digest: Digest,
}

impl ImageUri {
    /// `registry/repository@digest`.
    pub fn whole(&self) -> String {
        format!("{}/{}@{}", self.registry, self.repository, self.digest)
    }
}

/// Check `uri`; the error says what is wrong with it.
pub fn parse(uri: &str) -> Result<ImageUri, String> {
    let reference: Reference =
        uri.parse().map_err(|e| format!("`{uri}` is not an image reference: {e}"))?;
    let sha: Option<Sha256Digest> =
        reference.digest().and_then(|d| d.strip_prefix("sha256:")).and_then(|hex| hex.parse().ok());
    let Some(sha) = sha else {
        return Err(format!("`{uri}` is not pinned by a sha256 digest (…@sha256:<64 hex>)"));
    };
    let checked = ImageUri {
        registry: reference.registry().to_owned(),
        repository: reference.repository().to_owned(),
        digest: sha.into(),
    };
    // A tag, or a registry the parser had to supply (Docker Hub), makes the text differ.
    if checked.whole() != uri {
        return Err(format!(
            "`{uri}` must be exactly <registry>/<repository>@sha256:<64 hex> (no tag, the registry named)"
        ));
    }
    Ok(checked)
}

/// Check a registry `host[:port]` (`image.registry`).
pub fn registry(host: &str) -> Result<(), String> {
    let probe = format!("{host}/r@sha256:{}", "0".repeat(64));
    match parse(&probe) {
        Ok(uri) if uri.registry == host => Ok(()),
        _ => Err(format!("`{host}` is not a registry host[:port] (letters, digits, - and .)")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_digest_pinned_reference_with_its_registry_passes() {
        let hex = "a".repeat(64);
        let ok = format!("123456789012.dkr.ecr.eu-west-1.amazonaws.com/orch-app@sha256:{hex}");
        assert_eq!(parse(&ok).unwrap().repository, "orch-app");
        assert_eq!(
            parse(&format!("127.0.0.1:5000/o/app@sha256:{hex}")).unwrap().registry,
            "127.0.0.1:5000"
        );
        for bad in [
            format!("r.io/app'; curl x | sh; '@sha256:{hex}"),
            format!("r.io/app@sha256:{hex}' -v /:/host '"),
            format!("r.io/app:latest@sha256:{hex}"),
            format!("app@sha256:{hex}"),
            format!("r.io/app@sha256:{}", "A".repeat(64)),
            format!("r.io/a$(id)@sha256:{hex}"),
            "r.io/app:latest".into(),
            format!("r.io/app@sha256:{hex}\nrm -rf /"),
        ] {
            assert!(parse(&bad).is_err(), "{bad}");
        }
        assert!(registry("127.0.0.1:5000").is_ok());
        assert!(registry("ghcr.io").is_ok());
        for bad in ["ghcr.io/x", "a'b.io", "evil.io\"", "no space.io", "x"] {
            assert!(registry(bad).is_err(), "{bad}");
        }
    }
}
