//! PATCH through HTTP: JSON patch tests, strategic merges of lists and server-side apply.

use http::Method;
use serde_json::json;

use crate::support::{APPLY, JSON_PATCH, STRATEGIC, TestApi, configmap, pod};

const CMS: &str = "/api/v1/namespaces/default/configmaps";
const PODS: &str = "/api/v1/namespaces/default/pods";

#[tokio::test]
async fn json_patch_test_failure_is_invalid() {
    let api = TestApi::memory().await;
    let path = format!("{CMS}/jp");
    let created = api.create(CMS, &configmap("jp", json!({}))).await;

    let failing = json!([
        {"op": "test", "path": "/data/k", "value": "other"},
        {"op": "replace", "path": "/data/k", "value": "patched"},
    ]);
    let status = api
        .patch(&path, JSON_PATCH, &failing)
        .await
        .failure(422, "Invalid");
    assert_eq!(status["details"]["name"], "jp");
    assert_eq!(status["details"]["kind"], "ConfigMap");
    assert_eq!(api.read(&path).await, created);

    let passing = json!([
        {"op": "test", "path": "/data/k", "value": "v"},
        {"op": "replace", "path": "/data/k", "value": "patched"},
    ]);
    let reply = api.patch(&path, JSON_PATCH, &passing).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(reply.json()["data"]["k"], "patched");

    // A JSON patch must be an array of operations.
    api.patch(&path, JSON_PATCH, &json!({"op": "add"}))
        .await
        .failure(400, "BadRequest");
}

#[tokio::test]
async fn strategic_merge_keeps_other_containers() {
    let api = TestApi::memory().await;
    let path = format!("{PODS}/smp");
    api.create(PODS, &pod("smp", None)).await;

    let patch = json!({"spec": {"containers": [{"name": "app", "image": "nginx:1.28"}]}});
    let reply = api.patch(&path, STRATEGIC, &patch).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let containers = api.read(&path).await["spec"]["containers"].clone();
    let images: Vec<(&str, &str)> = containers
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["name"].as_str().unwrap(), c["image"].as_str().unwrap()))
        .collect();
    assert_eq!(images, [("app", "nginx:1.28"), ("sidecar", "busybox:1.36")]);
}

#[tokio::test]
async fn apply_needs_a_field_manager_and_records_it() {
    let api = TestApi::memory().await;
    let path = format!("{CMS}/applied");
    let manifest =
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: applied\ndata:\n  a: \"1\"\n";

    // As kube-apiserver: PatchOptions validation, a 422 about `fieldManager`.
    let status = api
        .call(Method::PATCH, &path, APPLY, manifest)
        .await
        .failure(422, "Invalid");
    assert_eq!(
        status["message"],
        r#"PatchOptions.meta.k8s.io "" is invalid: fieldManager: Required value: is required for apply patch"#
    );
    assert_eq!(status["details"]["group"], "meta.k8s.io");
    assert_eq!(status["details"]["kind"], "PatchOptions");
    assert_eq!(status["details"]["causes"][0]["field"], "fieldManager");
    assert_eq!(
        status["details"]["causes"][0]["reason"],
        "FieldValueRequired"
    );
    api.get(&path).await.failure(404, "NotFound");

    let with_manager = format!("{path}?fieldManager=tester");
    let created = api
        .call(Method::PATCH, &with_manager, APPLY, manifest)
        .await;
    assert_eq!(created.status, 201, "{}", created.text());
    let created = created.json();
    assert_eq!(created["data"]["a"], "1");
    let entries = created["metadata"]["managedFields"].as_array().unwrap();
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0]["manager"], "tester");
    assert_eq!(entries[0]["operation"], "Apply");
    assert_eq!(entries[0]["fieldsV1"]["f:data"]["f:a"], json!({}));

    let changed = manifest.replace("a: \"1\"", "a: \"2\"\n  b: \"3\"");
    let updated = api.call(Method::PATCH, &with_manager, APPLY, changed).await;
    assert_eq!(updated.status, 200, "{}", updated.text());
    let updated = updated.json();
    assert_eq!(updated["data"], json!({"a": "2", "b": "3"}));
    assert_eq!(updated["metadata"]["uid"], created["metadata"]["uid"]);
    let entries = updated["metadata"]["managedFields"].as_array().unwrap();
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0]["fieldsV1"]["f:data"]["f:b"], json!({}));

    api.call(Method::PATCH, &with_manager, APPLY, "data: [unclosed")
        .await
        .failure(400, "BadRequest");
}
