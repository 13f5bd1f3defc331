//! The HTTPS server of the kubelet API: client-certificate authentication, then the routes.

use std::sync::Arc;

use axum::Router;
use axum::extract::Request;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder;
use hyper_util::service::TowerToHyperService;
use rkube_runtimes::Runtime;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;

use super::error::ApiError;
use super::tls::Identity;
use super::{exec, logs};
use crate::paths::Layout;
use crate::pod_registry::PodRegistry;

/// What the request handlers read.
pub struct Kubelet {
    pub registry: PodRegistry,
    pub layout: Layout,
    pub runtimes: Vec<Arc<dyn Runtime>>,
}

/// The client certificate a connection presented: none, or one verified against the CA
/// (`None` inside when its subject names nobody).
#[derive(Clone)]
struct Peer(Option<Option<Identity>>);

pub fn router(kubelet: Arc<Kubelet>) -> Router {
    let routes = Router::new()
        .route(
            "/containerLogs/{namespace}/{pod}/{container}",
            get(logs::container_logs),
        )
        .route(
            "/exec/{namespace}/{pod}/{container}",
            get(exec::exec).post(exec::exec),
        )
        .with_state(kubelet);
    routes.layer(middleware::from_fn(authenticate))
}

async fn authenticate(request: Request, next: Next) -> Response {
    let peer = request.extensions().get::<Peer>().cloned();
    match peer.and_then(|p| p.0) {
        None => ApiError::Unauthorized.into_response(),
        Some(Some(identity)) if identity.may_use_kubelet_api() => next.run(request).await,
        Some(identity) => ApiError::Forbidden {
            user: identity.map_or_else(|| "unknown".into(), |i| i.name),
        }
        .into_response(),
    }
}

/// Accepts TLS connections until dropped.
pub async fn serve(listener: TcpListener, acceptor: TlsAcceptor, router: Router) {
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(connection) => connection,
            Err(error) => {
                tracing::warn!(%error, "accepting a kubelet api connection");
                // Out of descriptors, say: give others a moment rather than spin.
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            }
        };
        if let Err(error) = stream.set_nodelay(true) {
            tracing::debug!(%peer, %error, "setting TCP_NODELAY");
        }
        let acceptor = acceptor.clone();
        let router = router.clone();
        tokio::spawn(async move {
            let tls = match acceptor.accept(stream).await {
                Ok(tls) => tls,
                Err(error) => {
                    tracing::debug!(%peer, %error, "kubelet api tls handshake");
                    return;
                }
            };
            let certificate = tls.get_ref().1.peer_certificates().and_then(|c| c.first());
            let identity = Peer(certificate.map(|cert| Identity::from_certificate(cert)));
            let service =
                router.map_request(move |request: hyper::Request<hyper::body::Incoming>| {
                    let mut request = request.map(axum::body::Body::new);
                    request.extensions_mut().insert(identity.clone());
                    request
                });
            let served = Builder::new(TokioExecutor::new())
                .serve_connection_with_upgrades(
                    TokioIo::new(tls),
                    TowerToHyperService::new(service),
                )
                .await;
            if let Err(error) = served {
                tracing::debug!(%peer, %error, "kubelet api connection ended with an error");
            }
        });
    }
}
