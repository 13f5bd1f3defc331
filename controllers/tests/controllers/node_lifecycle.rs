use crate::common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::Timestamp;
use kube::Client;
use kube::api::{Api, Patch, PatchParams, PostParams};
use rkube_controllers::node_lifecycle::{self, NodeLifecycleOptions};
use serde_json::json;

/// Renews the node's lease every 100 ms while `alive` is set, as a node agent would.
async fn keep_renewing(client: Client, node: &str, alive: Arc<AtomicBool>) {
    let leases: Api<Lease> = Api::namespaced(client, "kube-node-lease");
    let lease: Lease = serde_json::from_value(json!({
        "metadata": {"name": node},
        "spec": {"holderIdentity": node, "leaseDurationSeconds": 40,
                 "renewTime": MicroTime(Timestamp::now())}
    }))
    .unwrap();
    leases.create(&PostParams::default(), &lease).await.unwrap();
    let node = node.to_string();
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_millis(100)).await;
            if alive.load(Ordering::SeqCst) {
                let patch = json!({"spec": {"renewTime": MicroTime(Timestamp::now())}});
                let _ = leases
                    .patch(&node, &PatchParams::default(), &Patch::Merge(patch))
                    .await;
            }
        }
    });
}

async fn ready_node(client: &Client, name: &str) {
    common::create_node(client, name, json!({})).await;
    let nodes: Api<Node> = Api::all(client.clone());
    let now = Timestamp::now().to_string();
    let patch = json!({"status": {"conditions": [{"type": "Ready", "status": "True",
        "reason": "KubeletReady", "lastHeartbeatTime": now, "lastTransitionTime": now}]}});
    nodes
        .patch_status(name, &PatchParams::default(), &Patch::Merge(patch))
        .await
        .unwrap();
}

async fn bound_pod(pods: &Api<Pod>, name: &str, node: &str, tolerations: serde_json::Value) {
    let pod: Pod = serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {"nodeName": node, "tolerations": tolerations,
                 "containers": [{"name": "c", "image": "busybox"}]}
    }))
    .unwrap();
    pods.create(&PostParams::default(), &pod).await.unwrap();
    common::set_phase(pods, name, "Running", true).await;
}

fn taint_keys(node: &Node) -> Vec<(String, String, bool)> {
    let mut keys: Vec<_> = node
        .spec
        .iter()
        .flat_map(|s| s.taints.iter().flatten())
        .map(|t| (t.key.clone(), t.effect.clone(), t.time_added.is_some()))
        .collect();
    keys.sort();
    keys
}

#[tokio::test]
async fn silent_node_is_marked_unknown_tainted_and_emptied() {
    let client = common::client().await;
    let nodes: Api<Node> = Api::all(client.clone());
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let quiet_alive = Arc::new(AtomicBool::new(true));
    ready_node(&client, "quiet").await;
    ready_node(&client, "steady").await;
    keep_renewing(client.clone(), "quiet", quiet_alive.clone()).await;
    keep_renewing(client.clone(), "steady", Arc::new(AtomicBool::new(true))).await;
    let unreachable_for = |seconds: i64| {
        json!([{"key": "node.kubernetes.io/unreachable", "operator": "Exists",
                "effect": "NoExecute", "tolerationSeconds": seconds}])
    };
    // The API server gives every pod 300 s unreachable/not-ready tolerations unless it names
    // its own, so "evicted at once" is a toleration of 0 seconds here.
    bound_pod(&pods, "plain", "quiet", unreachable_for(0)).await;
    bound_pod(&pods, "patient", "quiet", unreachable_for(2)).await;
    bound_pod(&pods, "daemon", "quiet", json!([{"operator": "Exists"}])).await;
    bound_pod(&pods, "elsewhere", "steady", json!([])).await;
    let options = NodeLifecycleOptions {
        grace: Duration::from_secs(1),
        eviction_check: Duration::from_millis(100),
    };
    tokio::spawn(node_lifecycle::run_with(client.clone(), options));

    // While the lease renews, nothing happens.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(taint_keys(&nodes.get("quiet").await.unwrap()).is_empty());

    quiet_alive.store(false, Ordering::SeqCst);
    let silenced = tokio::time::Instant::now();
    let ready = common::eventually("the node to be marked unknown", 10, || async {
        let node = nodes.get("quiet").await.unwrap();
        let ready = node
            .status
            .as_ref()?
            .conditions
            .as_ref()?
            .iter()
            .find(|c| c.type_ == "Ready")?
            .clone();
        (ready.status == "Unknown").then_some(ready)
    })
    .await;
    assert!(silenced.elapsed() >= Duration::from_millis(900));
    assert_eq!(ready.reason.as_deref(), Some("NodeStatusUnknown"));
    assert_eq!(
        ready.message.as_deref(),
        Some("Kubelet stopped posting node status.")
    );
    let expected = vec![
        (
            "node.kubernetes.io/unreachable".to_string(),
            "NoExecute".to_string(),
            true,
        ),
        (
            "node.kubernetes.io/unreachable".to_string(),
            "NoSchedule".to_string(),
            false,
        ),
    ];
    common::eventually("unreachable taints", 10, || async {
        let node = nodes.get("quiet").await.unwrap();
        (taint_keys(&node) == expected).then_some(())
    })
    .await;
    let tainted_at = tokio::time::Instant::now();

    common::eventually("the pod tolerating 0 s evicted", 5, || async {
        pods.get_opt("plain").await.unwrap().is_none().then_some(())
    })
    .await;
    assert!(pods.get_opt("patient").await.unwrap().is_some());
    common::eventually(
        "the tolerating pod evicted after its seconds",
        10,
        || async {
            pods.get_opt("patient")
                .await
                .unwrap()
                .is_none()
                .then_some(())
        },
    )
    .await;
    assert!(tainted_at.elapsed() >= Duration::from_millis(1500));
    assert!(pods.get_opt("daemon").await.unwrap().is_some());
    assert!(pods.get_opt("elsewhere").await.unwrap().is_some());
    assert!(taint_keys(&nodes.get("steady").await.unwrap()).is_empty());

    // The agent comes back: the taints go, the condition is left for the agent to report.
    quiet_alive.store(true, Ordering::SeqCst);
    let back = common::eventually("taints removed", 10, || async {
        let node = nodes.get("quiet").await.unwrap();
        taint_keys(&node).is_empty().then_some(node)
    })
    .await;
    let ready = back.status.unwrap().conditions.unwrap();
    assert_eq!(
        ready.iter().find(|c| c.type_ == "Ready").unwrap().status,
        "Unknown"
    );
}
