//! Bodies the server must refuse with a Status and without storing anything.

use http::Method;
use serde_json::json;

use crate::support::{JSON, MERGE, TestApi, configmap};

const CMS: &str = "/api/v1/namespaces/default/configmaps";

on_both_stores!(rejected_bodies_store_nothing);

async fn rejected_bodies_store_nothing(api: TestApi) {
    api.create(CMS, &configmap("kept", json!({}))).await;
    let before = api.read(CMS).await;
    let revision = api.server.store.current_revision().await.unwrap();

    let status = api
        .call(Method::POST, CMS, JSON, r#"{"metadata": {"name": "#)
        .await
        .failure(400, "BadRequest");
    let message = status["message"].as_str().unwrap();
    assert!(
        message.starts_with("error decoding JSON request body"),
        "{message}"
    );

    let status = api
        .call(
            Method::POST,
            CMS,
            "application/yaml",
            "metadata: [unclosed\n",
        )
        .await
        .failure(400, "BadRequest");
    let message = status["message"].as_str().unwrap();
    assert!(
        message.starts_with("error decoding YAML request body"),
        "{message}"
    );

    let array = json!([configmap("in-array", json!({}))]).to_string();
    let status = api
        .call(Method::POST, CMS, JSON, array)
        .await
        .failure(400, "BadRequest");
    assert_eq!(
        status["message"],
        "the request body must be a JSON or YAML object"
    );

    let status = api
        .call(
            Method::POST,
            CMS,
            "text/html",
            configmap("html", json!({})).to_string(),
        )
        .await
        .failure(415, "UnsupportedMediaType");
    assert!(
        status["message"]
            .as_str()
            .unwrap()
            .starts_with("the body of the request was in an unknown format")
    );

    let mut huge = configmap("huge", json!({}));
    huge["data"]["blob"] = json!("x".repeat(3 * 1024 * 1024));
    let status = api
        .call(Method::POST, CMS, JSON, huge.to_string())
        .await
        .failure(413, "RequestEntityTooLarge");
    assert_eq!(
        status["message"],
        "the request is too large: limit is 3145728 bytes"
    );

    // Bad bodies on an existing object leave it alone too.
    let kept = format!("{CMS}/kept");
    api.call(Method::PUT, &kept, JSON, "{not json")
        .await
        .failure(400, "BadRequest");
    api.call(Method::PATCH, &kept, MERGE, "[")
        .await
        .failure(400, "BadRequest");
    api.call(Method::PATCH, &kept, "application/xml", "{}")
        .await
        .failure(415, "UnsupportedMediaType");

    assert_eq!(api.read(CMS).await, before);
    assert_eq!(api.server.store.current_revision().await.unwrap(), revision);
}

#[tokio::test]
async fn unroutable_requests_are_statuses() {
    let api = TestApi::memory().await;
    for path in [
        "/api/v1/namespaces/default/widgets",
        "/apis/apps/v1/namespaces/default/pods",
        "/api/v2/pods",
        "/api/v1/namespaces/default/configmaps/x/scale",
        "/nothing/here",
    ] {
        let status = api.get(path).await.failure(404, "NotFound");
        assert_eq!(
            status["message"], "the server could not find the requested resource",
            "{path}"
        );
    }
    api.create(CMS, &configmap("c", json!({}))).await;
    api.call(Method::POST, &format!("{CMS}/c"), JSON, "{}")
        .await
        .failure(405, "MethodNotAllowed");
    api.get(&format!("{CMS}/absent"))
        .await
        .failure(404, "NotFound");
    let status = api
        .post(CMS, &configmap("c", json!({})))
        .await
        .failure(409, "AlreadyExists");
    assert_eq!(status["message"], r#"configmaps "c" already exists"#);
    assert_eq!(
        status["details"],
        json!({"name": "c", "group": "", "kind": "configmaps"})
    );
    let mut other_kind = configmap("s", json!({}));
    other_kind["kind"] = json!("Secret");
    api.post(CMS, &other_kind).await.failure(400, "BadRequest");
    api.get(&format!("{CMS}?resourceVersion=abc"))
        .await
        .failure(400, "BadRequest");
}
