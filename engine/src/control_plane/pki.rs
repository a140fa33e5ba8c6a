//! The embedded control plane's throwaway PKI: a CA, a serving certificate for 127.0.0.1 and
//! localhost signed by it (rustls refuses a self-signed leaf used as its own CA), a service-account
//! signing key, and an admin client certificate in `system:masters` — written as PEM files into
//! the control plane's directory and gone with it.

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};

use super::{Error, Result};

/// The PEM files of one control plane.
#[derive(Debug, Clone)]
pub struct Pki {
    /// The CA certificate (`--client-ca-file`, `--root-ca-file`, the kubeconfig's authority).
    pub ca_cert: PathBuf,
    /// The CA key (the controller manager's `--cluster-signing-key-file`).
    pub ca_key: PathBuf,
    /// kube-apiserver's serving certificate.
    pub serving_cert: PathBuf,
    /// Its key.
    pub serving_key: PathBuf,
    /// The service-account token signing key.
    pub sa_key: PathBuf,
    /// Its public half (`--service-account-key-file`).
    pub sa_pub: PathBuf,
    /// The admin client certificate (`CN=scen-admin, O=system:masters`).
    pub admin_cert: PathBuf,
    /// Its key.
    pub admin_key: PathBuf,
}

fn gen(what: &str) -> impl Fn(rcgen::Error) -> Error + '_ {
    move |e| Error::Pki(format!("{what}: {e}"))
}

impl Pki {
    /// Generates every key and certificate and writes them under `dir`.
    pub fn generate(dir: &Path) -> Result<Pki> {
        let ca_key = KeyPair::generate().map_err(gen("CA key"))?;
        let mut ca = CertificateParams::new(Vec::<String>::new()).map_err(gen("CA"))?;
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.distinguished_name.push(DnType::CommonName, "scen-ca");
        ca.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca_cert = ca.self_signed(&ca_key).map_err(gen("CA certificate"))?;
        let ca_key_pem = ca_key.serialize_pem();
        let issuer = Issuer::new(ca, ca_key);

        let serving_key = KeyPair::generate().map_err(gen("serving key"))?;
        let mut serving = CertificateParams::new(vec![
            "127.0.0.1".to_string(),
            "localhost".to_string(),
            "kubernetes".to_string(),
            "kubernetes.default".to_string(),
            "kubernetes.default.svc".to_string(),
        ])
        .map_err(gen("serving certificate"))?;
        serving
            .distinguished_name
            .push(DnType::CommonName, "kube-apiserver");
        serving.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        serving.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let serving_cert = serving
            .signed_by(&serving_key, &issuer)
            .map_err(gen("serving certificate"))?;

        let admin_key = KeyPair::generate().map_err(gen("admin key"))?;
        let mut admin =
            CertificateParams::new(Vec::<String>::new()).map_err(gen("admin certificate"))?;
        admin
            .distinguished_name
            .push(DnType::CommonName, "scen-admin");
        admin
            .distinguished_name
            .push(DnType::OrganizationName, "system:masters");
        admin.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        admin.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let admin_cert = admin
            .signed_by(&admin_key, &issuer)
            .map_err(gen("admin certificate"))?;

        let sa_key = KeyPair::generate().map_err(gen("service-account key"))?;

        let write = |name: &str, pem: String| -> Result<PathBuf> {
            let path = dir.join(name);
            std::fs::write(&path, pem).map_err(Error::Prepare)?;
            Ok(path)
        };
        Ok(Pki {
            ca_cert: write("ca.crt", ca_cert.pem())?,
            ca_key: write("ca.key", ca_key_pem)?,
            serving_cert: write("apiserver.crt", serving_cert.pem())?,
            serving_key: write("apiserver.key", serving_key.serialize_pem())?,
            sa_key: write("sa.key", sa_key.serialize_pem())?,
            sa_pub: write("sa.pub", sa_key.public_key_pem())?,
            admin_cert: write("admin.crt", admin_cert.pem())?,
            admin_key: write("admin.key", admin_key.serialize_pem())?,
        })
    }

    /// A kubeconfig for the admin user against `server`, with the certificates inline (so the
    /// file alone is enough for kubectl and kube-rs).
    pub fn kubeconfig(&self, server: &str) -> Result<String> {
        use base64::Engine as _;
        let b64 = |p: &Path| -> Result<String> {
            let bytes = std::fs::read(p).map_err(Error::Prepare)?;
            Ok(base64::engine::general_purpose::STANDARD.encode(bytes))
        };
        Ok(format!(
            "apiVersion: v1
kind: Config
clusters:
- name: scen
  cluster:
    server: {server}
    certificate-authority-data: {ca}
users:
- name: scen-admin
  user:
    client-certificate-data: {cert}
    client-key-data: {key}
contexts:
- name: scen
  context:
    cluster: scen
    user: scen-admin
current-context: scen
",
            ca = b64(&self.ca_cert)?,
            cert = b64(&self.admin_cert)?,
            key = b64(&self.admin_key)?,
        ))
    }

    /// A reqwest client that trusts the CA and presents the admin certificate (for `/readyz` and
    /// `/metrics` of kube-apiserver).
    pub fn admin_http_client(&self) -> Result<reqwest::Client> {
        let read = |p: &Path| std::fs::read(p).map_err(Error::Prepare);
        let ca = reqwest::Certificate::from_pem(&read(&self.ca_cert)?)
            .map_err(|e| Error::Pki(format!("CA certificate: {e}")))?;
        let mut identity = read(&self.admin_cert)?;
        identity.extend(read(&self.admin_key)?);
        let identity = reqwest::Identity::from_pem(&identity)
            .map_err(|e| Error::Pki(format!("admin identity: {e}")))?;
        reqwest::Client::builder()
            .use_rustls_tls()
            .tls_built_in_root_certs(false)
            .add_root_certificate(ca)
            .identity(identity)
            .timeout(std::time::Duration::from_secs(10))
            .build()
            .map_err(|e| Error::Pki(format!("HTTP client: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_a_ca_a_serving_cert_and_an_admin_in_system_masters() {
        let dir = tempfile::tempdir().unwrap();
        let pki = Pki::generate(dir.path()).unwrap();
        for p in [
            &pki.ca_cert,
            &pki.ca_key,
            &pki.serving_cert,
            &pki.serving_key,
            &pki.sa_key,
            &pki.sa_pub,
            &pki.admin_cert,
            &pki.admin_key,
        ] {
            let text = std::fs::read_to_string(p).unwrap();
            assert!(text.starts_with("-----BEGIN "), "{}", p.display());
        }
        // The client trusts the CA and loads the identity: the files are coherent PEM.
        pki.admin_http_client().unwrap();
        let kc = pki.kubeconfig("https://127.0.0.1:6443").unwrap();
        let parsed: kube::config::Kubeconfig = serde_yaml::from_str(&kc).unwrap();
        assert_eq!(parsed.current_context.as_deref(), Some("scen"));
        assert_eq!(
            parsed.clusters[0]
                .cluster
                .as_ref()
                .unwrap()
                .server
                .as_deref(),
            Some("https://127.0.0.1:6443")
        );
    }
}
