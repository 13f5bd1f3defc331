//! A minimal HTTPS client for the benchmark: one HTTP/1.1 keep-alive connection per
//! simulated client, mutual TLS with the admin certificate of the generated PKI.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::{Context, anyhow};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1;
use hyper::{Method, Request, StatusCode};
use rkube_apiserver::pki::ClusterPki;
use rustls::RootCertStore;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

/// Everything needed to open authenticated connections to one API server.
#[derive(Clone)]
pub struct Tls {
    connector: TlsConnector,
    addr: SocketAddr,
}

fn certs(pem: &str) -> anyhow::Result<Vec<CertificateDer<'static>>> {
    rustls_pemfile::certs(&mut pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .context("parsing a PEM certificate")
}

fn key(pem: &str) -> anyhow::Result<PrivateKeyDer<'static>> {
    rustls_pemfile::private_key(&mut pem.as_bytes())
        .context("parsing the admin key")?
        .ok_or_else(|| anyhow!("no private key in the admin key PEM"))
}

impl Tls {
    pub fn new(pki: &ClusterPki, addr: SocketAddr) -> anyhow::Result<Tls> {
        let mut roots = RootCertStore::empty();
        for ca in certs(&pki.ca_cert)? {
            roots.add(ca)?;
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots)
            .with_client_auth_cert(certs(&pki.admin_cert)?, key(&pki.admin_key)?)?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Tls {
            connector: TlsConnector::from(Arc::new(config)),
            addr,
        })
    }

    /// Opens a connection and completes the TLS handshake.
    pub async fn connect(&self) -> anyhow::Result<Connection> {
        let tcp = TcpStream::connect(self.addr)
            .await
            .with_context(|| format!("connecting to {}", self.addr))?;
        tcp.set_nodelay(true)?;
        let server_name = ServerName::IpAddress(self.addr.ip().into());
        let tls = self
            .connector
            .connect(server_name, tcp)
            .await
            .context("tls handshake")?;
        let (sender, connection) = http1::handshake(hyper_util::rt::TokioIo::new(tls)).await?;
        tokio::spawn(async move {
            // The connection ends when the sender is dropped; errors then are expected.
            let _ = connection.await;
        });
        Ok(Connection {
            sender,
            authority: self.addr.to_string(),
        })
    }
}

pub struct Connection {
    sender: http1::SendRequest<Full<Bytes>>,
    authority: String,
}

impl Connection {
    /// Sends one request and reads the whole response body.
    pub async fn send(
        &mut self,
        method: Method,
        path: &str,
        body: Option<Bytes>,
    ) -> anyhow::Result<(StatusCode, Bytes)> {
        self.sender.ready().await?;
        let mut request = Request::builder()
            .method(method)
            .uri(path)
            .header(hyper::header::HOST, &self.authority)
            .header(hyper::header::ACCEPT, "application/json");
        if body.is_some() {
            request = request.header(hyper::header::CONTENT_TYPE, "application/json");
        }
        let request = request.body(Full::new(body.unwrap_or_default()))?;
        let response = self.sender.send_request(request).await?;
        let status = response.status();
        let bytes = response.into_body().collect().await?.to_bytes();
        Ok((status, bytes))
    }
}
