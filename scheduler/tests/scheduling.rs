//! The scheduler against the real API server in-process: three nodes (one cordoned, one
//! tainted, one small), pods landing where they should, FailedScheduling events, RuntimeClass
//! handlers, and a new node unblocking a pending pod.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{
    Container, Event, Node, NodeCondition, NodeRuntimeHandler, NodeSpec, NodeStatus, Pod, PodSpec,
    ResourceRequirements, Taint, Toleration,
};
use k8s_openapi::api::node::v1::RuntimeClass;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use kube::Client;
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use rkube_apiserver::in_process;
use rkube_apiserver::server::{ApiServer, router};
use rkube_apiserver::store::memory::MemoryStore;
use rkube_scheduler::{SchedulerOptions, run};

fn quantities(cpu: &str, memory: &str) -> BTreeMap<String, Quantity> {
    BTreeMap::from([
        ("cpu".to_string(), Quantity(cpu.into())),
        ("memory".to_string(), Quantity(memory.into())),
        ("pods".to_string(), Quantity("110".into())),
    ])
}

fn node(name: &str, cpu: &str, memory: &str) -> Node {
    let mut node = Node {
        spec: Some(NodeSpec::default()),
        status: Some(NodeStatus {
            allocatable: Some(quantities(cpu, memory)),
            conditions: Some(vec![NodeCondition {
                type_: "Ready".into(),
                status: "True".into(),
                ..NodeCondition::default()
            }]),
            ..NodeStatus::default()
        }),
        ..Node::default()
    };
    node.metadata.name = Some(name.into());
    node.metadata.labels = Some(BTreeMap::from([("pool".to_string(), name.to_string())]));
    node
}

fn pod(name: &str, cpu: &str, memory: &str) -> Pod {
    let mut requests = quantities(cpu, memory);
    requests.remove("pods");
    let mut pod = Pod {
        spec: Some(PodSpec {
            containers: vec![Container {
                name: "app".into(),
                image: Some("registry.example/app:1".into()),
                resources: Some(ResourceRequirements {
                    requests: Some(requests),
                    ..ResourceRequirements::default()
                }),
                ..Container::default()
            }],
            ..PodSpec::default()
        }),
        ..Pod::default()
    };
    pod.metadata.name = Some(name.into());
    pod
}

async fn cluster() -> Client {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    let server = ApiServer::new(Arc::new(MemoryStore::new())).await.unwrap();
    rkube_apiserver::run::ensure_system_namespaces(&server)
        .await
        .unwrap();
    in_process::client(router(server), in_process::admin())
}

async fn node_of(pods: &Api<Pod>, name: &str) -> Option<String> {
    pods.get(name).await.unwrap().spec.and_then(|s| s.node_name)
}

