//! The cluster PKI: a CA, the API server's serving certificate, the admin client certificate
//! and the client certificate the API server presents to kubelets, generated once in the data
//! dir, plus the admin kubeconfig and the service-account token signing key.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType,
};

#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("generating {what}: {source}")]
    Generate {
        what: &'static str,
        #[source]
        source: rcgen::Error,
    },
}

/// PEM files of the cluster PKI.
#[derive(Debug, Clone)]
pub struct ClusterPki {
    pub ca_cert: String,
    pub ca_key: String,
    pub server_cert: String,
    pub server_key: String,
    pub admin_cert: String,
    pub admin_key: String,
    /// What the API server presents to kubelets (`pods/log`, `pods/exec`), named as
    /// kubeadm's `apiserver-kubelet-client` certificate is.
    pub kubelet_client_cert: String,
    pub kubelet_client_key: String,
    /// The PKCS#8 P-256 key service-account tokens are signed with (`sa.key`).
    pub sa_key: String,
}

/// The identity kubelets see on the API server's requests.
pub const KUBELET_CLIENT_CN: &str = "kube-apiserver-kubelet-client";

fn read_or_create(
    path: &Path,
    create: impl FnOnce() -> Result<String, PkiError>,
) -> Result<String, PkiError> {
    match fs::read_to_string(path) {
        Ok(text) => Ok(text),
        Err(err) if err.kind() == io::ErrorKind::NotFound => {
            let text = create()?;
            write_private(path, &text)?;
            Ok(text)
        }
        Err(source) => Err(PkiError::Io {
            path: path.into(),
            source,
        }),
    }
}

/// Writes a file readable by its owner only (keys and kubeconfigs hold secrets).
pub fn write_private(path: &Path, text: &str) -> Result<(), PkiError> {
    use std::os::unix::fs::OpenOptionsExt;
    let io_err = |source| PkiError::Io {
        path: path.into(),
        source,
    };
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).map_err(io_err)?;
    }
    let tmp = path.with_extension("tmp");
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(io_err)?;
    io::Write::write_all(&mut file, text.as_bytes()).map_err(io_err)?;
    file.sync_all().map_err(io_err)?;
    fs::rename(&tmp, path).map_err(io_err)
}

fn generate(what: &'static str) -> impl Fn(rcgen::Error) -> PkiError {
    move |source| PkiError::Generate { what, source }
}

fn ca_params() -> CertificateParams {
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, "rkube-ca");
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params.not_after = rcgen::date_time_ymd(2100, 1, 1);
    params
}

/// Signs a leaf certificate with the CA; returns (cert PEM, key PEM).
pub fn issue(
    ca_cert: &str,
    ca_key: &str,
    common_name: &str,
    organizations: &[&str],
    sans: &[String],
    server: bool,
) -> Result<(String, String), PkiError> {
    let ca_key = KeyPair::from_pem(ca_key).map_err(generate("the CA key"))?;
    let issuer = Issuer::from_ca_cert_pem(ca_cert, ca_key).map_err(generate("the CA issuer"))?;
    let key = KeyPair::generate().map_err(generate("a key"))?;
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, common_name);
    for org in organizations {
        dn.push(DnType::OrganizationName, *org);
    }
    params.distinguished_name = dn;
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    params.extended_key_usages = vec![if server {
        ExtendedKeyUsagePurpose::ServerAuth
    } else {
        ExtendedKeyUsagePurpose::ClientAuth
    }];
    for san in sans {
        params.subject_alt_names.push(match san.parse() {
            Ok(ip) => SanType::IpAddress(ip),
            Err(_) => SanType::DnsName(san.clone().try_into().map_err(generate("a SAN"))?),
        });
    }
    params.not_after = rcgen::date_time_ymd(2100, 1, 1);
    let cert = params
        .signed_by(&key, &issuer)
        .map_err(generate("a certificate"))?;
    Ok((cert.pem(), key.serialize_pem()))
}

