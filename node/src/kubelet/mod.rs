//! The kubelet API the API server proxies `kubectl logs` and `kubectl exec` to: HTTPS with a
//! self-signed serving certificate, clients authenticated by certificates of the cluster CA.

mod error;
mod exec;
mod log_lines;
mod logs;
mod lookup;
mod server;
mod tls;

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use rkube_runtimes::Runtime;
use tokio::net::TcpListener;

pub use error::KubeletError;

use crate::paths::Layout;
use crate::pod_registry::PodRegistry;

/// Where the kubelet API listens and whom it trusts.
#[derive(Clone, Debug)]
pub struct KubeletOptions {
    /// `0.0.0.0:10250` as the real kubelet; port 0 picks a free one (reported on the Node).
    pub listen: SocketAddr,
    /// The cluster CA (PEM) that client certificates must chain to.
    pub cluster_ca_pem: String,
}

/// A bound kubelet API: the port to report and the server to run.
pub struct Listening<F> {
    pub port: u16,
    pub serve: F,
}

/// Binds the kubelet API; the returned future serves it until dropped.
pub async fn bind(
    options: &KubeletOptions,
    node_name: &str,
    node_ip: IpAddr,
    layout: &Layout,
    registry: PodRegistry,
    runtimes: Vec<Arc<dyn Runtime>>,
) -> Result<Listening<impl Future<Output = ()> + use<>>, KubeletError> {
    let (cert, key) = tls::serving_pair(&layout.kubelet_pki(), node_name, node_ip)?;
    let acceptor = tls::acceptor(&options.cluster_ca_pem, &cert, &key)?;
    let addr = options.listen;
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| KubeletError::Bind { addr, source })?;
    let port = listener
        .local_addr()
        .map_err(|source| KubeletError::Bind { addr, source })?
        .port();
    tracing::info!(%addr, port, "kubelet api listening");
    let kubelet = Arc::new(server::Kubelet {
        registry,
        layout: layout.clone(),
        runtimes,
    });
    let router = server::router(kubelet);
    let serve = server::serve(listener, acceptor, router);
    Ok(Listening { port, serve })
}
