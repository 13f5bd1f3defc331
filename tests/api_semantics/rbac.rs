//! Authorization through the router: RBAC bindings read from the watch cache, the Node
//! authorizer, and the bootstrap policy for bootstrap tokens and the anonymous user.

use axum::body::Body;
use http::{Method, Request};
use rkube_apiserver::auth::User;
use serde_json::{Value, json};

use crate::support::{JSON, MERGE, Reply, TestApi};

/// A server with the bootstrap policy in place and in its watch cache.
async fn api() -> TestApi {
    let api = TestApi::memory().await;
    rkube_apiserver::rbac::ensure_bootstrap_policy(&api.server)
        .await
        .unwrap();
    settle(&api).await;
    api
}

/// Waits until the watch cache, which authorization reads, has every write so far.
async fn settle(api: &TestApi) {
    let revision = api.server.store.current_revision().await.unwrap();
    api.server.cache.wait_for(revision).await.unwrap();
}

fn user(name: &str, groups: &[&str]) -> User {
    User {
        name: name.into(),
        groups: groups.iter().map(|g| g.to_string()).collect(),
    }
}

fn node(name: &str) -> User {
    user(&format!("system:node:{name}"), &["system:nodes"])
}

async fn send_as(
    api: &TestApi,
    who: &User,
    method: Method,
    path: &str,
    body: Option<(&str, Value)>,
) -> Reply {
    let builder = Request::builder()
        .method(method)
        .uri(path)
        .extension(who.clone());
    let request = match body {
        Some((content_type, body)) => builder
            .header(http::header::CONTENT_TYPE, content_type)
            .body(Body::from(body.to_string())),
        None => builder.body(Body::empty()),
    };
    api.send(request.unwrap()).await
}

async fn get_as(api: &TestApi, who: &User, path: &str) -> Reply {
    send_as(api, who, Method::GET, path, None).await
}

fn assert_forbidden(reply: &Reply, message: &str) {
    let status = reply.failure(403, "Forbidden");
    assert_eq!(status["message"], message);
}

fn binding(kind: &str, name: &str, role_kind: &str, role: &str, subject: Value) -> Value {
    json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": kind,
        "metadata": {"name": name},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": role_kind, "name": role},
        "subjects": [subject]})
}

const RBAC: &str = "/apis/rbac.authorization.k8s.io/v1";

#[tokio::test]
async fn a_view_binding_grants_reading_in_its_namespace_only() {
    let api = api().await;
    api.create(
        "/api/v1/namespaces/default/configmaps",
        &json!({"metadata": {"name": "settings"}}),
    )
    .await;
    api.create(
        &format!("{RBAC}/namespaces/default/rolebindings"),
        &binding(
            "RoleBinding",
            "jane-view",
            "ClusterRole",
            "view",
            json!({"kind": "User", "name": "jane"}),
        ),
    )
    .await;
    settle(&api).await;
    let jane = user("jane", &[]);

    assert_eq!(
        get_as(&api, &jane, "/api/v1/namespaces/default/pods")
            .await
            .status,
        200
    );
    let cm = get_as(
        &api,
        &jane,
        "/api/v1/namespaces/default/configmaps/settings",
    )
    .await;
    assert_eq!(cm.status, 200);
    assert_eq!(
        get_as(&api, &jane, "/api/v1/namespaces/default")
            .await
            .status,
        200
    );

    let create = send_as(
        &api,
        &jane,
        Method::POST,
        "/api/v1/namespaces/default/configmaps",
        Some((JSON, json!({"metadata": {"name": "mine"}}))),
    )
    .await;
    assert_forbidden(
        &create,
        "configmaps is forbidden: User \"jane\" cannot create resource \"configmaps\" in API group \"\" in the namespace \"default\"",
    );
    assert_forbidden(
        &get_as(&api, &jane, "/api/v1/namespaces/default/secrets").await,
        "secrets is forbidden: User \"jane\" cannot list resource \"secrets\" in API group \"\" in the namespace \"default\"",
    );
    assert_forbidden(
        &get_as(&api, &jane, "/api/v1/namespaces/kube-system/pods").await,
        "pods is forbidden: User \"jane\" cannot list resource \"pods\" in API group \"\" in the namespace \"kube-system\"",
    );
    assert_forbidden(
        &get_as(&api, &jane, "/api/v1/pods").await,
        "pods is forbidden: User \"jane\" cannot list resource \"pods\" in API group \"\" at the cluster scope",
    );
    assert_forbidden(
        &get_as(&api, &jane, "/api/v1/namespaces/kube-system").await,
        "namespaces \"kube-system\" is forbidden: User \"jane\" cannot get resource \"namespaces\" in API group \"\" in the namespace \"kube-system\"",
    );
    // Discovery is open to every authenticated user.
    for path in ["/api", "/apis", "/api/v1", "/apis/apps/v1", "/version"] {
        assert_eq!(get_as(&api, &jane, path).await.status, 200, "{path}");
    }

    // Removing the binding takes the access away again.
    let deleted = api
        .delete(&format!("{RBAC}/namespaces/default/rolebindings/jane-view"))
        .await;
    assert_eq!(deleted.status, 200, "{}", deleted.text());
    settle(&api).await;
    let again = get_as(&api, &jane, "/api/v1/namespaces/default/pods").await;
    again.failure(403, "Forbidden");
}

