//! ServiceAccount tokens through the router: TokenRequests (as kube-rs and `kubectl create
//! token` send them), bearer-token authentication bound to live objects, the token volume
//! new pods get, and what nodes may ask for.

use std::sync::Arc;

use axum::body::Body;
use http::{Method, Request};
use k8s_openapi::api::authentication::v1::{BoundObjectReference, TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::{ConfigMap, ServiceAccount};
use kube::api::{Api, PostParams};
use rkube_apiserver::auth::User;
use rkube_apiserver::serviceaccount::token::{
    Claims, ISSUER, KubernetesClaims, ObjectRef, TokenKey,
};
use serde_json::{Value, json};

use crate::support::{JSON, Reply, TestApi};

const SECRETS: &str = "/api/v1/namespaces/default/secrets";
const PODS: &str = "/api/v1/namespaces/default/pods";
const ACCOUNTS: &str = "/api/v1/namespaces/default/serviceaccounts";

fn new_key() -> TokenKey {
    let pem = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
        .unwrap()
        .serialize_pem();
    TokenKey::from_pem(&pem).unwrap()
}

/// A server with a service-account key and the bootstrap RBAC policy.
async fn api() -> TestApi {
    let api = TestApi::memory().await;
    api.server.token_key.set(Arc::new(new_key())).unwrap();
    rkube_apiserver::rbac::ensure_bootstrap_policy(&api.server)
        .await
        .unwrap();
    api
}

/// Waits until the watch cache, which authentication and authorization read, has every
/// write so far.
async fn settle(api: &TestApi) {
    let revision = api.server.store.current_revision().await.unwrap();
    api.server.cache.wait_for(revision).await.unwrap();
}

async fn service_account(api: &TestApi, name: &str, automount: Option<bool>) -> Value {
    let mut sa = json!({"metadata": {"name": name}});
    if let Some(automount) = automount {
        sa["automountServiceAccountToken"] = json!(automount);
    }
    api.create(ACCOUNTS, &sa).await
}

async fn pod(api: &TestApi, name: &str, sa: &str, node: Option<&str>) -> Value {
    let mut pod = json!({"metadata": {"name": name},
        "spec": {"serviceAccountName": sa, "containers": [{"name": "c", "image": "x"}]}});
    if let Some(node) = node {
        pod["spec"]["nodeName"] = json!(node);
    }
    api.create(PODS, &pod).await
}

fn bound_to(pod: &Value) -> TokenRequest {
    TokenRequest {
        spec: TokenRequestSpec {
            bound_object_ref: Some(BoundObjectReference {
                api_version: Some("v1".into()),
                kind: Some("Pod".into()),
                name: pod["metadata"]["name"].as_str().map(String::from),
                uid: pod["metadata"]["uid"].as_str().map(String::from),
            }),
            ..TokenRequestSpec::default()
        },
        ..TokenRequest::default()
    }
}

async fn request_token(
    client: kube::Client,
    sa: &str,
    request: &TokenRequest,
) -> kube::Result<String> {
    let accounts: Api<ServiceAccount> = Api::namespaced(client, "default");
    let issued = accounts
        .create_token_request(sa, &PostParams::default(), request)
        .await?;
    Ok(issued.status.unwrap().token)
}

async fn get_with_bearer(api: &TestApi, path: &str, token: &str) -> Reply {
    let request = Request::builder()
        .uri(path)
        .header(http::header::AUTHORIZATION, format!("Bearer {token}"))
        .body(Body::empty())
        .unwrap();
    api.send(request).await
}

fn assert_forbidden_for(reply: &Reply, user: &str) {
    let status = reply.failure(403, "Forbidden");
    let message = status["message"].as_str().unwrap();
    assert!(message.contains(&format!("User \"{user}\"")), "{message}");
}

#[tokio::test]
async fn a_bound_token_authenticates_its_service_account_while_the_pod_lives() {
    let api = api().await;
    service_account(&api, "builder", None).await;
    let web = pod(&api, "web", "builder", None).await;
    let token = request_token(api.client(), "builder", &bound_to(&web))
        .await
        .unwrap();

    settle(&api).await;
    let reply = get_with_bearer(&api, SECRETS, &token).await;
    assert_forbidden_for(&reply, "system:serviceaccount:default:builder");

    // A role for the service account's group shows the groups it authenticates with.
    api.create(
        "/apis/rbac.authorization.k8s.io/v1/namespaces/default/rolebindings",
        &json!({"metadata": {"name": "sa-view"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "view"},
            "subjects": [{"kind": "Group", "name": "system:serviceaccounts:default"}]}),
    )
    .await;
    settle(&api).await;
    let pods = get_with_bearer(&api, PODS, &token).await;
    assert_eq!(pods.status, 200, "{}", pods.text());

    let deleted = api.delete(&format!("{PODS}/web")).await;
    assert_eq!(deleted.status, 200);
    settle(&api).await;
    get_with_bearer(&api, PODS, &token)
        .await
        .failure(401, "Unauthorized");
}

#[tokio::test]
async fn kubectl_create_token_gets_an_unbound_token_for_an_hour() {
    let api = api().await;
    service_account(&api, "default", None).await;
    let reply = api
        .post(
            &format!("{ACCOUNTS}/default/token"),
            &json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
                "metadata": {"creationTimestamp": null}, "spec": {}, "status": {}}),
        )
        .await;
    assert_eq!(reply.status, 201, "{}", reply.text());
    let issued = reply.json();
    assert_eq!(issued["kind"], "TokenRequest");
    assert_eq!(issued["apiVersion"], "authentication.k8s.io/v1");
    assert_eq!(issued["spec"]["audiences"], json!([ISSUER]));
    assert_eq!(issued["spec"]["expirationSeconds"], 3600);
    assert!(issued["status"]["expirationTimestamp"].is_string());
    let token = issued["status"]["token"].as_str().unwrap();

    settle(&api).await;
    let reply = get_with_bearer(&api, SECRETS, token).await;
    assert_forbidden_for(&reply, "system:serviceaccount:default:default");

    // Gone with its service account.
    assert_eq!(api.delete(&format!("{ACCOUNTS}/default")).await.status, 200);
    settle(&api).await;
    get_with_bearer(&api, SECRETS, token)
        .await
        .failure(401, "Unauthorized");
}

