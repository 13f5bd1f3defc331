use crate::common;

use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use rkube_controllers::daemonset::{self, plan::target_node};
use serde_json::json;

async fn pods_by_node(pods: &Api<Pod>) -> Vec<(String, Pod)> {
    let listed = pods
        .list(&ListParams::default().labels("app=t"))
        .await
        .unwrap();
    let mut by_node: Vec<(String, Pod)> = listed
        .items
        .into_iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .filter_map(|p| Some((target_node(&p)?, p)))
        .collect();
    by_node.sort_by(|a, b| a.0.cmp(&b.0));
    by_node
}

#[tokio::test]
async fn daemonset_follows_nodes_and_rolls_its_template() {
    let client = common::client().await;
    tokio::spawn(daemonset::run(client.clone()));
    let daemonsets: Api<DaemonSet> = Api::namespaced(client.clone(), "default");
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let nodes: Api<Node> = Api::all(client.clone());
    common::create_node(&client, "a", json!({})).await;
    let spec: DaemonSet = serde_json::from_value(json!({
        "metadata": {"name": "agent"},
        "spec": {"selector": {"matchLabels": {"app": "t"}},
                 "template": common::pod_template("Always")}
    }))
    .unwrap();
    daemonsets
        .create(&PostParams::default(), &spec)
        .await
        .unwrap();

    let on_a = common::eventually("a pod for node a", 10, || async {
        let by_node = pods_by_node(&pods).await;
        (by_node.len() == 1 && by_node[0].0 == "a").then(|| by_node[0].1.clone())
    })
    .await;
    common::set_phase(&pods, &on_a.name_any(), "Running", true).await;
    common::eventually("status with one ready pod", 10, || async {
        let status = daemonsets.get("agent").await.unwrap().status?;
        (status.desired_number_scheduled == 1
            && status.number_ready == 1
            && status.number_available == Some(1)
            && status.updated_number_scheduled == Some(1))
        .then_some(())
    })
    .await;

    common::create_node(&client, "b", json!({})).await;
    let on_b = common::eventually("a pod for the new node", 10, || async {
        let by_node = pods_by_node(&pods).await;
        let names: Vec<&str> = by_node.iter().map(|(n, _)| n.as_str()).collect();
        (names == ["a", "b"]).then(|| by_node[1].1.clone())
    })
    .await;
    common::set_phase(&pods, &on_b.name_any(), "Running", true).await;

    // A new template replaces the pods, at most one unavailable at a time.
    let patch = json!({"spec": {"template": {"spec": {"containers": [{"name": "c", "image": "busybox:2"}]}}}});
    daemonsets
        .patch("agent", &PatchParams::default(), &Patch::Strategic(patch))
        .await
        .unwrap();
    let updated_hash = |pod: &Pod| pod.labels().get("controller-revision-hash").cloned();
    let old_hash = updated_hash(&on_a);
    let mut replaced = 0;
    while replaced < 2 {
        let fresh = common::eventually("a replacement pod", 10, || async {
            let by_node = pods_by_node(&pods).await;
            let down = by_node
                .iter()
                .filter(|(_, p)| {
                    p.status.as_ref().and_then(|s| s.phase.as_deref()) != Some("Running")
                })
                .count();
            assert!(down <= 1, "{down} daemon pods unavailable at once");
            by_node.into_iter().map(|(_, p)| p).find(|p| {
                updated_hash(p) != old_hash
                    && p.status.as_ref().and_then(|s| s.phase.as_deref()) != Some("Running")
            })
        })
        .await;
        common::set_phase(&pods, &fresh.name_any(), "Running", true).await;
        replaced += 1;
    }
    common::eventually("both pods updated", 10, || async {
        let status = daemonsets.get("agent").await.unwrap().status?;
        (status.updated_number_scheduled == Some(2) && status.number_available == Some(2))
            .then_some(())
    })
    .await;

    nodes.delete("a", &DeleteParams::default()).await.unwrap();
    common::eventually("the pod of the removed node to go", 10, || async {
        let by_node = pods_by_node(&pods).await;
        let names: Vec<&str> = by_node.iter().map(|(n, _)| n.as_str()).collect();
        (names == ["b"]).then_some(())
    })
    .await;
}
