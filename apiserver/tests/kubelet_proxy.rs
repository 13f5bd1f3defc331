//! `pods/log` and `pods/exec` end to end: the real router over TLS in front of a fake kubelet
//! (HTTPS with a self-signed serving certificate, client certificates checked against the
//! cluster CA), reached with a kube client and a WebSocket client as kubectl would.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Extension, FromRequest, Path, RawQuery, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use bytes::Bytes;
use futures::{AsyncBufReadExt, SinkExt, StreamExt};
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, LogParams, Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use rkube_apiserver::auth::User;
use rkube_apiserver::in_process;
use rkube_apiserver::kubelet_proxy::TlsKubeletConnector;
use rkube_apiserver::pki::{ClusterPki, KUBELET_CLIENT_CN};
use rkube_apiserver::serve;
use rkube_apiserver::server::{ApiServer, router};
use rkube_apiserver::store::memory::MemoryStore;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{Notify, mpsc, oneshot};
use tokio_tungstenite::tungstenite;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

const WAIT: Duration = Duration::from_secs(10);

/// What the fake kubelet was asked, and by whom.
#[derive(Debug, Clone)]
struct Seen {
    path: String,
    query: String,
    user: Option<String>,
}

#[derive(Default)]
struct Kubelet {
    seen: Mutex<Vec<Seen>>,
    /// Lets a follow stream send its second chunk.
    next_chunk: Notify,
    /// Told when a follow stream's reader went away.
    follower_gone: Mutex<Option<oneshot::Sender<()>>>,
}

impl Kubelet {
    fn record(&self, path: String, query: Option<String>, user: Option<Extension<User>>) {
        self.seen.lock().unwrap().push(Seen {
            path,
            query: query.unwrap_or_default(),
            user: user.map(|Extension(u)| u.name),
        });
    }

    fn last(&self) -> Seen {
        self.seen.lock().unwrap().last().cloned().unwrap()
    }
}

async fn container_logs(
    State(kubelet): State<Arc<Kubelet>>,
    Path((ns, pod, container)): Path<(String, String, String)>,
    RawQuery(query): RawQuery,
    user: Option<Extension<User>>,
) -> Response {
    let follow = query.as_deref().is_some_and(|q| q.contains("follow=true"));
    kubelet.record(
        format!("/containerLogs/{ns}/{pod}/{container}"),
        query,
        user,
    );
    if container == "broken" {
        let message = format!("container \"{container}\" in pod \"{pod}\" is waiting to start");
        return (StatusCode::BAD_REQUEST, message).into_response();
    }
    if !follow {
        return format!("hello from {container}\n").into_response();
    }
    let (tx, rx) = mpsc::channel::<Result<Bytes, std::io::Error>>(1);
    let gone = kubelet.follower_gone.lock().unwrap().take();
    tokio::spawn(async move {
        let _ = tx.send(Ok(Bytes::from("line 1\n"))).await;
        kubelet.next_chunk.notified().await;
        let _ = tx.send(Ok(Bytes::from("line 2\n"))).await;
        // Follow never ends on its own: only the reader going away stops it.
        tx.closed().await;
        if let Some(gone) = gone {
            let _ = gone.send(());
        }
    });
    Body::from_stream(tokio_stream::wrappers::ReceiverStream::new(rx)).into_response()
}

async fn exec(
    State(kubelet): State<Arc<Kubelet>>,
    Path((ns, pod, container)): Path<(String, String, String)>,
    RawQuery(query): RawQuery,
    user: Option<Extension<User>>,
    request: Request,
) -> Response {
    kubelet.record(format!("/exec/{ns}/{pod}/{container}"), query, user);
    let spdy = request
        .headers()
        .get(header::UPGRADE)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"SPDY/3.1"));
    if spdy {
        return spdy_echo(request);
    }
    match WebSocketUpgrade::from_request(request, &()).await {
        Ok(ws) => ws
            .protocols(["v5.channel.k8s.io", "v4.channel.k8s.io"])
            .on_upgrade(echo_stdin),
        Err(rejection) => rejection.into_response(),
    }
}

