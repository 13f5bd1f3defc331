//! `metadata` checks every kind shares: names, namespace, labels, annotations, finalizers,
//! owner references, and the fields an update may not change.

use serde_json::Value;

use super::cause::{Causes, at, idx, quoted, shown};
use super::labels::{validate_annotations, validate_labels};
use super::names::{
    is_dns1035_label, is_dns1123_label, is_dns1123_subdomain, is_path_segment_name,
    is_qualified_name,
};
use crate::resources::ResourceInfo;

pub(crate) fn str_at<'a>(v: &'a Value, key: &str) -> &'a str {
    v.get(key).and_then(Value::as_str).unwrap_or("")
}

/// The name format Kubernetes requires for the kind.
pub(crate) fn name_problems(kind: &str, name: &str) -> Vec<String> {
    match kind {
        "Namespace" => is_dns1123_label(name),
        "Service" => is_dns1035_label(name),
        "Role" | "ClusterRole" | "RoleBinding" | "ClusterRoleBinding" => is_path_segment_name(name),
        _ => is_dns1123_subdomain(name),
    }
}

pub(crate) fn validate_object_meta(resource: &ResourceInfo, obj: &Value, c: &mut Causes) {
    let null = Value::Null;
    let meta = obj.get("metadata").unwrap_or(&null);
    let name = str_at(meta, "name");
    let generate_name = str_at(meta, "generateName");
    if !generate_name.is_empty() {
        // A generated name gets a random suffix, so the prefix may end with a dash.
        let prefix = generate_name.trim_end_matches('-');
        let masked = if prefix.len() < generate_name.len() {
            format!("{prefix}a")
        } else {
            prefix.to_string()
        };
        c.invalid_each(
            "metadata.generateName",
            generate_name,
            name_problems(resource.kind, &masked),
        );
    }
    if name.is_empty() {
        if generate_name.is_empty() {
            c.required("metadata.name", "name or generateName is required");
        }
    } else {
        c.invalid_each("metadata.name", name, name_problems(resource.kind, name));
    }

    let namespace = str_at(meta, "namespace");
    if resource.namespaced {
        if namespace.is_empty() {
            c.required("metadata.namespace", "");
        } else {
            c.invalid_each("metadata.namespace", namespace, is_dns1123_label(namespace));
        }
    } else if !namespace.is_empty() {
        c.forbidden("metadata.namespace", "not allowed on this type");
    }

    if let Some(generation) = meta.get("generation").and_then(Value::as_i64)
        && generation < 0
    {
        c.invalid(
            "metadata.generation",
            generation,
            "must be greater than or equal to 0",
        );
    }
    validate_labels(meta.get("labels"), "metadata.labels", c);
    validate_annotations(meta.get("annotations"), "metadata.annotations", c);
    validate_finalizers(meta.get("finalizers"), "metadata.finalizers", c);
    validate_owner_references(meta.get("ownerReferences"), c);
}

pub(crate) fn validate_finalizers(finalizers: Option<&Value>, path: &str, c: &mut Causes) {
    let items = finalizers.and_then(Value::as_array);
    for finalizer in items.into_iter().flatten().filter_map(Value::as_str) {
        c.invalid_each(path, finalizer, is_qualified_name(finalizer));
    }
}

fn validate_owner_references(refs: Option<&Value>, c: &mut Causes) {
    let refs = refs.and_then(Value::as_array);
    let mut controllers = 0;
    for (i, owner) in refs.into_iter().flatten().enumerate() {
        let p = idx("metadata.ownerReferences", i);
        for (field, what) in [
            ("apiVersion", "version"),
            ("kind", "kind"),
            ("name", "name"),
            ("uid", "uid"),
        ] {
            if str_at(owner, field).is_empty() {
                c.invalid(
                    &at(&p, field),
                    quoted(""),
                    &format!("{what} must not be empty"),
                );
            }
        }
        if owner.get("controller").and_then(Value::as_bool) == Some(true) {
            controllers += 1;
        }
    }
    if controllers > 1 {
        c.invalid(
            "metadata.ownerReferences",
            controllers,
            "Only one reference can have Controller set to true",
        );
    }
}

