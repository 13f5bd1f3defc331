//! A real in-process API server with the controller manager running against it, and a test
//! stand-in for the kubelet that reports pods Running and Ready.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Namespace, Node, Pod};
use kube::api::{Api, ObjectMeta, Patch, PatchParams, PostParams};
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher;
use kube::{Client, ResourceExt};
use rkube_apiserver::in_process;
use rkube_apiserver::server::{ApiServer, router};
use rkube_apiserver::store::memory::MemoryStore;
use rkube_controllers::manager::{self, ManagerOptions};
use serde_json::json;

/// Starts the API server and the controller manager; returns an admin client.
pub async fn cluster() -> Client {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    let server = ApiServer::new(Arc::new(MemoryStore::new())).await.unwrap();
    rkube_apiserver::run::ensure_system_namespaces(&server)
        .await
        .unwrap();
    let client = in_process::client(router(server), in_process::admin());
    let options = ManagerOptions {
        leader_elect: false,
        ..ManagerOptions::default()
    };
    let manager_client = client.clone();
    tokio::spawn(async move {
        if let Err(err) = manager::run(manager_client, options).await {
            panic!("controller manager stopped: {err}");
        }
    });
    client
}

pub async fn namespace(client: &Client, name: &str) {
    let api: Api<Namespace> = Api::all(client.clone());
    let ns = Namespace {
        metadata: ObjectMeta {
            name: Some(name.into()),
            ..ObjectMeta::default()
        },
        ..Namespace::default()
    };
    api.create(&PostParams::default(), &ns).await.unwrap();
}

/// Plays the kubelet: every pod that is not Ready becomes Running and Ready with an IP,
/// after `delay`.
pub fn kubelet(client: &Client, delay: Duration) {
    let pods: Api<Pod> = Api::all(client.clone());
    let client = client.clone();
    let next_ip = Arc::new(AtomicU32::new(1));
    tokio::spawn(async move {
        let mut events = watcher::watcher(pods, watcher::Config::default())
            .applied_objects()
            .boxed();
        while let Some(Ok(pod)) = events.next().await {
            let ready = pod
                .status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
            if ready || pod.metadata.deletion_timestamp.is_some() {
                continue;
            }
            let n = next_ip.fetch_add(1, Ordering::Relaxed);
            let api: Api<Pod> = Api::namespaced(client.clone(), &pod.namespace().unwrap());
            let name = pod.name_any();
            tokio::spawn(async move {
                tokio::time::sleep(delay).await;
                let now = rkube_client::time::now();
                let status = json!({"status": {
                    "phase": "Running",
                    "podIP": format!("10.0.{}.{}", n / 250, n % 250 + 1),
                    "conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": now}],
                }});
                // The pod may be gone already; that is fine for a kubelet too.
                let _ = api
                    .patch_status(&name, &PatchParams::default(), &Patch::Merge(status))
                    .await;
            });
        }
    });
}

/// Polls `check` until it returns `Some`, failing the test after `secs` seconds.
pub async fn eventually<T, F, Fut>(what: &str, secs: u64, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(value) = check().await {
            return value;
        }
        if tokio::time::Instant::now() > deadline {
            panic!("timed out waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// An API server with no controllers; tests start the controller under test themselves.
pub async fn client() -> Client {
    let server = ApiServer::new(Arc::new(MemoryStore::new())).await.unwrap();
    rkube_apiserver::run::ensure_system_namespaces(&server)
        .await
        .unwrap();
    in_process::client(router(server), in_process::admin())
}

/// Sets a pod's phase, and Ready when it runs, as a kubelet would report it.
pub async fn set_phase(pods: &Api<Pod>, name: &str, phase: &str, ready: bool) {
    let now = k8s_openapi::jiff::Timestamp::now().to_string();
    let status = if ready { "True" } else { "False" };
    let patch = json!({"status": {"phase": phase, "conditions": [
        {"type": "Ready", "status": status, "lastTransitionTime": now}]}});
    pods.patch_status(name, &PatchParams::default(), &Patch::Merge(patch))
        .await
        .unwrap();
}

pub async fn create_node(client: &Client, name: &str, labels: serde_json::Value) -> Node {
    let nodes: Api<Node> = Api::all(client.clone());
    let node: Node =
        serde_json::from_value(json!({"metadata": {"name": name, "labels": labels}})).unwrap();
    nodes.create(&PostParams::default(), &node).await.unwrap()
}

pub fn pod_template(restart_policy: &str) -> serde_json::Value {
    json!({
        "metadata": {"labels": {"app": "t"}},
        "spec": {"restartPolicy": restart_policy,
                 "containers": [{"name": "c", "image": "busybox"}]}
    })
}