#[tokio::test]
async fn token_requests_are_checked_like_kube_apiserver_does() {
    let api = api().await;
    service_account(&api, "builder", None).await;
    service_account(&api, "other", None).await;
    let web = pod(&api, "web", "builder", None).await;
    let token_path = |sa: &str| format!("{ACCOUNTS}/{sa}/token");

    let missing = api.post(&token_path("ghost"), &json!({"spec": {}})).await;
    let status = missing.failure(404, "NotFound");
    assert_eq!(status["message"], "serviceaccounts \"ghost\" not found");

    let short = api
        .post(
            &token_path("builder"),
            &json!({"spec": {"expirationSeconds": 60}}),
        )
        .await;
    let status = short.failure(422, "Invalid");
    assert_eq!(
        status["message"],
        "TokenRequest.authentication.k8s.io \"builder\" is invalid: spec.expirationSeconds: Invalid value: 60: may not specify a duration less than 10 minutes"
    );

    let garbage = api
        .call(Method::POST, &token_path("builder"), JSON, "{not json")
        .await;
    garbage.failure(400, "BadRequest");
    api.post(&token_path("builder"), &json!({"kind": "Pod"}))
        .await
        .failure(400, "BadRequest");

    let bound = |name: &str, uid: &str| json!({"spec": {"boundObjectRef": {"apiVersion": "v1", "kind": "Pod", "name": name, "uid": uid}}});
    let web_uid = web["metadata"]["uid"].as_str().unwrap();
    let other_sa = api.post(&token_path("other"), &bound("web", web_uid)).await;
    other_sa.failure(400, "BadRequest");
    let stale = api
        .post(&token_path("builder"), &bound("web", "old-uid"))
        .await;
    stale.failure(409, "Conflict");
    let gone = api.post(&token_path("builder"), &bound("nope", "")).await;
    assert_eq!(
        gone.failure(404, "NotFound")["message"],
        "pods \"nope\" not found"
    );
    let secret_ref =
        json!({"spec": {"boundObjectRef": {"apiVersion": "v1", "kind": "Secret", "name": "s"}}});
    api.post(&token_path("builder"), &secret_ref)
        .await
        .failure(400, "BadRequest");

    // Without a uid the pod's is filled in.
    let ok = api.post(&token_path("builder"), &bound("web", "")).await;
    assert_eq!(ok.status, 201, "{}", ok.text());
    assert_eq!(ok.json()["spec"]["boundObjectRef"]["uid"], web_uid);
}

