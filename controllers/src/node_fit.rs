//! Whether a pod spec fits a node by the node's labels, name and taints: node selectors,
//! required node affinity and tolerations, evaluated as the scheduler does.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    Node, NodeSelectorRequirement, NodeSelectorTerm, PodSpec, Taint, Toleration,
};
use kube::ResourceExt;

/// Whether `toleration` tolerates `taint`: same effect (or any), same key (or any with
/// `Exists`), and for `Equal` the same value.
pub fn tolerates(toleration: &Toleration, taint: &Taint) -> bool {
    let effect_ok = toleration
        .effect
        .as_deref()
        .is_none_or(|e| e.is_empty() || e == taint.effect);
    let key = toleration.key.as_deref().unwrap_or_default();
    let exists = toleration.operator.as_deref() == Some("Exists");
    if !effect_ok || (!key.is_empty() && key != taint.key) || (key.is_empty() && !exists) {
        return false;
    }
    exists
        || toleration.value.as_deref().unwrap_or_default()
            == taint.value.as_deref().unwrap_or_default()
}

/// The node's taints with one of `effects` that none of `tolerations` tolerates.
pub fn untolerated<'a>(
    node: &'a Node,
    tolerations: &'a [Toleration],
    effects: &'a [&str],
) -> impl Iterator<Item = &'a Taint> + 'a {
    node.spec
        .iter()
        .flat_map(|s| s.taints.iter().flatten())
        .filter(move |t| effects.contains(&t.effect.as_str()))
        .filter(move |t| !tolerations.iter().any(|tol| tolerates(tol, t)))
}

fn requirement_matches(requirement: &NodeSelectorRequirement, value: Option<&String>) -> bool {
    let values = requirement.values.as_deref().unwrap_or_default();
    let number = |v: &str| v.parse::<i64>().ok();
    match requirement.operator.as_str() {
        "In" => value.is_some_and(|v| values.contains(v)),
        "NotIn" => value.is_none_or(|v| !values.contains(v)),
        "Exists" => value.is_some(),
        "DoesNotExist" => value.is_none(),
        "Gt" | "Lt" => {
            let (Some(have), Some(bound)) = (
                value.and_then(|v| number(v)),
                values.first().and_then(|v| number(v)),
            ) else {
                return false;
            };
            if requirement.operator == "Gt" {
                have > bound
            } else {
                have < bound
            }
        }
        _ => false,
    }
}

/// A term matches when all its expressions (on labels) and fields (on `metadata.name`) do;
/// an empty term matches nothing.
fn term_matches(term: &NodeSelectorTerm, node: &Node) -> bool {
    let expressions = term.match_expressions.as_deref().unwrap_or_default();
    let fields = term.match_fields.as_deref().unwrap_or_default();
    if expressions.is_empty() && fields.is_empty() {
        return false;
    }
    let labels = node.labels();
    let name = BTreeMap::from([("metadata.name".to_string(), node.name_any())]);
    expressions
        .iter()
        .all(|r| requirement_matches(r, labels.get(&r.key)))
        && fields
            .iter()
            .all(|r| requirement_matches(r, name.get(&r.key)))
}

/// The node selector and the required node affinity of `spec` both accept `node`.
pub fn selects(spec: &PodSpec, node: &Node) -> bool {
    let labels = node.labels();
    let selector_ok = spec
        .node_selector
        .iter()
        .flatten()
        .all(|(k, v)| labels.get(k) == Some(v));
    let required = spec
        .affinity
        .as_ref()
        .and_then(|a| a.node_affinity.as_ref())
        .and_then(|a| {
            a.required_during_scheduling_ignored_during_execution
                .as_ref()
        });
    let affinity_ok =
        required.is_none_or(|r| r.node_selector_terms.iter().any(|t| term_matches(t, node)));
    selector_ok && affinity_ok
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::NodeSpec;
    use serde_json::json;

    use super::*;

    fn taint(key: &str, value: Option<&str>, effect: &str) -> Taint {
        Taint {
            key: key.into(),
            value: value.map(String::from),
            effect: effect.into(),
            time_added: None,
        }
    }

    fn toleration(value: serde_json::Value) -> Toleration {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn toleration_matching() {
        let t = taint("k", Some("v"), "NoSchedule");
        assert!(tolerates(
            &toleration(json!({"key": "k", "value": "v"})),
            &t
        ));
        assert!(tolerates(
            &toleration(json!({"key": "k", "operator": "Exists", "effect": "NoSchedule"})),
            &t
        ));
        assert!(tolerates(&toleration(json!({"operator": "Exists"})), &t));
        assert!(!tolerates(
            &toleration(json!({"key": "k", "value": "w"})),
            &t
        ));
        assert!(!tolerates(
            &toleration(json!({"key": "k", "operator": "Exists", "effect": "NoExecute"})),
            &t
        ));
        assert!(!tolerates(
            &toleration(json!({"key": "other", "operator": "Exists"})),
            &t
        ));
        assert!(tolerates(
            &toleration(json!({"key": "k", "operator": "Equal"})),
            &taint("k", None, "NoExecute")
        ));
    }

    fn node(name: &str, labels: serde_json::Value) -> Node {
        serde_json::from_value(json!({"metadata": {"name": name, "labels": labels}})).unwrap()
    }

    fn spec(value: serde_json::Value) -> PodSpec {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn selectors_and_required_affinity() {
        let n = node("n1", json!({"zone": "a", "cores": "8"}));
        assert!(selects(&spec(json!({"containers": []})), &n));
        assert!(selects(
            &spec(json!({"containers": [], "nodeSelector": {"zone": "a"}})),
            &n
        ));
        assert!(!selects(
            &spec(json!({"containers": [], "nodeSelector": {"zone": "b"}})),
            &n
        ));
        let affinity = |terms: serde_json::Value| {
            spec(json!({"containers": [], "affinity": {"nodeAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": terms}}}}))
        };
        assert!(selects(
            &affinity(
                json!([{"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n1"]}]}])
            ),
            &n
        ));
        assert!(!selects(
            &affinity(
                json!([{"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n2"]}]}])
            ),
            &n
        ));
        assert!(selects(
            &affinity(json!([
            {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["b"]}]},
            {"matchExpressions": [{"key": "cores", "operator": "Gt", "values": ["4"]},
                                  {"key": "gpu", "operator": "DoesNotExist"}]}])),
            &n
        ));
        assert!(!selects(&affinity(json!([{}])), &n));
    }

    #[test]
    fn untolerated_taints_by_effect() {
        let mut n = node("n1", json!({}));
        n.spec = Some(NodeSpec {
            taints: Some(vec![
                taint("a", None, "NoSchedule"),
                taint("b", None, "NoExecute"),
                taint("c", None, "PreferNoSchedule"),
            ]),
            ..NodeSpec::default()
        });
        let tolerations = [toleration(json!({"key": "a", "operator": "Exists"}))];
        let keys: Vec<&str> = untolerated(&n, &tolerations, &["NoSchedule", "NoExecute"])
            .map(|t| t.key.as_str())
            .collect();
        assert_eq!(keys, vec!["b"]);
    }
}
