//! Pods, pod specs and pod templates (the latter reused by every workload kind).

use std::collections::HashSet;

use serde_json::Value;

use super::cause::{Causes, at, idx, quoted};
use super::container::{ContainerList, PodScope, items, validate_container};
use super::labels::{validate_annotations, validate_labels};
use super::meta::str_at;
use super::names::{
    inclusive_range_error, is_dns1123_label, is_dns1123_subdomain, is_label_value,
    is_qualified_name,
};

pub(crate) const RESTART_POLICIES: &[&str] = &["Always", "OnFailure", "Never"];
const DNS_POLICIES: &[&str] = &["ClusterFirstWithHostNet", "ClusterFirst", "Default", "None"];
const TAINT_EFFECTS: &[&str] = &["NoSchedule", "PreferNoSchedule", "NoExecute"];
const UPDATE_FORBIDDEN: &str = "pod updates may not change fields other than `spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)";

pub(crate) fn validate_pod(obj: &Value, old: Option<&Value>, c: &mut Causes) {
    let null = Value::Null;
    let spec = obj.get("spec").unwrap_or(&null);
    validate_pod_spec(spec, "spec", c);
    if let Some(old) = old {
        validate_pod_spec_update(spec, old.get("spec").unwrap_or(&null), c);
    }
}

/// A `PodTemplateSpec` at `path` (e.g. `spec.template`): its labels, annotations and spec.
pub(crate) fn validate_pod_template(template: &Value, path: &str, c: &mut Causes) {
    let null = Value::Null;
    let meta = template.get("metadata").unwrap_or(&null);
    validate_labels(meta.get("labels"), &at(path, "metadata.labels"), c);
    validate_annotations(
        meta.get("annotations"),
        &at(path, "metadata.annotations"),
        c,
    );
    validate_pod_spec(template.get("spec").unwrap_or(&null), &at(path, "spec"), c);
}

pub(crate) fn validate_pod_spec(spec: &Value, path: &str, c: &mut Causes) {
    let mut scope = PodScope {
        names: HashSet::new(),
        volumes: validate_volumes(spec, &at(path, "volumes"), c),
        host_network: spec.get("hostNetwork").and_then(Value::as_bool) == Some(true),
    };
    let containers = items(spec, "containers");
    if containers.is_empty() {
        c.required(&at(path, "containers"), "");
    }
    let init_path = at(path, "initContainers");
    for (i, container) in items(spec, "initContainers").iter().enumerate() {
        let p = idx(&init_path, i);
        validate_container(container, &p, ContainerList::Init, &mut scope, c);
    }
    let containers_path = at(path, "containers");
    for (i, container) in containers.iter().enumerate() {
        let p = idx(&containers_path, i);
        validate_container(container, &p, ContainerList::Regular, &mut scope, c);
    }
    for (key, allowed) in [
        ("restartPolicy", RESTART_POLICIES),
        ("dnsPolicy", DNS_POLICIES),
    ] {
        if let Some(value) = spec.get(key).and_then(Value::as_str)
            && !allowed.contains(&value)
        {
            c.not_supported(&at(path, key), value, allowed);
        }
    }
    if let Some(deadline) = spec.get("activeDeadlineSeconds").and_then(Value::as_i64)
        && !(1..=i64::from(i32::MAX)).contains(&deadline)
    {
        c.invalid(
            &at(path, "activeDeadlineSeconds"),
            deadline,
            &inclusive_range_error(1, i64::from(i32::MAX)),
        );
    }
    for key in ["hostname", "subdomain"] {
        let value = str_at(spec, key);
        if !value.is_empty() {
            c.invalid_each(&at(path, key), value, is_dns1123_label(value));
        }
    }
    let account = str_at(spec, "serviceAccountName");
    if !account.is_empty() {
        c.invalid_each(
            &at(path, "serviceAccountName"),
            account,
            is_dns1123_subdomain(account),
        );
    }
    validate_labels(spec.get("nodeSelector"), &at(path, "nodeSelector"), c);
    validate_tolerations(spec, &at(path, "tolerations"), c);
}

