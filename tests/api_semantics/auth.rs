//! Requests without an authenticated user.

use axum::body::Body;
use http::Request;

use crate::support::TestApi;

fn anonymous(path: &str) -> Request<Body> {
    Request::builder().uri(path).body(Body::empty()).unwrap()
}

#[tokio::test]
async fn anonymous_requests_are_unauthorized() {
    let api = TestApi::memory().await;
    for path in [
        "/api/v1/namespaces/default/configmaps",
        "/api/v1/namespaces/default/configmaps?watch=true",
        "/apis/apps/v1/deployments",
        "/api",
        "/apis",
        "/api/v1",
        "/apis/apps/v1",
        "/openapi/v3",
    ] {
        let status = api.send(anonymous(path)).await.failure(401, "Unauthorized");
        assert_eq!(status["message"], "Unauthorized", "{path}");
    }
    let post = Request::builder()
        .method("POST")
        .uri("/api/v1/namespaces/default/configmaps")
        .header("content-type", "application/json")
        .body(Body::from(r#"{"metadata":{"name":"x"}}"#))
        .unwrap();
    api.send(post).await.failure(401, "Unauthorized");
    let (names, _) = api
        .list_names("/api/v1/namespaces/default/configmaps")
        .await;
    assert!(names.is_empty());

    for path in ["/healthz", "/livez", "/readyz"] {
        let reply = api.send(anonymous(path)).await;
        assert_eq!(reply.status, 200, "{path}");
        assert_eq!(reply.text(), "ok");
    }
    let version = api.send(anonymous("/version")).await;
    assert_eq!(version.status, 200);
    assert!(version.json()["gitVersion"].is_string());
}
