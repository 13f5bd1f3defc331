//! `rkube apiserver`: the data dir, PKI, kubeconfig, store and TLS listener put together.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;

use crate::csr::{CertSigner, SignerError};
use crate::error::ApiError;
use crate::kubelet_proxy::TlsKubeletConnector;
use crate::pki::{ClusterPki, PkiError};
use crate::serve::{self, ServeError};
use crate::server::{self, ApiServer};
use crate::serviceaccount::token::{TokenError, TokenKey};
use crate::store::etcd::EtcdStore;
use crate::store::redb::RedbStore;
use crate::store::{Store, StoreError, spawn_compactor};

#[derive(Debug, Clone)]
pub struct Options {
    pub data_dir: PathBuf,
    pub listen: SocketAddr,
    /// etcd endpoints; empty for the embedded store.
    pub etcd: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("pki: {0}")]
    Pki(#[from] PkiError),
    #[error("store: {0}")]
    Store(#[from] StoreError),
    #[error("api: {0}")]
    Api(#[from] ApiError),
    #[error("serve: {0}")]
    Serve(#[from] ServeError),
    #[error("certificate signer: {0}")]
    Signer(#[from] SignerError),
    #[error("service-account key: {0}")]
    TokenKey(#[from] TokenError),
}

/// The ConfigMap in kube-public that joining nodes discover the cluster from.
pub const CLUSTER_INFO: &str = "cluster-info";

/// The namespaces kube-apiserver keeps in existence.
const SYSTEM_NAMESPACES: &[&str] = &["default", "kube-system", "kube-public", "kube-node-lease"];

/// How often history is compacted, and how many revisions are kept for watchers to resume
/// from (kube-apiserver compacts every 5 minutes).
const COMPACT_EVERY: Duration = Duration::from_secs(300);
const KEEP_REVISIONS: i64 = 100_000;

/// The embedded store in the data dir, or etcd when endpoints are given.
pub async fn open_store(options: &Options) -> Result<Arc<dyn Store>, RunError> {
    let store: Arc<dyn Store> = if options.etcd.is_empty() {
        Arc::new(RedbStore::open(&options.data_dir.join("store.redb"))?)
    } else {
        Arc::new(EtcdStore::connect(&options.etcd, "/rkube").await?)
    };
    spawn_compactor(Arc::clone(&store), COMPACT_EVERY, KEEP_REVISIONS);
    Ok(store)
}

/// Creates the system namespaces that are missing.
pub async fn ensure_system_namespaces(server: &ApiServer) -> Result<(), RunError> {
    for name in SYSTEM_NAMESPACES {
        let namespace = json!({
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {"name": name, "labels": {"kubernetes.io/metadata.name": name}},
            "spec": {"finalizers": ["kubernetes"]},
            "status": {"phase": "Active"},
        });
        create_if_missing(server, ("", "v1", "namespaces"), namespace).await?;
    }
    Ok(())
}

/// The RuntimeClasses every rkube cluster has, each named after its handler (design brief,
/// section 5): `wasmtime` for wasm pods, `runc` for containers.
const RUNTIME_CLASSES: &[&str] = &["wasmtime", "runc"];

/// Creates the RuntimeClasses that are missing; existing ones are left as the user set them.
pub async fn ensure_runtime_classes(server: &ApiServer) -> Result<(), RunError> {
    for name in RUNTIME_CLASSES {
        let class = json!({
            "apiVersion": "node.k8s.io/v1",
            "kind": "RuntimeClass",
            "metadata": {"name": name},
            "handler": name,
        });
        create_if_missing(server, ("node.k8s.io", "v1", "runtimeclasses"), class).await?;
    }
    Ok(())
}

/// Writes an object the API server starts with, unless it exists (then it stays as the
/// cluster's admins may have edited it).
pub(crate) async fn create_if_missing(
    server: &ApiServer,
    (group, version, plural): (&str, &str, &str),
    mut obj: serde_json::Value,
) -> Result<(), RunError> {
    let resource = crate::objects::resource(group, version, plural)?;
    let name = crate::objects::name(&obj).to_string();
    let namespace = crate::objects::namespace(&obj).map(String::from);
    let key = crate::objects::key(resource, namespace.as_deref(), &name);
    if server.store.get(&key).await?.is_some() {
        return Ok(());
    }
    obj["metadata"]["uid"] = json!(uuid::Uuid::new_v4().to_string());
    obj["metadata"]["creationTimestamp"] = json!(crate::objects::now_rfc3339());
    match server
        .store
        .create(&key, crate::objects::encode(&obj))
        .await
    {
        Ok(_) | Err(StoreError::AlreadyExists { .. }) => Ok(()),
        Err(err) => Err(err.into()),
    }
}

/// Publishes `kube-public/cluster-info`, readable without credentials: a kubeconfig with the
/// server URL and the CA, which a joining node checks against the CA hash it was given
/// (kubeadm's discovery). Rewritten when the URL or CA changes.
pub async fn publish_cluster_info(
    server: &ApiServer,
    url: &str,
    ca_pem: &str,
) -> Result<(), RunError> {
    let configmaps = crate::objects::resource("", "v1", "configmaps")?;
    let key = crate::objects::key(configmaps, Some("kube-public"), CLUSTER_INFO);
    let kubeconfig = crate::pki::cluster_only_kubeconfig(url, ca_pem);
    let existing = server.store.get(&key).await?;
    let current = existing.as_ref().map(crate::objects::decode).transpose()?;
    if current
        .as_ref()
        .and_then(|cm| cm.pointer("/data/kubeconfig"))
        .and_then(|v| v.as_str())
        == Some(kubeconfig.as_str())
    {
        return Ok(());
    }
    let mut obj = current.unwrap_or_else(|| {
        json!({
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {
                "name": CLUSTER_INFO,
                "namespace": "kube-public",
                "uid": uuid::Uuid::new_v4().to_string(),
                "creationTimestamp": crate::objects::now_rfc3339(),
            },
        })
    });
    obj["data"] = json!({"kubeconfig": kubeconfig});
    if let Some(map) = obj.get_mut("metadata").and_then(|m| m.as_object_mut()) {
        map.remove("resourceVersion");
    }
    match existing {
        Some(kv) => {
            server
                .store
                .update(&key, crate::objects::encode(&obj), kv.mod_revision)
                .await?;
        }
        None => {
            server
                .store
                .create(&key, crate::objects::encode(&obj))
                .await?;
        }
    }
    Ok(())
}

/// An API server ready to serve: PKI loaded, store open, system namespaces in place, the
/// listener bound and the admin kubeconfig written.
pub struct Prepared {
    /// The API, for clients in the same process ([`crate::in_process::client`]).
    pub router: axum::Router,
    /// Where the listener is bound (the port is known even when `:0` was asked for).
    pub local: SocketAddr,
    /// The admin kubeconfig, pointing at `local`.
    pub kubeconfig: PathBuf,
    /// The cluster CA certificate (PEM), which in-process node agents trust for clients.
    pub ca_pem: String,
    listener: tokio::net::TcpListener,
    acceptor: tokio_rustls::TlsAcceptor,
}

/// Everything `rkube apiserver` does before it accepts connections.
pub async fn prepare(options: &Options) -> Result<Prepared, RunError> {
    let hosts = vec![options.listen.ip().to_string()];
    std::fs::create_dir_all(&options.data_dir).map_err(|source| PkiError::Io {
        path: options.data_dir.clone(),
        source,
    })?;
    let pki = ClusterPki::ensure(&options.data_dir, &hosts)?;
    let store = open_store(options).await?;
    let kubelet = Arc::new(TlsKubeletConnector::new(&pki)?);
    let api = ApiServer::with_kubelet(store, kubelet).await?;
    let signer = CertSigner::new(&pki.ca_cert, &pki.ca_key)?;
    let _ = api.signer.set(Arc::new(signer));
    let _ = api
        .token_key
        .set(Arc::new(TokenKey::from_pem(&pki.sa_key)?));
    ensure_system_namespaces(&api).await?;
    ensure_runtime_classes(&api).await?;
    crate::rbac::ensure_bootstrap_policy(&api).await?;
    let listener = serve::bind(options.listen).await?;
    let local = listener.local_addr().map_err(|source| ServeError::Bind {
        addr: options.listen,
        source,
    })?;
    publish_cluster_info(&api, &format!("https://{local}"), &pki.ca_cert).await?;
    let kubeconfig = options.data_dir.join("kubeconfig");
    crate::pki::write_private(
        &kubeconfig,
        &pki.admin_kubeconfig(&format!("https://{local}")),
    )?;
    Ok(Prepared {
        router: server::router(api),
        local,
        kubeconfig,
        listener,
        acceptor: serve::acceptor(&pki)?,
        ca_pem: pki.ca_cert,
    })
}

impl Prepared {
    /// Accepts TLS connections until `shutdown` resolves.
    pub async fn serve(self, shutdown: impl std::future::Future<Output = ()>) {
        tracing::info!(
            listen = %self.local,
            kubeconfig = %self.kubeconfig.display(),
            "api server is serving"
        );
        serve::serve(self.listener, self.acceptor, self.router, shutdown).await;
    }
}

/// Runs the API server until `shutdown` resolves.
pub async fn run(
    options: Options,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), RunError> {
    prepare(&options).await?.serve(shutdown).await;
    Ok(())
}