#[tokio::test]
async fn expired_foreign_garbage_or_misaddressed_tokens_are_unauthorized() {
    let api = api().await;
    let sa = service_account(&api, "builder", None).await;
    settle(&api).await;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let claims = |aud: &str, exp: i64| Claims {
        iss: ISSUER.into(),
        aud: vec![aud.into()],
        sub: "system:serviceaccount:default:builder".into(),
        iat: now - 7200,
        nbf: now - 7200,
        exp,
        jti: "t".into(),
        kubernetes: KubernetesClaims {
            namespace: "default".into(),
            serviceaccount: ObjectRef {
                name: "builder".into(),
                uid: sa["metadata"]["uid"].as_str().unwrap().into(),
            },
            pod: None,
            node: None,
        },
    };
    let ours = api.server.token_key.get().unwrap();
    let valid = ours.sign(&claims(ISSUER, now + 600)).unwrap();
    assert_forbidden_for(
        &get_with_bearer(&api, SECRETS, &valid).await,
        "system:serviceaccount:default:builder",
    );
    for refused in [
        ours.sign(&claims(ISSUER, now - 1)).unwrap(),
        ours.sign(&claims("vault", now + 600)).unwrap(),
        new_key().sign(&claims(ISSUER, now + 600)).unwrap(),
        "eyJhbGciOiJub25lIn0.e30.".to_string(),
        "a.b.c".to_string(),
        "not-a-token".to_string(),
    ] {
        let status = get_with_bearer(&api, SECRETS, &refused)
            .await
            .failure(401, "Unauthorized");
        assert_eq!(status["message"], "Unauthorized", "{refused}");
    }

    // A token for audiences other than the API server's is issued but not accepted here.
    let vault = TokenRequest {
        spec: TokenRequestSpec {
            audiences: vec!["vault".into()],
            ..TokenRequestSpec::default()
        },
        ..TokenRequest::default()
    };
    let token = request_token(api.client(), "builder", &vault)
        .await
        .unwrap();
    get_with_bearer(&api, SECRETS, &token)
        .await
        .failure(401, "Unauthorized");
}

fn volumes_and_mounts(pod: &Value) -> (Vec<Value>, Vec<Value>) {
    let list = |v: &Value| v.as_array().cloned().unwrap_or_default();
    (
        list(&pod["spec"]["volumes"]),
        list(&pod["spec"]["containers"][0]["volumeMounts"]),
    )
}

