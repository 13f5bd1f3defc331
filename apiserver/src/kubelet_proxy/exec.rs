//! `GET|POST pods/<name>/exec`: the client's upgrade request (WebSocket `v5.channel.k8s.io`
//! and older, or SPDY) is forwarded to the kubelet's `/exec`; on the kubelet's `101` both
//! upgraded connections are spliced, so the stream protocol passes through untouched.

use axum::body::Body;
use axum::http::{HeaderMap, HeaderName, Method, StatusCode, header};
use axum::response::Response;
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use tracing::Instrument;

use super::{bool_param, client, connector, kubelet_endpoint, resolve, upstream_error};
use crate::error::{ApiError, ApiResult};
use crate::request::{Params, Target};
use crate::server::ApiServer;

/// The request headers that negotiate the stream protocol, passed to the kubelet.
const FORWARDED_HEADERS: &[&str] = &[
    "connection",
    "upgrade",
    "sec-websocket-key",
    "sec-websocket-version",
    "sec-websocket-protocol",
    "sec-websocket-extensions",
    "x-stream-protocol-version",
    "user-agent",
];

/// The PodExecOptions of one request.
#[derive(Debug, PartialEq)]
pub struct ExecOptions {
    pub container: Option<String>,
    pub command: Vec<String>,
    pub stdin: bool,
    pub stdout: bool,
    pub stderr: bool,
    pub tty: bool,
}

impl ExecOptions {
    pub fn from_params(params: &Params) -> ApiResult<ExecOptions> {
        Ok(ExecOptions {
            container: params.get("container").map(String::from),
            command: params.all("command").to_vec(),
            stdin: bool_param(params, "stdin")?,
            stdout: bool_param(params, "stdout")?,
            stderr: bool_param(params, "stderr")?,
            tty: bool_param(params, "tty")?,
        })
    }

    /// The kubelet's `/exec` query: `command` repeated, streams as `input`/`output`/`error`.
    pub fn kubelet_query(&self) -> String {
        let mut query = form_urlencoded::Serializer::new(String::new());
        for arg in &self.command {
            query.append_pair("command", arg);
        }
        for (name, set) in [
            ("error", self.stderr),
            ("input", self.stdin),
            ("output", self.stdout),
            ("tty", self.tty),
        ] {
            if set {
                query.append_pair(name, "1");
            }
        }
        query.finish()
    }
}

fn is_upgrade_request(headers: &HeaderMap) -> bool {
    let connection_upgrade = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|token| token.trim().eq_ignore_ascii_case("upgrade"));
    connection_upgrade && headers.contains_key(header::UPGRADE)
}

pub async fn exec(
    server: &ApiServer,
    target: &Target,
    params: &Params,
    method: &Method,
    headers: &HeaderMap,
    client_upgrade: Option<OnUpgrade>,
) -> ApiResult<Response> {
    let options = ExecOptions::from_params(params)?;
    let pod = resolve(server, target, options.container.as_deref()).await?;
    let node = pod.node.ok_or_else(|| {
        ApiError::BadRequest(format!("pod {} does not have a host assigned", pod.pod))
    })?;
    if !(options.stdin || options.stdout || options.stderr) {
        return Err(ApiError::BadRequest(
            "you must specify at least 1 of stdin, stdout, stderr".into(),
        ));
    }
    // Without an upgradeable connection (HTTP/2, or an in-process caller) nothing could
    // carry the session.
    let client_upgrade = client_upgrade
        .filter(|_| is_upgrade_request(headers))
        .ok_or_else(|| ApiError::BadRequest("Upgrade request required".into()))?;
    let endpoint = kubelet_endpoint(server, &node).await?;
    let path = format!(
        "/exec/{}/{}/{}?{}",
        pod.namespace,
        pod.pod,
        pod.container,
        options.kubelet_query()
    );
    let mut forwarded = HeaderMap::new();
    for name in FORWARDED_HEADERS {
        let name = HeaderName::from_static(name);
        for value in headers.get_all(&name) {
            forwarded.append(name.clone(), value.clone());
        }
    }
    let span = tracing::info_span!("kubelet_exec", %endpoint, container = %pod.container);
    let mut kubelet_response = client::send(
        connector(server)?,
        &endpoint,
        method.clone(),
        path,
        forwarded,
    )
    .instrument(span.clone())
    .await?;
    if kubelet_response.status() != StatusCode::SWITCHING_PROTOCOLS {
        return Err(upstream_error(kubelet_response).await);
    }
    let kubelet_upgrade = hyper::upgrade::on(&mut kubelet_response);
    tokio::spawn(splice(client_upgrade, kubelet_upgrade).instrument(span));
    // The kubelet's 101 goes back as it is: its Upgrade, Connection and the negotiated
    // Sec-WebSocket-Protocol / X-Stream-Protocol-Version are the client's to see.
    let (parts, _) = kubelet_response.into_parts();
    let mut response = Response::new(Body::empty());
    *response.status_mut() = parts.status;
    *response.headers_mut() = parts.headers;
    Ok(response)
}

/// Copies bytes both ways between the upgraded client and kubelet connections until either
/// side closes.
async fn splice(client: OnUpgrade, kubelet: OnUpgrade) {
    let (client, kubelet) = match tokio::try_join!(client, kubelet) {
        Ok(both) => both,
        Err(err) => {
            tracing::debug!(error = %err, "exec upgrade did not complete");
            return;
        }
    };
    let mut client = TokioIo::new(client);
    let mut kubelet = TokioIo::new(kubelet);
    match tokio::io::copy_bidirectional(&mut client, &mut kubelet).await {
        Ok((up, down)) => tracing::debug!(up, down, "exec session ended"),
        Err(err) => tracing::debug!(error = %err, "exec session ended with an error"),
    }
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    #[test]
    fn translates_to_the_kubelet_query() {
        let params = Params::from_query(Some(
            "command=sh&command=-c&command=echo+a%26b&stdin=true&stdout=true&tty=true&container=app",
        ))
        .unwrap();
        let opts = ExecOptions::from_params(&params).unwrap();
        assert_eq!(opts.container.as_deref(), Some("app"));
        assert_eq!(
            opts.kubelet_query(),
            "command=sh&command=-c&command=echo+a%26b&input=1&output=1&tty=1"
        );
    }

    #[test]
    fn recognizes_upgrade_requests() {
        let mut headers = HeaderMap::new();
        headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        assert!(!is_upgrade_request(&headers));
        headers.insert(
            header::CONNECTION,
            HeaderValue::from_static("keep-alive, Upgrade"),
        );
        assert!(is_upgrade_request(&headers));
    }
}
