//! The Node authorizer and the NodeRestriction checks on creates: a kubelet
//! (`system:node:<name>` in `system:nodes`) may read what pods bound to its node reference,
//! and change only its own Node, its own Lease and its own pods, and get tokens only for
//! its pods' service accounts, bound to those pods, as kube-apiserver's
//! `--authorization-mode=Node` with the NodeRestriction admission plugin allows.

use rkube_api::resources::ResourceInfo;
use serde_json::Value;

use crate::auth::User;
use crate::cache::{ROOT, WatchCache};
use crate::error::{ApiError, ApiResult, Target as ErrorTarget};

use super::rules::Attributes;
use super::subjects::UserInfo;

pub const NODES_GROUP: &str = "system:nodes";
pub const NODE_USER_PREFIX: &str = "system:node:";
const LEASE_NAMESPACE: &str = "kube-node-lease";
const READ: &[&str] = &["get", "list", "watch"];

/// What the Node authorizer says; its reason is appended to a Forbidden message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Allow,
    Deny(String),
    NoOpinion(Option<String>),
}

/// The node a kubelet's credential names, when the user is one.
pub fn node_name<'a>(user: &UserInfo<'a>) -> Option<&'a str> {
    let name = user.name.strip_prefix(NODE_USER_PREFIX)?;
    (user.in_group(NODES_GROUP) && !name.is_empty()).then_some(name)
}

pub fn authorize(cache: &WatchCache, node: &str, attrs: &Attributes<'_>) -> Decision {
    let verb = attrs.verb;
    let reads = READ.contains(&verb);
    match (attrs.group, attrs.resource, attrs.subresource) {
        ("", "secrets" | "configmaps" | "persistentvolumeclaims", _) => {
            referenced_object(cache, node, attrs)
        }
        ("", "pods", None) if reads => Decision::Allow,
        ("", "serviceaccounts", Some("token")) if verb == "create" => {
            service_account_of_own_pod(cache, node, attrs)
        }
        ("", "pods", None) if verb == "delete" => own_pod(
            cache,
            node,
            attrs,
            "can only delete pods with spec.nodeName set to itself",
        ),
        ("", "pods", Some("status")) if matches!(verb, "get" | "update" | "patch") => own_pod(
            cache,
            node,
            attrs,
            "can only update pod status for pods with spec.nodeName set to itself",
        ),
        ("", "nodes", None | Some("status")) if reads => Decision::Allow,
        ("", "nodes", None) if verb == "create" => Decision::Allow,
        ("", "nodes", None | Some("status")) if matches!(verb, "update" | "patch" | "delete") => {
            match attrs.name {
                Some(name) if name == node => Decision::Allow,
                name => Decision::Deny(format!(
                    "node \"{node}\" is not allowed to modify node \"{}\"",
                    name.unwrap_or_default()
                )),
            }
        }
        ("", "services" | "endpoints", None)
        | ("discovery.k8s.io", "endpointslices", None)
        | ("node.k8s.io", "runtimeclasses", None)
            if reads =>
        {
            Decision::Allow
        }
        // `get` beyond kube's node rules: the event recorder reads a repeated event to bump
        // its count.
        ("" | "events.k8s.io", "events", None)
            if matches!(verb, "create" | "get" | "update" | "patch") =>
        {
            Decision::Allow
        }
        ("coordination.k8s.io", "leases", None) if attrs.namespace == Some(LEASE_NAMESPACE) => {
            match (verb, attrs.name) {
                ("create", _) => Decision::Allow,
                ("get" | "update" | "patch" | "delete", Some(name)) if name == node => {
                    Decision::Allow
                }
                ("get" | "update" | "patch" | "delete", Some(_)) => {
                    Decision::Deny(LEASE_MISMATCH.to_string())
                }
                _ => Decision::NoOpinion(None),
            }
        }
        ("certificates.k8s.io", "certificatesigningrequests", None)
            if matches!(verb, "create" | "get" | "list" | "watch") =>
        {
            Decision::Allow
        }
        _ => Decision::NoOpinion(None),
    }
}

const LEASE_MISMATCH: &str = "can only access node lease with the same name as the requesting node";

/// Reading a secret, config map or claim: only one a pod bound to the node refers to.
fn referenced_object(cache: &WatchCache, node: &str, attrs: &Attributes<'_>) -> Decision {
    let (Some(namespace), Some(name)) = (attrs.namespace, attrs.name) else {
        return Decision::NoOpinion(Some(
            "can only get individual resources of this type".into(),
        ));
    };
    if attrs.verb != "get" || attrs.subresource.is_some() {
        return Decision::NoOpinion(Some(
            "can only get individual resources of this type".into(),
        ));
    }
    let (pods, _) = cache.list(&format!("{ROOT}pods/{namespace}/"));
    let referenced = pods
        .iter()
        .map(|p| &p.object)
        .filter(|pod| bound_to(pod, node))
        .any(|pod| refers_to(pod, attrs.resource, name));
    if referenced {
        Decision::Allow
    } else {
        Decision::NoOpinion(Some(format!(
            "no relationship found between node '{node}' and this object"
        )))
    }
}

