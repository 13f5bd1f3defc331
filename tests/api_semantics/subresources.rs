//! The status, scale and binding subresources.

use serde_json::json;

use crate::support::{MERGE, TestApi, deployment, pod, rv};

const DEPLOYS: &str = "/apis/apps/v1/namespaces/default/deployments";
const PODS: &str = "/api/v1/namespaces/default/pods";

on_both_stores!(status_and_main_resource_are_separate);

async fn status_and_main_resource_are_separate(api: TestApi) {
    let path = format!("{DEPLOYS}/web");
    let created = api.create(DEPLOYS, &deployment("web", 2)).await;
    assert!(
        created
            .get("status")
            .is_none_or(|s| s.get("replicas").is_none())
    );

    let mut status_write = created.clone();
    status_write["status"] = json!({"replicas": 2, "readyReplicas": 1});
    status_write["spec"]["replicas"] = json!(9);
    status_write["metadata"]["labels"] = json!({"sneaky": "yes"});
    let reply = api.put(&format!("{path}/status"), &status_write).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let after_status = api.read(&path).await;
    assert_eq!(after_status["status"]["readyReplicas"], 1);
    assert_eq!(after_status["spec"]["replicas"], 2);
    assert_eq!(after_status["metadata"]["generation"], 1);
    assert!(after_status["metadata"].get("labels").is_none());
    assert_eq!(api.read(&format!("{path}/status")).await, after_status);

    let mut main_write = after_status.clone();
    main_write["status"] = json!({"replicas": 50, "readyReplicas": 50});
    main_write["spec"]["replicas"] = json!(3);
    let reply = api.put(&path, &main_write).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let after_main = api.read(&path).await;
    assert_eq!(after_main["spec"]["replicas"], 3);
    assert_eq!(after_main["status"]["readyReplicas"], 1);
    assert_eq!(after_main["metadata"]["generation"], 2);
}

#[tokio::test]
async fn scale_reads_and_writes_replicas() {
    let api = TestApi::memory().await;
    let path = format!("{DEPLOYS}/web");
    api.create(DEPLOYS, &deployment("web", 2)).await;

    let scale = api.read(&format!("{path}/scale")).await;
    assert_eq!(scale["kind"], "Scale");
    assert_eq!(scale["apiVersion"], "autoscaling/v1");
    assert_eq!(scale["spec"]["replicas"], 2);
    assert_eq!(scale["status"]["selector"], "app=web");

    let reply = api
        .patch(
            &format!("{path}/scale"),
            MERGE,
            &json!({"spec": {"replicas": 5}}),
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(reply.json()["spec"]["replicas"], 5);
    let deploy = api.read(&path).await;
    assert_eq!(deploy["spec"]["replicas"], 5);
    assert_eq!(deploy["metadata"]["generation"], 2);

    let mut put = reply.json();
    put["spec"]["replicas"] = json!(1);
    let reply = api.put(&format!("{path}/scale"), &put).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(api.read(&path).await["spec"]["replicas"], 1);

    // A stale Scale is a conflict like any other write.
    assert_ne!(rv(&put), rv(&api.read(&path).await));
    api.put(&format!("{path}/scale"), &put)
        .await
        .failure(409, "Conflict");
    assert_eq!(api.read(&path).await["spec"]["replicas"], 1);
    api.patch(
        &format!("{path}/scale"),
        MERGE,
        &json!({"spec": {"replicas": -1}}),
    )
    .await
    .failure(422, "Invalid");
    api.get(&format!("{DEPLOYS}/missing/scale"))
        .await
        .failure(404, "NotFound");
}

#[tokio::test]
async fn binding_assigns_a_node_once() {
    let api = TestApi::memory().await;
    api.create(PODS, &pod("p", None)).await;
    let binding = |node: &str| {
        json!({
            "apiVersion": "v1",
            "kind": "Binding",
            "metadata": {"name": "p"},
            "target": {"apiVersion": "v1", "kind": "Node", "name": node},
        })
    };
    let reply = api.post(&format!("{PODS}/p/binding"), &binding("n1")).await;
    assert_eq!(reply.status, 201, "{}", reply.text());
    assert_eq!(reply.json()["status"], "Success");

    let bound = api.read(&format!("{PODS}/p")).await;
    assert_eq!(bound["spec"]["nodeName"], "n1");
    let conditions = bound["status"]["conditions"].as_array().unwrap();
    let scheduled = conditions
        .iter()
        .find(|c| c["type"] == "PodScheduled")
        .unwrap();
    assert_eq!(scheduled["status"], "True");

    let status = api
        .post(&format!("{PODS}/p/binding"), &binding("n2"))
        .await
        .failure(409, "Conflict");
    assert_eq!(
        status["message"],
        r#"Operation cannot be fulfilled on pods/binding "p": pod p is already assigned to node "n1""#
    );
    assert_eq!(status["details"]["kind"], "pods/binding");
    assert_eq!(
        api.read(&format!("{PODS}/p")).await["spec"]["nodeName"],
        "n1"
    );

    api.post(&format!("{PODS}/missing/binding"), &binding("n1"))
        .await
        .failure(404, "NotFound");
    let no_target = json!({"metadata": {"name": "p"}, "target": {}});
    api.post(&format!("{PODS}/p/binding"), &no_target)
        .await
        .failure(422, "Invalid");
}
