//! The bootstrap policy the API server keeps in existence, as kube-apiserver and kubeadm
//! create it: cluster-admin for `system:masters`, the admin/edit/view user-facing roles
//! (written out, without aggregation), discovery for every authenticated user, CSR access for
//! bootstrap-token users and `kube-public/cluster-info` for the anonymous user.

use serde_json::{Value, json};

use crate::bootstrap::BOOTSTRAPPERS;
use crate::run::{CLUSTER_INFO, RunError};
use crate::server::ApiServer;

use super::subjects::{AUTHENTICATED, MASTERS};

const RBAC_API: &str = "rbac.authorization.k8s.io/v1";
const RBAC_GROUP: &str = "rbac.authorization.k8s.io";
const READ: &[&str] = &["get", "list", "watch"];
const WRITE: &[&str] = &["create", "delete", "deletecollection", "patch", "update"];

fn rule(groups: &[&str], resources: &[&str], verbs: &[&str]) -> Value {
    json!({"apiGroups": groups, "resources": resources, "verbs": verbs})
}

fn named_rule(groups: &[&str], resources: &[&str], names: &[&str], verbs: &[&str]) -> Value {
    json!({"apiGroups": groups, "resources": resources, "resourceNames": names, "verbs": verbs})
}

fn metadata(name: &str, namespace: Option<&str>) -> Value {
    let mut meta = json!({
        "name": name,
        "labels": {"kubernetes.io/bootstrapping": "rbac-defaults"},
        "annotations": {"rbac.authorization.kubernetes.io/autoupdate": "true"},
    });
    if let Some(namespace) = namespace {
        meta["namespace"] = json!(namespace);
    }
    meta
}

fn cluster_role(name: &str, rules: Vec<Value>) -> Value {
    json!({"apiVersion": RBAC_API, "kind": "ClusterRole",
        "metadata": metadata(name, None), "rules": rules})
}

fn subject(kind: &str, name: &str) -> Value {
    json!({"apiGroup": RBAC_GROUP, "kind": kind, "name": name})
}

fn cluster_binding(name: &str, role: &str, subject: Value) -> Value {
    json!({"apiVersion": RBAC_API, "kind": "ClusterRoleBinding",
        "metadata": metadata(name, None),
        "roleRef": {"apiGroup": RBAC_GROUP, "kind": "ClusterRole", "name": role},
        "subjects": [subject]})
}

/// What `view` grants: reading everything in a namespace except secrets.
fn view_rules() -> Vec<Value> {
    vec![
        rule(
            &[""],
            &[
                "configmaps",
                "endpoints",
                "persistentvolumeclaims",
                "persistentvolumeclaims/status",
                "pods",
                "replicationcontrollers",
                "replicationcontrollers/scale",
                "serviceaccounts",
                "services",
                "services/status",
            ],
            READ,
        ),
        rule(
            &[""],
            &[
                "bindings",
                "events",
                "limitranges",
                "namespaces/status",
                "pods/log",
                "pods/status",
                "replicationcontrollers/status",
                "resourcequotas",
                "resourcequotas/status",
            ],
            READ,
        ),
        rule(&[""], &["namespaces"], READ),
        rule(&["discovery.k8s.io"], &["endpointslices"], READ),
        rule(
            &["apps"],
            &[
                "controllerrevisions",
                "daemonsets",
                "daemonsets/status",
                "deployments",
                "deployments/scale",
                "deployments/status",
                "replicasets",
                "replicasets/scale",
                "replicasets/status",
                "statefulsets",
                "statefulsets/scale",
                "statefulsets/status",
            ],
            READ,
        ),
        rule(
            &["autoscaling"],
            &[
                "horizontalpodautoscalers",
                "horizontalpodautoscalers/status",
            ],
            READ,
        ),
        rule(
            &["batch"],
            &["cronjobs", "cronjobs/status", "jobs", "jobs/status"],
            READ,
        ),
        rule(
            &["policy"],
            &["poddisruptionbudgets", "poddisruptionbudgets/status"],
            READ,
        ),
        rule(
            &["networking.k8s.io"],
            &["ingresses", "ingresses/status", "networkpolicies"],
            READ,
        ),
    ]
}

