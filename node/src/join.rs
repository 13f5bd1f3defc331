//! Joining a cluster with a bootstrap token, as kubeadm's TLS bootstrap does: discover the
//! cluster CA from `kube-public/cluster-info` (checked against `--ca-cert-hash`), ask for a
//! `system:node:<name>` client certificate through a CertificateSigningRequest, and keep the
//! resulting kubeconfig so later starts skip all of this.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use k8s_openapi::ByteString;
use k8s_openapi::api::certificates::v1::{
    CertificateSigningRequest, CertificateSigningRequestSpec,
};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, ObjectMeta, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use serde_json::json;

const KUBELET_CLIENT_SIGNER: &str = "kubernetes.io/kube-apiserver-client-kubelet";
const CERTIFICATE_WAIT: Duration = Duration::from_secs(60);

#[derive(Debug, thiserror::Error)]
pub enum JoinError {
    #[error("invalid server url {url:?}: {message}")]
    ServerUrl { url: String, message: String },
    #[error("reading {what}: {source}")]
    Client {
        what: &'static str,
        #[source]
        source: kube::Error,
    },
    #[error("the cluster-info ConfigMap has no usable kubeconfig with a CA")]
    ClusterInfo,
    #[error("the cluster CA hash is {found}, not {expected} as --ca-cert-hash says")]
    CaMismatch { expected: String, found: String },
    #[error("cluster ca: {0}")]
    Ca(#[from] rkube_client::bootstrap::BootstrapError),
    #[error("the API server refused the bootstrap token: {0}")]
    TokenRefused(#[source] kube::Error),
    #[error("generating the node key and request: {0}")]
    Key(#[from] rcgen::Error),
    #[error("certificate request {name} was {state}: {message}")]
    NotIssued {
        name: String,
        state: String,
        message: String,
    },
    #[error("certificate request {name} was not signed within {secs} s")]
    Timeout { name: String, secs: u64 },
    #[error("kubeconfig {path}: {message}")]
    Kubeconfig { path: PathBuf, message: String },
}

/// How to join: the API server URL, the bootstrap token and, to pin the cluster, the CA hash.
pub struct Join<'a> {
    pub server: &'a str,
    pub token: &'a str,
    pub ca_cert_hash: Option<&'a str>,
    pub node_name: &'a str,
    /// Where the node's own kubeconfig is kept once issued.
    pub kubeconfig: &'a Path,
}

/// Makes sure the node has its own kubeconfig at `join.kubeconfig`: kept from an earlier
/// join, else obtained by joining now.
pub async fn ensure_kubeconfig(join: &Join<'_>) -> Result<(), JoinError> {
    if !join.kubeconfig.exists() {
        let text = bootstrap(join).await?;
        crate::paths::write_private(join.kubeconfig, &text).map_err(|e| JoinError::Kubeconfig {
            path: join.kubeconfig.into(),
            message: e.to_string(),
        })?;
        tracing::info!(kubeconfig = %join.kubeconfig.display(), "joined the cluster");
    }
    Ok(())
}

async fn bootstrap(join: &Join<'_>) -> Result<String, JoinError> {
    let ca_pem = discover_ca(join.server).await?;
    let found = rkube_client::bootstrap::ca_cert_hash(&ca_pem)?;
    match join.ca_cert_hash {
        Some(expected) if !expected.eq_ignore_ascii_case(&found) => {
            return Err(JoinError::CaMismatch {
                expected: expected.to_string(),
                found,
            });
        }
        Some(_) => {}
        None => tracing::warn!(
            ca_cert_hash = %found,
            "joining without --ca-cert-hash: trusting the CA the server presents"
        ),
    }
    let client = client_from(&kubeconfig(
        join.server,
        &ca_pem,
        json!({"token": join.token}),
        "bootstrap",
    ))
    .await?;

    let key = rcgen::KeyPair::generate()?;
    let mut params = rcgen::CertificateParams::default();
    let mut dn = rcgen::DistinguishedName::new();
    dn.push(
        rcgen::DnType::CommonName,
        format!("system:node:{}", join.node_name),
    );
    dn.push(rcgen::DnType::OrganizationName, "system:nodes");
    params.distinguished_name = dn;
    let request = params.serialize_request(&key)?.pem()?;
    let cert_pem = request_certificate(client, join.node_name, &request).await?;
    Ok(kubeconfig(
        join.server,
        &ca_pem,
        json!({
            "client-certificate-data": STANDARD.encode(cert_pem),
            "client-key-data": STANDARD.encode(key.serialize_pem()),
        }),
        &format!("system:node:{}", join.node_name),
    ))
}

/// Reads the CA from cluster-info without trusting the server yet: the CA is verified by
/// hash afterwards, and no credential is sent on this connection.
async fn discover_ca(server: &str) -> Result<String, JoinError> {
    let uri = server
        .parse::<http::Uri>()
        .map_err(|e| JoinError::ServerUrl {
            url: server.into(),
            message: e.to_string(),
        })?;
    let mut config = kube::Config::new(uri);
    config.accept_invalid_certs = true;
    let client = kube::Client::try_from(config).map_err(|source| JoinError::Client {
        what: "cluster-info",
        source,
    })?;
    let info = Api::<ConfigMap>::namespaced(client, "kube-public")
        .get("cluster-info")
        .await
        .map_err(|source| JoinError::Client {
            what: "cluster-info",
            source,
        })?;
    let text = info
        .data
        .as_ref()
        .and_then(|d| d.get("kubeconfig"))
        .ok_or(JoinError::ClusterInfo)?;
    let parsed = Kubeconfig::from_yaml(text).map_err(|_| JoinError::ClusterInfo)?;
    let ca_b64 = parsed
        .clusters
        .first()
        .and_then(|c| c.cluster.as_ref())
        .and_then(|c| c.certificate_authority_data.as_ref())
        .ok_or(JoinError::ClusterInfo)?;
    let ca = STANDARD
        .decode(ca_b64)
        .map_err(|_| JoinError::ClusterInfo)?;
    String::from_utf8(ca).map_err(|_| JoinError::ClusterInfo)
}

async fn request_certificate(
    client: kube::Client,
    node: &str,
    request_pem: &str,
) -> Result<String, JoinError> {
    let csrs = Api::<CertificateSigningRequest>::all(client);
    let csr = CertificateSigningRequest {
        metadata: ObjectMeta {
            generate_name: Some(format!("node-csr-{node}-")),
            ..ObjectMeta::default()
        },
        spec: CertificateSigningRequestSpec {
            request: ByteString(request_pem.as_bytes().to_vec()),
            signer_name: KUBELET_CLIENT_SIGNER.into(),
            usages: Some(vec!["digital signature".into(), "client auth".into()]),
            ..CertificateSigningRequestSpec::default()
        },
        status: None,
    };
    let created = csrs
        .create(&PostParams::default(), &csr)
        .await
        .map_err(JoinError::TokenRefused)?;
    let name = created.metadata.name.unwrap_or_default();
    tracing::info!(csr = %name, "requested a node client certificate");
    let started = Instant::now();
    loop {
        let current = csrs.get(&name).await.map_err(|source| JoinError::Client {
            what: "the certificate request",
            source,
        })?;
        let status = current.status.unwrap_or_default();
        if let Some(cert) = status.certificate.filter(|c| !c.0.is_empty()) {
            return String::from_utf8(cert.0).map_err(|_| JoinError::NotIssued {
                name,
                state: "issued".into(),
                message: "the certificate is not PEM text".into(),
            });
        }
        if let Some(refused) = status
            .conditions
            .unwrap_or_default()
            .into_iter()
            .find(|c| matches!(c.type_.as_str(), "Denied" | "Failed") && c.status != "False")
        {
            return Err(JoinError::NotIssued {
                name,
                state: refused.type_.to_lowercase(),
                message: refused.message.unwrap_or_default(),
            });
        }
        if started.elapsed() > CERTIFICATE_WAIT {
            return Err(JoinError::Timeout {
                name,
                secs: CERTIFICATE_WAIT.as_secs(),
            });
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A kubeconfig (JSON, which kubeconfig readers accept as YAML) for `server` with `user`'s
/// credentials.
fn kubeconfig(server: &str, ca_pem: &str, user: serde_json::Value, user_name: &str) -> String {
    json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "rkube", "cluster": {
            "server": server,
            "certificate-authority-data": STANDARD.encode(ca_pem),
        }}],
        "users": [{"name": user_name, "user": user}],
        "contexts": [{"name": "rkube", "context": {"cluster": "rkube", "user": user_name}}],
        "current-context": "rkube",
    })
    .to_string()
}

async fn client_from(text: &str) -> Result<kube::Client, JoinError> {
    let bad = |message: String| JoinError::Kubeconfig {
        path: PathBuf::from("<bootstrap>"),
        message,
    };
    let parsed = Kubeconfig::from_yaml(text).map_err(|e| bad(e.to_string()))?;
    let config = kube::Config::from_custom_kubeconfig(parsed, &KubeConfigOptions::default())
        .await
        .map_err(|e| bad(e.to_string()))?;
    kube::Client::try_from(config).map_err(|source| JoinError::Client {
        what: "the bootstrap client",
        source,
    })
}
