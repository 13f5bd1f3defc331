//! The kubelet API end to end: a node agent on the in-process API server with the wasm runtime,
//! reached over HTTPS with client certificates of a test CA.

use crate::common;

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use common::{Cluster, NODE, phase, wasm_pod};
use futures::{AsyncBufReadExt, SinkExt, StreamExt};
use k8s_openapi::api::core::v1::Node;
use kube::api::Api;
use kube::config::Kubeconfig;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
};
use rkube_node::{Backoff, KubeletOptions, NodeOptions};
use rkube_runtimes::Runtime;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

const SECOND: Duration = Duration::from_secs(1);

/// A test CA and the client certificates it issues.
struct Pki {
    ca_pem: String,
    issuer: Issuer<'static, KeyPair>,
}

impl Pki {
    fn new() -> Self {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::default();
        params
            .distinguished_name
            .push(DnType::CommonName, "test-ca");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca_pem = params.self_signed(&key).unwrap().pem();
        Self {
            ca_pem,
            issuer: Issuer::new(params, key),
        }
    }

    /// (cert PEM, key PEM) for `common_name` in `groups`.
    fn client(&self, common_name: &str, groups: &[&str]) -> (String, String) {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::default();
        params
            .distinguished_name
            .push(DnType::CommonName, common_name);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        for group in groups {
            params
                .distinguished_name
                .push(DnType::OrganizationName, *group);
        }
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        (cert.pem(), key.serialize_pem())
    }
}

struct Kubelet {
    cluster: Cluster,
    pki: Pki,
    port: u16,
    agent: tokio::task::JoinHandle<()>,
}

impl Drop for Kubelet {
    fn drop(&mut self) {
        self.agent.abort();
    }
}

impl Kubelet {
    async fn start(images: &[(&str, &str)]) -> Self {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut cluster = Cluster::start().await;
        for (image, wat) in images {
            cluster.image(image, wat);
        }
        let pki = Pki::new();
        let runtimes: Vec<Arc<dyn Runtime>> = vec![cluster.runtime()];
        let mut options = NodeOptions::new(
            NODE,
            cluster.data_dir(),
            runtimes,
            Arc::new(cluster.images.clone()),
        );
        options.backoff = Backoff {
            initial: Duration::from_millis(400),
            max: Duration::from_secs(2),
            reset_after: Duration::from_secs(60),
        };
        options.node_ip = Some([127, 0, 0, 1].into());
        options.kubelet = Some(KubeletOptions {
            listen: ([127, 0, 0, 1], 0).into(),
            cluster_ca_pem: pki.ca_pem.clone(),
        });
        let client = cluster.client.clone();
        let agent = tokio::spawn(async move {
            if let Err(error) = rkube_node::run(client, options).await {
                panic!("node agent failed: {error}");
            }
        });
        let port = reported_port(&cluster).await;
        Kubelet {
            cluster,
            pki,
            port,
            agent,
        }
    }

    fn serving_cert(&self) -> String {
        let path = self.cluster.data_dir().join("kubelet/kubelet.crt");
        std::fs::read_to_string(path).expect("the serving certificate is kept in the data dir")
    }

    /// An HTTPS client of the kubelet presenting `identity` (none when `None`).
    async fn client(&self, identity: Option<(&str, &[&str])>) -> kube::Client {
        let user = match identity {
            Some((name, groups)) => {
                let (cert, key) = self.pki.client(name, groups);
                format!(
                    "client-certificate-data: {}\n    client-key-data: {}",
                    STANDARD.encode(cert),
                    STANDARD.encode(key)
                )
            }
            None => "{}".into(),
        };
        let yaml = format!(
            "apiVersion: v1
kind: Config
current-context: kubelet
clusters:
- name: kubelet
  cluster:
    server: https://127.0.0.1:{}
    certificate-authority-data: {}
users:
- name: user
  user:
    {user}
contexts:
- name: kubelet
  context: {{cluster: kubelet, user: user}}
",
            self.port,
            STANDARD.encode(self.serving_cert())
        );
        let kubeconfig = Kubeconfig::from_yaml(&yaml).unwrap();
        let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
            .await
            .unwrap();
        kube::Client::try_from(config).unwrap()
    }

    async fn admin(&self) -> kube::Client {
        self.client(Some(("kube-apiserver-kubelet-client", &[])))
            .await
    }

