//! DELETE: finalizers, graceful pod deletion and propagation policies.

use http::Method;
use serde_json::{Value, json};

use crate::support::{JSON, MERGE, TestApi, configmap, pod};

const CMS: &str = "/api/v1/namespaces/default/configmaps";
const PODS: &str = "/api/v1/namespaces/default/pods";

fn finalizers(obj: &Value) -> Vec<&str> {
    obj["metadata"]["finalizers"]
        .as_array()
        .map(|f| f.iter().map(|x| x.as_str().unwrap()).collect())
        .unwrap_or_default()
}

on_both_stores!(finalizers_hold_the_object);

async fn finalizers_hold_the_object(api: TestApi) {
    let path = format!("{CMS}/held");
    let mut cm = configmap("held", json!({}));
    cm["metadata"]["finalizers"] = json!(["example.com/a", "example.com/b"]);
    api.create(CMS, &cm).await;

    let deleted = api.delete(&path).await;
    assert_eq!(deleted.status, 200, "{}", deleted.text());
    let deleting = api.read(&path).await;
    let stamp = deleting["metadata"]["deletionTimestamp"].clone();
    assert!(stamp.is_string(), "{deleting}");
    assert_eq!(deleting["metadata"]["deletionGracePeriodSeconds"], 0);

    // A second delete changes nothing.
    api.delete(&path).await;
    assert_eq!(
        api.read(&path).await["metadata"]["deletionTimestamp"],
        stamp
    );

    let mut one_left = deleting.clone();
    one_left["metadata"]["finalizers"] = json!(["example.com/b"]);
    let reply = api.put(&path, &one_left).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(finalizers(&api.read(&path).await), ["example.com/b"]);

    let reply = api
        .patch(&path, MERGE, &json!({"metadata": {"finalizers": null}}))
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    api.get(&path).await.failure(404, "NotFound");
}

#[tokio::test]
async fn bound_pods_wait_for_their_node() {
    let api = TestApi::memory().await;
    api.create(PODS, &pod("bound", Some("n1"))).await;
    api.create(PODS, &pod("unbound", None)).await;

    let reply = api.delete(&format!("{PODS}/unbound")).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    api.get(&format!("{PODS}/unbound"))
        .await
        .failure(404, "NotFound");

    let bound = format!("{PODS}/bound");
    let reply = api.delete(&bound).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let deleting = api.read(&bound).await;
    assert!(deleting["metadata"]["deletionTimestamp"].is_string());
    assert_eq!(deleting["metadata"]["deletionGracePeriodSeconds"], 30);

    // The kubelet's status updates keep the pod around.
    let mut status = deleting.clone();
    status["status"]["phase"] = json!("Running");
    let reply = api.put(&format!("{bound}/status"), &status).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(api.read(&bound).await["status"]["phase"], "Running");

    let options = json!({"kind": "DeleteOptions", "apiVersion": "v1", "gracePeriodSeconds": 0});
    let reply = api
        .call(Method::DELETE, &bound, JSON, options.to_string())
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    api.get(&bound).await.failure(404, "NotFound");

    // The query parameter works as well as the body.
    api.create(PODS, &pod("bound2", Some("n1"))).await;
    api.delete(&format!("{PODS}/bound2")).await;
    api.read(&format!("{PODS}/bound2")).await;
    api.delete(&format!("{PODS}/bound2?gracePeriodSeconds=0"))
        .await;
    api.get(&format!("{PODS}/bound2"))
        .await
        .failure(404, "NotFound");
}

#[tokio::test]
async fn propagation_policies_add_their_finalizers() {
    let api = TestApi::memory().await;
    for (name, policy, finalizer) in [
        ("fg", "Foreground", "foregroundDeletion"),
        ("orphaned", "Orphan", "orphan"),
    ] {
        api.create(CMS, &configmap(name, json!({}))).await;
        let reply = api
            .delete(&format!("{CMS}/{name}?propagationPolicy={policy}"))
            .await;
        assert_eq!(reply.status, 200, "{}", reply.text());
        let obj = api.read(&format!("{CMS}/{name}")).await;
        assert_eq!(finalizers(&obj), [finalizer]);
        assert!(obj["metadata"]["deletionTimestamp"].is_string());
    }

    api.create(CMS, &configmap("body-policy", json!({}))).await;
    let options = json!({"propagationPolicy": "Foreground"});
    api.call(
        Method::DELETE,
        &format!("{CMS}/body-policy"),
        JSON,
        options.to_string(),
    )
    .await;
    let obj = api.read(&format!("{CMS}/body-policy")).await;
    assert_eq!(finalizers(&obj), ["foregroundDeletion"]);

    api.create(CMS, &configmap("bg", json!({}))).await;
    api.delete(&format!("{CMS}/bg?propagationPolicy=Background"))
        .await;
    api.get(&format!("{CMS}/bg")).await.failure(404, "NotFound");

    api.create(CMS, &configmap("bad", json!({}))).await;
    api.delete(&format!("{CMS}/bad?propagationPolicy=Sideways"))
        .await
        .failure(400, "BadRequest");
    api.read(&format!("{CMS}/bad")).await;
    api.delete(&format!("{CMS}/missing"))
        .await
        .failure(404, "NotFound");
}