/// Volume names are unique DNS labels with exactly one source; returns the names.
fn validate_volumes<'a>(spec: &'a Value, path: &str, c: &mut Causes) -> HashSet<&'a str> {
    let mut names = HashSet::new();
    for (i, volume) in items(spec, "volumes").iter().enumerate() {
        let p = idx(path, i);
        let name = str_at(volume, "name");
        if name.is_empty() {
            c.required(&at(&p, "name"), "");
        } else {
            c.invalid_each(&at(&p, "name"), name, is_dns1123_label(name));
            if !names.insert(name) {
                c.duplicate(&at(&p, "name"), quoted(name));
            }
        }
        let sources = volume
            .as_object()
            .into_iter()
            .flatten()
            .filter(|(k, v)| *k != "name" && !v.is_null())
            .count();
        if sources == 0 {
            c.required(&p, "must specify a volume type");
        } else if sources > 1 {
            c.forbidden(&p, "may not specify more than 1 volume type");
        }
    }
    names
}

pub(crate) fn validate_tolerations(spec: &Value, path: &str, c: &mut Causes) {
    for (i, toleration) in items(spec, "tolerations").iter().enumerate() {
        let p = idx(path, i);
        let key = str_at(toleration, "key");
        let operator = str_at(toleration, "operator");
        let value = str_at(toleration, "value");
        let effect = str_at(toleration, "effect");
        if !key.is_empty() {
            c.invalid_each(&at(&p, "key"), key, is_qualified_name(key));
        } else if operator != "Exists" {
            c.invalid(
                &at(&p, "operator"),
                quoted(operator),
                "operator must be Exists when `key` is empty, which means \"match all values and all keys\"",
            );
        }
        if toleration
            .get("tolerationSeconds")
            .is_some_and(|s| !s.is_null())
            && effect != "NoExecute"
        {
            c.invalid(
                &at(&p, "effect"),
                quoted(effect),
                "effect must be 'NoExecute' when `tolerationSeconds` is set",
            );
        }
        match operator {
            "" | "Equal" => c.invalid_each(&at(&p, "operator"), value, is_label_value(value)),
            "Exists" if !value.is_empty() => c.invalid(
                &at(&p, "operator"),
                quoted(value),
                "value must be empty when `operator` is 'Exists'",
            ),
            "Exists" => {}
            other => c.not_supported(&at(&p, "operator"), other, &["Equal", "Exists"]),
        }
        if !effect.is_empty() && !TAINT_EFFECTS.contains(&effect) {
            c.not_supported(&at(&p, "effect"), effect, TAINT_EFFECTS);
        }
    }
}

/// A toleration without `tolerationSeconds`, the one part of an existing toleration that may change.
fn toleration_identity(t: &Value) -> Value {
    let mut t = t.clone();
    if let Some(map) = t.as_object_mut() {
        map.remove("tolerationSeconds");
    }
    t
}

/// Pod specs are immutable except for images, the active deadline, added tolerations,
/// the grace period and removed scheduling gates.
fn validate_pod_spec_update(spec: &Value, old: &Value, c: &mut Causes) {
    if let Some(old_deadline) = old.get("activeDeadlineSeconds").and_then(Value::as_i64) {
        match spec.get("activeDeadlineSeconds").and_then(Value::as_i64) {
            None => c.invalid(
                "spec.activeDeadlineSeconds",
                "null",
                "must not update from a positive integer to nil value",
            ),
            Some(new) if new > old_deadline => c.invalid(
                "spec.activeDeadlineSeconds",
                new,
                "must be less than or equal to previous value",
            ),
            Some(_) => {}
        }
    }
    let new_tolerations: Vec<Value> = items(spec, "tolerations")
        .iter()
        .map(toleration_identity)
        .collect();
    if items(old, "tolerations")
        .iter()
        .any(|t| !new_tolerations.contains(&toleration_identity(t)))
    {
        c.forbidden(
            "spec.tolerations",
            "existing toleration can not be modified except its tolerationSeconds",
        );
    }
    let old_gates = items(old, "schedulingGates");
    for gate in items(spec, "schedulingGates") {
        if !old_gates.contains(gate) {
            c.forbidden(
                "spec.schedulingGates",
                &format!(
                    "only deletion is allowed, but found new scheduling gate '{}'",
                    str_at(gate, "name")
                ),
            );
        }
    }
    if without_mutable_fields(spec, old) != without_mutable_fields(old, old) {
        c.forbidden("spec", UPDATE_FORBIDDEN);
    }
}

