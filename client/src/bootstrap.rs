//! Bootstrap tokens, as kubeadm defines them: a `bootstrap-token-<id>` Secret in kube-system
//! that lets a joining node authenticate with `<id>.<secret>`, and the CA public-key hash
//! the node checks the cluster it finds against.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, ObjectMeta, PostParams};
use sha2::{Digest, Sha256};
use x509_parser::prelude::{FromDer, X509Certificate};

#[derive(Debug, thiserror::Error)]
pub enum BootstrapError {
    #[error("the CA certificate is not valid PEM")]
    CaPem,
    #[error("the CA certificate does not parse: {0}")]
    CaCertificate(String),
    #[error("creating the token secret: {0}")]
    Create(#[source] kube::Error),
}

/// A freshly made token: `<id>.<secret>`.
#[derive(Debug, Clone)]
pub struct Token {
    pub id: String,
    pub secret: String,
}

impl Token {
    /// 6 + 16 random characters from `[a-z0-9]`.
    pub fn generate() -> Token {
        const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
        let mut random = uuid::Uuid::new_v4().as_bytes().to_vec();
        random.extend_from_slice(uuid::Uuid::new_v4().as_bytes());
        // 256 is not a multiple of 36; the slight bias does not matter at this length.
        let mut chars = random
            .into_iter()
            .map(|b| ALPHABET[b as usize % ALPHABET.len()] as char);
        Token {
            id: chars.by_ref().take(6).collect(),
            secret: chars.take(16).collect(),
        }
    }

    pub fn text(&self) -> String {
        format!("{}.{}", self.id, self.secret)
    }
}

/// Stores `token` as a Secret the API server authenticates against; it expires after `ttl`.
pub async fn create(
    client: kube::Client,
    token: &Token,
    ttl: Option<Duration>,
    description: &str,
) -> Result<(), BootstrapError> {
    let mut data = BTreeMap::from([
        ("token-id".to_string(), token.id.clone()),
        ("token-secret".to_string(), token.secret.clone()),
        (
            "usage-bootstrap-authentication".to_string(),
            "true".to_string(),
        ),
        ("usage-bootstrap-signing".to_string(), "true".to_string()),
        ("description".to_string(), description.to_string()),
    ]);
    if let Some(ttl) = ttl {
        let expires =
            chrono::Utc::now() + chrono::Duration::from_std(ttl).unwrap_or(chrono::Duration::MAX);
        data.insert(
            "expiration".into(),
            expires.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        );
    }
    let secret = Secret {
        metadata: ObjectMeta {
            name: Some(format!("bootstrap-token-{}", token.id)),
            namespace: Some("kube-system".into()),
            ..ObjectMeta::default()
        },
        type_: Some("bootstrap.kubernetes.io/token".into()),
        string_data: Some(data),
        ..Secret::default()
    };
    Api::<Secret>::namespaced(client, "kube-system")
        .create(&PostParams::default(), &secret)
        .await
        .map_err(BootstrapError::Create)?;
    Ok(())
}

/// `sha256:<hex>` of the CA certificate's SubjectPublicKeyInfo, kubeadm's
/// `--discovery-token-ca-cert-hash`.
pub fn ca_cert_hash(ca_pem: &str) -> Result<String, BootstrapError> {
    let der = rustls_pemfile::certs(&mut ca_pem.as_bytes())
        .next()
        .and_then(Result::ok)
        .ok_or(BootstrapError::CaPem)?;
    let (_, cert) = X509Certificate::from_der(&der)
        .map_err(|e| BootstrapError::CaCertificate(e.to_string()))?;
    let digest = Sha256::digest(cert.tbs_certificate.subject_pki.raw);
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    Ok(format!("sha256:{hex}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_tokens_have_the_bootstrap_shape() {
        let token = Token::generate();
        assert_eq!(token.id.len(), 6);
        assert_eq!(token.secret.len(), 16);
        let valid = |s: &str| {
            s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        };
        assert!(valid(&token.id) && valid(&token.secret));
        assert_ne!(Token::generate().text(), token.text());
    }

    #[test]
    fn ca_hash_is_stable_and_rejects_garbage() {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::default();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let pem = params.self_signed(&key).unwrap().pem();
        let hash = ca_cert_hash(&pem).unwrap();
        assert!(hash.starts_with("sha256:") && hash.len() == 7 + 64);
        assert_eq!(ca_cert_hash(&pem).unwrap(), hash);
        assert!(matches!(ca_cert_hash("nope"), Err(BootstrapError::CaPem)));
    }
}
