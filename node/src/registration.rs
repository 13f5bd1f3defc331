//! The Node object and its liveness: registration, the Lease renewed in `kube-node-lease`, and
//! the Ready condition's heartbeat.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::api::core::v1::{
    DaemonEndpoint, Node, NodeAddress, NodeCondition, NodeDaemonEndpoints, NodeRuntimeHandler,
    NodeRuntimeHandlerFeatures, NodeStatus, NodeSystemInfo,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference, Time};
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::{Client, ResourceExt};
use rkube_client::time::{micro_now, now};
use serde_json::json;

use crate::host::HostInfo;

pub const KUBELET_VERSION: &str = "v1.33.0-rkube";
pub const RUNTIME_VERSION: &str = "wasmtime://48";
const LEASE_NAMESPACE: &str = "kube-node-lease";
const LEASE_DURATION_SECONDS: i32 = 40;
const MAX_PODS: &str = "110";

/// The Node as this agent describes it; `kubelet_port` is where its kubelet API listens.
pub fn node_object(
    name: &str,
    host: &HostInfo,
    handlers: &[String],
    kubelet_port: Option<u16>,
) -> Node {
    let labels = BTreeMap::from([
        ("kubernetes.io/os".to_string(), host.os.clone()),
        ("kubernetes.io/arch".to_string(), host.arch.clone()),
        ("kubernetes.io/hostname".to_string(), name.to_string()),
    ]);
    Node {
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            labels: Some(labels),
            ..ObjectMeta::default()
        },
        spec: None,
        status: Some(NodeStatus {
            daemon_endpoints: kubelet_port.map(|port| NodeDaemonEndpoints {
                kubelet_endpoint: Some(DaemonEndpoint {
                    port: i32::from(port),
                }),
            }),
            ..node_status(host, handlers)
        }),
    }
}

fn node_status(host: &HostInfo, handlers: &[String]) -> NodeStatus {
    let resources = BTreeMap::from([
        ("cpu".to_string(), Quantity(host.cpus.to_string())),
        (
            "memory".to_string(),
            Quantity(format!("{}Ki", host.memory_bytes / 1024)),
        ),
        ("pods".to_string(), Quantity(MAX_PODS.to_string())),
    ]);
    NodeStatus {
        capacity: Some(resources.clone()),
        allocatable: Some(resources),
        addresses: Some(vec![
            NodeAddress {
                type_: "InternalIP".into(),
                address: host.ip.to_string(),
            },
            NodeAddress {
                type_: "Hostname".into(),
                address: host.hostname.clone(),
            },
        ]),
        conditions: Some(conditions(&now())),
        node_info: Some(NodeSystemInfo {
            architecture: host.arch.clone(),
            boot_id: host.boot_id.clone(),
            container_runtime_version: RUNTIME_VERSION.into(),
            kernel_version: host.kernel.clone(),
            kube_proxy_version: String::new(),
            kubelet_version: KUBELET_VERSION.into(),
            machine_id: host.machine_id.clone(),
            operating_system: host.os.clone(),
            os_image: host.os_image.clone(),
            system_uuid: host.machine_id.clone(),
            swap: None,
        }),
        runtime_handlers: Some(
            handlers
                .iter()
                .map(|h| NodeRuntimeHandler {
                    name: Some(h.clone()),
                    features: Some(NodeRuntimeHandlerFeatures {
                        recursive_read_only_mounts: Some(false),
                        user_namespaces: Some(false),
                    }),
                })
                .collect(),
        ),
        ..NodeStatus::default()
    }
}

