//! Namespaces, Nodes, Leases, RuntimeClasses and Events.

use std::collections::HashSet;

use serde_json::Value;

use super::cause::{Causes, at, idx, quoted};
use super::container::{items, validate_quantities};
use super::labels::validate_labels;
use super::meta::{str_at, validate_finalizers};
use super::names::{is_dns1123_label, is_label_value, is_qualified_name};
use super::pod::validate_tolerations;

const TAINT_EFFECTS: &[&str] = &["NoSchedule", "PreferNoSchedule", "NoExecute"];
const CIDR_ERROR: &str = "must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)";

fn field<'a>(v: &'a Value, key: &str) -> &'a Value {
    static NULL: Value = Value::Null;
    v.get(key).unwrap_or(&NULL)
}

pub(crate) fn validate_namespace(obj: &Value, c: &mut Causes) {
    validate_finalizers(field(obj, "spec").get("finalizers"), "spec.finalizers", c);
}

fn is_cidr(text: &str) -> bool {
    let Some((ip, bits)) = text.split_once('/') else {
        return false;
    };
    let max = match ip.parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V4(_)) => 32,
        Ok(std::net::IpAddr::V6(_)) => 128,
        Err(_) => return false,
    };
    bits.parse::<u8>().is_ok_and(|b| b <= max) && !bits.starts_with('+')
}

pub(crate) fn validate_node(obj: &Value, old: Option<&Value>, c: &mut Causes) {
    let spec = field(obj, "spec");
    let pod_cidr = str_at(spec, "podCIDR");
    if !pod_cidr.is_empty() && !is_cidr(pod_cidr) {
        c.invalid("spec.podCIDR", quoted(pod_cidr), CIDR_ERROR);
    }
    for (i, cidr) in items(spec, "podCIDRs").iter().enumerate() {
        let cidr = cidr.as_str().unwrap_or("");
        if !is_cidr(cidr) {
            c.invalid(&idx("spec.podCIDRs", i), quoted(cidr), CIDR_ERROR);
        }
    }
    let mut seen = HashSet::new();
    for (i, taint) in items(spec, "taints").iter().enumerate() {
        let p = idx("spec.taints", i);
        let key = str_at(taint, "key");
        c.invalid_each(&at(&p, "key"), key, is_qualified_name(key));
        let value = str_at(taint, "value");
        c.invalid_each(&at(&p, "value"), value, is_label_value(value));
        let effect = str_at(taint, "effect");
        if effect.is_empty() {
            c.required(&at(&p, "effect"), "");
        } else if !TAINT_EFFECTS.contains(&effect) {
            c.not_supported(&at(&p, "effect"), effect, TAINT_EFFECTS);
        }
        if !seen.insert((key, effect)) {
            c.duplicate(&p, quoted(&format!("{key}={value}:{effect}")));
        }
    }
    if let Some(old) = old {
        let old_cidr = str_at(field(old, "spec"), "podCIDR");
        if !old_cidr.is_empty() && old_cidr != pod_cidr {
            c.forbidden(
                "spec.podCIDRs",
                "node updates may not change podCIDR except from \"\" to valid",
            );
        }
    }
}

pub(crate) fn validate_lease(obj: &Value, c: &mut Causes) {
    let spec = field(obj, "spec");
    if let Some(duration) = spec.get("leaseDurationSeconds").and_then(Value::as_i64)
        && duration <= 0
    {
        c.invalid(
            "spec.leaseDurationSeconds",
            duration,
            "must be greater than 0",
        );
    }
    if let Some(transitions) = spec.get("leaseTransitions").and_then(Value::as_i64)
        && transitions < 0
    {
        c.invalid(
            "spec.leaseTransitions",
            transitions,
            "must be greater than or equal to 0",
        );
    }
}

