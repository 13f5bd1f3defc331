//! TLS for the kubelet API: a self-signed serving certificate kept in the data dir, and client
//! certificates checked against the cluster CA.

use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;

use rcgen::{
    CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, KeyPair, SanType,
};
use rustls::RootCertStore;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use tokio_rustls::TlsAcceptor;
use x509_parser::prelude::{FromDer, X509Certificate};

use super::error::KubeletError;

/// The group and the user the API server's kubelet client certificate may carry.
const MASTERS_GROUP: &str = "system:masters";
const APISERVER_CLIENT: &str = "kube-apiserver-kubelet-client";

/// The serving certificate and key PEMs under `dir`, generated on first use and reused after.
pub fn serving_pair(
    dir: &Path,
    node_name: &str,
    node_ip: IpAddr,
) -> Result<(String, String), KubeletError> {
    let cert_path = dir.join("kubelet.crt");
    let key_path = dir.join("kubelet.key");
    let read = |path: &Path| std::fs::read_to_string(path);
    if let (Ok(cert), Ok(key)) = (read(&cert_path), read(&key_path)) {
        return Ok((cert, key));
    }
    let key = KeyPair::generate()?;
    let mut params = CertificateParams::default();
    let mut name = DistinguishedName::new();
    name.push(DnType::CommonName, format!("{node_name}@rkube"));
    params.distinguished_name = name;
    params.subject_alt_names = vec![
        SanType::DnsName(node_name.to_string().try_into()?),
        SanType::DnsName("localhost".to_string().try_into()?),
        SanType::IpAddress(node_ip),
        SanType::IpAddress(IpAddr::from([127, 0, 0, 1])),
    ];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.not_after = rcgen::date_time_ymd(2100, 1, 1);
    let cert = params.self_signed(&key)?.pem();
    let key = key.serialize_pem();
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| KubeletError::CertFile { path, source }
    };
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    crate::paths::write_private(&key_path, &key).map_err(io(&key_path))?;
    std::fs::write(&cert_path, &cert).map_err(io(&cert_path))?;
    Ok((cert, key))
}

fn certs(pem: &str, what: &'static str) -> Result<Vec<CertificateDer<'static>>, KubeletError> {
    let certs = rustls_pemfile::certs(&mut pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| KubeletError::Pem { what })?;
    if certs.is_empty() {
        return Err(KubeletError::Pem { what });
    }
    Ok(certs)
}

/// A TLS acceptor that asks for a client certificate signed by the cluster CA; connections
/// without one are let through so that they get a 401 Status rather than a handshake error.
pub fn acceptor(ca_pem: &str, cert_pem: &str, key_pem: &str) -> Result<TlsAcceptor, KubeletError> {
    let mut roots = RootCertStore::empty();
    for ca in certs(ca_pem, "the cluster CA")? {
        roots.add(ca)?;
    }
    let verifier = WebPkiClientVerifier::builder_with_provider(
        Arc::new(roots),
        Arc::new(rustls::crypto::ring::default_provider()),
    )
    .allow_unauthenticated()
    .build()?;
    let key: PrivateKeyDer<'static> = rustls_pemfile::private_key(&mut key_pem.as_bytes())
        .ok()
        .flatten()
        .ok_or(KubeletError::Pem {
            what: "the serving key",
        })?;
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_client_cert_verifier(verifier)
    .with_single_cert(certs(cert_pem, "the serving certificate")?, key)?;
    // HTTP/1.1 only: exec is an HTTP/1.1 upgrade.
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// Who a verified client certificate names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    pub name: String,
    pub groups: Vec<String>,
}

impl Identity {
    pub fn from_certificate(der: &[u8]) -> Option<Identity> {
        let (_, cert) = X509Certificate::from_der(der).ok()?;
        let subject = cert.subject();
        let name = subject
            .iter_common_name()
            .next()
            .and_then(|cn| cn.as_str().ok())?
            .to_string();
        let groups = subject
            .iter_organization()
            .filter_map(|o| o.as_str().ok().map(String::from))
            .collect();
        Some(Identity { name, groups })
    }

    /// Only the API server (or a cluster admin) may read logs and exec into containers.
    pub fn may_use_kubelet_api(&self) -> bool {
        self.name == APISERVER_CLIENT || self.groups.iter().any(|g| g == MASTERS_GROUP)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_serving_certificate_is_reused_across_restarts() {
        let dir = tempfile::tempdir().unwrap();
        let ip = IpAddr::from([10, 0, 0, 7]);
        let first = serving_pair(dir.path(), "node-1", ip).unwrap();
        let second = serving_pair(dir.path(), "node-1", ip).unwrap();
        assert_eq!(first, second);
        let ca = KeyPair::generate().unwrap();
        let ca_pem = CertificateParams::default().self_signed(&ca).unwrap().pem();
        assert!(acceptor(&ca_pem, &first.0, &first.1).is_ok());
    }

    #[test]
    fn identities_allowed_by_name_or_group() {
        let id = |name: &str, groups: &[&str]| Identity {
            name: name.into(),
            groups: groups.iter().map(|g| g.to_string()).collect(),
        };
        assert!(id(APISERVER_CLIENT, &[]).may_use_kubelet_api());
        assert!(id("admin", &[MASTERS_GROUP]).may_use_kubelet_api());
        assert!(!id("alice", &["developers"]).may_use_kubelet_api());
    }
}
