//! Roles and bindings, indexed for per-request evaluation: rebuilt from the watch cache when
//! any of them changes, so a request costs map lookups, never a store read.

use std::collections::HashMap;

use k8s_openapi::api::rbac::v1::{
    ClusterRole, ClusterRoleBinding, PolicyRule, Role, RoleBinding, RoleRef, Subject,
};
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::rules::{Attributes, rule_allows};
use super::subjects::UserInfo;

/// The RBAC objects as storage keys name their resources.
pub const ROLES: &str = "roles.rbac.authorization.k8s.io";
pub const CLUSTER_ROLES: &str = "clusterroles.rbac.authorization.k8s.io";
pub const ROLE_BINDINGS: &str = "rolebindings.rbac.authorization.k8s.io";
pub const CLUSTER_ROLE_BINDINGS: &str = "clusterrolebindings.rbac.authorization.k8s.io";

struct Binding {
    role_ref: RoleRef,
    subjects: Vec<Subject>,
}

/// Every role's rules and every binding, by namespace.
#[derive(Default)]
pub struct PolicyIndex {
    cluster_roles: HashMap<String, Vec<PolicyRule>>,
    /// By namespace, then name.
    roles: HashMap<String, HashMap<String, Vec<PolicyRule>>>,
    cluster_bindings: Vec<Binding>,
    bindings_by_namespace: HashMap<String, Vec<Binding>>,
}

/// The stored objects of the four RBAC kinds.
#[derive(Default)]
pub struct PolicyObjects<'a> {
    pub roles: Vec<&'a Value>,
    pub cluster_roles: Vec<&'a Value>,
    pub role_bindings: Vec<&'a Value>,
    pub cluster_role_bindings: Vec<&'a Value>,
}

/// An object as its k8s-openapi type; stored objects passed validation, so one that does not
/// decode is skipped (and grants nothing) rather than failing every request.
fn typed<T: DeserializeOwned>(obj: &Value) -> Option<T> {
    match T::deserialize(obj) {
        Ok(typed) => Some(typed),
        Err(err) => {
            tracing::warn!(error = %err, "ignoring an undecodable rbac object");
            None
        }
    }
}

impl PolicyIndex {
    pub fn build(objects: &PolicyObjects<'_>) -> PolicyIndex {
        let mut index = PolicyIndex::default();
        for role in objects.roles.iter().filter_map(|o| typed::<Role>(o)) {
            index
                .roles
                .entry(role.metadata.namespace.unwrap_or_default())
                .or_default()
                .insert(
                    role.metadata.name.unwrap_or_default(),
                    role.rules.unwrap_or_default(),
                );
        }
        for role in objects
            .cluster_roles
            .iter()
            .filter_map(|o| typed::<ClusterRole>(o))
        {
            let name = role.metadata.name.unwrap_or_default();
            index
                .cluster_roles
                .insert(name, role.rules.unwrap_or_default());
        }
        for binding in objects
            .cluster_role_bindings
            .iter()
            .filter_map(|o| typed::<ClusterRoleBinding>(o))
        {
            index.cluster_bindings.push(Binding {
                role_ref: binding.role_ref,
                subjects: binding.subjects.unwrap_or_default(),
            });
        }
        for binding in objects
            .role_bindings
            .iter()
            .filter_map(|o| typed::<RoleBinding>(o))
        {
            let namespace = binding.metadata.namespace.unwrap_or_default();
            index
                .bindings_by_namespace
                .entry(namespace)
                .or_default()
                .push(Binding {
                    role_ref: binding.role_ref,
                    subjects: binding.subjects.unwrap_or_default(),
                });
        }
        index
    }

