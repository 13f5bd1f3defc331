//! Label selectors as workloads carry them (`matchLabels` plus `matchExpressions`).

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

/// Whether `labels` satisfy `selector`. An empty selector matches everything, as for
/// workloads; a missing selector (`None`) matches nothing.
pub fn matches(
    selector: Option<&LabelSelector>,
    labels: Option<&BTreeMap<String, String>>,
) -> bool {
    let Some(selector) = selector else {
        return false;
    };
    let empty = BTreeMap::new();
    let labels = labels.unwrap_or(&empty);
    let labels_ok = selector
        .match_labels
        .iter()
        .flatten()
        .all(|(k, v)| labels.get(k) == Some(v));
    let expressions_ok = selector.match_expressions.iter().flatten().all(|expr| {
        let value = labels.get(&expr.key);
        let values = expr.values.as_deref().unwrap_or_default();
        match expr.operator.as_str() {
            "In" => value.is_some_and(|v| values.contains(v)),
            "NotIn" => value.is_none_or(|v| !values.contains(v)),
            "Exists" => value.is_some(),
            "DoesNotExist" => value.is_none(),
            // An unknown operator is rejected by validation; never match on one.
            _ => false,
        }
    });
    labels_ok && expressions_ok
}

/// Whether a plain map selector (a Service's) selects `labels`; an empty one selects none.
pub fn map_selects(
    selector: &BTreeMap<String, String>,
    labels: Option<&BTreeMap<String, String>>,
) -> bool {
    !selector.is_empty()
        && labels.is_some_and(|labels| selector.iter().all(|(k, v)| labels.get(k) == Some(v)))
}

#[cfg(test)]
mod tests {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelectorRequirement;

    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn match_labels_and_expressions_must_all_hold() {
        let selector = LabelSelector {
            match_labels: Some(labels(&[("app", "web")])),
            match_expressions: Some(vec![
                LabelSelectorRequirement {
                    key: "tier".into(),
                    operator: "In".into(),
                    values: Some(vec!["front".into(), "edge".into()]),
                },
                LabelSelectorRequirement {
                    key: "canary".into(),
                    operator: "DoesNotExist".into(),
                    values: None,
                },
            ]),
        };
        let s = Some(&selector);
        assert!(matches(
            s,
            Some(&labels(&[("app", "web"), ("tier", "edge")]))
        ));
        assert!(!matches(
            s,
            Some(&labels(&[("app", "web"), ("tier", "back")]))
        ));
        assert!(!matches(
            s,
            Some(&labels(&[
                ("app", "web"),
                ("tier", "edge"),
                ("canary", "1")
            ]))
        ));
        assert!(!matches(s, None));
        assert!(matches(Some(&LabelSelector::default()), None));
        assert!(!matches(None, Some(&labels(&[("app", "web")]))));
    }

    #[test]
    fn service_selectors_need_every_pair_and_select_nothing_when_empty() {
        let pod = labels(&[("app", "web"), ("x", "y")]);
        assert!(map_selects(&labels(&[("app", "web")]), Some(&pod)));
        assert!(!map_selects(&labels(&[("app", "db")]), Some(&pod)));
        assert!(!map_selects(&BTreeMap::new(), Some(&pod)));
    }
}