/// Accepts a SPDY upgrade with the first stream protocol the client offered and echoes the
/// raw bytes: enough to show the proxy passes SPDY through without understanding it.
fn spdy_echo(mut request: Request) -> Response {
    let Some(upgrade) = request.extensions_mut().remove::<OnUpgrade>() else {
        return StatusCode::BAD_REQUEST.into_response();
    };
    let version = request
        .headers()
        .get("x-stream-protocol-version")
        .cloned()
        .unwrap_or(HeaderValue::from_static("none"));
    tokio::spawn(async move {
        if let Ok(upgraded) = upgrade.await {
            let (mut from, mut to) = tokio::io::split(TokioIo::new(upgraded));
            let _ = tokio::io::copy(&mut from, &mut to).await;
        }
    });
    Response::builder()
        .status(StatusCode::SWITCHING_PROTOCOLS)
        .header(header::CONNECTION, "Upgrade")
        .header(header::UPGRADE, "SPDY/3.1")
        .header("x-stream-protocol-version", version)
        .body(Body::empty())
        .unwrap()
}

/// A `cat`: stdin (channel 0) comes back on stdout (1); v5's close of stdin (255, 0) ends the
/// session with a Success status on the error channel (3).
async fn echo_stdin(mut socket: WebSocket) {
    while let Some(Ok(Message::Binary(frame))) = socket.recv().await {
        match frame.as_ref() {
            [0, data @ ..] => {
                let mut out = vec![1];
                out.extend_from_slice(data);
                let _ = socket.send(Message::Binary(out.into())).await;
            }
            [255, 0] => {
                let mut status = vec![3];
                status.extend_from_slice(br#"{"metadata":{},"status":"Success"}"#);
                let _ = socket.send(Message::Binary(status.into())).await;
                let _ = socket.send(Message::Close(None)).await;
                return;
            }
            _ => {}
        }
    }
}

struct Cluster {
    pki: ClusterPki,
    api_addr: SocketAddr,
    client: kube::Client,
    kubelet: Arc<Kubelet>,
    _dir: tempfile::TempDir,
}

async fn serve_tls(pki: &ClusterPki, app: Router) -> SocketAddr {
    let listener = serve::bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let acceptor = serve::acceptor(pki).unwrap();
    tokio::spawn(serve::serve(
        listener,
        acceptor,
        app,
        std::future::pending(),
    ));
    addr
}

/// Serves a fake kubelet whose serving certificate is self-signed, as rkube nodes' are.
async fn start_kubelet(pki: &ClusterPki, kubelet: Arc<Kubelet>) -> SocketAddr {
    let self_signed = rcgen::generate_simple_self_signed(vec!["node-1".into()]).unwrap();
    let kubelet_pki = ClusterPki {
        server_cert: self_signed.cert.pem(),
        server_key: self_signed.signing_key.serialize_pem(),
        ..pki.clone()
    };
    let app = Router::new()
        .route("/containerLogs/{ns}/{pod}/{container}", get(container_logs))
        .route("/exec/{ns}/{pod}/{container}", any(exec))
        .with_state(kubelet);
    serve_tls(&kubelet_pki, app).await
}

async fn add_node(client: &kube::Client, name: &str, port: u16) {
    let nodes: Api<Node> = Api::all(client.clone());
    let node = serde_json::from_value(json!({"metadata": {"name": name}})).unwrap();
    nodes.create(&PostParams::default(), &node).await.unwrap();
    let status = json!({"status": {
        "addresses": [{"type": "Hostname", "address": "localhost"}, {"type": "InternalIP", "address": "127.0.0.1"}],
        "daemonEndpoints": {"kubeletEndpoint": {"Port": port}},
    }});
    nodes
        .patch_status(name, &PatchParams::default(), &Patch::Merge(&status))
        .await
        .unwrap();
}

async fn add_pod(client: &kube::Client, name: &str, containers: &[&str], node: Option<&str>) {
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let containers: Vec<_> = containers
        .iter()
        .map(|c| json!({"name": c, "image": "busybox"}))
        .collect();
    let pod = serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {"containers": containers, "nodeName": node},
    }))
    .unwrap();
    pods.create(&PostParams::default(), &pod).await.unwrap();
}