pub(crate) fn validate_runtime_class(obj: &Value, old: Option<&Value>, c: &mut Causes) {
    let handler = str_at(obj, "handler");
    if handler.is_empty() {
        c.required("handler", "");
    } else {
        c.invalid_each("handler", handler, is_dns1123_label(handler));
    }
    validate_quantities(obj.pointer("/overhead/podFixed"), "overhead.podFixed", c);
    let scheduling = field(obj, "scheduling");
    validate_labels(scheduling.get("nodeSelector"), "scheduling.nodeSelector", c);
    validate_tolerations(scheduling, "scheduling.tolerations", c);
    if let Some(old) = old
        && str_at(old, "handler") != handler
    {
        c.invalid("handler", quoted(handler), "field is immutable");
    }
}

/// An Event must live in its involved object's namespace; events about cluster-scoped
/// objects go to `default` (or nowhere).
pub(crate) fn validate_event(obj: &Value, c: &mut Causes) {
    let event_namespace = obj
        .pointer("/metadata/namespace")
        .and_then(Value::as_str)
        .unwrap_or("");
    let involved = field(obj, "involvedObject");
    let involved_namespace = str_at(involved, "namespace");
    let matches = if involved_namespace.is_empty() {
        event_namespace.is_empty() || event_namespace == "default"
    } else {
        involved_namespace == event_namespace
    };
    if !matches {
        c.invalid(
            "involvedObject.namespace",
            quoted(involved_namespace),
            "does not match event.namespace",
        );
    }
    let event_type = str_at(obj, "type");
    if !str_at(obj, "reportingComponent").is_empty() && !matches!(event_type, "Normal" | "Warning")
    {
        c.invalid(
            "type",
            quoted(""),
            &format!("has invalid value: {event_type}"),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    use crate::validation::test_support::{fields, owned};

    #[test]
    fn nodes_and_namespaces() {
        let node = json!({"spec": {"podCIDR": "10.244.0.0/33",
            "taints": [{"key": "k", "effect": "NoSchedule"}, {"key": "k", "effect": "NoSchedule"},
                       {"key": "bad key", "effect": "Sometimes"}]}});
        assert_eq!(
            fields(|c| validate_node(&node, None, c)),
            owned(&[
                ("spec.podCIDR", "FieldValueInvalid"),
                ("spec.taints[1]", "FieldValueDuplicate"),
                ("spec.taints[2].key", "FieldValueInvalid"),
                ("spec.taints[2].effect", "FieldValueNotSupported"),
            ])
        );
        let ok = json!({"spec": {"podCIDR": "10.244.0.0/24", "podCIDRs": ["10.244.0.0/24", "fd00::/64"]}});
        assert_eq!(fields(|c| validate_node(&ok, None, c)), []);
        let ns = json!({"spec": {"finalizers": ["kubernetes", "a/b/c"]}});
        assert_eq!(
            fields(|c| validate_namespace(&ns, c)),
            owned(&[("spec.finalizers", "FieldValueInvalid")])
        );
    }

    #[test]
    fn leases_runtime_classes_and_events() {
        let lease = json!({"spec": {"leaseDurationSeconds": 0, "leaseTransitions": -1}});
        assert_eq!(
            fields(|c| validate_lease(&lease, c)),
            owned(&[
                ("spec.leaseDurationSeconds", "FieldValueInvalid"),
                ("spec.leaseTransitions", "FieldValueInvalid"),
            ])
        );
        assert_eq!(
            fields(|c| validate_runtime_class(&json!({}), None, c)),
            owned(&[("handler", "FieldValueRequired")])
        );
        let rc = json!({"handler": "Bad.Handler", "overhead": {"podFixed": {"cpu": "x"}}});
        assert_eq!(
            fields(|c| validate_runtime_class(&rc, Some(&json!({"handler": "runc"})), c)),
            owned(&[
                ("handler", "FieldValueInvalid"),
                ("overhead.podFixed[cpu]", "FieldValueInvalid"),
                ("handler", "FieldValueInvalid"),
            ])
        );
        let event = json!({"metadata": {"namespace": "a"}, "involvedObject": {"namespace": "b"}});
        assert_eq!(
            fields(|c| validate_event(&event, c)),
            owned(&[("involvedObject.namespace", "FieldValueInvalid")])
        );
        let node_event =
            json!({"metadata": {"namespace": "default"}, "involvedObject": {"kind": "Node"}});
        assert_eq!(fields(|c| validate_event(&node_event, c)), []);
    }
}