#[tokio::test]
async fn a_cluster_role_binding_grants_everywhere() {
    let api = api().await;
    api.create(
        &format!("{RBAC}/clusterrolebindings"),
        &binding(
            "ClusterRoleBinding",
            "devs-edit",
            "ClusterRole",
            "edit",
            json!({"kind": "Group", "name": "devs"}),
        ),
    )
    .await;
    settle(&api).await;
    let joe = user("joe", &["devs"]);
    for ns in ["default", "kube-system"] {
        let created = send_as(
            &api,
            &joe,
            Method::POST,
            &format!("/api/v1/namespaces/{ns}/configmaps"),
            Some((JSON, json!({"metadata": {"name": "joes"}}))),
        )
        .await;
        assert_eq!(created.status, 201, "{}", created.text());
    }
    assert_eq!(get_as(&api, &joe, "/api/v1/secrets").await.status, 200);
    let role = send_as(
        &api,
        &joe,
        Method::POST,
        &format!("{RBAC}/namespaces/default/roles"),
        Some((JSON, json!({"metadata": {"name": "r"}, "rules": []}))),
    )
    .await;
    assert_forbidden(
        &role,
        "roles.rbac.authorization.k8s.io is forbidden: User \"joe\" cannot create resource \"roles\" in API group \"rbac.authorization.k8s.io\" in the namespace \"default\"",
    );
    assert_eq!(
        get_as(&api, &user("jane", &[]), "/api/v1/secrets")
            .await
            .status,
        403
    );
}

