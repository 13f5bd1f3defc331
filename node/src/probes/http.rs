//! The `httpGet` probe: one GET over a fresh connection, HTTPS without certificate checks (as
//! the kubelet), redirects not followed (a 3xx already passes).

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use http::header::{ACCEPT, CONNECTION, HOST, USER_AGENT};
use http::{HeaderMap, HeaderName, HeaderValue, Request, StatusCode};
use hyper_util::rt::TokioIo;
use k8s_openapi::api::core::v1::HTTPGetAction;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{WebPkiSupportedAlgorithms, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, SignatureScheme};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_rustls::TlsConnector;

use super::action::{ProbeError, Verdict, authority, dial};

/// GETs the probe's URL on `host:port`; a status from 200 to 399 passes.
pub async fn get(
    action: &HTTPGetAction,
    host: &str,
    port: u16,
    timeout: Duration,
) -> Result<Verdict, ProbeError> {
    let tls = match action.scheme.as_deref().unwrap_or("HTTP") {
        "HTTP" => None,
        "HTTPS" => Some(insecure_tls()?),
        other => {
            return Err(ProbeError::InvalidRequest {
                what: "scheme".into(),
                reason: format!("{other} is neither HTTP nor HTTPS"),
            });
        }
    };
    let path = request_path(action.path.as_deref());
    let scheme = if tls.is_some() { "https" } else { "http" };
    let authority = authority(host, port);
    let url = format!("{scheme}://{authority}{path}");
    let request = request(action, &authority, &path)?;
    let answer = tokio::time::timeout(timeout, send(request, host, port, tls, timeout)).await;
    Ok(match answer {
        Ok(Ok(status)) if (200..400).contains(&status.as_u16()) => Verdict::Success,
        Ok(Ok(status)) => Verdict::Failure(format!(
            "HTTP probe failed with statuscode: {}",
            status.as_u16()
        )),
        Ok(Err(error)) => Verdict::Failure(format!("Get \"{url}\": {error}")),
        Err(_) => Verdict::Failure(format!(
            "Get \"{url}\": context deadline exceeded (Client.Timeout exceeded while awaiting headers)"
        )),
    })
}

/// The path as sent: always absolute, `/` when empty.
fn request_path(path: Option<&str>) -> String {
    match path.unwrap_or_default() {
        "" => "/".into(),
        p if p.starts_with('/') => p.into(),
        p => format!("/{p}"),
    }
}

/// `kube-probe/<major>.<minor>` of the kubelet version this node reports.
fn user_agent() -> String {
    let version = crate::KUBELET_VERSION.trim_start_matches('v');
    let minor: Vec<&str> = version.splitn(3, '.').take(2).collect();
    format!("kube-probe/{}", minor.join("."))
}

fn request(
    action: &HTTPGetAction,
    authority: &str,
    path: &str,
) -> Result<Request<String>, ProbeError> {
    let invalid = |what: String, reason: String| ProbeError::InvalidRequest { what, reason };
    let mut headers = HeaderMap::new();
    for header in action.http_headers.iter().flatten() {
        let name = HeaderName::from_bytes(header.name.as_bytes())
            .map_err(|e| invalid(format!("header name {}", header.name), e.to_string()))?;
        let value = HeaderValue::from_str(&header.value)
            .map_err(|e| invalid(format!("header {}", header.name), e.to_string()))?;
        headers.append(name, value);
    }
    // The probe's own headers win over these defaults, `Host` included.
    let defaults = [
        (USER_AGENT, user_agent()),
        (ACCEPT, "*/*".to_string()),
        (HOST, authority.to_string()),
    ];
    for (name, value) in defaults {
        if !headers.contains_key(&name) {
            let value = HeaderValue::from_str(&value)
                .map_err(|e| invalid(format!("header {name}"), e.to_string()))?;
            headers.insert(name, value);
        }
    }
    headers.insert(CONNECTION, HeaderValue::from_static("close"));
    let mut request = Request::get(path)
        .body(String::new())
        .map_err(|e| invalid(format!("path {path}"), e.to_string()))?;
    *request.headers_mut() = headers;
    Ok(request)
}

trait Io: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> Io for T {}

/// Sends the request over a new connection and returns the response status.
async fn send(
    request: Request<String>,
    host: &str,
    port: u16,
    tls: Option<Arc<ClientConfig>>,
    timeout: Duration,
) -> Result<StatusCode, String> {
    let tcp = dial(host, port, timeout).await?;
    let io: Box<dyn Io> = match tls {
        None => Box::new(tcp),
        Some(config) => {
            let name = ServerName::try_from(host.to_string())
                .map_err(|e| format!("invalid server name {host}: {e}"))?;
            let stream = TlsConnector::from(config)
                .connect(name, tcp)
                .await
                .map_err(|e| format!("tls handshake: {e}"))?;
            Box::new(stream)
        }
    };
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(io))
        .await
        .map_err(|e| e.to_string())?;
    let mut connection = std::pin::pin!(connection);
    let mut response = std::pin::pin!(sender.send_request(request));
    let response = tokio::select! {
        biased;
        response = &mut response => response,
        // The connection may end right after delivering the response: look at it still.
        _ = &mut connection => response.await,
    };
    response.map(|r| r.status()).map_err(|e| e.to_string())
}

/// A TLS client that accepts any server certificate but still checks the handshake signature;
/// built once, for every HTTPS probe of the node.
fn insecure_tls() -> Result<Arc<ClientConfig>, ProbeError> {
    static CONFIG: OnceLock<Arc<ClientConfig>> = OnceLock::new();
    if let Some(config) = CONFIG.get() {
        return Ok(config.clone());
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = AnyCertificate(provider.signature_verification_algorithms);
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| ProbeError::Tls {
            reason: e.to_string(),
        })?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(CONFIG.get_or_init(|| Arc::new(config)).clone())
}