    /// Opens an exec WebSocket offering `protocols`.
    async fn exec(
        &self,
        path_and_query: &str,
        protocols: &str,
    ) -> Result<
        tokio_tungstenite::WebSocketStream<tokio_rustls::client::TlsStream<tokio::net::TcpStream>>,
        tokio_tungstenite::tungstenite::Error,
    > {
        let (cert, key) = self.pki.client("admin", &["system:masters"]);
        let mut roots = rustls::RootCertStore::empty();
        for der in rustls_pemfile::certs(&mut self.serving_cert().as_bytes()) {
            roots.add(der.unwrap()).unwrap();
        }
        let chain = rustls_pemfile::certs(&mut cert.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .unwrap();
        let key = rustls_pemfile::private_key(&mut key.as_bytes())
            .unwrap()
            .unwrap();
        let config = rustls::ClientConfig::builder()
            .with_root_certificates(roots)
            .with_client_auth_cert(chain, key)
            .unwrap();
        let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
        let tcp = tokio::net::TcpStream::connect(("127.0.0.1", self.port))
            .await
            .unwrap();
        let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
        let tls = connector.connect(name, tcp).await.unwrap();
        let url = format!("wss://127.0.0.1:{}{path_and_query}", self.port);
        let mut request = url.into_client_request().unwrap();
        request
            .headers_mut()
            .insert("Sec-WebSocket-Protocol", protocols.parse().unwrap());
        tokio_tungstenite::client_async(request, tls)
            .await
            .map(|(socket, _)| socket)
    }
}

async fn reported_port(cluster: &Cluster) -> u16 {
    let nodes: Api<Node> = Api::all(cluster.client.clone());
    for _ in 0..250 {
        let node = nodes.get_opt(NODE).await.unwrap();
        let port = node
            .and_then(|n| n.status)
            .and_then(|s| s.daemon_endpoints)
            .and_then(|d| d.kubelet_endpoint)
            .map(|e| e.port);
        if let Some(port) = port {
            return u16::try_from(port).unwrap();
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("the node never reported its kubelet port");
}

async fn get(client: &kube::Client, path: &str) -> Result<String, kube::Error> {
    let request = http::Request::get(path).body(Vec::new()).unwrap();
    client.request_text(request).await
}

fn api_code(result: Result<String, kube::Error>) -> (u16, String) {
    match result {
        Err(kube::Error::Api(status)) => (status.code, status.message),
        other => panic!("expected an API error, got {other:?}"),
    }
}

#[tokio::test]
async fn logs_of_a_finished_pod_and_their_errors() {
    let kubelet = Kubelet::start(&[("hello:1", &common::guests::hello())]).await;
    kubelet
        .cluster
        .create(wasm_pod("hello", "hello:1", "Never"))
        .await;
    kubelet
        .cluster
        .wait_for("hello", 30 * SECOND, "the pod succeeds", |p| {
            phase(p) == "Succeeded"
        })
        .await;
    let client = kubelet.admin().await;
    let logs = get(&client, "/containerLogs/default/hello/main").await;
    assert_eq!(logs.unwrap(), "hello\n");
    let stamped = get(&client, "/containerLogs/default/hello/main?timestamps=true")
        .await
        .unwrap();
    let (stamp, text) = stamped.split_once(' ').unwrap();
    assert!(
        chrono::DateTime::parse_from_rfc3339(stamp).is_ok(),
        "{stamped}"
    );
    assert_eq!(text, "hello\n");
    let limited = get(&client, "/containerLogs/default/hello/main?limitBytes=3").await;
    assert_eq!(limited.unwrap(), "hel");
    // A finished container is followed to its end at once.
    let followed = get(&client, "/containerLogs/default/hello/main?follow=true").await;
    assert_eq!(followed.unwrap(), "hello\n");

    let previous = get(&client, "/containerLogs/default/hello/main?previous=true").await;
    assert_eq!(
        api_code(previous),
        (
            400,
            "previous terminated container \"main\" in pod \"hello\" not found".into()
        )
    );
    assert_eq!(
        api_code(get(&client, "/containerLogs/default/nope/main").await).0,
        404
    );
    assert_eq!(
        api_code(get(&client, "/containerLogs/default/hello/other").await).0,
        404
    );
}

#[tokio::test]
async fn clients_need_a_certificate_of_an_allowed_identity() {
    let kubelet = Kubelet::start(&[]).await;
    let path = "/containerLogs/default/any/main";
    let anonymous = kubelet.client(None).await;
    let (code, _) = api_code(get(&anonymous, path).await);
    assert_eq!(code, 401);
    let alice = kubelet.client(Some(("alice", &["developers"]))).await;
    let (code, message) = api_code(get(&alice, path).await);
    assert_eq!(code, 403);
    assert!(message.contains("alice"), "{message}");
    let admin = kubelet.client(Some(("root", &["system:masters"]))).await;
    assert_eq!(api_code(get(&admin, path).await).0, 404);
}

#[tokio::test]
async fn follow_streams_new_lines_until_the_container_ends() {
    let kubelet = Kubelet::start(&[("two:1", &common::guests::two_lines())]).await;
    let pod = kubelet
        .cluster
        .create(wasm_pod("two", "two:1", "Never"))
        .await;
    let uid = pod.metadata.uid.unwrap();
    for _ in 0..500 {
        if kubelet.cluster.log(&uid, "main", 0).contains("first") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let client = kubelet.admin().await;
    let request = http::Request::get("/containerLogs/default/two/main?follow=true")
        .body(Vec::new())
        .unwrap();
    let stream = client.request_stream(request).await.unwrap();
    let mut lines = stream.lines();
    let mut seen = Vec::new();
    let read_all = async {
        while let Some(line) = lines.next().await {
            seen.push(line.unwrap());
        }
    };
    tokio::time::timeout(10 * SECOND, read_all)
        .await
        .expect("the stream ends with the container");
    assert_eq!(seen, vec!["first", "second"]);
}

/// Frames of one exec session by channel, until the server closes.
async fn collect<S>(socket: &mut S) -> (String, String, serde_json::Value)
where
    S: futures::Stream<Item = Result<Message, tokio_tungstenite::tungstenite::Error>> + Unpin,
{
    let (mut stdout, mut stderr, mut status) = (Vec::new(), Vec::new(), Vec::new());
    while let Some(Ok(message)) = socket.next().await {
        let Message::Binary(data) = message else {
            continue;
        };
        match data.split_first() {
            Some((1, rest)) => stdout.extend_from_slice(rest),
            Some((2, rest)) => stderr.extend_from_slice(rest),
            Some((3, rest)) => status.extend_from_slice(rest),
            _ => {}
        }
    }
    (
        String::from_utf8(stdout).unwrap(),
        String::from_utf8(stderr).unwrap(),
        serde_json::from_slice(&status).unwrap_or_default(),
    )
}

#[tokio::test]
async fn exec_runs_a_command_over_the_channel_protocol() {
    let kubelet = Kubelet::start(&[("exec:1", &common::guests::echoes())]).await;
    kubelet
        .cluster
        .create(wasm_pod("shell", "exec:1", "Always"))
        .await;
    kubelet
        .cluster
        .wait_for("shell", 30 * SECOND, "the pod runs", |p| {
            phase(p) == "Running"
        })
        .await;

    // v5: stdin in, then closed with the v5 close frame; exit code argc - 2 = 0.
    let path = "/exec/default/shell/main?command=app&command=cat&input=1&output=1&error=1";
    let mut socket = kubelet
        .exec(path, "v5.channel.k8s.io,v4.channel.k8s.io")
        .await
        .unwrap();
    socket
        .send(Message::Binary(b"\x00ping\n".to_vec().into()))
        .await
        .unwrap();
    socket
        .send(Message::Binary(vec![255, 0].into()))
        .await
        .unwrap();
    let (stdout, stderr, status) = tokio::time::timeout(10 * SECOND, collect(&mut socket))
        .await
        .unwrap();
    assert_eq!((stdout.as_str(), stderr.as_str()), ("ping\n", "err\n"));
    assert_eq!(
        status,
        serde_json::json!({ "metadata": {}, "status": "Success" })
    );

    // v4, no stdin: exit code 2 comes back as NonZeroExitCode.
    let path = "/exec/default/shell/main?command=app&command=a&command=b&command=c&output=1";
    let mut socket = kubelet.exec(path, "v4.channel.k8s.io").await.unwrap();
    let (stdout, stderr, status) = tokio::time::timeout(10 * SECOND, collect(&mut socket))
        .await
        .unwrap();
    assert_eq!((stdout.as_str(), stderr.as_str()), ("", ""));
    assert_eq!(status["status"], "Failure");
    assert_eq!(status["reason"], "NonZeroExitCode");
    assert_eq!(
        status["details"]["causes"],
        serde_json::json!([{ "reason": "ExitCode", "message": "2" }])
    );

    // Only the channel protocols are spoken.
    let refused = kubelet.exec(path, "channel.k8s.io").await;
    match refused {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 400)
        }
        other => panic!("expected a refused upgrade, got {:?}", other.map(|_| ())),
    }
    let missing = kubelet
        .exec(
            "/exec/default/shell/nope?command=app&output=1",
            "v5.channel.k8s.io",
        )
        .await;
    match missing {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 404)
        }
        other => panic!("expected a missing container, got {:?}", other.map(|_| ())),
    }
}