async fn start() -> Cluster {
    let dir = tempfile::tempdir().unwrap();
    let pki = ClusterPki::ensure(dir.path(), &[]).unwrap();
    let connector = Arc::new(TlsKubeletConnector::new(&pki).unwrap());
    let server = ApiServer::with_kubelet(Arc::new(MemoryStore::new()), connector)
        .await
        .unwrap();
    rkube_apiserver::run::ensure_system_namespaces(&server)
        .await
        .unwrap();
    let setup = in_process::client(router(Arc::clone(&server)), in_process::admin());
    let kubelet = Arc::new(Kubelet::default());
    let kubelet_addr = start_kubelet(&pki, Arc::clone(&kubelet)).await;
    add_node(&setup, "node-1", kubelet_addr.port()).await;
    // A node whose kubelet is down: a port nothing listens on any more.
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let closed_port = closed.local_addr().unwrap().port();
    drop(closed);
    add_node(&setup, "node-down", closed_port).await;
    add_pod(&setup, "web", &["app"], Some("node-1")).await;
    add_pod(&setup, "multi", &["a", "b"], Some("node-1")).await;
    add_pod(&setup, "sick", &["broken"], Some("node-1")).await;
    add_pod(&setup, "pending", &["app"], None).await;
    add_pod(&setup, "orphan", &["app"], Some("node-down")).await;

    let api_addr = serve_tls(&pki, router(server)).await;
    let kubeconfig =
        Kubeconfig::from_yaml(&pki.admin_kubeconfig(&format!("https://{api_addr}"))).unwrap();
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .unwrap();
    Cluster {
        pki,
        api_addr,
        client: kube::Client::try_from(config).unwrap(),
        kubelet,
        _dir: dir,
    }
}

fn pods(cluster: &Cluster) -> Api<Pod> {
    Api::namespaced(cluster.client.clone(), "default")
}

/// The Status of a failed request: (code, reason, message).
fn status<T: std::fmt::Debug>(result: kube::Result<T>) -> (u16, String, String) {
    match result {
        Err(kube::Error::Api(status)) => (status.code, status.reason, status.message),
        other => panic!("expected a Status error, got {other:?}"),
    }
}

#[tokio::test]
async fn logs_come_from_the_kubelet_of_the_pods_node() {
    let cluster = start().await;
    let params = LogParams {
        tail_lines: Some(5),
        timestamps: true,
        ..LogParams::default()
    };
    assert_eq!(
        pods(&cluster).logs("web", &params).await.unwrap(),
        "hello from app\n"
    );
    let seen = cluster.kubelet.last();
    assert_eq!(seen.path, "/containerLogs/default/web/app");
    assert_eq!(seen.query, "timestamps=true&tailLines=5");
    assert_eq!(seen.user.as_deref(), Some(KUBELET_CLIENT_CN));

    let b = LogParams {
        container: Some("b".into()),
        ..LogParams::default()
    };
    assert_eq!(
        pods(&cluster).logs("multi", &b).await.unwrap(),
        "hello from b\n"
    );
}

#[tokio::test]
async fn log_requests_are_checked_before_the_kubelet_is_asked() {
    let cluster = start().await;
    let pods = pods(&cluster);
    let (code, _, message) = status(pods.logs("multi", &LogParams::default()).await);
    assert_eq!(code, 400);
    assert_eq!(
        message,
        "a container name must be specified for pod multi, choose one of: [a b]"
    );
    let c = LogParams {
        container: Some("c".into()),
        ..LogParams::default()
    };
    let (code, _, message) = status(pods.logs("multi", &c).await);
    assert_eq!(
        (code, message.as_str()),
        (400, "container c is not valid for pod multi")
    );
    let negative = LogParams {
        tail_lines: Some(-1),
        ..LogParams::default()
    };
    let (code, reason, _) = status(pods.logs("web", &negative).await);
    assert_eq!((code, reason.as_str()), (422, "Invalid"));
    let (code, _, message) = status(pods.logs("missing", &LogParams::default()).await);
    assert_eq!(
        (code, message.as_str()),
        (404, "pods \"missing\" not found")
    );
    assert!(cluster.kubelet.seen.lock().unwrap().is_empty());
    // Not scheduled yet: no logs, as kube-apiserver answers.
    assert_eq!(
        pods.logs("pending", &LogParams::default()).await.unwrap(),
        ""
    );
}

