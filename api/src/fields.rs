//! Field selectors: the `fieldSelector` query parameter (`spec.nodeName=n1,status.phase!=Failed`),
//! with Kubernetes's escaping rules and its per-resource list of selectable fields.

use serde_json::Value;
use thiserror::Error;

use crate::resources::ResourceInfo;

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum FieldSelectorError {
    #[error("invalid selector: '{selector}'; can't understand '{term}'")]
    Syntax { selector: String, term: String },
    #[error("invalid field selector: invalid escape sequence: {sequence}")]
    InvalidEscape { sequence: String },
    #[error("invalid field selector: unescaped character in value: {character}")]
    UnescapedCharacter { character: char },
    #[error("field label not supported: {field}")]
    UnsupportedField { field: String },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldOperator {
    Equals,
    DoubleEquals,
    NotEquals,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldRequirement {
    pub field: String,
    pub operator: FieldOperator,
    /// The unescaped value.
    pub value: String,
}

impl FieldRequirement {
    fn holds(&self, actual: &str) -> bool {
        match self.operator {
            FieldOperator::Equals | FieldOperator::DoubleEquals => actual == self.value,
            FieldOperator::NotEquals => actual != self.value,
        }
    }
}

/// A parsed field selector; all requirements must hold.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FieldSelector {
    requirements: Vec<FieldRequirement>,
}

/// How a selectable field's value is read out of the stored JSON object.
#[derive(Clone, Copy)]
enum Source {
    /// A string at a JSON pointer; absent reads as "".
    Text(&'static str),
    /// A boolean at a JSON pointer; absent reads as "false", as Go's zero value does.
    Flag(&'static str),
    /// An integer at a JSON pointer; absent reads as "0".
    Count(&'static str),
    /// The first of `status.podIPs`, else `status.podIP`.
    PodIp,
    /// `source.component`, falling back to `reportingController` for events from the new API.
    EventOrigin,
}

const COMMON_FIELDS: &[(&str, Source)] = &[
    ("metadata.name", Source::Text("/metadata/name")),
    ("metadata.namespace", Source::Text("/metadata/namespace")),
];

const POD_FIELDS: &[(&str, Source)] = &[
    ("spec.nodeName", Source::Text("/spec/nodeName")),
    ("spec.restartPolicy", Source::Text("/spec/restartPolicy")),
    ("spec.schedulerName", Source::Text("/spec/schedulerName")),
    (
        "spec.serviceAccountName",
        Source::Text("/spec/serviceAccountName"),
    ),
    ("spec.hostNetwork", Source::Flag("/spec/hostNetwork")),
    ("status.phase", Source::Text("/status/phase")),
    ("status.podIP", Source::PodIp),
    (
        "status.nominatedNodeName",
        Source::Text("/status/nominatedNodeName"),
    ),
];

const EVENT_FIELDS: &[(&str, Source)] = &[
    ("involvedObject.kind", Source::Text("/involvedObject/kind")),
    (
        "involvedObject.namespace",
        Source::Text("/involvedObject/namespace"),
    ),
    ("involvedObject.name", Source::Text("/involvedObject/name")),
    ("involvedObject.uid", Source::Text("/involvedObject/uid")),
    (
        "involvedObject.apiVersion",
        Source::Text("/involvedObject/apiVersion"),
    ),
    (
        "involvedObject.resourceVersion",
        Source::Text("/involvedObject/resourceVersion"),
    ),
    (
        "involvedObject.fieldPath",
        Source::Text("/involvedObject/fieldPath"),
    ),
    ("reason", Source::Text("/reason")),
    ("reportingComponent", Source::Text("/reportingComponent")),
    ("source", Source::EventOrigin),
    ("type", Source::Text("/type")),
];

const SECRET_FIELDS: &[(&str, Source)] = &[("type", Source::Text("/type"))];
const NODE_FIELDS: &[(&str, Source)] =
    &[("spec.unschedulable", Source::Flag("/spec/unschedulable"))];
const NAMESPACE_FIELDS: &[(&str, Source)] = &[("status.phase", Source::Text("/status/phase"))];
const JOB_FIELDS: &[(&str, Source)] = &[("status.successful", Source::Count("/status/succeeded"))];
const REPLICASET_FIELDS: &[(&str, Source)] =
    &[("status.replicas", Source::Count("/status/replicas"))];

/// The fields beyond `metadata.name`/`metadata.namespace` that a resource can be selected by.
fn kind_fields(resource: &ResourceInfo) -> &'static [(&'static str, Source)] {
    match (resource.group, resource.plural) {
        ("", "pods") => POD_FIELDS,
        ("", "events") => EVENT_FIELDS,
        ("", "secrets") => SECRET_FIELDS,
        ("", "nodes") => NODE_FIELDS,
        ("", "namespaces") => NAMESPACE_FIELDS,
        ("batch", "jobs") => JOB_FIELDS,
        ("apps", "replicasets") => REPLICASET_FIELDS,
        _ => &[],
    }
}

fn field_source(resource: &ResourceInfo, field: &str) -> Option<Source> {
    COMMON_FIELDS
        .iter()
        .chain(kind_fields(resource))
        .find(|(name, _)| *name == field)
        .map(|(_, source)| *source)
}

/// Every field name a resource supports in field selectors.
pub fn supported_fields(resource: &ResourceInfo) -> Vec<&'static str> {
    COMMON_FIELDS
        .iter()
        .chain(kind_fields(resource))
        .map(|(name, _)| *name)
        .collect()
}

/// The value of a selectable field of `object`, or `None` if the resource doesn't support it.
pub fn field_value(resource: &ResourceInfo, object: &Value, field: &str) -> Option<String> {
    let text = |pointer: &str| {
        object
            .pointer(pointer)
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    Some(match field_source(resource, field)? {
        Source::Text(pointer) => text(pointer),
        Source::Flag(pointer) => object
            .pointer(pointer)
            .and_then(Value::as_bool)
            .unwrap_or(false)
            .to_string(),
        Source::Count(pointer) => object
            .pointer(pointer)
            .and_then(Value::as_i64)
            .unwrap_or(0)
            .to_string(),
        Source::PodIp => match object
            .pointer("/status/podIPs/0/ip")
            .and_then(Value::as_str)
        {
            Some(ip) => ip.to_string(),
            None => text("/status/podIP"),
        },
        Source::EventOrigin => match text("/source/component") {
            component if !component.is_empty() => component,
            _ => text("/reportingComponent"),
        },
    })
}

impl FieldSelector {
    /// Parses a selector without checking field names; see [`FieldSelector::validate`].
    pub fn parse(selector: &str) -> Result<Self, FieldSelectorError> {
        let mut requirements = Vec::new();
        for term in split_terms(selector) {
            if term.is_empty() {
                continue;
            }
            let Some((field, operator, raw_value)) = split_term(term) else {
                return Err(FieldSelectorError::Syntax {
                    selector: selector.to_string(),
                    term: term.to_string(),
                });
            };
            requirements.push(FieldRequirement {
                field: field.to_string(),
                operator,
                value: unescape_value(raw_value)?,
            });
        }
        Ok(FieldSelector { requirements })
    }

    /// Parses and checks every field against what `resource` supports.
    pub fn parse_for(resource: &ResourceInfo, selector: &str) -> Result<Self, FieldSelectorError> {
        let parsed = Self::parse(selector)?;
        parsed.validate(resource)?;
        Ok(parsed)
    }

    /// Rejects fields the resource cannot be selected by, with Kubernetes's message.
    pub fn validate(&self, resource: &ResourceInfo) -> Result<(), FieldSelectorError> {
        match self
            .requirements
            .iter()
            .find(|r| field_source(resource, &r.field).is_none())
        {
            Some(unsupported) => Err(FieldSelectorError::UnsupportedField {
                field: unsupported.field.clone(),
            }),
            None => Ok(()),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.requirements.is_empty()
    }

    pub fn requirements(&self) -> &[FieldRequirement] {
        &self.requirements
    }

    /// The value an equality requirement pins `field` to, e.g. `metadata.name` for single-object
    /// watches, so callers can narrow a scan before matching.
    pub fn exact_value(&self, field: &str) -> Option<&str> {
        self.requirements
            .iter()
            .find(|r| r.field == field && r.operator != FieldOperator::NotEquals)
            .map(|r| r.value.as_str())
    }

    /// True when every requirement holds; a field the resource doesn't support never matches.
    pub fn matches(&self, resource: &ResourceInfo, object: &Value) -> bool {
        self.requirements
            .iter()
            .all(|r| field_value(resource, object, &r.field).is_some_and(|actual| r.holds(&actual)))
    }
}

/// Splits on commas not preceded by an escaping backslash; escapes stay in the terms.
fn split_terms(selector: &str) -> Vec<&str> {
    let mut terms = Vec::new();
    let mut start = 0;
    let mut escaped = false;
    for (i, c) in selector.char_indices() {
        if escaped {
            escaped = false;
        } else if c == '\\' {
            escaped = true;
        } else if c == ',' {
            terms.push(&selector[start..i]);
            start = i + 1;
        }
    }
    terms.push(&selector[start..]);
    terms
}

/// Finds the first operator; field names never contain `=` or `!`, so the first hit is it.
fn split_term(term: &str) -> Option<(&str, FieldOperator, &str)> {
    const OPERATORS: [(&str, FieldOperator); 3] = [
        ("!=", FieldOperator::NotEquals),
        ("==", FieldOperator::DoubleEquals),
        ("=", FieldOperator::Equals),
    ];
    term.char_indices().find_map(|(i, _)| {
        OPERATORS.iter().find_map(|(symbol, operator)| {
            term[i..]
                .starts_with(symbol)
                .then(|| (&term[..i], *operator, &term[i + symbol.len()..]))
        })
    })
}

fn unescape_value(raw: &str) -> Result<String, FieldSelectorError> {
    let mut value = String::with_capacity(raw.len());
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some(escaped @ ('\\' | ',' | '=')) => value.push(escaped),
                Some(other) => {
                    return Err(FieldSelectorError::InvalidEscape {
                        sequence: format!("\\{other}"),
                    });
                }
                None => {
                    return Err(FieldSelectorError::InvalidEscape {
                        sequence: "\\".to_string(),
                    });
                }
            },
            ',' | '=' => return Err(FieldSelectorError::UnescapedCharacter { character: c }),
            other => value.push(other),
        }
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::find;
    use serde_json::json;

    fn pods() -> &'static ResourceInfo {
        find("", "v1", "pods").unwrap()
    }

    #[test]
    fn parses_operators_and_escapes() {
        let s =
            FieldSelector::parse(r"metadata.name=a\,b\=c\\,status.phase!=Failed,spec.nodeName==n1")
                .unwrap();
        let r = s.requirements();
        assert_eq!(r.len(), 3);
        assert_eq!(r[0].field, "metadata.name");
        assert_eq!(r[0].operator, FieldOperator::Equals);
        assert_eq!(r[0].value, r"a,b=c\");
        assert_eq!(r[1].operator, FieldOperator::NotEquals);
        assert_eq!(r[2].operator, FieldOperator::DoubleEquals);
        assert_eq!(r[2].value, "n1");
    }

    #[test]
    fn empty_and_blank_terms() {
        assert!(FieldSelector::parse("").unwrap().is_empty());
        assert_eq!(
            FieldSelector::parse("a=b,,").unwrap().requirements().len(),
            1
        );
    }

    #[test]
    fn syntax_errors_use_kubernetes_messages() {
        assert_eq!(
            FieldSelector::parse("metadata.name")
                .unwrap_err()
                .to_string(),
            "invalid selector: 'metadata.name'; can't understand 'metadata.name'"
        );
        assert_eq!(
            FieldSelector::parse(r"a=b\x").unwrap_err().to_string(),
            r"invalid field selector: invalid escape sequence: \x"
        );
        assert!(matches!(
            FieldSelector::parse(r"a=b\"),
            Err(FieldSelectorError::InvalidEscape { .. })
        ));
        assert_eq!(
            FieldSelector::parse("a=b=c").unwrap_err().to_string(),
            "invalid field selector: unescaped character in value: ="
        );
    }

    #[test]
    fn unsupported_fields_are_rejected_per_resource() {
        let err = FieldSelector::parse_for(pods(), "spec.containers=x").unwrap_err();
        assert_eq!(
            err.to_string(),
            "field label not supported: spec.containers"
        );
        assert!(FieldSelector::parse_for(pods(), "spec.nodeName=n,status.podIP=1.2.3.4").is_ok());
        let secrets = find("", "v1", "secrets").unwrap();
        assert!(FieldSelector::parse_for(secrets, "type=Opaque").is_ok());
        assert!(FieldSelector::parse_for(secrets, "spec.nodeName=x").is_err());
        let cm = find("", "v1", "configmaps").unwrap();
        assert!(FieldSelector::parse_for(cm, "metadata.namespace=default").is_ok());
        assert!(FieldSelector::parse_for(cm, "type=x").is_err());
        let nodes = find("", "v1", "nodes").unwrap();
        assert!(supported_fields(nodes).contains(&"spec.unschedulable"));
    }

    #[test]
    fn missing_node_name_matches_empty_value() {
        let unscheduled = json!({"metadata": {"name": "a", "namespace": "default"}, "spec": {}});
        let scheduled = json!({"metadata": {"name": "b"}, "spec": {"nodeName": "n1"}});
        let s = FieldSelector::parse_for(pods(), "spec.nodeName=").unwrap();
        assert!(s.matches(pods(), &unscheduled));
        assert!(!s.matches(pods(), &scheduled));
        let s = FieldSelector::parse_for(pods(), "spec.nodeName!=").unwrap();
        assert!(!s.matches(pods(), &unscheduled));
        assert!(s.matches(pods(), &scheduled));
    }

    #[test]
    fn all_requirements_must_hold() {
        let pod = json!({
            "metadata": {"name": "web", "namespace": "prod"},
            "spec": {"nodeName": "n1", "hostNetwork": true},
            "status": {"phase": "Running", "podIPs": [{"ip": "10.0.0.5"}], "podIP": "10.0.0.5"}
        });
        let s = FieldSelector::parse("metadata.namespace=prod,status.phase!=Failed,spec.hostNetwork=true,status.podIP=10.0.0.5").unwrap();
        assert!(s.matches(pods(), &pod));
        let s = FieldSelector::parse("metadata.name=web,status.phase=Pending").unwrap();
        assert!(!s.matches(pods(), &pod));
        let s = FieldSelector::parse("spec.hostNetwork=false").unwrap();
        assert!(s.matches(pods(), &json!({"spec": {}})));
        assert!(
            !FieldSelector::parse("bogus=x")
                .unwrap()
                .matches(pods(), &pod)
        );
    }

    #[test]
    fn event_fields() {
        let events = find("", "v1", "events").unwrap();
        let event = json!({
            "metadata": {"name": "e1", "namespace": "default"},
            "involvedObject": {"kind": "Pod", "name": "web", "namespace": "default", "uid": "u1"},
            "reason": "Scheduled", "type": "Normal",
            "reportingComponent": "default-scheduler"
        });
        let s = FieldSelector::parse_for(
            events,
            "involvedObject.kind=Pod,involvedObject.name=web,involvedObject.uid=u1,reason=Scheduled,type=Normal,source=default-scheduler,reportingComponent=default-scheduler",
        )
        .unwrap();
        assert!(s.matches(events, &event));
    }

    #[test]
    fn typed_defaults_for_counts() {
        let jobs = find("batch", "v1", "jobs").unwrap();
        let s = FieldSelector::parse_for(jobs, "status.successful=0").unwrap();
        assert!(s.matches(jobs, &json!({"status": {}})));
        assert!(!s.matches(jobs, &json!({"status": {"succeeded": 2}})));
        let rs = find("apps", "v1", "replicasets").unwrap();
        let s = FieldSelector::parse_for(rs, "status.replicas!=0").unwrap();
        assert!(s.matches(rs, &json!({"status": {"replicas": 3}})));
    }

    #[test]
    fn exact_value_reports_equalities_only() {
        let s = FieldSelector::parse("metadata.name=a,spec.nodeName!=b").unwrap();
        assert_eq!(s.exact_value("metadata.name"), Some("a"));
        assert_eq!(s.exact_value("spec.nodeName"), None);
    }
}
