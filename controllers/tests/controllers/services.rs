//! Endpoints and EndpointSlices follow a Service's ready pods, with named target ports
//! resolved per pod.

use crate::common;

use std::time::Duration;

use k8s_openapi::api::core::v1::{Endpoints, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use serde_json::json;

use common::{cluster, eventually, kubelet, namespace};

const NS: &str = "svc";

fn pod(name: &str, port: i32) -> Pod {
    serde_json::from_value(json!({
        "metadata": {"name": name, "labels": {"app": "web"}},
        "spec": {"containers": [{
            "name": "web",
            "image": "nginx",
            "ports": [{"name": "http", "containerPort": port}]
        }]}
    }))
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endpoints_and_slices_follow_ready_pods() {
    let client = cluster().await;
    namespace(&client, NS).await;
    kubelet(&client, Duration::from_millis(10));
    let services: Api<Service> = Api::namespaced(client.clone(), NS);
    let svc: Service = serde_json::from_value(json!({
        "metadata": {"name": "web"},
        "spec": {
            "selector": {"app": "web"},
            "ports": [{"name": "http", "port": 80, "targetPort": "http"}]
        }
    }))
    .unwrap();
    services.create(&PostParams::default(), &svc).await.unwrap();
    let pods: Api<Pod> = Api::namespaced(client.clone(), NS);
    pods.create(&PostParams::default(), &pod("a", 8080))
        .await
        .unwrap();
    pods.create(&PostParams::default(), &pod("b", 9090))
        .await
        .unwrap();

    let endpoints: Api<Endpoints> = Api::namespaced(client.clone(), NS);
    let ep = eventually("both pods in endpoints", 20, || async {
        let ep = endpoints.get_opt("web").await.unwrap()?;
        let ready: usize = ep
            .subsets
            .iter()
            .flatten()
            .map(|s| s.addresses.as_ref().map_or(0, Vec::len))
            .sum();
        (ready == 2).then_some(ep)
    })
    .await;
    let mut ports: Vec<i32> = ep
        .subsets
        .iter()
        .flatten()
        .flat_map(|s| s.ports.iter().flatten().map(|p| p.port))
        .collect();
    ports.sort();
    assert_eq!(ports, [8080, 9090], "named port resolved per pod");

    let slices: Api<EndpointSlice> = Api::namespaced(client.clone(), NS);
    let by_service = ListParams::default().labels("kubernetes.io/service-name=web");
    eventually("slices list both pods ready", 20, || async {
        let list = slices.list(&by_service).await.unwrap().items;
        let ready = list
            .iter()
            .flat_map(|s| s.endpoints.iter())
            .filter(|e| e.conditions.as_ref().and_then(|c| c.ready) == Some(true))
            .count();
        let owned = list.iter().all(|s| {
            s.metadata
                .owner_references
                .as_ref()
                .is_some_and(|o| o[0].kind == "Service")
        });
        (ready == 2 && owned).then_some(())
    })
    .await;

    pods.delete("a", &DeleteParams::default()).await.unwrap();
    eventually("deleted pod leaves endpoints and slices", 20, || async {
        let ep = endpoints.get("web").await.unwrap();
        let ips: usize = ep
            .subsets
            .iter()
            .flatten()
            .map(|s| s.addresses.as_ref().map_or(0, Vec::len))
            .sum();
        let listed: usize = slices
            .list(&by_service)
            .await
            .unwrap()
            .items
            .iter()
            .map(|s| s.endpoints.len())
            .sum();
        (ips == 1 && listed == 1).then_some(())
    })
    .await;

    services
        .delete("web", &DeleteParams::default())
        .await
        .unwrap();
    eventually(
        "endpoints and slices removed with the service",
        20,
        || async {
            let ep_gone = endpoints.get_opt("web").await.unwrap().is_none();
            let slices_gone = slices.list(&by_service).await.unwrap().items.is_empty();
            (ep_gone && slices_gone).then_some(())
        },
    )
    .await;
}