#[tokio::test]
async fn a_role_grants_exactly_its_rules() {
    let api = api().await;
    api.create(
        &format!("{RBAC}/namespaces/default/roles"),
        &json!({"metadata": {"name": "logs"}, "rules": [
            {"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]},
            {"apiGroups": [""], "resources": ["pods/status"], "verbs": ["patch"]}]}),
    )
    .await;
    api.create(
        &format!("{RBAC}/namespaces/default/rolebindings"),
        &binding(
            "RoleBinding",
            "robot-logs",
            "Role",
            "logs",
            json!({"kind": "ServiceAccount", "name": "robot"}),
        ),
    )
    .await;
    api.create(
        "/api/v1/namespaces/default/pods",
        &json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": "x"}]}}),
    )
    .await;
    settle(&api).await;
    let robot = user("system:serviceaccount:default:robot", &[]);
    assert_eq!(
        get_as(&api, &robot, "/api/v1/namespaces/default/pods/p")
            .await
            .status,
        200
    );
    let patch = json!({"status": {"message": "hi"}});
    let status = send_as(
        &api,
        &robot,
        Method::PATCH,
        "/api/v1/namespaces/default/pods/p/status",
        Some((MERGE, patch.clone())),
    )
    .await;
    assert_eq!(status.status, 200, "{}", status.text());
    let whole = send_as(
        &api,
        &robot,
        Method::PATCH,
        "/api/v1/namespaces/default/pods/p",
        Some((MERGE, patch)),
    )
    .await;
    assert_forbidden(
        &whole,
        "pods \"p\" is forbidden: User \"system:serviceaccount:default:robot\" cannot patch resource \"pods\" in API group \"\" in the namespace \"default\"",
    );
}

fn pod(name: &str, node: &str, spec: Value) -> Value {
    let mut pod = json!({"metadata": {"name": name},
        "spec": {"nodeName": node, "containers": [{"name": "c", "image": "x"}]}});
    if let (Some(target), Some(extra)) = (pod["spec"].as_object_mut(), spec.as_object()) {
        target.extend(extra.clone());
    }
    pod
}

#[tokio::test]
async fn nodes_reach_only_what_their_pods_need() {
    let api = api().await;
    for name in ["mine", "theirs", "unused"] {
        api.create(
            "/api/v1/namespaces/default/secrets",
            &json!({"metadata": {"name": name}, "stringData": {"k": "v"}}),
        )
        .await;
    }
    api.create(
        "/api/v1/namespaces/default/pods",
        &pod(
            "p1",
            "n1",
            json!({"volumes": [{"name": "s", "secret": {"secretName": "mine"}}]}),
        ),
    )
    .await;
    api.create(
        "/api/v1/namespaces/default/pods",
        &pod(
            "p2",
            "n2",
            json!({"imagePullSecrets": [{"name": "theirs"}]}),
        ),
    )
    .await;
    settle(&api).await;
    let n1 = node("n1");

    let secret = get_as(&api, &n1, "/api/v1/namespaces/default/secrets/mine").await;
    assert_eq!(secret.status, 200, "{}", secret.text());
    assert_forbidden(
        &get_as(&api, &n1, "/api/v1/namespaces/default/secrets/theirs").await,
        "secrets \"theirs\" is forbidden: User \"system:node:n1\" cannot get resource \"secrets\" in API group \"\" in the namespace \"default\": no relationship found between node 'n1' and this object",
    );
    get_as(&api, &n1, "/api/v1/namespaces/default/secrets")
        .await
        .failure(403, "Forbidden");
    let pods = get_as(&api, &n1, "/api/v1/pods?fieldSelector=spec.nodeName%3Dn1").await;
    assert_eq!(pods.status, 200);

    // Its own Node: create, patch and patch status; never another node.
    let own = send_as(
        &api,
        &n1,
        Method::POST,
        "/api/v1/nodes",
        Some((JSON, json!({"metadata": {"name": "n1"}}))),
    )
    .await;
    assert_eq!(own.status, 201, "{}", own.text());
    let other = send_as(
        &api,
        &n1,
        Method::POST,
        "/api/v1/nodes",
        Some((JSON, json!({"metadata": {"name": "n2"}}))),
    )
    .await;
    assert_forbidden(
        &other,
        "nodes \"n2\" is forbidden: node \"n1\" is not allowed to modify node \"n2\"",
    );
    api.create("/api/v1/nodes", &json!({"metadata": {"name": "n2"}}))
        .await;
    settle(&api).await;
    let labels = json!({"metadata": {"labels": {"a": "b"}}});
    for path in ["/api/v1/nodes/n1", "/api/v1/nodes/n1/status"] {
        let patched = send_as(
            &api,
            &n1,
            Method::PATCH,
            path,
            Some((MERGE, labels.clone())),
        )
        .await;
        assert_eq!(patched.status, 200, "{path}: {}", patched.text());
    }
    let foreign = send_as(
        &api,
        &n1,
        Method::PATCH,
        "/api/v1/nodes/n2/status",
        Some((MERGE, labels)),
    )
    .await;
    assert_forbidden(
        &foreign,
        "nodes \"n2\" is forbidden: User \"system:node:n1\" cannot patch resource \"nodes/status\" in API group \"\" at the cluster scope: node \"n1\" is not allowed to modify node \"n2\"",
    );

    // Status and deletion of its own pods only.
    let status = json!({"status": {"phase": "Running"}});
    let mine = send_as(
        &api,
        &n1,
        Method::PATCH,
        "/api/v1/namespaces/default/pods/p1/status",
        Some((MERGE, status.clone())),
    )
    .await;
    assert_eq!(mine.status, 200, "{}", mine.text());
    send_as(
        &api,
        &n1,
        Method::PATCH,
        "/api/v1/namespaces/default/pods/p2/status",
        Some((MERGE, status)),
    )
    .await
    .failure(403, "Forbidden");
    send_as(
        &api,
        &n1,
        Method::DELETE,
        "/api/v1/namespaces/default/pods/p2",
        None,
    )
    .await
    .failure(403, "Forbidden");

    // Its own Lease, and events.
    let lease = |name: &str| json!({"metadata": {"name": name}, "spec": {"holderIdentity": name}});
    let leases = "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases";
    let created = send_as(&api, &n1, Method::POST, leases, Some((JSON, lease("n1")))).await;
    assert_eq!(created.status, 201, "{}", created.text());
    send_as(&api, &n1, Method::POST, leases, Some((JSON, lease("n2"))))
        .await
        .failure(403, "Forbidden");
    let event = json!({"metadata": {"name": "e"}, "involvedObject": {"kind": "Pod", "name": "p1"},
        "reason": "Started", "message": "started"});
    let recorded = send_as(
        &api,
        &n1,
        Method::POST,
        "/api/v1/namespaces/default/events",
        Some((JSON, event)),
    )
    .await;
    assert_eq!(recorded.status, 201, "{}", recorded.text());
    settle(&api).await;
    let event = get_as(&api, &n1, "/api/v1/namespaces/default/events/e").await;
    assert_eq!(event.status, 200, "{}", event.text());
    get_as(&api, &n1, "/api/v1/namespaces/default/events")
        .await
        .failure(403, "Forbidden");
}

#[tokio::test]
async fn bootstrappers_and_the_anonymous_user_keep_their_narrow_access() {
    let api = api().await;
    let bootstrapper = user("system:bootstrap:abcdef", &["system:bootstrappers"]);
    let csrs = "/apis/certificates.k8s.io/v1/certificatesigningrequests";
    assert_eq!(get_as(&api, &bootstrapper, csrs).await.status, 200);
    assert_forbidden(
        &get_as(
            &api,
            &bootstrapper,
            "/api/v1/namespaces/kube-system/secrets",
        )
        .await,
        "secrets is forbidden: User \"system:bootstrap:abcdef\" cannot list resource \"secrets\" in API group \"\" in the namespace \"kube-system\"",
    );
    send_as(
        &api,
        &bootstrapper,
        Method::DELETE,
        &format!("{csrs}/x"),
        None,
    )
    .await
    .failure(403, "Forbidden");

    api.create(
        "/api/v1/namespaces/kube-public/configmaps",
        &json!({"metadata": {"name": "cluster-info"}, "data": {"kubeconfig": "x"}}),
    )
    .await;
    api.create(
        "/api/v1/namespaces/kube-public/configmaps",
        &json!({"metadata": {"name": "other"}}),
    )
    .await;
    settle(&api).await;
    let anonymous = User::anonymous();
    let info = get_as(
        &api,
        &anonymous,
        "/api/v1/namespaces/kube-public/configmaps/cluster-info",
    )
    .await;
    assert_eq!(info.status, 200, "{}", info.text());
    get_as(
        &api,
        &anonymous,
        "/api/v1/namespaces/kube-public/configmaps/other",
    )
    .await
    .failure(403, "Forbidden");
    send_as(
        &api,
        &anonymous,
        Method::PUT,
        "/api/v1/namespaces/kube-public/configmaps/cluster-info",
        Some((JSON, json!({"metadata": {"name": "cluster-info"}}))),
    )
    .await
    .failure(403, "Forbidden");
}

#[tokio::test]
async fn rbac_objects_print_as_kubectl_shows_them() {
    let api = api().await;
    api.create(
        &format!("{RBAC}/namespaces/default/rolebindings"),
        &binding(
            "RoleBinding",
            "b",
            "ClusterRole",
            "view",
            json!({"kind": "ServiceAccount", "name": "robot", "namespace": "ci"}),
        ),
    )
    .await;
    let request = crate::support::request(
        Method::GET,
        &format!("{RBAC}/namespaces/default/rolebindings"),
        "",
        Body::empty(),
    );
    let (mut parts, body) = request.into_parts();
    parts.headers.insert(
        http::header::ACCEPT,
        "application/json;as=Table;g=meta.k8s.io;v=v1"
            .parse()
            .unwrap(),
    );
    let table = api.send(Request::from_parts(parts, body)).await.json();
    let columns: Vec<&str> = table["columnDefinitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        columns,
        ["Name", "Role", "Age", "Users", "Groups", "ServiceAccounts"]
    );
    let cells = &table["rows"][0]["cells"];
    assert_eq!(cells[1], "ClusterRole/view");
    assert_eq!(cells[5], "ci/robot");

    // The roleRef of a binding cannot change.
    let changed = api
        .patch(
            &format!("{RBAC}/namespaces/default/rolebindings/b"),
            MERGE,
            &json!({"roleRef": {"name": "edit"}}),
        )
        .await;
    changed.failure(422, "Invalid");
}
