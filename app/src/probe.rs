//! `app --probe URL` (hidden): a self-check used by orch's image tests. One HTTPS GET trusting only
//! the certificates in `SSL_CERT_FILE` (default `/etc/ssl/certs/ca-certificates.crt`), so it proves
//! that name resolution and the CA bundle of the root it runs in work.
use std::time::Duration;

/// The CA bundle a probe trusts.
pub fn ca_bundle_path() -> String {
    std::env::var("SSL_CERT_FILE").unwrap_or_else(|_| "/etc/ssl/certs/ca-certificates.crt".into())
}

/// GET `url`; the HTTP status, or why it failed.
pub async fn run(url: &str) -> Result<u16, String> {
    let path = ca_bundle_path();
    let pem = std::fs::read(&path).map_err(|e| format!("reading {path}: {e}"))?;
    let certs =
        reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| format!("parsing {path}: {e}"))?;
    let mut builder =
        reqwest::Client::builder().tls_built_in_root_certs(false).timeout(Duration::from_secs(10));
    for cert in certs {
        builder = builder.add_root_certificate(cert);
    }
    let client = builder.build().map_err(|e| format!("TLS client: {e}"))?;
    let response = client.get(url).send().await.map_err(|e| format!("GET {url}: {e:?}"))?;
    Ok(response.status().as_u16())
}