#[tokio::test]
async fn kubelet_errors_reach_the_client_as_status() {
    let cluster = start().await;
    let (code, reason, message) = status(pods(&cluster).logs("sick", &LogParams::default()).await);
    assert_eq!((code, reason.as_str()), (400, "BadRequest"));
    assert_eq!(
        message,
        "container \"broken\" in pod \"sick\" is waiting to start"
    );
    let (code, reason, message) =
        status(pods(&cluster).logs("orphan", &LogParams::default()).await);
    assert_eq!((code, reason.as_str()), (500, "InternalError"));
    assert!(
        message.starts_with("error dialing backend: dial tcp 127.0.0.1:"),
        "{message}"
    );
}

#[tokio::test]
async fn follow_streams_each_chunk_and_stops_with_the_reader() {
    let cluster = start().await;
    let (gone_tx, gone_rx) = oneshot::channel();
    *cluster.kubelet.follower_gone.lock().unwrap() = Some(gone_tx);
    let follow = LogParams {
        follow: true,
        ..LogParams::default()
    };
    let mut lines = pods(&cluster)
        .log_stream("web", &follow)
        .await
        .unwrap()
        .lines();
    let first = tokio::time::timeout(WAIT, lines.next()).await.unwrap();
    assert_eq!(first.unwrap().unwrap(), "line 1");
    // The kubelet holds the second chunk until the first has arrived: a buffering proxy
    // would never deliver either.
    cluster.kubelet.next_chunk.notify_one();
    let second = tokio::time::timeout(WAIT, lines.next()).await.unwrap();
    assert_eq!(second.unwrap().unwrap(), "line 2");
    assert_eq!(cluster.kubelet.last().query, "follow=true");
    drop(lines);
    tokio::time::timeout(WAIT, gone_rx)
        .await
        .expect("the kubelet stream ends when the reader goes away")
        .unwrap();
}

/// A TLS connection to the API server as the admin, speaking HTTP/1.1 as kubectl's
/// WebSocket dialer does.
async fn admin_tls(cluster: &Cluster) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
    let mut roots = rustls::RootCertStore::empty();
    for ca in rustls_pemfile::certs(&mut cluster.pki.ca_cert.as_bytes()) {
        roots.add(ca.unwrap()).unwrap();
    }
    let certs = rustls_pemfile::certs(&mut cluster.pki.admin_cert.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let key = rustls_pemfile::private_key(&mut cluster.pki.admin_key.as_bytes())
        .unwrap()
        .unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_client_auth_cert(certs, key)
        .unwrap();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let tcp = tokio::net::TcpStream::connect(cluster.api_addr)
        .await
        .unwrap();
    tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect("127.0.0.1".try_into().unwrap(), tcp)
        .await
        .unwrap()
}

fn exec_request(
    cluster: &Cluster,
    pod: &str,
    query: &str,
) -> tungstenite::handshake::client::Request {
    let url = format!(
        "wss://{}/api/v1/namespaces/default/pods/{pod}/exec?{query}",
        cluster.api_addr
    );
    let mut request = url.into_client_request().unwrap();
    request.headers_mut().insert(
        "Sec-WebSocket-Protocol",
        "v5.channel.k8s.io, v4.channel.k8s.io".parse().unwrap(),
    );
    request
}

