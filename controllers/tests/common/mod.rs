//! An API server in the test process, and the small moves a test makes while it plays the
//! kubelet.

#![allow(dead_code)] // each test binary uses its own part of this module

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Node, Pod};
use kube::Client;
use kube::api::{Api, Patch, PatchParams, PostParams};
use rkube_apiserver::in_process;
use rkube_apiserver::server::{ApiServer, router};
use rkube_apiserver::store::memory::MemoryStore;
use serde_json::json;

pub async fn client() -> Client {
    let server = ApiServer::new(Arc::new(MemoryStore::new())).await.unwrap();
    rkube_apiserver::run::ensure_system_namespaces(&server)
        .await
        .unwrap();
    in_process::client(router(server), in_process::admin())
}

/// Polls `check` until it returns Some, failing the test after `seconds`.
pub async fn eventually<T, F, Fut>(seconds: u64, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(seconds);
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
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