/// What `edit` adds to `view`: writing workloads, config and secrets, exec and logs.
fn edit_rules() -> Vec<Value> {
    let mut rules = vec![
        rule(
            &[""],
            &[
                "pods",
                "pods/attach",
                "pods/exec",
                "pods/portforward",
                "pods/proxy",
            ],
            WRITE,
        ),
        rule(
            &[""],
            &[
                "configmaps",
                "events",
                "persistentvolumeclaims",
                "replicationcontrollers",
                "replicationcontrollers/scale",
                "secrets",
                "serviceaccounts",
                "services",
                "services/proxy",
            ],
            WRITE,
        ),
        rule(&[""], &["serviceaccounts/token"], &["create"]),
        rule(
            &[""],
            &[
                "pods/attach",
                "pods/exec",
                "pods/portforward",
                "pods/proxy",
                "secrets",
                "services/proxy",
            ],
            READ,
        ),
        rule(&[""], &["serviceaccounts"], &["impersonate"]),
        rule(
            &["apps"],
            &[
                "daemonsets",
                "deployments",
                "deployments/rollback",
                "deployments/scale",
                "replicasets",
                "replicasets/scale",
                "statefulsets",
                "statefulsets/scale",
            ],
            WRITE,
        ),
        rule(&["autoscaling"], &["horizontalpodautoscalers"], WRITE),
        rule(&["batch"], &["cronjobs", "jobs"], WRITE),
        rule(&["discovery.k8s.io"], &["endpointslices"], WRITE),
        rule(&["policy"], &["poddisruptionbudgets"], WRITE),
        rule(
            &["networking.k8s.io"],
            &["ingresses", "networkpolicies"],
            WRITE,
        ),
    ];
    rules.extend(view_rules());
    rules
}

/// What `admin` adds to `edit`: managing who may do what in the namespace.
fn admin_rules() -> Vec<Value> {
    let mut rules = vec![rule(
        &[RBAC_GROUP],
        &["rolebindings", "roles"],
        &[
            "create",
            "delete",
            "deletecollection",
            "get",
            "list",
            "patch",
            "update",
            "watch",
        ],
    )];
    rules.extend(edit_rules());
    rules
}

/// The Role and RoleBinding in kube-public that let anyone read cluster-info (kubeadm's).
const CLUSTER_INFO_ROLE: &str = "kubeadm:bootstrap-signer-clusterinfo";

/// Every bootstrap policy object, with the plural of its kind.
pub fn bootstrap_policy() -> Vec<(&'static str, Value)> {
    let everything = vec![
        rule(&["*"], &["*"], &["*"]),
        json!({"nonResourceURLs": ["*"], "verbs": ["*"]}),
    ];
    let discovery = vec![json!({"verbs": ["get"], "nonResourceURLs": [
        "/api", "/api/*", "/apis", "/apis/*", "/healthz", "/livez", "/openapi",
        "/openapi/*", "/readyz", "/version", "/version/"]})];
    let csrs = vec![rule(
        &["certificates.k8s.io"],
        &["certificatesigningrequests"],
        &["create", "get", "list", "watch"],
    )];
    let cluster_info = json!({"apiVersion": RBAC_API, "kind": "Role",
        "metadata": metadata(CLUSTER_INFO_ROLE, Some("kube-public")),
        "rules": [named_rule(&[""], &["configmaps"], &[CLUSTER_INFO], &["get"])]});
    let cluster_info_binding = json!({"apiVersion": RBAC_API, "kind": "RoleBinding",
        "metadata": metadata(CLUSTER_INFO_ROLE, Some("kube-public")),
        "roleRef": {"apiGroup": RBAC_GROUP, "kind": "Role", "name": CLUSTER_INFO_ROLE},
        "subjects": [subject("User", crate::auth::ANONYMOUS)]});
    vec![
        ("clusterroles", cluster_role("cluster-admin", everything)),
        ("clusterroles", cluster_role("admin", admin_rules())),
        ("clusterroles", cluster_role("edit", edit_rules())),
        ("clusterroles", cluster_role("view", view_rules())),
        ("clusterroles", cluster_role("system:discovery", discovery)),
        (
            "clusterroles",
            cluster_role("system:node-bootstrapper", csrs),
        ),
        (
            "clusterrolebindings",
            cluster_binding("cluster-admin", "cluster-admin", subject("Group", MASTERS)),
        ),
        (
            "clusterrolebindings",
            cluster_binding(
                "system:discovery",
                "system:discovery",
                subject("Group", AUTHENTICATED),
            ),
        ),
        (
            "clusterrolebindings",
            cluster_binding(
                "kubeadm:kubelet-bootstrap",
                "system:node-bootstrapper",
                subject("Group", BOOTSTRAPPERS),
            ),
        ),
        ("roles", cluster_info),
        ("rolebindings", cluster_info_binding),
    ]
}

/// Creates the bootstrap policy objects that are missing; existing ones, possibly edited by
/// the cluster's admins, are left alone.
pub async fn ensure_bootstrap_policy(server: &ApiServer) -> Result<(), RunError> {
    for (plural, obj) in bootstrap_policy() {
        crate::run::create_if_missing(server, (RBAC_GROUP, "v1", plural), obj).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rkube_api::resources::find;
    use rkube_api::validation::{decode_strict, validate};

    #[test]
    fn the_bootstrap_policy_is_valid() {
        for (plural, obj) in bootstrap_policy() {
            let resource = find(RBAC_GROUP, "v1", plural).unwrap();
            assert_eq!(decode_strict(resource, &obj).unwrap(), Vec::<String>::new());
            assert_eq!(validate(resource, &obj, None), vec![], "{obj}");
        }
    }
}