#[tokio::test]
async fn new_pods_mount_a_projected_token_unless_automount_is_off() {
    let api = api().await;
    // No `default` service account exists: the pod is admitted all the same.
    let plain = api
        .create(
            PODS,
            &json!({"metadata": {"name": "plain"}, "spec": {"containers": [{"name": "c", "image": "x"}]}}),
        )
        .await;
    assert_eq!(plain["spec"]["serviceAccountName"], "default");
    assert_eq!(plain["spec"]["serviceAccount"], "default");
    let (volumes, mounts) = volumes_and_mounts(&plain);
    assert_eq!(volumes.len(), 1);
    let name = volumes[0]["name"].as_str().unwrap();
    assert!(name.starts_with("kube-api-access-"), "{name}");
    assert_eq!(
        volumes[0]["projected"],
        json!({"defaultMode": 420, "sources": [
            {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
            {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
            {"downwardAPI": {"items": [{"path": "namespace",
                "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}}]}},
        ]})
    );
    assert_eq!(
        mounts,
        vec![
            json!({"name": name, "readOnly": true, "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount"})
        ]
    );

    let opted_out = api
        .create(
            PODS,
            &json!({"metadata": {"name": "opted-out"}, "spec": {"automountServiceAccountToken": false,
                "containers": [{"name": "c", "image": "x"}]}}),
        )
        .await;
    assert_eq!(volumes_and_mounts(&opted_out), (vec![], vec![]));

    service_account(&api, "quiet", Some(false)).await;
    settle(&api).await;
    let quiet = pod(&api, "quiet", "quiet", None).await;
    assert_eq!(volumes_and_mounts(&quiet), (vec![], vec![]));
    // The pod's own setting wins over its service account's.
    let overriding = api
        .create(
            PODS,
            &json!({"metadata": {"name": "overriding"}, "spec": {"serviceAccountName": "quiet",
                "automountServiceAccountToken": true, "containers": [{"name": "c", "image": "x"}]}}),
        )
        .await;
    assert_eq!(volumes_and_mounts(&overriding).0.len(), 1);
}

/// The claims of a token, read without verifying it.
fn claims_of(token: &str) -> Claims {
    use base64::Engine;
    let payload = token.split('.').nth(1).unwrap();
    let json = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .unwrap();
    serde_json::from_slice(&json).unwrap()
}

fn node(name: &str) -> User {
    User {
        name: format!("system:node:{name}"),
        groups: vec!["system:nodes".into()],
    }
}

#[tokio::test]
async fn a_node_gets_tokens_only_for_its_own_pods() {
    let api = api().await;
    service_account(&api, "builder", None).await;
    service_account(&api, "unused", None).await;
    let n1_node = api
        .create("/api/v1/nodes", &json!({"metadata": {"name": "n1"}}))
        .await;
    let mine = pod(&api, "mine", "builder", Some("n1")).await;
    let theirs = pod(&api, "theirs", "builder", Some("n2")).await;
    let configmaps: Api<ConfigMap> = Api::namespaced(api.client(), "default");
    for name in ["kube-root-ca.crt", "unrelated"] {
        let cm =
            serde_json::from_value(json!({"metadata": {"name": name}, "data": {"ca.crt": "pem"}}))
                .unwrap();
        configmaps
            .create(&PostParams::default(), &cm)
            .await
            .unwrap();
    }
    settle(&api).await;
    let n1 = api.client_as(node("n1"));

    let token = request_token(n1.clone(), "builder", &bound_to(&mine))
        .await
        .unwrap();
    let uid = |obj: &Value| obj["metadata"]["uid"].as_str().unwrap().to_string();
    let claims = claims_of(&token);
    assert_eq!(claims.sub, "system:serviceaccount:default:builder");
    assert_eq!(claims.aud, vec![ISSUER.to_string()]);
    assert_eq!(claims.exp - claims.iat, 3600);
    let bound = claims.kubernetes;
    assert_eq!(
        bound.pod,
        Some(ObjectRef {
            name: "mine".into(),
            uid: uid(&mine)
        })
    );
    assert_eq!(
        bound.node,
        Some(ObjectRef {
            name: "n1".into(),
            uid: uid(&n1_node)
        })
    );

    let forbidden = |result: kube::Result<String>| match result {
        Err(kube::Error::Api(status)) => {
            assert_eq!(status.code, 403, "{status:?}");
            status.message
        }
        other => panic!("expected 403, got {other:?}"),
    };
    let message = forbidden(request_token(n1.clone(), "builder", &bound_to(&theirs)).await);
    assert!(
        message.contains("scheduled on a different node"),
        "{message}"
    );
    let message = forbidden(request_token(n1.clone(), "builder", &TokenRequest::default()).await);
    assert!(message.contains("not bound to a pod"), "{message}");
    let message = forbidden(request_token(n1.clone(), "unused", &TokenRequest::default()).await);
    assert!(message.contains("no relationship found"), "{message}");

    // The CA config map its pods' token volumes project, and nothing else.
    let node_configmaps: Api<ConfigMap> = Api::namespaced(n1, "default");
    node_configmaps.get("kube-root-ca.crt").await.unwrap();
    match node_configmaps.get("unrelated").await {
        Err(kube::Error::Api(status)) => assert_eq!(status.code, 403),
        other => panic!("expected 403, got {other:?}"),
    }
}