async fn wait_bound(pods: &Api<Pod>, name: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(node) = node_of(pods, name).await {
            return node;
        }
        assert!(Instant::now() < deadline, "pod {name} was never bound");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn wait_failed_scheduling(client: &Client, pod: &str) -> String {
    let events: Api<Event> = Api::namespaced(client.clone(), "default");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let found = events
            .list(&ListParams::default().fields(&format!("involvedObject.name={pod}")))
            .await
            .unwrap()
            .items
            .into_iter()
            .find(|e| e.reason.as_deref() == Some("FailedScheduling"));
        if let Some(event) = found {
            assert_eq!(event.type_.as_deref(), Some("Warning"));
            return event.message.unwrap_or_default();
        }
        assert!(
            Instant::now() < deadline,
            "no FailedScheduling event for {pod}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pods_land_where_they_fit_and_wait_when_nothing_does() {
    let client = cluster().await;
    let nodes: Api<Node> = Api::all(client.clone());
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let classes: Api<RuntimeClass> = Api::all(client.clone());
    let pp = PostParams::default();

    let mut wasmtime = RuntimeClass {
        handler: "wasmtime".into(),
        ..RuntimeClass::default()
    };
    wasmtime.metadata.name = Some("wasmtime".into());
    classes.create(&pp, &wasmtime).await.unwrap();

    let mut cordoned = node("cordoned", "16", "64Gi");
    cordoned.spec = Some(NodeSpec {
        unschedulable: Some(true),
        ..NodeSpec::default()
    });
    let mut tainted = node("tainted", "16", "64Gi");
    tainted.spec = Some(NodeSpec {
        taints: Some(vec![Taint {
            key: "dedicated".into(),
            value: Some("gpu".into()),
            effect: "NoSchedule".into(),
            time_added: None,
        }]),
        ..NodeSpec::default()
    });
    for n in [cordoned, tainted, node("small", "2", "4Gi")] {
        nodes.create(&pp, &n).await.unwrap();
    }
    let scheduler = tokio::spawn(run(client.clone(), SchedulerOptions::default()));

    // Only the small node is open to an ordinary pod.
    pods.create(&pp, &pod("plain", "500m", "1Gi"))
        .await
        .unwrap();
    assert_eq!(wait_bound(&pods, "plain").await, "small");

    // A pod tolerating the taint and selecting its pool lands on the tainted node.
    let mut tolerant = pod("tolerant", "4", "8Gi");
    if let Some(spec) = tolerant.spec.as_mut() {
        spec.tolerations = Some(vec![Toleration {
            key: Some("dedicated".into()),
            operator: Some("Equal".into()),
            value: Some("gpu".into()),
            effect: Some("NoSchedule".into()),
            toleration_seconds: None,
        }]);
        spec.node_selector = Some(BTreeMap::from([(
            "pool".to_string(),
            "tainted".to_string(),
        )]));
    }
    pods.create(&pp, &tolerant).await.unwrap();
    assert_eq!(wait_bound(&pods, "tolerant").await, "tainted");

    // The small node has 1.5 cpu left: a 1.6-cpu pod fits nowhere.
    pods.create(&pp, &pod("second", "1600m", "1Gi"))
        .await
        .unwrap();
    let message = wait_failed_scheduling(&client, "second").await;
    assert!(message.contains("1 Insufficient cpu"), "{message}");

    // More memory than any node has: Pending, with the reasons named per node.
    pods.create(&pp, &pod("huge", "100m", "500Gi"))
        .await
        .unwrap();
    let message = wait_failed_scheduling(&client, "huge").await;
    assert!(
        message.starts_with("0/3 nodes are available: "),
        "{message}"
    );
    assert!(message.contains("1 Insufficient memory"), "{message}");
    assert!(
        message.contains("1 node(s) were unschedulable"),
        "{message}"
    );
    assert!(
        message.contains("1 node(s) had untolerated taint {dedicated: gpu}"),
        "{message}"
    );
    assert!(
        message.contains("preemption: 0/3 nodes are available: 3 Preemption is not helpful"),
        "{message}"
    );
    let huge = pods.get("huge").await.unwrap();
    let condition = huge
        .status
        .and_then(|s| s.conditions)
        .unwrap_or_default()
        .into_iter()
        .find(|c| c.type_ == "PodScheduled");
    assert!(
        condition.is_none_or(|c| c.status != "True"),
        "huge must not be scheduled"
    );

    // A wasm pod never lands on a node without the wasmtime handler...
    let mut wasm = pod("wasm", "100m", "64Mi");
    if let Some(spec) = wasm.spec.as_mut() {
        spec.runtime_class_name = Some("wasmtime".into());
    }
    pods.create(&pp, &wasm).await.unwrap();
    let message = wait_failed_scheduling(&client, "wasm").await;
    assert!(
        message.contains("node(s) didn't have the runtime handler \"wasmtime\""),
        "{message}"
    );
    assert_eq!(node_of(&pods, "wasm").await, None);

    // ...and adding a node that has it makes the pending pod schedule there.
    let mut edge = node("edge", "2", "2Gi");
    if let Some(status) = edge.status.as_mut() {
        status.runtime_handlers = Some(vec![NodeRuntimeHandler {
            name: Some("wasmtime".into()),
            features: None,
        }]);
    }
    nodes.create(&pp, &edge).await.unwrap();
    assert_eq!(wait_bound(&pods, "wasm").await, "edge");

    // The new node does not suit the others: edge offers no runc, huge fits nowhere.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(node_of(&pods, "huge").await, None);
    assert_eq!(node_of(&pods, "second").await, None);

    // Freeing room on the small node lets the waiting pod in.
    // Without a node agent to confirm, only a zero-grace delete removes a bound pod at once.
    pods.delete("plain", &DeleteParams::default().grace_period(0))
        .await
        .unwrap();
    assert_eq!(wait_bound(&pods, "second").await, "small");

    let scheduled: Api<Event> = Api::namespaced(client.clone(), "default");
    let messages: Vec<String> = scheduled
        .list(&ListParams::default().fields("reason=Scheduled"))
        .await
        .unwrap()
        .items
        .into_iter()
        .filter_map(|e| e.message)
        .collect();
    assert!(
        messages.contains(&"Successfully assigned default/tolerant to tainted".to_string()),
        "{messages:?}"
    );
    scheduler.abort();
}
