//! The load balancer's certificate: a local CA and a server certificate (SAN localhost, 127.0.0.1)
//! generated once with rcgen into `.orch/local/tls/` and reused; and the rustls server config that
//! serves it with TLS 1.2 and 1.3 only. Clients (verify, tests) trust `ca.pem` instead of turning
//! certificate checks off. The CA's private key is never written: nothing else can be signed with it.
//! Both certificates live [`VALIDITY_DAYS`] (397, the most browsers accept for a server
//! certificate); a certificate with fewer than [`RENEW_DAYS`] left (or unreadable) is generated
//! anew at the next start, that is by the next `orch up`. The expiry is recorded next to them in
//! `expires` (Unix seconds of notAfter) when they are generated; a certificate without that record
//! (one from before the limit, valid until 4096) counts as expiring.
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// TLS failures.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("generating the local certificate: {0}")]
    Generate(#[from] rcgen::Error),
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{path} is not a usable PEM file: {message}")]
    Pem { path: PathBuf, message: String },
    #[error("TLS configuration: {0}")]
    Config(#[from] rustls::Error),
    #[error("the certificate's validity dates are out of range")]
    Date,
}

/// The files of the local certificate.
#[derive(Debug, Clone)]
pub struct CertFiles {
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
    /// notAfter of both certificates, Unix seconds.
    pub expires: PathBuf,
}

impl CertFiles {
    pub fn in_dir(dir: &Path) -> Self {
        CertFiles {
            ca: dir.join("ca.pem"),
            cert: dir.join("cert.pem"),
            key: dir.join("key.pem"),
            expires: dir.join("expires"),
        }
    }
}

/// How long the generated certificates are valid.
pub const VALIDITY_DAYS: i64 = 397;
/// A certificate with fewer days left than this is renewed.
pub const RENEW_DAYS: i64 = 30;

/// Seconds from now until the certificate's notAfter, as recorded in `expires` (None: no record).
pub fn seconds_left(files: &CertFiles) -> Option<i64> {
    let text = std::fs::read_to_string(&files.expires).ok()?;
    let not_after: i64 = text.trim().parse().ok()?;
    Some(not_after - chrono::Utc::now().timestamp())
}

/// Is the certificate in `files` good for at least [`RENEW_DAYS`] more days?
fn fresh(files: &CertFiles) -> bool {
    seconds_left(files).is_some_and(|s| s >= RENEW_DAYS * 86_400)
}

/// Valid from yesterday (clock skew) for [`VALIDITY_DAYS`] in all; returns notAfter (Unix seconds).
fn set_validity(params: &mut CertificateParams) -> Result<i64, TlsError> {
    use chrono::Datelike;
    let day = |days: i64| chrono::Utc::now().date_naive() + chrono::Duration::days(days);
    let date = |day: chrono::NaiveDate| {
        let month = u8::try_from(day.month()).map_err(|_| TlsError::Date)?;
        let dom = u8::try_from(day.day()).map_err(|_| TlsError::Date)?;
        Ok::<_, TlsError>(rcgen::date_time_ymd(day.year(), month, dom))
    };
    let last = day(VALIDITY_DAYS - 2);
    params.not_before = date(day(-1))?;
    params.not_after = date(last)?;
    last.and_hms_opt(0, 0, 0).map(|t| t.and_utc().timestamp()).ok_or(TlsError::Date)
}

/// The certificate in `dir`, generated there first if any file is missing or the certificate has
/// fewer than [`RENEW_DAYS`] left. Returns whether it was generated.
pub fn ensure(dir: &Path) -> Result<(CertFiles, bool), TlsError> {
    let files = CertFiles::in_dir(dir);
    if files.ca.is_file() && files.cert.is_file() && files.key.is_file() && fresh(&files) {
        return Ok((files, false));
    }
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| TlsError::Io { path, source }
    };
    std::fs::create_dir_all(dir).map_err(io(dir))?;

    let ca_key = KeyPair::generate()?;
    let mut ca = CertificateParams::new(Vec::<String>::new())?;
    ca.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    let not_after = set_validity(&mut ca)?;
    ca.distinguished_name.push(DnType::CommonName, "orch local CA");
    ca.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca_cert = ca.self_signed(&ca_key)?;
    let issuer = Issuer::new(ca, ca_key);

    let key = KeyPair::generate()?;
    let mut leaf = CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])?;
    leaf.distinguished_name.push(DnType::CommonName, "orch local load balancer");
    leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    set_validity(&mut leaf)?;
    leaf.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment];
    let cert = leaf.signed_by(&key, &issuer)?;

    write_private(&files.key, key.serialize_pem().as_bytes()).map_err(io(&files.key))?;
    std::fs::write(&files.cert, cert.pem()).map_err(io(&files.cert))?;
    std::fs::write(&files.ca, ca_cert.pem()).map_err(io(&files.ca))?;
    std::fs::write(&files.expires, format!("{not_after}\n")).map_err(io(&files.expires))?;
    Ok((files, true))
}

fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(bytes)
}

/// The TLS protocol versions the load balancer accepts: 1.2 and 1.3, nothing older.
pub static PROTOCOL_VERSIONS: &[&rustls::SupportedProtocolVersion] =
    &[&rustls::version::TLS13, &rustls::version::TLS12];

/// A rustls server config serving `files`, offering HTTP/2 and HTTP/1.1 over ALPN (as the ALB does).
pub fn server_config(files: &CertFiles) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let pem = |path: &Path, e: rustls::pki_types::pem::Error| TlsError::Pem {
        path: path.to_path_buf(),
        message: e.to_string(),
    };
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&files.cert)
        .map_err(|e| pem(&files.cert, e))?
        .collect::<Result<_, _>>()
        .map_err(|e| pem(&files.cert, e))?;
    let key = PrivateKeyDer::from_pem_file(&files.key).map_err(|e| pem(&files.key, e))?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(PROTOCOL_VERSIONS)?
        .with_no_client_auth()
        .with_single_cert(certs, key)?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// The CA certificate as reqwest wants it, for clients that should trust the local tier.
pub fn ca_certificate(files: &CertFiles) -> Result<reqwest::Certificate, TlsError> {
    let bytes = std::fs::read(&files.ca)
        .map_err(|source| TlsError::Io { path: files.ca.clone(), source })?;
    reqwest::Certificate::from_pem(&bytes)
        .map_err(|e| TlsError::Pem { path: files.ca.clone(), message: e.to_string() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_once_then_reused() {
        let dir = tempfile::tempdir().unwrap();
        let (files, fresh) = ensure(dir.path()).unwrap();
        assert!(fresh);
        let before = std::fs::read(&files.cert).unwrap();
        let (_, again) = ensure(dir.path()).unwrap();
        assert!(!again);
        assert_eq!(before, std::fs::read(&files.cert).unwrap());
        server_config(&files).unwrap();
        ca_certificate(&files).unwrap();
        let mode = std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(&files.key).unwrap().permissions(),
        );
        assert_eq!(mode & 0o077, 0, "the key is private");
        let left = seconds_left(&files).unwrap();
        assert!(left <= VALIDITY_DAYS * 86_400 && left > (VALIDITY_DAYS - 3) * 86_400, "{left}");
    }

    #[test]
    fn an_expiring_or_unrecorded_certificate_is_renewed() {
        let dir = tempfile::tempdir().unwrap();
        let (files, _) = ensure(dir.path()).unwrap();
        let soon = chrono::Utc::now().timestamp() + 29 * 86_400;
        std::fs::write(&files.expires, soon.to_string()).unwrap();
        let before = std::fs::read(&files.cert).unwrap();
        let (files, renewed) = ensure(dir.path()).unwrap();
        assert!(renewed, "29 days left: renewed");
        assert_ne!(before, std::fs::read(&files.cert).unwrap());
        std::fs::remove_file(&files.expires).unwrap();
        assert!(ensure(dir.path()).unwrap().1, "no record (an old 4096 certificate): renewed");
        assert!(!ensure(dir.path()).unwrap().1, "fresh: reused");
    }

    #[test]
    fn only_tls12_and_tls13() {
        let versions: Vec<_> = PROTOCOL_VERSIONS.iter().map(|v| v.version).collect();
        assert_eq!(versions, [rustls::ProtocolVersion::TLSv1_3, rustls::ProtocolVersion::TLSv1_2]);
    }
}