    /// Whether a ClusterRoleBinding, or a RoleBinding in the request's namespace, binds
    /// `user` to a role with a rule that grants the request.
    pub fn allows(&self, user: &UserInfo<'_>, attrs: &Attributes<'_>) -> bool {
        let cluster_wide = self
            .cluster_bindings
            .iter()
            .filter(|b| b.role_ref.kind == "ClusterRole")
            .filter(|b| b.subjects.iter().any(|s| user.is_subject(s, None)))
            .any(|b| grants(self.cluster_roles.get(&b.role_ref.name), attrs));
        if cluster_wide {
            return true;
        }
        let Some(namespace) = attrs.namespace else {
            return false;
        };
        self.bindings_by_namespace
            .get(namespace)
            .into_iter()
            .flatten()
            .filter(|b| {
                b.subjects
                    .iter()
                    .any(|s| user.is_subject(s, Some(namespace)))
            })
            .any(|b| {
                let rules = match b.role_ref.kind.as_str() {
                    "ClusterRole" => self.cluster_roles.get(&b.role_ref.name),
                    "Role" => self
                        .roles
                        .get(namespace)
                        .and_then(|roles| roles.get(&b.role_ref.name)),
                    _ => None,
                };
                grants(rules, attrs)
            })
    }
}

/// Whether any of a role's rules grants the request; a missing role grants nothing.
fn grants(rules: Option<&Vec<PolicyRule>>, attrs: &Attributes<'_>) -> bool {
    rules.is_some_and(|rules| rules.iter().any(|rule| rule_allows(rule, attrs)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn jane() -> UserInfo<'static> {
        UserInfo::new("jane", &[])
    }

    fn attrs<'a>(verb: &'a str, namespace: Option<&'a str>) -> Attributes<'a> {
        Attributes {
            verb,
            group: "",
            resource: "pods",
            subresource: None,
            namespace,
            name: None,
        }
    }

    fn reader() -> Value {
        json!({"metadata": {"name": "reader"},
            "rules": [{"verbs": ["get", "list"], "apiGroups": [""], "resources": ["pods"]}]})
    }

    #[test]
    fn role_bindings_grant_only_in_their_namespace() {
        let local = json!({"metadata": {"name": "local", "namespace": "dev"},
            "rules": [{"verbs": ["delete"], "apiGroups": [""], "resources": ["pods"]}]});
        let by_cluster_role = json!({"metadata": {"name": "a", "namespace": "dev"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "reader"},
            "subjects": [{"kind": "User", "name": "jane"}]});
        let by_role = json!({"metadata": {"name": "b", "namespace": "dev"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "local"},
            "subjects": [{"kind": "User", "name": "jane"}]});
        let (cluster_role, objects) = (reader(), [&by_cluster_role, &by_role]);
        let index = PolicyIndex::build(&PolicyObjects {
            roles: vec![&local],
            cluster_roles: vec![&cluster_role],
            role_bindings: objects.to_vec(),
            ..PolicyObjects::default()
        });
        assert!(index.allows(&jane(), &attrs("list", Some("dev"))));
        assert!(index.allows(&jane(), &attrs("delete", Some("dev"))));
        assert!(!index.allows(&jane(), &attrs("list", Some("prod"))));
        assert!(!index.allows(&jane(), &attrs("list", None)));
        assert!(!index.allows(&UserInfo::new("joe", &[]), &attrs("list", Some("dev"))));
    }

    #[test]
    fn cluster_role_bindings_grant_everywhere_to_groups() {
        let binding = json!({"metadata": {"name": "readers"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "reader"},
            "subjects": [{"kind": "Group", "name": "devs"}]});
        let cluster_role = reader();
        let index = PolicyIndex::build(&PolicyObjects {
            cluster_roles: vec![&cluster_role],
            cluster_role_bindings: vec![&binding],
            ..PolicyObjects::default()
        });
        let groups = ["devs".to_string()];
        let dev = UserInfo::new("jane", &groups);
        assert!(index.allows(&dev, &attrs("list", None)));
        assert!(index.allows(&dev, &attrs("get", Some("prod"))));
        assert!(!index.allows(&dev, &attrs("create", Some("prod"))));
        assert!(!index.allows(&jane(), &attrs("list", None)));
    }
}
