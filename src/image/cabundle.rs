//! The image's CA bundle from a versioned source: the Mozilla root certificates as the
//! `webpki-root-certs` crate ships them (version pinned by Cargo.lock, checksum checked by cargo),
//! PEM-encoded in the crate's order. Nothing is read from the build machine, so every machine
//! building the same commit writes the same bundle.
use super::sha256_digest;

/// Where the bundle comes from, as recorded in the image's labels. Kept equal to the locked
/// version by a unit test (`the_recorded_source_is_the_locked_crate_version`).
pub const SOURCE: &str = "webpki-root-certs 1.0.11";

/// The Mozilla roots trusted for TLS server authentication, as one PEM file (LF line endings).
pub fn mozilla_pem() -> Vec<u8> {
    let config = pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF);
    webpki_root_certs::TLS_SERVER_ROOT_CERTS
        .iter()
        .map(|der| pem::encode_config(&pem::Pem::new("CERTIFICATE", der.as_ref()), config))
        .collect::<String>()
        .into_bytes()
}

/// What the `dev.orch.ca-bundle` label says: source, certificate count and the bundle's digest.
pub fn describe(bundle: &[u8]) -> String {
    let count = String::from_utf8_lossy(bundle).matches("-----BEGIN CERTIFICATE-----").count();
    format!("{SOURCE} (Mozilla roots), {count} certificates, {}", sha256_digest(bundle))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_recorded_source_is_the_locked_crate_version() {
        let lock = include_str!("../../Cargo.lock");
        let (name, version) = SOURCE.split_once(' ').unwrap();
        let entry = format!("name = \"{name}\"\nversion = \"{version}\"\n");
        assert!(
            lock.contains(&entry),
            "Cargo.lock does not lock {SOURCE}: update cabundle::SOURCE"
        );
    }

    #[test]
    fn the_bundle_is_pem_and_the_same_every_time() {
        let bundle = mozilla_pem();
        assert_eq!(bundle, mozilla_pem());
        let text = String::from_utf8(bundle.clone()).unwrap();
        assert!(!text.contains('\r'));
        let count = text.matches("-----BEGIN CERTIFICATE-----").count();
        assert_eq!(count, webpki_root_certs::TLS_SERVER_ROOT_CERTS.len());
        assert!(count > 100, "{count}");
        let parsed = pem::parse_many(&bundle).unwrap();
        assert_eq!(parsed[0].contents(), webpki_root_certs::TLS_SERVER_ROOT_CERTS[0].as_ref());
        assert!(describe(&bundle)
            .starts_with(&format!("{SOURCE} (Mozilla roots), {count} certificates, sha256:")));
    }
}
