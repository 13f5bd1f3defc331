//! Field errors shaped like Kubernetes `StatusCause`s, and the Status message built from them.

use std::fmt::Display;

use serde_json::Value;

use crate::resources::ResourceInfo;

/// The `reason` of a Kubernetes `StatusCause` for a field error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CauseReason {
    FieldValueRequired,
    FieldValueInvalid,
    FieldValueNotSupported,
    FieldValueNotFound,
    FieldValueDuplicate,
    FieldValueTooLong,
    FieldValueForbidden,
    FieldValueTooMany,
}

impl CauseReason {
    pub fn as_str(self) -> &'static str {
        match self {
            CauseReason::FieldValueRequired => "FieldValueRequired",
            CauseReason::FieldValueInvalid => "FieldValueInvalid",
            CauseReason::FieldValueNotSupported => "FieldValueNotSupported",
            CauseReason::FieldValueNotFound => "FieldValueNotFound",
            CauseReason::FieldValueDuplicate => "FieldValueDuplicate",
            CauseReason::FieldValueTooLong => "FieldValueTooLong",
            CauseReason::FieldValueForbidden => "FieldValueForbidden",
            CauseReason::FieldValueTooMany => "FieldValueTooMany",
        }
    }
}

/// One invalid field: `message` is the error body Kubernetes puts in the cause
/// (e.g. `Required value`), `field` the path (e.g. `spec.containers[0].image`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldCause {
    pub reason: CauseReason,
    pub field: String,
    pub message: String,
}

impl Display for FieldCause {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

/// The Status message of a 422 response: `Deployment.apps "x" is invalid: [a: b, c: d]`,
/// without brackets when there is a single cause.
pub fn summary(resource: &ResourceInfo, name: &str, causes: &[FieldCause]) -> String {
    let kind = if resource.group.is_empty() {
        resource.kind.to_string()
    } else {
        format!("{}.{}", resource.kind, resource.group)
    };
    let mut parts: Vec<String> = Vec::new();
    for cause in causes {
        let text = cause.to_string();
        if !parts.contains(&text) {
            parts.push(text);
        }
    }
    let body = match parts.as_slice() {
        [] => return format!("{kind} {name:?} is invalid"),
        [one] => one.clone(),
        many => format!("[{}]", many.join(", ")),
    };
    format!("{kind} {name:?} is invalid: {body}")
}

/// A field value rendered the way Kubernetes prints it after `Invalid value: `.
pub(crate) fn shown(value: &Value) -> String {
    match value {
        Value::String(s) => quoted(s),
        other => other.to_string(),
    }
}

pub(crate) fn quoted(s: &str) -> String {
    Value::String(s.to_string()).to_string()
}

/// Collects causes while walking an object.
#[derive(Debug, Default)]
pub(crate) struct Causes(Vec<FieldCause>);

impl Causes {
    fn push(&mut self, reason: CauseReason, field: &str, message: String) {
        self.0.push(FieldCause {
            reason,
            field: field.to_string(),
            message,
        });
    }

    pub fn required(&mut self, field: &str, detail: &str) {
        let message = if detail.is_empty() {
            "Required value".to_string()
        } else {
            format!("Required value: {detail}")
        };
        self.push(CauseReason::FieldValueRequired, field, message);
    }

    /// `value` is already rendered (see [`shown`] / [`quoted`]).
    pub fn invalid(&mut self, field: &str, value: impl Display, detail: &str) {
        let message = format!("Invalid value: {value}: {detail}");
        self.push(CauseReason::FieldValueInvalid, field, message);
    }

    /// One `Invalid` cause per message of a format check such as `is_dns1123_label`.
    pub fn invalid_each(&mut self, field: &str, value: &str, details: Vec<String>) {
        for detail in details {
            self.invalid(field, quoted(value), &detail);
        }
    }

    pub fn not_supported(&mut self, field: &str, value: &str, supported: &[&str]) {
        let list: Vec<String> = supported.iter().map(|s| quoted(s)).collect();
        let message = format!(
            "Unsupported value: {}: supported values: {}",
            quoted(value),
            list.join(", ")
        );
        self.push(CauseReason::FieldValueNotSupported, field, message);
    }

    pub fn not_found(&mut self, field: &str, value: &str) {
        let message = format!("Not found: {}", quoted(value));
        self.push(CauseReason::FieldValueNotFound, field, message);
    }

    pub fn duplicate(&mut self, field: &str, value: impl Display) {
        let message = format!("Duplicate value: {value}");
        self.push(CauseReason::FieldValueDuplicate, field, message);
    }

    pub fn too_long(&mut self, field: &str, max_bytes: usize) {
        let message = format!("Too long: may not be more than {max_bytes} bytes");
        self.push(CauseReason::FieldValueTooLong, field, message);
    }

    pub fn too_many(&mut self, field: &str, actual: usize, max: usize) {
        let message = format!("Too many: {actual}: must have at most {max} items");
        self.push(CauseReason::FieldValueTooMany, field, message);
    }

    pub fn forbidden(&mut self, field: &str, detail: &str) {
        self.push(
            CauseReason::FieldValueForbidden,
            field,
            format!("Forbidden: {detail}"),
        );
    }

    pub fn into_vec(self) -> Vec<FieldCause> {
        self.0
    }
}

/// `base.child`, or just `child` at the root.
pub(crate) fn at(base: &str, child: &str) -> String {
    if base.is_empty() {
        child.to_string()
    } else {
        format!("{base}.{child}")
    }
}

/// `base[i]` for list items and `base[key]` for map entries.
pub(crate) fn idx(base: &str, i: impl Display) -> String {
    format!("{base}[{i}]")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::find;

    fn cause(field: &str, message: &str) -> FieldCause {
        FieldCause {
            reason: CauseReason::FieldValueRequired,
            field: field.into(),
            message: message.into(),
        }
    }

    #[test]
    fn summary_formats_like_kubernetes() {
        let pods = find("", "v1", "pods").unwrap();
        let deploys = find("apps", "v1", "deployments").unwrap();
        let one = [cause("spec.containers[0].image", "Required value")];
        assert_eq!(
            summary(pods, "x", &one),
            r#"Pod "x" is invalid: spec.containers[0].image: Required value"#
        );
        let two = [one[0].clone(), cause("spec.selector", "Required value")];
        assert_eq!(
            summary(deploys, "web", &two),
            r#"Deployment.apps "web" is invalid: [spec.containers[0].image: Required value, spec.selector: Required value]"#
        );
    }

    #[test]
    fn messages_render_values() {
        let mut c = Causes::default();
        c.not_supported("spec.restartPolicy", "Sometimes", &["Always", "Never"]);
        c.invalid("spec.replicas", -1, "must be greater than or equal to 0");
        let v = c.into_vec();
        assert_eq!(
            v[0].message,
            r#"Unsupported value: "Sometimes": supported values: "Always", "Never""#
        );
        assert_eq!(v[0].reason.as_str(), "FieldValueNotSupported");
        assert_eq!(
            v[1].message,
            "Invalid value: -1: must be greater than or equal to 0"
        );
    }
}
