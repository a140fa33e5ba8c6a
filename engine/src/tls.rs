//! TLS files checked before connecting (each holds what its flag needs, the key matches the
//! certificate) and failed handshakes explained the way etcdctl or curl would: which side
//! rejected which certificate, instead of "transport error".

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};

/// The certificates of a PEM file; `Err` says what is wrong with it.
fn certificates(flag: &str, path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let bytes =
        std::fs::read(path).map_err(|e| format!("cannot read {flag} {}: {e}", path.display()))?;
    let certs: Vec<_> = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<_, _>>()
        .map_err(|e| format!("{flag} {}: not PEM: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!(
            "{flag} {} holds no PEM certificate (-----BEGIN CERTIFICATE-----)",
            path.display()
        ));
    }
    Ok(certs)
}

fn private_key(path: &Path) -> Result<PrivateKeyDer<'static>, String> {
    let bytes =
        std::fs::read(path).map_err(|e| format!("cannot read --key {}: {e}", path.display()))?;
    PrivateKeyDer::from_pem_slice(&bytes)
        .map_err(|_| format!("--key {} holds no PEM private key", path.display()))
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Checks the TLS flags' files: `--cacert` and `--cert` hold certificates, `--key` a private key
/// that belongs to `--cert`'s certificate.
pub fn check_files(
    cacert: Option<&Path>,
    cert: Option<&Path>,
    key: Option<&Path>,
) -> Result<(), String> {
    if let Some(ca) = cacert {
        certificates("--cacert", ca)?;
    }
    if let (Some(c), Some(k)) = (cert, key) {
        let chain = certificates("--cert", c)?;
        let key = private_key(k)?;
        let signing = provider()
            .key_provider
            .load_private_key(key)
            .map_err(|e| format!("--key {}: {e}", k.display()))?;
        let certified = rustls::sign::CertifiedKey::new(chain, signing);
        if certified.keys_match().is_err() {
            return Err(format!(
                "--key {} does not belong to the certificate in --cert {}",
                k.display(),
                c.display()
            ));
        }
    }
    Ok(())
}

/// Why a TLS connection to `url` (`https://host:port`) fails, found by a handshake of our own
/// with the same files: `None` when it succeeds (the problem is elsewhere) or cannot be tried.
pub async fn diagnose(
    url: &str,
    cacert: Option<&Path>,
    cert: Option<&Path>,
    key: Option<&Path>,
) -> Option<String> {
    let hostport = url.strip_prefix("https://")?.trim_end_matches('/');
    let host = hostport
        .rsplit_once(':')
        .map_or(hostport, |(h, _)| h)
        .trim_matches(['[', ']']);
    let mut roots = rustls::RootCertStore::empty();
    for c in certificates("--cacert", cacert?).ok()? {
        roots.add(c).ok()?;
    }
    let builder = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .ok()?
        .with_root_certificates(roots);
    let with_cert = cert.is_some();
    let config = match (cert, key) {
        (Some(c), Some(k)) => builder
            .with_client_auth_cert(certificates("--cert", c).ok()?, private_key(k).ok()?)
            .ok()?,
        _ => builder.with_no_client_auth(),
    };
    let name = ServerName::try_from(host.to_string()).ok()?;
    let tcp = tokio::time::timeout(
        Duration::from_secs(5),
        tokio::net::TcpStream::connect(hostport),
    )
    .await
    .ok()?
    .ok()?;
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let mut tls =
        match tokio::time::timeout(Duration::from_secs(5), connector.connect(name, tcp)).await {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => return Some(explain(&e, with_cert)),
            Err(_) => return Some("the TLS handshake got no answer in 5s".into()),
        };
    // TLS 1.3: the server judges our certificate after we finish; its verdict comes on first read.
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let _ = tls.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n").await;
    let mut buf = [0u8; 64];
    match tokio::time::timeout(Duration::from_secs(2), tls.read(&mut buf)).await {
        Ok(Err(e)) => Some(explain(&e, with_cert)),
        _ => None,
    }
}

/// A handshake failure for people.
fn explain(e: &std::io::Error, with_cert: bool) -> String {
    use rustls::AlertDescription as A;
    use rustls::{CertificateError as C, Error as E};
    let inner = e.get_ref().and_then(|i| i.downcast_ref::<E>());
    match inner {
        Some(E::InvalidCertificate(C::UnknownIssuer)) => {
            "the server's certificate is not signed by --cacert (give the CA that signed etcd's certificate)".into()
        }
        Some(E::InvalidCertificate(C::Expired | C::ExpiredContext { .. })) => {
            "the server's certificate has expired".into()
        }
        Some(E::InvalidCertificate(C::NotValidForName | C::NotValidForNameContext { .. })) => {
            "the server's certificate does not name this host (its subjectAltName lacks the endpoint's address)".into()
        }
        Some(E::InvalidCertificate(other)) => format!("the server's certificate is not valid: {other:?}"),
        Some(E::AlertReceived(A::CertificateRequired)) => {
            "etcd asks for a client certificate: give --cert and --key".into()
        }
        Some(E::AlertReceived(A::CertificateExpired)) => {
            "etcd rejected our client certificate (--cert): it has expired".into()
        }
        Some(E::AlertReceived(A::UnknownCA)) => {
            "etcd rejected our client certificate (--cert): it is not signed by a CA etcd trusts (--trusted-ca-file)".into()
        }
        Some(E::AlertReceived(A::BadCertificate | A::UnsupportedCertificate | A::CertificateUnknown)) => {
            if with_cert {
                "etcd rejected our client certificate (--cert): expired, not yet valid, signed by a CA it does not trust, or not for client authentication".into()
            } else {
                "etcd asks for a client certificate: give --cert and --key".into()
            }
        }
        Some(E::AlertReceived(a)) => format!("etcd ended the TLS handshake: {a:?}"),
        Some(other) => format!("TLS: {other}"),
        None => format!("TLS: {e}"),
    }
}
