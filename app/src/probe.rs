//! `app --probe URL` (hidden): a self-check used by orch's image tests. One HTTPS GET trusting only
//! the certificates in `SSL_CERT_FILE` (default `/etc/ssl/certs/ca-certificates.crt`), so it proves
//! that name resolution and the CA bundle of the root it runs in work.
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;

/// The CA bundle a probe trusts.
pub fn ca_bundle_path() -> String {
    std::env::var("SSL_CERT_FILE").unwrap_or_else(|_| "/etc/ssl/certs/ca-certificates.crt".into())
}

/// The app's one rustls crypto provider (ring; sqlx uses the same).
pub fn crypto_provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A TLS client configuration trusting exactly the certificates of the PEM bundle at `path`.
pub fn client_config(path: &str) -> Result<rustls::ClientConfig, String> {
    let pem = std::fs::read(path).map_err(|e| format!("reading {path}: {e}"))?;
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(&pem) {
        let cert = cert.map_err(|e| format!("parsing {path}: {e}"))?;
        roots.add(cert).map_err(|e| format!("parsing {path}: {e}"))?;
    }
    if roots.is_empty() {
        return Err(format!("{path} holds no certificate"));
    }
    Ok(rustls::ClientConfig::builder_with_provider(crypto_provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS client: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

/// GET `url`; the HTTP status, or why it failed.
pub async fn run(url: &str) -> Result<u16, String> {
    let config = client_config(&ca_bundle_path())?;
    let client = reqwest::Client::builder()
        .tls_backend_preconfigured(config)
        .timeout(Duration::from_secs(10))
        .build()
        .map_err(|e| format!("TLS client: {e}"))?;
    let response = client.get(url).send().await.map_err(|e| format!("GET {url}: {e:?}"))?;
    Ok(response.status().as_u16())
}