/// `spec` with every field a pod update may change replaced by the stored value.
fn without_mutable_fields(spec: &Value, old: &Value) -> Value {
    let mut spec = spec.clone();
    let Some(map) = spec.as_object_mut() else {
        return spec;
    };
    for key in [
        "activeDeadlineSeconds",
        "tolerations",
        "terminationGracePeriodSeconds",
        "schedulingGates",
        "ephemeralContainers",
    ] {
        map.remove(key);
    }
    for list in ["containers", "initContainers"] {
        let old_items = items(old, list);
        let containers = map.get_mut(list).and_then(Value::as_array_mut);
        for (i, container) in containers.into_iter().flatten().enumerate() {
            if let (Some(container), Some(old_image)) = (
                container.as_object_mut(),
                old_items.get(i).and_then(|o| o.get("image")),
            ) {
                container.insert("image".into(), old_image.clone());
            }
        }
    }
    spec
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod_causes(obj: &Value, old: Option<&Value>) -> Vec<(String, &'static str)> {
        let mut c = Causes::default();
        validate_pod(obj, old, &mut c);
        c.into_vec()
            .into_iter()
            .map(|e| (e.field, e.reason.as_str()))
            .collect()
    }

    fn pod(spec: Value) -> Value {
        json!({"metadata": {"name": "p", "namespace": "d"}, "spec": spec})
    }

    #[test]
    fn valid_pod_has_no_causes() {
        let p = pod(json!({
            "containers": [{"name": "app", "image": "nginx:1.27",
                "ports": [{"name": "http", "containerPort": 80, "protocol": "TCP"}],
                "env": [{"name": "A", "value": "1"},
                        {"name": "B", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}],
                "volumeMounts": [{"name": "data", "mountPath": "/data"}],
                "resources": {"requests": {"cpu": "100m", "memory": "64Mi"},
                              "limits": {"cpu": 1, "memory": "128Mi"}},
                "livenessProbe": {"httpGet": {"path": "/", "port": "http"}}}],
            "initContainers": [{"name": "init", "image": "busybox"}],
            "volumes": [{"name": "data", "emptyDir": {}}],
            "restartPolicy": "Always",
            "tolerations": [{"key": "k", "operator": "Exists", "effect": "NoExecute",
                             "tolerationSeconds": 30}]
        }));
        assert_eq!(pod_causes(&p, None), []);
    }

    #[test]
    fn invalid_pods_report_exact_causes() {
        let cases: Vec<(Value, Vec<(&str, &str)>)> = vec![
            (json!({}), vec![("spec.containers", "FieldValueRequired")]),
            (
                json!({"containers": [{"name": "a"}]}),
                vec![("spec.containers[0].image", "FieldValueRequired")],
            ),
            (
                json!({"containers": [{"image": "x"}]}),
                vec![("spec.containers[0].name", "FieldValueRequired")],
            ),
            (
                json!({"containers": [{"name": "Bad_Name", "image": "x"}]}),
                vec![("spec.containers[0].name", "FieldValueInvalid")],
            ),
            (
                json!({"initContainers": [{"name": "a", "image": "x"}],
                       "containers": [{"name": "a", "image": "x"}]}),
                vec![("spec.containers[0].name", "FieldValueDuplicate")],
            ),
            (
                json!({"containers": [{"name": "a", "image": "x",
                       "ports": [{"containerPort": 70000}, {"containerPort": 0},
                                 {"containerPort": 80, "protocol": "HTTP", "hostPort": -1}]}]}),
                vec![
                    (
                        "spec.containers[0].ports[0].containerPort",
                        "FieldValueInvalid",
                    ),
                    (
                        "spec.containers[0].ports[1].containerPort",
                        "FieldValueRequired",
                    ),
                    ("spec.containers[0].ports[2].hostPort", "FieldValueInvalid"),
                    (
                        "spec.containers[0].ports[2].protocol",
                        "FieldValueNotSupported",
                    ),
                ],
            ),
            (
                json!({"containers": [{"name": "a", "image": "x"}], "restartPolicy": "Sometimes",
                       "dnsPolicy": "Nope"}),
                vec![
                    ("spec.restartPolicy", "FieldValueNotSupported"),
                    ("spec.dnsPolicy", "FieldValueNotSupported"),
                ],
            ),
            (
                json!({"containers": [{"name": "a", "image": "x",
                       "volumeMounts": [{"name": "missing", "mountPath": "/m"},
                                        {"name": "v", "mountPath": "/m"}]}],
                       "volumes": [{"name": "v", "emptyDir": {}}, {"name": "v", "emptyDir": {}},
                                   {"name": "w"}]}),
                vec![
                    ("spec.volumes[1].name", "FieldValueDuplicate"),
                    ("spec.volumes[2]", "FieldValueRequired"),
                    (
                        "spec.containers[0].volumeMounts[0].name",
                        "FieldValueNotFound",
                    ),
                    (
                        "spec.containers[0].volumeMounts[1].mountPath",
                        "FieldValueInvalid",
                    ),
                ],
            ),
            (
                json!({"containers": [{"name": "a", "image": "x",
                       "env": [{"value": "1"}, {"name": "A=B"},
                               {"name": "C", "value": "x", "valueFrom": {"fieldRef": {}}}]}]}),
                vec![
                    ("spec.containers[0].env[0].name", "FieldValueRequired"),
                    ("spec.containers[0].env[1].name", "FieldValueInvalid"),
                    ("spec.containers[0].env[2].valueFrom", "FieldValueInvalid"),
                ],
            ),
            (
                json!({"containers": [{"name": "a", "image": "x",
                       "resources": {"requests": {"cpu": "2", "memory": "lots"},
                                     "limits": {"cpu": "1", "gpu": "1"}}}]}),
                vec![
                    (
                        "spec.containers[0].resources.limits[gpu]",
                        "FieldValueInvalid",
                    ),
                    (
                        "spec.containers[0].resources.requests[memory]",
                        "FieldValueInvalid",
                    ),
                    ("spec.containers[0].resources.requests", "FieldValueInvalid"),
                ],
            ),
            (
                json!({"containers": [{"name": "a", "image": "x",
                       "readinessProbe": {"periodSeconds": -1}}],
                       "activeDeadlineSeconds": 0}),
                vec![
                    ("spec.containers[0].readinessProbe", "FieldValueRequired"),
                    (
                        "spec.containers[0].readinessProbe.periodSeconds",
                        "FieldValueInvalid",
                    ),
                    ("spec.activeDeadlineSeconds", "FieldValueInvalid"),
                ],
            ),
            (
                json!({"containers": [{"name": "a", "image": "x"}],
                       "tolerations": [{"operator": "Equal"},
                                       {"key": "k", "operator": "Exists", "value": "v"},
                                       {"key": "k", "effect": "NoSchedule", "tolerationSeconds": 5},
                                       {"key": "k", "effect": "Sometimes"}]}),
                vec![
                    ("spec.tolerations[0].operator", "FieldValueInvalid"),
                    ("spec.tolerations[1].operator", "FieldValueInvalid"),
                    ("spec.tolerations[2].effect", "FieldValueInvalid"),
                    ("spec.tolerations[3].effect", "FieldValueNotSupported"),
                ],
            ),
        ];
        for (spec, expected) in cases {
            let got = pod_causes(&pod(spec.clone()), None);
            let want: Vec<(String, &str)> = expected
                .into_iter()
                .map(|(f, r)| (f.to_string(), r))
                .collect();
            assert_eq!(got, want, "spec: {spec}");
        }
    }

    #[test]
    fn requests_above_limits_read_like_kubernetes() {
        let p = pod(json!({"containers": [{"name": "a", "image": "x",
            "resources": {"requests": {"cpu": "2"}, "limits": {"cpu": "1"}}}]}));
        let mut c = Causes::default();
        validate_pod(&p, None, &mut c);
        assert_eq!(
            c.into_vec()[0].message,
            r#"Invalid value: "2": must be less than or equal to cpu limit of 1"#
        );
    }

    #[test]
    fn pod_updates_allow_only_some_changes() {
        let old = pod(json!({"containers": [{"name": "a", "image": "x:1"}],
            "tolerations": [{"key": "k", "operator": "Exists"}],
            "activeDeadlineSeconds": 100}));
        let ok = pod(json!({"containers": [{"name": "a", "image": "x:2"}],
            "tolerations": [{"key": "k", "operator": "Exists"},
                            {"key": "n", "operator": "Exists"}],
            "activeDeadlineSeconds": 50}));
        assert_eq!(pod_causes(&ok, Some(&old)), []);
        let bad = pod(json!({"containers": [{"name": "a", "image": "x:1",
            "ports": [{"containerPort": 80}]}],
            "activeDeadlineSeconds": 200}));
        assert_eq!(
            pod_causes(&bad, Some(&old)),
            [
                (
                    "spec.activeDeadlineSeconds".to_string(),
                    "FieldValueInvalid"
                ),
                ("spec.tolerations".to_string(), "FieldValueForbidden"),
                ("spec".to_string(), "FieldValueForbidden"),
            ]
        );
    }
}
