//! Roles, ClusterRoles and their bindings, as kube-apiserver's rbac validation checks them.

use serde_json::Value;

use super::cause::{Causes, at, idx, shown};
use super::container::items;
use super::meta::str_at;
use super::names::{is_dns1123_subdomain, is_path_segment_name};

const RBAC_GROUP: &str = "rbac.authorization.k8s.io";

/// `namespaced` is true for Roles, whose rules cannot name non-resource URLs.
pub(crate) fn validate_role(obj: &Value, namespaced: bool, c: &mut Causes) {
    for (i, rule) in items(obj, "rules").iter().enumerate() {
        validate_rule(rule, namespaced, &idx("rules", i), c);
    }
}

fn validate_rule(rule: &Value, namespaced: bool, path: &str, c: &mut Causes) {
    if items(rule, "verbs").is_empty() {
        c.required(&at(path, "verbs"), "verbs must contain at least one value");
    }
    let urls = at(path, "nonResourceURLs");
    if !items(rule, "nonResourceURLs").is_empty() {
        let urls_value = shown(rule.get("nonResourceURLs").unwrap_or(&Value::Null));
        if namespaced {
            c.invalid(
                &urls,
                &urls_value,
                "namespaced rules cannot apply to non-resource URLs",
            );
        }
        let names_resources = ["apiGroups", "resources", "resourceNames"]
            .iter()
            .any(|key| !items(rule, key).is_empty());
        if names_resources {
            c.invalid(
                &urls,
                &urls_value,
                "rules cannot apply to both regular resources and non-resource URLs",
            );
        }
        return;
    }
    if items(rule, "apiGroups").is_empty() {
        c.required(
            &at(path, "apiGroups"),
            "resource rules must supply at least one api group",
        );
    }
    if items(rule, "resources").is_empty() {
        c.required(
            &at(path, "resources"),
            "resource rules must supply at least one resource",
        );
    }
}

/// `namespaced` is true for RoleBindings, which may refer to a Role as well as a ClusterRole.
pub(crate) fn validate_binding(obj: &Value, old: Option<&Value>, namespaced: bool, c: &mut Causes) {
    let role_ref = obj.get("roleRef").unwrap_or(&Value::Null);
    let group = str_at(role_ref, "apiGroup");
    if group != RBAC_GROUP {
        c.not_supported("roleRef.apiGroup", group, &[RBAC_GROUP]);
    }
    let kinds: &[&str] = if namespaced {
        &["Role", "ClusterRole"]
    } else {
        &["ClusterRole"]
    };
    let kind = str_at(role_ref, "kind");
    if !kinds.contains(&kind) {
        c.not_supported("roleRef.kind", kind, kinds);
    }
    let name = str_at(role_ref, "name");
    if name.is_empty() {
        c.required("roleRef.name", "");
    } else {
        c.invalid_each("roleRef.name", name, is_path_segment_name(name));
    }
    for (i, subject) in items(obj, "subjects").iter().enumerate() {
        validate_subject(subject, namespaced, &idx("subjects", i), c);
    }
    if let Some(old) = old
        && old.get("roleRef") != obj.get("roleRef")
    {
        let before = shown(old.get("roleRef").unwrap_or(&Value::Null));
        c.invalid("roleRef", before, "cannot change roleRef");
    }
}

