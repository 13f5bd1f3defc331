//! Connections to kubelet APIs: TLS with the API server's kubelet client certificate, HTTP/1.1
//! (the only version that carries `exec` upgrades), behind a seam tests can replace.

use std::fmt;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Empty;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tracing::Instrument;

use crate::pki::ClusterPki;
use crate::serve::{self, ServeError};

/// Where a node's kubelet API listens: its address and `daemonEndpoints.kubeletEndpoint.Port`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KubeletEndpoint {
    pub host: String,
    pub port: u16,
}

impl fmt::Display for KubeletEndpoint {
    /// `host:port`, with IPv6 addresses in brackets as URLs write them.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum KubeletError {
    #[error("dial tcp {endpoint}: {source}")]
    Dial {
        endpoint: KubeletEndpoint,
        #[source]
        source: std::io::Error,
    },
    #[error("tls handshake with {endpoint}: {source}")]
    Tls {
        endpoint: KubeletEndpoint,
        #[source]
        source: std::io::Error,
    },
    #[error("{endpoint} is not a valid TLS server name")]
    ServerName { endpoint: KubeletEndpoint },
    #[error("{method} https://{endpoint}{path}: {source}")]
    Http {
        method: http::Method,
        endpoint: KubeletEndpoint,
        path: String,
        #[source]
        source: hyper::Error,
    },
    #[error("building the kubelet request for {path}: {source}")]
    Request {
        path: String,
        #[source]
        source: http::Error,
    },
}

/// A byte stream to a kubelet, ready for HTTP/1.1.
pub trait KubeletIo: AsyncRead + AsyncWrite + Send + Unpin + 'static {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin + 'static> KubeletIo for T {}

/// Opens connections to kubelet APIs. Production uses [`TlsKubeletConnector`]; tests may
/// point requests anywhere.
#[async_trait::async_trait]
pub trait KubeletConnector: Send + Sync {
    async fn connect(&self, endpoint: &KubeletEndpoint)
    -> Result<Box<dyn KubeletIo>, KubeletError>;
}

/// TLS to the kubelet, presenting the API server's kubelet client certificate.
///
/// The kubelet's serving certificate is not verified: rkube nodes self-sign theirs, so there
/// is no CA to check it against — as kube-apiserver without `--kubelet-certificate-authority`.
/// The handshake signature is still checked, so the session is bound to the key the kubelet
/// presented; the kubelet, for its part, does verify our certificate against the cluster CA.
pub struct TlsKubeletConnector {
    tls: TlsConnector,
}

impl TlsKubeletConnector {
    pub fn new(pki: &ClusterPki) -> Result<Self, ServeError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ClientConfig::builder_with_provider(Arc::clone(&provider))
            .with_safe_default_protocol_versions()?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(UnverifiedKubeletCert { provider }))
            .with_client_auth_cert(
                serve::certs(&pki.kubelet_client_cert, "the kubelet client certificate")?,
                serve::key(&pki.kubelet_client_key, "the kubelet client key")?,
            )?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(TlsKubeletConnector {
            tls: TlsConnector::from(Arc::new(config)),
        })
    }
}

#[async_trait::async_trait]
impl KubeletConnector for TlsKubeletConnector {
    async fn connect(
        &self,
        endpoint: &KubeletEndpoint,
    ) -> Result<Box<dyn KubeletIo>, KubeletError> {
        let tcp = TcpStream::connect((endpoint.host.as_str(), endpoint.port))
            .await
            .map_err(|source| KubeletError::Dial {
                endpoint: endpoint.clone(),
                source,
            })?;
        // Exec sessions are interactive: small writes must not wait for delayed ACKs.
        let _ = tcp.set_nodelay(true);
        let name =
            ServerName::try_from(endpoint.host.clone()).map_err(|_| KubeletError::ServerName {
                endpoint: endpoint.clone(),
            })?;
        let tls = self
            .tls
            .connect(name, tcp)
            .await
            .map_err(|source| KubeletError::Tls {
                endpoint: endpoint.clone(),
                source,
            })?;
        Ok(Box::new(tls))
    }
}

/// Accepts any kubelet serving certificate (see [`TlsKubeletConnector`]) but checks that the
/// peer holds its key.
#[derive(Debug)]
struct UnverifiedKubeletCert {
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for UnverifiedKubeletCert {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// Sends one bodiless request to a kubelet on a fresh connection and returns its response.
/// The connection is driven by a task that ends with the response body (or, after a `101`,
/// with the upgraded stream), so dropping either closes the socket.
pub async fn send(
    connector: &dyn KubeletConnector,
    endpoint: &KubeletEndpoint,
    method: http::Method,
    path_and_query: String,
    headers: http::HeaderMap,
) -> Result<http::Response<Incoming>, KubeletError> {
    let mut request = http::Request::builder()
        .method(method.clone())
        .uri(path_and_query.as_str())
        .header(http::header::HOST, endpoint.to_string())
        .body(Empty::<Bytes>::new())
        .map_err(|source| KubeletError::Request {
            path: path_and_query.clone(),
            source,
        })?;
    request.headers_mut().extend(headers);
    let http_err = |source| KubeletError::Http {
        method: method.clone(),
        endpoint: endpoint.clone(),
        path: path_and_query.clone(),
        source,
    };
    let io = connector.connect(endpoint).await?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(io))
        .await
        .map_err(http_err)?;
    let span = tracing::debug_span!("kubelet_connection", %endpoint);
    tokio::spawn(
        async move {
            if let Err(err) = connection.with_upgrades().await {
                tracing::debug!(error = %err, "kubelet connection ended with an error");
            }
        }
        .instrument(span),
    );
    sender.send_request(request).await.map_err(http_err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_bracket_ipv6() {
        let v4 = KubeletEndpoint {
            host: "10.0.0.1".into(),
            port: 10250,
        };
        let v6 = KubeletEndpoint {
            host: "fd00::1".into(),
            port: 10250,
        };
        assert_eq!(v4.to_string(), "10.0.0.1:10250");
        assert_eq!(v6.to_string(), "[fd00::1]:10250");
    }
}