impl ClusterPki {
    /// Loads the PKI from `<data_dir>/pki`, generating what is missing. `hosts` are the
    /// names and addresses the serving certificate must cover.
    pub fn ensure(data_dir: &Path, hosts: &[String]) -> Result<ClusterPki, PkiError> {
        let dir = data_dir.join("pki");
        let ca_key = read_or_create(&dir.join("ca.key"), || {
            Ok(KeyPair::generate()
                .map_err(generate("the CA key"))?
                .serialize_pem())
        })?;
        let ca_cert = read_or_create(&dir.join("ca.crt"), || {
            let key = KeyPair::from_pem(&ca_key).map_err(generate("the CA key"))?;
            Ok(ca_params()
                .self_signed(&key)
                .map_err(generate("the CA certificate"))?
                .pem())
        })?;
        let mut sans: Vec<String> = vec!["localhost".into(), "127.0.0.1".into(), "::1".into()];
        sans.extend(hosts.iter().cloned());
        let (server_cert, server_key) = leaf_pair(&dir, "apiserver", || {
            issue(&ca_cert, &ca_key, "rkube-apiserver", &[], &sans, true)
        })?;
        let (admin_cert, admin_key) = leaf_pair(&dir, "admin", || {
            issue(
                &ca_cert,
                &ca_key,
                "rkube-admin",
                &["system:masters"],
                &[],
                false,
            )
        })?;
        let (kubelet_client_cert, kubelet_client_key) =
            leaf_pair(&dir, "apiserver-kubelet-client", || {
                issue(
                    &ca_cert,
                    &ca_key,
                    KUBELET_CLIENT_CN,
                    &["system:masters"],
                    &[],
                    false,
                )
            })?;
        let sa_key = read_or_create(&dir.join("sa.key"), || {
            Ok(KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
                .map_err(generate("the service-account key"))?
                .serialize_pem())
        })?;
        Ok(ClusterPki {
            ca_cert,
            ca_key,
            server_cert,
            server_key,
            admin_cert,
            admin_key,
            kubelet_client_cert,
            kubelet_client_key,
            sa_key,
        })
    }

    /// An admin kubeconfig for `server` (an `https://` URL).
    pub fn admin_kubeconfig(&self, server: &str) -> String {
        kubeconfig(
            server,
            &self.ca_cert,
            &self.admin_cert,
            &self.admin_key,
            "admin",
        )
    }
}

fn leaf_pair(
    dir: &Path,
    name: &str,
    create: impl FnOnce() -> Result<(String, String), PkiError>,
) -> Result<(String, String), PkiError> {
    let cert_path = dir.join(format!("{name}.crt"));
    let key_path = dir.join(format!("{name}.key"));
    if let (Ok(cert), Ok(key)) = (
        fs::read_to_string(&cert_path),
        fs::read_to_string(&key_path),
    ) {
        return Ok((cert, key));
    }
    let (cert, key) = create()?;
    write_private(&key_path, &key)?;
    write_private(&cert_path, &cert)?;
    Ok((cert, key))
}

/// A kubeconfig with one cluster, user and context, credentials embedded.
pub fn kubeconfig(server: &str, ca: &str, cert: &str, key: &str, user: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: rkube\n  cluster:\n    server: {server}\n    certificate-authority-data: {}\nusers:\n- name: {user}\n  user:\n    client-certificate-data: {}\n    client-key-data: {}\ncontexts:\n- name: rkube\n  context:\n    cluster: rkube\n    user: {user}\n    namespace: default\ncurrent-context: rkube\n",
        STANDARD.encode(ca),
        STANDARD.encode(cert),
        STANDARD.encode(key),
    )
}

/// A kubeconfig naming only the cluster (server and CA), as kube-public/cluster-info holds.
pub fn cluster_only_kubeconfig(server: &str, ca: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: rkube\n  cluster:\n    server: {server}\n    certificate-authority-data: {}\ncontexts: []\nusers: []\n",
        STANDARD.encode(ca),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::User;

    #[test]
    fn generates_once_and_reloads() {
        let dir = tempfile::tempdir().unwrap();
        let first = ClusterPki::ensure(dir.path(), &["node-a".into()]).unwrap();
        let second = ClusterPki::ensure(dir.path(), &[]).unwrap();
        assert_eq!(first.ca_cert, second.ca_cert);
        assert_eq!(first.admin_cert, second.admin_cert);
        assert_eq!(first.kubelet_client_cert, second.kubelet_client_cert);
        assert_eq!(first.sa_key, second.sa_key);
        let sa_key = crate::serviceaccount::token::TokenKey::from_pem(&first.sa_key).unwrap();
        assert!(!sa_key.kid().is_empty());
        let mode = std::os::unix::fs::PermissionsExt::mode(
            &fs::metadata(dir.path().join("pki/sa.key"))
                .unwrap()
                .permissions(),
        );
        assert_eq!(mode & 0o777, 0o600);
        let der = rustls_pemfile::certs(&mut first.admin_cert.as_bytes())
            .next()
            .unwrap()
            .unwrap();
        let user = User::from_certificate(&der).unwrap();
        assert_eq!(user.name, "rkube-admin");
        assert_eq!(user.groups, vec!["system:masters".to_string()]);
        let der = rustls_pemfile::certs(&mut first.kubelet_client_cert.as_bytes())
            .next()
            .unwrap()
            .unwrap();
        let kubelet_client = User::from_certificate(&der).unwrap();
        assert_eq!(kubelet_client.name, KUBELET_CLIENT_CN);
        assert_eq!(kubelet_client.groups, vec!["system:masters".to_string()]);
        assert!(
            first
                .admin_kubeconfig("https://127.0.0.1:6443")
                .contains("client-key-data")
        );
    }
}