/// Fields of `metadata` fixed at creation. `uid` and `creationTimestamp` omitted from an
/// update are carried over by the server, so only a different non-empty value is an error.
pub(crate) fn validate_meta_update(obj: &Value, old: &Value, c: &mut Causes) {
    let null = Value::Null;
    let meta = obj.get("metadata").unwrap_or(&null);
    let old_meta = old.get("metadata").unwrap_or(&null);
    for field in ["name", "namespace", "uid", "creationTimestamp"] {
        let new = meta.get(field).unwrap_or(&null);
        let before = old_meta.get(field).unwrap_or(&null);
        let may_be_omitted = matches!(field, "uid" | "creationTimestamp");
        if new != before && !(may_be_omitted && new.is_null()) {
            c.invalid(
                &format!("metadata.{field}"),
                shown(new),
                "field is immutable",
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::find;
    use serde_json::json;

    fn fields(resource: &ResourceInfo, obj: Value) -> Vec<(String, &'static str)> {
        let mut c = Causes::default();
        validate_object_meta(resource, &obj, &mut c);
        c.into_vec()
            .into_iter()
            .map(|e| (e.field, e.reason.as_str()))
            .collect()
    }

    #[test]
    fn names_follow_the_kind() {
        let pods = find("", "v1", "pods").unwrap();
        let ns = find("", "v1", "namespaces").unwrap();
        let svc = find("", "v1", "services").unwrap();
        let ok = json!({"metadata": {"name": "a.b", "namespace": "default"}});
        assert!(fields(pods, ok).is_empty());
        assert_eq!(
            fields(ns, json!({"metadata": {"name": "a.b"}})),
            [("metadata.name".to_string(), "FieldValueInvalid")]
        );
        assert_eq!(
            fields(svc, json!({"metadata": {"name": "1svc", "namespace": "d"}})),
            [("metadata.name".to_string(), "FieldValueInvalid")]
        );
        assert!(
            fields(
                pods,
                json!({"metadata": {"generateName": "web-", "namespace": "d"}})
            )
            .is_empty()
        );
        assert_eq!(
            fields(pods, json!({"metadata": {}})),
            [
                ("metadata.name".to_string(), "FieldValueRequired"),
                ("metadata.namespace".to_string(), "FieldValueRequired")
            ]
        );
        assert_eq!(
            fields(ns, json!({"metadata": {"name": "x", "namespace": "y"}})),
            [("metadata.namespace".to_string(), "FieldValueForbidden")]
        );
    }

    #[test]
    fn meta_maps_and_references() {
        let cms = find("", "v1", "configmaps").unwrap();
        let obj = json!({"metadata": {"name": "x", "namespace": "d",
            "labels": {"ok": "fine", "bad key": "v", "k": "-bad"},
            "annotations": {"example.com/a": "x", "_no": "y"},
            "finalizers": ["example.com/f", "a/b/c"],
            "ownerReferences": [{"apiVersion": "v1", "kind": "Pod", "name": "p"}],
            "generation": -1}});
        assert_eq!(
            fields(cms, obj),
            [
                ("metadata.generation".to_string(), "FieldValueInvalid"),
                ("metadata.labels".to_string(), "FieldValueInvalid"),
                ("metadata.labels".to_string(), "FieldValueInvalid"),
                ("metadata.annotations".to_string(), "FieldValueInvalid"),
                ("metadata.finalizers".to_string(), "FieldValueInvalid"),
                (
                    "metadata.ownerReferences[0].uid".to_string(),
                    "FieldValueInvalid"
                ),
            ]
        );
    }

    #[test]
    fn update_keeps_identity() {
        let old = json!({"metadata": {"name": "a", "namespace": "d", "uid": "u1"}});
        let mut c = Causes::default();
        validate_meta_update(
            &json!({"metadata": {"name": "a", "namespace": "d"}}),
            &old,
            &mut c,
        );
        assert!(c.into_vec().is_empty());
        let mut c = Causes::default();
        validate_meta_update(
            &json!({"metadata": {"name": "b", "namespace": "d", "uid": "u2"}}),
            &old,
            &mut c,
        );
        let v = c.into_vec();
        assert_eq!(v[0].field, "metadata.name");
        assert_eq!(v[0].message, r#"Invalid value: "b": field is immutable"#);
        assert_eq!(v[1].field, "metadata.uid");
    }
}