#[derive(Debug)]
struct AnyCertificate(WebPkiSupportedAlgorithms);

impl ServerCertVerifier for AnyCertificate {
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
        verify_tls12_signature(message, cert, dss, &self.0)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(message, cert, dss, &self.0)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::HTTPHeader;
    use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
    use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;
    use tokio::sync::mpsc;
    use tokio_rustls::TlsAcceptor;

    use super::*;

    const SECOND: Duration = Duration::from_secs(1);

    /// Serves each connection one canned response with `status` and sends back the request
    /// head it read; with `tls`, behind a fresh self-signed certificate.
    async fn server(status: u16, tls: bool) -> (u16, mpsc::UnboundedReceiver<String>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let acceptor = tls.then(self_signed);
        let (heads, seen) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            loop {
                let (tcp, _) = listener.accept().await.unwrap();
                let io: Box<dyn Io> = match &acceptor {
                    Some(acceptor) => Box::new(acceptor.accept(tcp).await.unwrap()),
                    None => Box::new(tcp),
                };
                tokio::spawn(answer(io, status, heads.clone()));
            }
        });
        (port, seen)
    }

    async fn answer(mut io: Box<dyn Io>, status: u16, heads: mpsc::UnboundedSender<String>) {
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            if io.read(&mut byte).await.unwrap_or(0) == 0 {
                return;
            }
            head.push(byte[0]);
        }
        let _ = heads.send(String::from_utf8_lossy(&head).into_owned());
        let response = format!("HTTP/1.1 {status} X\r\ncontent-length: 2\r\n\r\nok");
        let _ = io.write_all(response.as_bytes()).await;
        let _ = io.shutdown().await;
    }

    fn self_signed() -> TlsAcceptor {
        let key = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
        let der = PrivatePkcs8KeyDer::from(key.signing_key.serialize_der());
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![key.cert.der().clone()], PrivateKeyDer::Pkcs8(der))
            .unwrap();
        TlsAcceptor::from(Arc::new(config))
    }

    fn action(port: u16, scheme: &str) -> HTTPGetAction {
        HTTPGetAction {
            path: Some("/healthz?deep=1".into()),
            port: IntOrString::Int(i32::from(port)),
            scheme: Some(scheme.into()),
            http_headers: Some(vec![HTTPHeader {
                name: "X-Probe".into(),
                value: "yes".into(),
            }]),
            host: None,
        }
    }

    #[tokio::test]
    async fn a_2xx_or_3xx_answer_passes_and_the_request_is_the_kubelets() {
        for status in [200, 302] {
            let (port, mut heads) = server(status, false).await;
            let verdict = get(&action(port, "HTTP"), "127.0.0.1", port, SECOND).await;
            assert_eq!(verdict.unwrap(), Verdict::Success, "{status}");
            let head = heads.recv().await.unwrap().to_ascii_lowercase();
            assert!(
                head.starts_with("get /healthz?deep=1 http/1.1\r\n"),
                "{head}"
            );
            for line in [
                "x-probe: yes",
                "user-agent: kube-probe/1.33",
                "accept: */*",
                &format!("host: 127.0.0.1:{port}"),
            ] {
                assert!(head.contains(&format!("{line}\r\n")), "{line} in {head}");
            }
        }
    }

    #[tokio::test]
    async fn an_error_status_fails_with_the_kubelets_message() {
        let (port, _heads) = server(503, false).await;
        let verdict = get(&action(port, "HTTP"), "127.0.0.1", port, SECOND).await;
        assert_eq!(
            verdict.unwrap(),
            Verdict::Failure("HTTP probe failed with statuscode: 503".into())
        );
    }

    #[tokio::test]
    async fn https_skips_certificate_verification() {
        let (port, mut heads) = server(204, true).await;
        let verdict = get(&action(port, "HTTPS"), "127.0.0.1", port, SECOND).await;
        assert_eq!(verdict.unwrap(), Verdict::Success);
        assert!(heads.recv().await.is_some());
    }

    #[tokio::test]
    async fn a_silent_server_times_out_and_a_closed_port_is_refused() {
        let silent = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = silent.local_addr().unwrap().port();
        let timeout = Duration::from_millis(200);
        let verdict = get(&action(port, "HTTP"), "127.0.0.1", port, timeout).await;
        let url = format!("http://127.0.0.1:{port}/healthz?deep=1");
        assert_eq!(
            verdict.unwrap(),
            Verdict::Failure(format!(
                "Get \"{url}\": context deadline exceeded (Client.Timeout exceeded while awaiting headers)"
            ))
        );
        drop(silent);
        let Verdict::Failure(message) = get(&action(port, "HTTP"), "127.0.0.1", port, timeout)
            .await
            .unwrap()
        else {
            panic!("a closed port passed");
        };
        assert!(
            message.starts_with(&format!("Get \"{url}\": dial tcp 127.0.0.1:{port}: ")),
            "{message}"
        );
    }

    #[test]
    fn paths_are_absolute_and_headers_must_be_valid() {
        assert_eq!(request_path(None), "/");
        assert_eq!(request_path(Some("ready")), "/ready");
        let mut bad = action(80, "HTTP");
        bad.http_headers = Some(vec![HTTPHeader {
            name: "bad header".into(),
            value: "x".into(),
        }]);
        assert!(matches!(
            request(&bad, "h:80", "/"),
            Err(ProbeError::InvalidRequest { .. })
        ));
    }
}
