//! TokenRequests (`serviceaccounts/token`): the lifetime a token may be asked for, and a
//! bound object that names something.

use serde_json::Value;

use super::cause::{Causes, FieldCause};

/// kube-apiserver refuses tokens shorter-lived than ten minutes...
const MIN_TOKEN_EXPIRATION_SECONDS: i64 = 600;
/// ...and longer-lived than 2^32 seconds.
const MAX_TOKEN_EXPIRATION_SECONDS: i64 = 1 << 32;

/// Validates a TokenRequest whose `spec.expirationSeconds` has been defaulted.
pub fn validate_token_request(request: &Value) -> Vec<FieldCause> {
    let mut c = Causes::default();
    let field = "spec.expirationSeconds";
    match request
        .pointer("/spec/expirationSeconds")
        .and_then(Value::as_i64)
    {
        None => c.required(field, ""),
        Some(secs) if secs < MIN_TOKEN_EXPIRATION_SECONDS => {
            c.invalid(
                field,
                secs,
                "may not specify a duration less than 10 minutes",
            );
        }
        Some(secs) if secs > MAX_TOKEN_EXPIRATION_SECONDS => {
            c.invalid(
                field,
                secs,
                "may not specify a duration larger than 2^32 seconds",
            );
        }
        Some(_) => {}
    }
    if let Some(bound) = request
        .pointer("/spec/boundObjectRef")
        .filter(|b| !b.is_null())
    {
        let named = bound
            .get("name")
            .and_then(Value::as_str)
            .is_some_and(|n| !n.is_empty());
        if !named {
            c.required("spec.boundObjectRef.name", "");
        }
    }
    c.into_vec()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn causes(spec: Value) -> Vec<(String, String)> {
        validate_token_request(&json!({"spec": spec}))
            .into_iter()
            .map(|c| (c.field, c.message))
            .collect()
    }

    #[test]
    fn lifetimes_between_ten_minutes_and_two_to_the_32_seconds_pass() {
        assert!(causes(json!({"expirationSeconds": 600})).is_empty());
        assert!(causes(json!({"expirationSeconds": 1i64 << 32})).is_empty());
        assert_eq!(
            causes(json!({"expirationSeconds": 599})),
            vec![(
                "spec.expirationSeconds".to_string(),
                "Invalid value: 599: may not specify a duration less than 10 minutes".to_string()
            )]
        );
        assert_eq!(
            causes(json!({"expirationSeconds": (1i64 << 32) + 1}))[0].1,
            "Invalid value: 4294967297: may not specify a duration larger than 2^32 seconds"
        );
        assert_eq!(causes(json!({}))[0].0, "spec.expirationSeconds");
    }

    #[test]
    fn a_bound_object_needs_a_name() {
        let unnamed = json!({"expirationSeconds": 3600, "boundObjectRef": {"kind": "Pod"}});
        assert_eq!(causes(unnamed)[0].0, "spec.boundObjectRef.name");
        let named =
            json!({"expirationSeconds": 3600, "boundObjectRef": {"kind": "Pod", "name": "p"}});
        assert!(causes(named).is_empty());
    }
}