/// A token for a service account: only one that a pod bound to the node runs as (which
/// pod the token is bound to is checked by [`admit_token_request`], which sees the body).
fn service_account_of_own_pod(cache: &WatchCache, node: &str, attrs: &Attributes<'_>) -> Decision {
    let (Some(namespace), Some(name)) = (attrs.namespace, attrs.name) else {
        return Decision::NoOpinion(None);
    };
    let (pods, _) = cache.list(&format!("{ROOT}pods/{namespace}/"));
    let used = pods
        .iter()
        .map(|p| &p.object)
        .any(|pod| bound_to(pod, node) && crate::serviceaccount::of_pod(pod) == name);
    if used {
        Decision::Allow
    } else {
        Decision::NoOpinion(Some(format!(
            "no relationship found between node '{node}' and this object"
        )))
    }
}

/// A write to a pod: only to one bound to the node.
fn own_pod(cache: &WatchCache, node: &str, attrs: &Attributes<'_>, rule: &str) -> Decision {
    let pod = match (attrs.namespace, attrs.name) {
        (Some(ns), Some(name)) => cache.get(&format!("{ROOT}pods/{ns}/{name}")),
        _ => None,
    };
    if pod.is_some_and(|pod| bound_to(&pod.object, node)) {
        Decision::Allow
    } else {
        Decision::Deny(format!("node \"{node}\" {rule}"))
    }
}

fn bound_to(pod: &Value, node: &str) -> bool {
    pod.pointer("/spec/nodeName").and_then(Value::as_str) == Some(node)
}

fn str_at<'a>(v: &'a Value, pointer: &str) -> Option<&'a str> {
    v.pointer(pointer).and_then(Value::as_str)
}

fn array<'a>(v: &'a Value, pointer: &str) -> impl Iterator<Item = &'a Value> {
    v.pointer(pointer)
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
}

/// Whether `pod` names the object through a volume, a projected source, an env var, envFrom
/// or an image pull secret.
fn refers_to(pod: &Value, resource: &str, name: &str) -> bool {
    let named = |v: &Value, pointer: &str| str_at(v, pointer) == Some(name);
    let containers = [
        "/spec/initContainers",
        "/spec/containers",
        "/spec/ephemeralContainers",
    ]
    .into_iter()
    .flat_map(|p| array(pod, p));
    let volumes = || array(pod, "/spec/volumes");
    let projected = || volumes().flat_map(|v| array(v, "/projected/sources"));
    match resource {
        "secrets" => {
            array(pod, "/spec/imagePullSecrets").any(|s| named(s, "/name"))
                || volumes().any(|v| named(v, "/secret/secretName"))
                || projected().any(|s| named(s, "/secret/name"))
                || containers.into_iter().any(|c| {
                    array(c, "/env").any(|e| named(e, "/valueFrom/secretKeyRef/name"))
                        || array(c, "/envFrom").any(|e| named(e, "/secretRef/name"))
                })
        }
        "configmaps" => {
            volumes().any(|v| named(v, "/configMap/name"))
                || projected().any(|s| named(s, "/configMap/name"))
                || containers.into_iter().any(|c| {
                    array(c, "/env").any(|e| named(e, "/valueFrom/configMapKeyRef/name"))
                        || array(c, "/envFrom").any(|e| named(e, "/configMapRef/name"))
                })
        }
        "persistentvolumeclaims" => volumes().any(|v| named(v, "/persistentVolumeClaim/claimName")),
        _ => false,
    }
}

/// NodeRestriction on creates, where the name is in the body: a kubelet may create only its
/// own Node and its own Lease.
pub fn admit_create(user: &User, resource: &ResourceInfo, obj: &Value) -> ApiResult<()> {
    let Some(node) = node_name(&UserInfo::of(user)) else {
        return Ok(());
    };
    let name = crate::objects::name(obj);
    let message = match (resource.group, resource.plural) {
        ("", "nodes") if name != node => {
            format!("node \"{node}\" is not allowed to modify node \"{name}\"")
        }
        ("coordination.k8s.io", "leases")
            if crate::objects::namespace(obj) == Some(LEASE_NAMESPACE) && name != node =>
        {
            LEASE_MISMATCH.to_string()
        }
        _ => return Ok(()),
    };
    Err(ApiError::Forbidden {
        target: ErrorTarget::new(resource, name),
        message,
    })
}