fn validate_subject(subject: &Value, namespaced: bool, path: &str, c: &mut Causes) {
    let name = str_at(subject, "name");
    if name.is_empty() {
        c.required(&at(path, "name"), "");
    }
    let group = str_at(subject, "apiGroup");
    match str_at(subject, "kind") {
        "ServiceAccount" => {
            if !name.is_empty() {
                c.invalid_each(&at(path, "name"), name, is_dns1123_subdomain(name));
            }
            if !group.is_empty() {
                c.not_supported(&at(path, "apiGroup"), group, &[""]);
            }
            if !namespaced && str_at(subject, "namespace").is_empty() {
                c.required(&at(path, "namespace"), "");
            }
        }
        "User" | "Group" => {
            if group != RBAC_GROUP {
                c.not_supported(&at(path, "apiGroup"), group, &[RBAC_GROUP]);
            }
        }
        other => c.not_supported(
            &at(path, "kind"),
            other,
            &["ServiceAccount", "User", "Group"],
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn role_causes(obj: &Value, namespaced: bool) -> Vec<(String, &'static str)> {
        super::super::test_support::fields(|c| validate_role(obj, namespaced, c))
    }

    fn binding_causes(
        obj: &Value,
        old: Option<&Value>,
        namespaced: bool,
    ) -> Vec<(String, &'static str)> {
        super::super::test_support::fields(|c| validate_binding(obj, old, namespaced, c))
    }

    fn binding() -> Value {
        json!({"roleRef": {"apiGroup": RBAC_GROUP, "kind": "ClusterRole", "name": "view"},
            "subjects": [
                {"kind": "User", "apiGroup": RBAC_GROUP, "name": "jane"},
                {"kind": "ServiceAccount", "name": "robot", "namespace": "default"}]})
    }

    #[test]
    fn rules_need_verbs_groups_and_resources() {
        let role = json!({"rules": [
            {"verbs": ["get"], "apiGroups": [""], "resources": ["pods"]},
            {"verbs": [], "apiGroups": [""], "resources": ["pods"]},
            {"verbs": ["get"]},
        ]});
        assert_eq!(
            role_causes(&role, true),
            vec![
                ("rules[1].verbs".into(), "FieldValueRequired"),
                ("rules[2].apiGroups".into(), "FieldValueRequired"),
                ("rules[2].resources".into(), "FieldValueRequired"),
            ]
        );
    }

    #[test]
    fn only_cluster_roles_name_non_resource_urls() {
        let role = json!({"rules": [{"verbs": ["get"], "nonResourceURLs": ["/healthz"]}]});
        assert!(role_causes(&role, false).is_empty());
        assert_eq!(
            role_causes(&role, true),
            vec![("rules[0].nonResourceURLs".into(), "FieldValueInvalid")]
        );
        let mixed = json!({"rules": [{"verbs": ["get"], "nonResourceURLs": ["/x"],
            "resources": ["pods"]}]});
        assert_eq!(
            role_causes(&mixed, false),
            vec![("rules[0].nonResourceURLs".into(), "FieldValueInvalid")]
        );
    }

    #[test]
    fn bindings_check_role_ref_and_subjects() {
        assert!(binding_causes(&binding(), None, true).is_empty());
        let bad = json!({"roleRef": {"apiGroup": "x", "kind": "Role", "name": ""},
            "subjects": [{"kind": "Robot", "name": "r"},
                {"kind": "ServiceAccount", "name": "sa"},
                {"kind": "Group", "name": ""}]});
        assert_eq!(
            binding_causes(&bad, None, false),
            vec![
                ("roleRef.apiGroup".into(), "FieldValueNotSupported"),
                ("roleRef.kind".into(), "FieldValueNotSupported"),
                ("roleRef.name".into(), "FieldValueRequired"),
                ("subjects[0].kind".into(), "FieldValueNotSupported"),
                ("subjects[1].namespace".into(), "FieldValueRequired"),
                ("subjects[2].name".into(), "FieldValueRequired"),
                ("subjects[2].apiGroup".into(), "FieldValueNotSupported"),
            ]
        );
    }

    #[test]
    fn the_role_ref_is_immutable() {
        let old = binding();
        let mut new = binding();
        new["subjects"] = json!([]);
        assert!(binding_causes(&new, Some(&old), true).is_empty());
        new["roleRef"]["name"] = json!("edit");
        assert_eq!(
            binding_causes(&new, Some(&old), true),
            vec![("roleRef".into(), "FieldValueInvalid")]
        );
    }
}