#[tokio::test]
async fn exec_websocket_is_spliced_through_to_the_kubelet() {
    let cluster = start().await;
    let request = exec_request(
        &cluster,
        "web",
        "command=cat&command=-u&stdin=true&stdout=true&stderr=true",
    );
    let (mut ws, response) = tokio_tungstenite::client_async(request, admin_tls(&cluster).await)
        .await
        .unwrap();
    assert_eq!(
        response.headers()["sec-websocket-protocol"],
        "v5.channel.k8s.io"
    );
    let seen = cluster.kubelet.last();
    assert_eq!(seen.path, "/exec/default/web/app");
    assert_eq!(
        seen.query,
        "command=cat&command=-u&error=1&input=1&output=1"
    );
    assert_eq!(seen.user.as_deref(), Some(KUBELET_CLIENT_CN));

    for text in ["ping\n", "pong\n"] {
        let mut stdin = vec![0];
        stdin.extend_from_slice(text.as_bytes());
        ws.send(tungstenite::Message::Binary(stdin.into()))
            .await
            .unwrap();
        let echoed = tokio::time::timeout(WAIT, ws.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        let mut stdout = vec![1];
        stdout.extend_from_slice(text.as_bytes());
        assert_eq!(echoed, tungstenite::Message::Binary(stdout.into()));
    }
    ws.send(tungstenite::Message::Binary(vec![255, 0].into()))
        .await
        .unwrap();
    let status = tokio::time::timeout(WAIT, ws.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let tungstenite::Message::Binary(status) = status else {
        panic!("expected the status frame, got {status:?}");
    };
    assert_eq!(status[0], 3);
    assert!(status.ends_with(br#""status":"Success"}"#));
    let closed = tokio::time::timeout(WAIT, ws.next()).await.unwrap();
    assert!(matches!(closed, Some(Ok(tungstenite::Message::Close(_)))));
}

#[tokio::test]
async fn exec_passes_spdy_upgrades_through() {
    let cluster = start().await;
    let mut tls = admin_tls(&cluster).await;
    let request = "POST /api/v1/namespaces/default/pods/web/exec?command=cat&stdin=true&stdout=true HTTP/1.1\r\n\
        Host: 127.0.0.1\r\nConnection: Upgrade\r\nUpgrade: SPDY/3.1\r\n\
        X-Stream-Protocol-Version: v4.channel.k8s.io\r\nX-Stream-Protocol-Version: v3.channel.k8s.io\r\n\
        Content-Length: 0\r\n\r\n";
    tls.write_all(request.as_bytes()).await.unwrap();
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let byte = tokio::time::timeout(WAIT, tls.read_u8())
            .await
            .unwrap()
            .unwrap();
        head.push(byte);
    }
    let head = String::from_utf8(head).unwrap().to_ascii_lowercase();
    assert!(head.starts_with("http/1.1 101"), "{head}");
    assert!(head.contains("upgrade: spdy/3.1"), "{head}");
    assert!(
        head.contains("x-stream-protocol-version: v4.channel.k8s.io"),
        "{head}"
    );
    assert_eq!(cluster.kubelet.last().query, "command=cat&input=1&output=1");

    let frames = b"\x80\x03\x00\x01 opaque spdy bytes";
    tls.write_all(frames).await.unwrap();
    let mut echoed = vec![0; frames.len()];
    tokio::time::timeout(WAIT, tls.read_exact(&mut echoed))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(echoed, frames);
}

#[tokio::test]
async fn exec_refusals_are_status_errors() {
    let cluster = start().await;
    let refused = |pod: &'static str, query: &'static str| {
        let request = exec_request(&cluster, pod, query);
        async {
            let tls = admin_tls(&cluster).await;
            match tokio_tungstenite::client_async(request, tls).await {
                Err(tungstenite::Error::Http(response)) => {
                    let body = response.body().clone().unwrap_or_default();
                    let status: serde_json::Value = serde_json::from_slice(&body).unwrap();
                    (
                        response.status().as_u16(),
                        status["message"].as_str().unwrap().to_string(),
                    )
                }
                other => panic!("expected a refused upgrade, got {other:?}"),
            }
        }
    };
    assert_eq!(
        refused("pending", "command=ls&stdout=true").await,
        (400, "pod pending does not have a host assigned".to_string())
    );
    assert_eq!(
        refused("web", "command=ls").await,
        (
            400,
            "you must specify at least 1 of stdin, stdout, stderr".to_string()
        )
    );
    assert_eq!(
        refused("multi", "command=ls&stdout=true").await,
        (
            400,
            "a container name must be specified for pod multi, choose one of: [a b]".to_string()
        )
    );
    let (code, message) = refused("orphan", "command=ls&stdout=true").await;
    assert_eq!(code, 500);
    assert!(
        message.starts_with("error dialing backend: dial tcp"),
        "{message}"
    );

    // A plain request cannot carry a session.
    let plain =
        http::Request::post("/api/v1/namespaces/default/pods/web/exec?command=ls&stdout=true")
            .body(Vec::new())
            .unwrap();
    let (code, _, message) = status(cluster.client.request_text(plain).await);
    assert_eq!((code, message.as_str()), (400, "Upgrade request required"));
}