/// NodeRestriction on `serviceaccounts/token`: a kubelet's token must be bound to a pod
/// (`pod`, already resolved from the request's boundObjectRef) that runs on its node.
pub fn admit_token_request(
    user: &User,
    target: &ErrorTarget,
    pod: Option<&Value>,
) -> ApiResult<()> {
    let Some(node) = node_name(&UserInfo::of(user)) else {
        return Ok(());
    };
    let message = match pod {
        None => "node requested token not bound to a pod",
        Some(pod) if !bound_to(pod, node) => {
            "node requested token bound to a pod scheduled on a different node"
        }
        Some(_) => return Ok(()),
    };
    Err(ApiError::Forbidden {
        target: target.clone(),
        message: message.into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn pods_refer_to_secrets_and_config_maps_in_many_ways() {
        let pod = json!({"spec": {
            "imagePullSecrets": [{"name": "pull"}],
            "volumes": [{"name": "a", "secret": {"secretName": "vol"}},
                {"name": "b", "configMap": {"name": "cm-vol"}},
                {"name": "c", "projected": {"sources": [{"secret": {"name": "proj"}},
                    {"configMap": {"name": "kube-root-ca.crt"}}]}},
                {"name": "d", "persistentVolumeClaim": {"claimName": "data"}}],
            "initContainers": [{"name": "i", "envFrom": [{"configMapRef": {"name": "cm-init"}}]}],
            "containers": [{"name": "c", "env": [{"name": "X",
                "valueFrom": {"secretKeyRef": {"name": "env", "key": "k"}}}]}]}});
        for secret in ["pull", "vol", "proj", "env"] {
            assert!(refers_to(&pod, "secrets", secret), "{secret}");
        }
        assert!(!refers_to(&pod, "secrets", "cm-vol"));
        assert!(refers_to(&pod, "configmaps", "cm-vol"));
        assert!(refers_to(&pod, "configmaps", "cm-init"));
        assert!(refers_to(&pod, "configmaps", "kube-root-ca.crt"));
        assert!(!refers_to(&pod, "configmaps", "pull"));
        assert!(refers_to(&pod, "persistentvolumeclaims", "data"));
    }

    #[test]
    fn only_node_users_are_nodes() {
        let groups = [NODES_GROUP.to_string()];
        assert_eq!(
            node_name(&UserInfo::new("system:node:n1", &groups)),
            Some("n1")
        );
        assert_eq!(node_name(&UserInfo::new("system:node:n1", &[])), None);
        assert_eq!(node_name(&UserInfo::new("jane", &groups)), None);
    }

    #[test]
    fn nodes_create_only_their_own_node_and_lease() {
        let user = User {
            name: "system:node:n1".into(),
            groups: vec![NODES_GROUP.into()],
        };
        let nodes = rkube_api::resources::find("", "v1", "nodes").unwrap();
        let leases = rkube_api::resources::find("coordination.k8s.io", "v1", "leases").unwrap();
        assert!(admit_create(&user, nodes, &json!({"metadata": {"name": "n1"}})).is_ok());
        let err = admit_create(&user, nodes, &json!({"metadata": {"name": "n2"}})).unwrap_err();
        assert_eq!(
            err.to_string(),
            "nodes \"n2\" is forbidden: node \"n1\" is not allowed to modify node \"n2\""
        );
        let lease = |name: &str| json!({"metadata": {"name": name, "namespace": LEASE_NAMESPACE}});
        assert!(admit_create(&user, leases, &lease("n1")).is_ok());
        assert!(admit_create(&user, leases, &lease("n2")).is_err());
    }

    #[test]
    fn node_tokens_are_bound_to_pods_on_the_node() {
        let node = User {
            name: "system:node:n1".into(),
            groups: vec![NODES_GROUP.into()],
        };
        let target = ErrorTarget::default();
        let on = |n: &str| json!({"spec": {"nodeName": n}});
        assert!(admit_token_request(&node, &target, Some(&on("n1"))).is_ok());
        let elsewhere = admit_token_request(&node, &target, Some(&on("n2"))).unwrap_err();
        assert!(
            elsewhere
                .to_string()
                .contains("scheduled on a different node")
        );
        let unbound = admit_token_request(&node, &target, None).unwrap_err();
        assert!(unbound.to_string().contains("not bound to a pod"));
        let admin = User {
            name: "jane".into(),
            groups: vec![],
        };
        assert!(admit_token_request(&admin, &target, None).is_ok());
    }
}