/// Ready plus the pressure conditions, heartbeat now, in their state since `since`.
fn conditions(since: &Time) -> Vec<NodeCondition> {
    let stamp = now();
    let condition = |type_: &str, status: &str, reason: &str, message: &str| NodeCondition {
        type_: type_.into(),
        status: status.into(),
        reason: Some(reason.into()),
        message: Some(message.into()),
        last_heartbeat_time: Some(stamp.clone()),
        last_transition_time: Some(since.clone()),
    };
    vec![
        condition(
            "MemoryPressure",
            "False",
            "KubeletHasSufficientMemory",
            "kubelet has sufficient memory available",
        ),
        condition(
            "DiskPressure",
            "False",
            "KubeletHasNoDiskPressure",
            "kubelet has no disk pressure",
        ),
        condition(
            "PIDPressure",
            "False",
            "KubeletHasSufficientPID",
            "kubelet has sufficient PID available",
        ),
        condition(
            "Ready",
            "True",
            "KubeletReady",
            "kubelet is posting ready status",
        ),
    ]
}

/// Creates the Node, or takes over an existing one: its labels are merged and its status
/// replaced by what this agent reports.
pub async fn register(client: &Client, node: &Node) -> Result<Node, kube::Error> {
    let nodes: Api<Node> = Api::all(client.clone());
    let name = node.name_any();
    match nodes.create(&PostParams::default(), node).await {
        Ok(created) => {
            // Status is ignored on create; write it through its subresource.
            let patch = json!({ "status": node.status });
            nodes
                .patch_status(&name, &PatchParams::default(), &Patch::Merge(patch))
                .await
                .or(Ok(created))
        }
        Err(kube::Error::Api(status)) if status.code == 409 => {
            let labels = json!({ "metadata": { "labels": node.metadata.labels } });
            nodes
                .patch(&name, &PatchParams::default(), &Patch::Merge(labels))
                .await?;
            let patch = json!({ "status": node.status });
            nodes
                .patch_status(&name, &PatchParams::default(), &Patch::Merge(patch))
                .await
        }
        Err(error) => Err(error),
    }
}

/// Renews the node Lease every `every`, creating it when missing, forever.
pub async fn renew_lease(client: Client, node: Node, every: Duration) {
    let leases: Api<Lease> = Api::namespaced(client, LEASE_NAMESPACE);
    let name = node.name_any();
    let mut ticker = tokio::time::interval(every);
    loop {
        ticker.tick().await;
        if let Err(error) = renew_once(&leases, &node).await {
            tracing::warn!(node = %name, %error, "renewing the node lease");
        }
    }
}

async fn renew_once(leases: &Api<Lease>, node: &Node) -> Result<(), kube::Error> {
    let name = node.name_any();
    let renew = json!({ "spec": { "holderIdentity": name, "renewTime": micro_now() } });
    match leases
        .patch(&name, &PatchParams::default(), &Patch::Merge(renew))
        .await
    {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) if status.code == 404 => {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(name.clone()),
                    namespace: Some(LEASE_NAMESPACE.into()),
                    owner_references: node.metadata.uid.clone().map(|uid| {
                        vec![OwnerReference {
                            api_version: "v1".into(),
                            kind: "Node".into(),
                            name: name.clone(),
                            uid,
                            ..OwnerReference::default()
                        }]
                    }),
                    ..ObjectMeta::default()
                },
                spec: Some(LeaseSpec {
                    holder_identity: Some(name.clone()),
                    lease_duration_seconds: Some(LEASE_DURATION_SECONDS),
                    renew_time: Some(micro_now()),
                    ..LeaseSpec::default()
                }),
            };
            leases
                .create(&PostParams::default(), &lease)
                .await
                .map(drop)
        }
        Err(error) => Err(error),
    }
}

/// Re-posts the node conditions every `every` so that the Ready heartbeat stays fresh.
pub async fn refresh_status(client: Client, name: String, every: Duration) {
    let nodes: Api<Node> = Api::all(client);
    // The conditions do not change while the agent runs; only their heartbeat moves.
    let since = now();
    let mut ticker = tokio::time::interval(every);
    ticker.tick().await;
    loop {
        ticker.tick().await;
        let patch = json!({ "status": { "conditions": conditions(&since) } });
        if let Err(error) = nodes
            .patch_status(&name, &PatchParams::default(), &Patch::Merge(patch))
            .await
        {
            tracing::warn!(node = %name, %error, "refreshing node status");
        }
    }
}
