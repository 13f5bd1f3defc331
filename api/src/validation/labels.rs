//! Labels, annotations and label selectors, shared by object meta, pod templates and selectors.

use serde_json::Value;

use super::cause::{Causes, at, idx, quoted};
use super::names::{is_label_value, is_qualified_name};

const TOTAL_ANNOTATION_SIZE_LIMIT: usize = 256 * 1024;

/// Label keys must be qualified names and values short label values; errors point at the map.
pub(crate) fn validate_labels(labels: Option<&Value>, path: &str, c: &mut Causes) {
    let Some(map) = labels.and_then(Value::as_object) else {
        return;
    };
    for (key, value) in map {
        c.invalid_each(path, key, is_qualified_name(key));
        if let Some(value) = value.as_str() {
            c.invalid_each(path, value, is_label_value(value));
        }
    }
}

pub(crate) fn validate_annotations(annotations: Option<&Value>, path: &str, c: &mut Causes) {
    let Some(map) = annotations.and_then(Value::as_object) else {
        return;
    };
    let mut total = 0;
    for (key, value) in map {
        // Kubernetes checks annotation keys case-insensitively.
        c.invalid_each(path, key, is_qualified_name(&key.to_lowercase()));
        total += key.len() + value.as_str().map_or(0, str::len);
    }
    if total > TOTAL_ANNOTATION_SIZE_LIMIT {
        c.too_long(path, TOTAL_ANNOTATION_SIZE_LIMIT);
    }
}

fn str_items(v: Option<&Value>) -> Vec<&str> {
    v.and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

pub(crate) fn validate_label_selector(selector: &Value, path: &str, c: &mut Causes) {
    validate_labels(selector.get("matchLabels"), &at(path, "matchLabels"), c);
    let exprs_path = at(path, "matchExpressions");
    let exprs = selector.get("matchExpressions").and_then(Value::as_array);
    for (i, expr) in exprs.into_iter().flatten().enumerate() {
        let p = idx(&exprs_path, i);
        let op = expr.get("operator").and_then(Value::as_str).unwrap_or("");
        let values = str_items(expr.get("values"));
        match op {
            "In" | "NotIn" if values.is_empty() => c.required(
                &at(&p, "values"),
                "must be specified when `operator` is 'In' or 'NotIn'",
            ),
            "Exists" | "DoesNotExist" if !values.is_empty() => c.forbidden(
                &at(&p, "values"),
                "may not be specified when `operator` is 'Exists' or 'DoesNotExist'",
            ),
            "In" | "NotIn" | "Exists" | "DoesNotExist" => {}
            other => c.invalid(
                &at(&p, "operator"),
                quoted(other),
                "not a valid selector operator",
            ),
        }
        let key = expr.get("key").and_then(Value::as_str).unwrap_or("");
        c.invalid_each(&at(&p, "key"), key, is_qualified_name(key));
        for (j, value) in values.iter().enumerate() {
            c.invalid_each(&idx(&at(&p, "values"), j), value, is_label_value(value));
        }
    }
}

/// True when the selector has neither `matchLabels` nor `matchExpressions`.
pub(crate) fn selector_is_empty(selector: &Value) -> bool {
    let empty = |key: &str| match selector.get(key) {
        Some(Value::Object(m)) => m.is_empty(),
        Some(Value::Array(a)) => a.is_empty(),
        _ => true,
    };
    empty("matchLabels") && empty("matchExpressions")
}

/// Evaluates a `LabelSelector` against a label map.
pub(crate) fn selector_matches(selector: &Value, labels: Option<&Value>) -> bool {
    let label = |key: &str| labels.and_then(|l| l.get(key)).and_then(Value::as_str);
    let match_labels = selector.get("matchLabels").and_then(Value::as_object);
    let labels_ok = match_labels
        .into_iter()
        .flatten()
        .all(|(k, v)| v.as_str().is_some() && label(k) == v.as_str());
    let exprs = selector.get("matchExpressions").and_then(Value::as_array);
    let exprs_ok = exprs.into_iter().flatten().all(|expr| {
        let key = expr.get("key").and_then(Value::as_str).unwrap_or("");
        let values = str_items(expr.get("values"));
        let current = label(key);
        match expr.get("operator").and_then(Value::as_str) {
            Some("In") => current.is_some_and(|v| values.contains(&v)),
            Some("NotIn") => current.is_none_or(|v| !values.contains(&v)),
            Some("Exists") => current.is_some(),
            Some("DoesNotExist") => current.is_none(),
            _ => false,
        }
    });
    labels_ok && exprs_ok
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn selectors_match_labels() {
        let labels = json!({"app": "web", "tier": "fe"});
        let sel = json!({"matchLabels": {"app": "web"},
            "matchExpressions": [{"key": "tier", "operator": "In", "values": ["fe", "be"]},
                                 {"key": "gone", "operator": "DoesNotExist"}]});
        assert!(selector_matches(&sel, Some(&labels)));
        assert!(!selector_matches(
            &json!({"matchLabels": {"app": "db"}}),
            Some(&labels)
        ));
        assert!(!selector_matches(
            &json!({"matchExpressions": [{"key": "tier", "operator": "NotIn", "values": ["fe"]}]}),
            Some(&labels)
        ));
        assert!(selector_is_empty(&json!({"matchLabels": {}})));
    }

    #[test]
    fn selector_validation_reports_paths() {
        let mut c = Causes::default();
        let sel = json!({"matchLabels": {"a b": "x"},
            "matchExpressions": [{"key": "k", "operator": "In"},
                                 {"key": "k", "operator": "Exists", "values": ["v"]},
                                 {"key": "k", "operator": "Near"}]});
        validate_label_selector(&sel, "spec.selector", &mut c);
        let fields: Vec<String> = c.into_vec().into_iter().map(|e| e.field).collect();
        assert_eq!(
            fields,
            [
                "spec.selector.matchLabels",
                "spec.selector.matchExpressions[0].values",
                "spec.selector.matchExpressions[1].values",
                "spec.selector.matchExpressions[2].operator",
            ]
        );
    }

    #[test]
    fn annotation_size_is_limited() {
        let mut c = Causes::default();
        let big = json!({"a": "x".repeat(TOTAL_ANNOTATION_SIZE_LIMIT)});
        validate_annotations(Some(&big), "metadata.annotations", &mut c);
        assert_eq!(
            c.into_vec()[0].message,
            "Too long: may not be more than 262144 bytes"
        );
    }
}
