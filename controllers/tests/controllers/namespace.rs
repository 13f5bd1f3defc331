//! Namespace lifecycle against the real API server with the controller manager: a default
//! ServiceAccount appears, and deleting a namespace empties it and then removes it.

use crate::common;

use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Pod, ServiceAccount};
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use serde_json::json;

use common::{cluster, eventually, kubelet, namespace};

const NS: &str = "doomed";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_namespace_empties_it_then_removes_it() {
    let client = cluster().await;
    namespace(&client, NS).await;
    kubelet(&client, Duration::from_millis(10));
    let accounts: Api<ServiceAccount> = Api::namespaced(client.clone(), NS);
    eventually("default service account", 20, || async {
        accounts.get_opt("default").await.unwrap()
    })
    .await;

    let deployments: Api<Deployment> = Api::namespaced(client.clone(), NS);
    let d: Deployment = serde_json::from_value(json!({
        "metadata": {"name": "web"},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "web", "image": "nginx"}]}
            }
        }
    }))
    .unwrap();
    deployments
        .create(&PostParams::default(), &d)
        .await
        .unwrap();
    let configmaps: Api<ConfigMap> = Api::namespaced(client.clone(), NS);
    let cm: ConfigMap = serde_json::from_value(json!({"metadata": {"name": "settings"}})).unwrap();
    configmaps
        .create(&PostParams::default(), &cm)
        .await
        .unwrap();
    // A pod on a node that never confirms its end: removed once its grace period passed.
    let pods: Api<Pod> = Api::namespaced(client.clone(), NS);
    let bound: Pod = serde_json::from_value(json!({
        "metadata": {"name": "bound"},
        "spec": {
            "nodeName": "node-1",
            "terminationGracePeriodSeconds": 1,
            "containers": [{"name": "c", "image": "busybox"}]
        }
    }))
    .unwrap();
    pods.create(&PostParams::default(), &bound).await.unwrap();
    eventually("deployment pods", 20, || async {
        let n = pods.list(&ListParams::default()).await.unwrap().items.len();
        (n == 3).then_some(())
    })
    .await;

    let namespaces: Api<Namespace> = Api::all(client.clone());
    namespaces
        .delete(NS, &DeleteParams::default())
        .await
        .unwrap();
    let terminating = namespaces.get(NS).await.unwrap();
    assert_eq!(
        terminating.status.and_then(|s| s.phase).as_deref(),
        Some("Terminating")
    );
    let refused = configmaps.create(&PostParams::default(), &cm).await;
    assert!(
        refused.is_err(),
        "no new content in a terminating namespace"
    );

    eventually("namespace removed", 30, || async {
        namespaces
            .get_opt(NS)
            .await
            .unwrap()
            .is_none()
            .then_some(())
    })
    .await;
    assert!(
        pods.list(&ListParams::default())
            .await
            .unwrap()
            .items
            .is_empty()
    );
    assert!(
        deployments
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .is_empty()
    );
    assert!(
        configmaps
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .is_empty()
    );
    assert!(
        accounts
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .is_empty()
    );
}
