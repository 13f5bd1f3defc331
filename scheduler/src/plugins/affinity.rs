//! `nodeSelector` and node affinity: required terms filter, preferred terms score.

use k8s_openapi::api::core::v1::{NodeSelectorRequirement, NodeSelectorTerm};

use super::Reason;
use crate::node_info::NodeSpec;
use crate::pod_info::PodInfo;

pub fn filter(pod: &PodInfo, node: &NodeSpec) -> Result<(), Reason> {
    let selected = pod
        .node_selector
        .iter()
        .all(|(k, v)| node.labels.get(k) == Some(v));
    // Terms are ORed; an empty list of terms matches nothing.
    let affine = pod.required_affinity.as_ref().is_none_or(|required| {
        required
            .node_selector_terms
            .iter()
            .any(|term| term_matches(term, node))
    });
    if selected && affine {
        Ok(())
    } else {
        Err(Reason::AffinityMismatch)
    }
}

/// The sum of the weights of the preferred terms `node` matches.
pub fn preferred_weight(pod: &PodInfo, node: &NodeSpec) -> i64 {
    pod.preferred_affinity
        .iter()
        .filter(|p| term_matches(&p.preference, node))
        .map(|p| i64::from(p.weight))
        .sum()
}

/// A term's expressions and fields are ANDed; a term with neither matches nothing.
pub fn term_matches(term: &NodeSelectorTerm, node: &NodeSpec) -> bool {
    let expressions = term.match_expressions.as_deref().unwrap_or_default();
    let fields = term.match_fields.as_deref().unwrap_or_default();
    if expressions.is_empty() && fields.is_empty() {
        return false;
    }
    expressions
        .iter()
        .all(|r| requirement_matches(r, node.labels.get(&r.key).map(String::as_str)))
        && fields.iter().all(|r| field_matches(r, node))
}

/// Only `metadata.name` is a node field selectors may use.
fn field_matches(requirement: &NodeSelectorRequirement, node: &NodeSpec) -> bool {
    requirement.key == "metadata.name"
        && matches!(requirement.operator.as_str(), "In" | "NotIn")
        && requirement_matches(requirement, Some(node.name.as_str()))
}

fn requirement_matches(requirement: &NodeSelectorRequirement, value: Option<&str>) -> bool {
    let values = requirement.values.as_deref().unwrap_or_default();
    let number = |s: &str| s.parse::<i64>().ok();
    let compare = |ordering: std::cmp::Ordering| match (value.and_then(number), values) {
        (Some(label), [bound]) => number(bound).is_some_and(|b| label.cmp(&b) == ordering),
        _ => false,
    };
    match requirement.operator.as_str() {
        "In" => value.is_some_and(|v| values.iter().any(|x| x == v)),
        "NotIn" => value.is_none_or(|v| values.iter().all(|x| x != v)),
        "Exists" => value.is_some(),
        "DoesNotExist" => value.is_none(),
        "Gt" => compare(std::cmp::Ordering::Greater),
        "Lt" => compare(std::cmp::Ordering::Less),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::{NodeSelector, PreferredSchedulingTerm};

    use super::*;

    pub fn labels(pairs: &[(&str, &str)]) -> std::collections::BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn requirement(key: &str, operator: &str, values: &[&str]) -> NodeSelectorRequirement {
        NodeSelectorRequirement {
            key: key.into(),
            operator: operator.into(),
            values: Some(values.iter().map(|v| v.to_string()).collect()),
        }
    }

    fn term(expressions: Vec<NodeSelectorRequirement>) -> NodeSelectorTerm {
        NodeSelectorTerm {
            match_expressions: Some(expressions),
            match_fields: None,
        }
    }

    fn node() -> NodeSpec {
        NodeSpec {
            name: "n1".into(),
            labels: labels(&[("zone", "a"), ("cores", "8")]),
            ..NodeSpec::default()
        }
    }

    #[test]
    fn operators() {
        let n = node();
        let check = |r| term_matches(&term(vec![r]), &n);
        assert!(check(requirement("zone", "In", &["a", "b"])));
        assert!(!check(requirement("zone", "In", &["b"])));
        assert!(check(requirement("zone", "NotIn", &["b"])));
        assert!(check(requirement("missing", "NotIn", &["b"])));
        assert!(check(requirement("zone", "Exists", &[])));
        assert!(check(requirement("missing", "DoesNotExist", &[])));
        assert!(!check(requirement("zone", "DoesNotExist", &[])));
        assert!(check(requirement("cores", "Gt", &["4"])));
        assert!(!check(requirement("cores", "Lt", &["4"])));
        assert!(!check(requirement("zone", "Gt", &["4"])));
        assert!(!term_matches(&term(vec![]), &n));
    }

    #[test]
    fn match_fields_select_by_node_name() {
        let n = node();
        let by_name = |names: &[&str]| NodeSelectorTerm {
            match_expressions: None,
            match_fields: Some(vec![requirement("metadata.name", "In", names)]),
        };
        assert!(term_matches(&by_name(&["n1"]), &n));
        assert!(!term_matches(&by_name(&["n2"]), &n));
    }

    #[test]
    fn selector_and_required_terms_filter() {
        let n = node();
        let mut pod = PodInfo {
            node_selector: labels(&[("zone", "a")]),
            ..PodInfo::default()
        };
        assert_eq!(filter(&pod, &n), Ok(()));
        pod.node_selector = labels(&[("zone", "b")]);
        assert_eq!(filter(&pod, &n), Err(Reason::AffinityMismatch));
        pod.node_selector.clear();
        pod.required_affinity = Some(NodeSelector {
            node_selector_terms: vec![
                term(vec![requirement("zone", "In", &["b"])]),
                term(vec![requirement("cores", "Exists", &[])]),
            ],
        });
        assert_eq!(filter(&pod, &n), Ok(()));
    }

    #[test]
    fn preferred_terms_add_their_weights() {
        let pod = PodInfo {
            preferred_affinity: vec![
                PreferredSchedulingTerm {
                    weight: 10,
                    preference: term(vec![requirement("zone", "In", &["a"])]),
                },
                PreferredSchedulingTerm {
                    weight: 5,
                    preference: term(vec![requirement("zone", "In", &["b"])]),
                },
            ],
            ..PodInfo::default()
        };
        assert_eq!(preferred_weight(&pod, &node()), 10);
    }
}
