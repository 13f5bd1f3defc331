//! ConfigMaps and Secrets: key names, total size, secret types and the `immutable` flag.

use serde_json::Value;

use super::cause::{Causes, idx, quoted};
use super::meta::str_at;
use super::names::is_config_key;

const MAX_DATA_SIZE: usize = 1024 * 1024;
const IMMUTABLE_DETAIL: &str = "field is immutable when `immutable` is set";

fn keys(obj: &Value, map: &str) -> Vec<(String, usize)> {
    obj.get(map)
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
        .map(|(k, v)| (k.clone(), decoded_len(map, v)))
        .collect()
}

/// Bytes a value stands for: base64 maps (`binaryData`, secret `data`) count decoded bytes.
fn decoded_len(map: &str, v: &Value) -> usize {
    let text = v.as_str().unwrap_or("");
    if matches!(map, "binaryData" | "data:base64") {
        let padding = text.bytes().rev().take_while(|b| *b == b'=').count();
        (text.len() / 4 * 3).saturating_sub(padding)
    } else {
        text.len()
    }
}

fn validate_keys(entries: &[(String, usize)], map: &str, c: &mut Causes) -> usize {
    let mut total = 0;
    for (key, len) in entries {
        c.invalid_each(&idx(map, key), key, is_config_key(key));
        total += key.len() + len;
    }
    total
}

/// Once `immutable` is true, neither the flag nor the listed maps may change.
fn validate_immutable(obj: &Value, old: &Value, maps: &[&str], c: &mut Causes) {
    if old.get("immutable").and_then(Value::as_bool) != Some(true) {
        return;
    }
    if obj.get("immutable").and_then(Value::as_bool) != Some(true) {
        c.forbidden("immutable", IMMUTABLE_DETAIL);
    }
    for map in maps {
        if obj.get(*map) != old.get(*map) {
            c.forbidden(map, IMMUTABLE_DETAIL);
        }
    }
}

pub(crate) fn validate_config_map(obj: &Value, old: Option<&Value>, c: &mut Causes) {
    let data = keys(obj, "data");
    let binary = keys(obj, "binaryData");
    let mut total = validate_keys(&data, "data", c);
    total += validate_keys(&binary, "binaryData", c);
    for (key, _) in &binary {
        if data.iter().any(|(k, _)| k == key) {
            c.invalid(
                &idx("data", key),
                quoted(key),
                "duplicate of key present in binaryData",
            );
        }
    }
    if total > MAX_DATA_SIZE {
        c.too_long("", MAX_DATA_SIZE);
    }
    if let Some(old) = old {
        validate_immutable(obj, old, &["data", "binaryData"], c);
    }
}

pub(crate) fn validate_secret(obj: &Value, old: Option<&Value>, c: &mut Causes) {
    let data: Vec<(String, usize)> = obj
        .get("data")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
        .map(|(k, v)| (k.clone(), decoded_len("data:base64", v)))
        .collect();
    let total = validate_keys(&data, "data", c);
    if total > MAX_DATA_SIZE {
        c.too_long("data", MAX_DATA_SIZE);
    }
    let has = |key: &str| data.iter().any(|(k, _)| k == key);
    let secret_type = str_at(obj, "type");
    let required: &[&str] = match secret_type {
        "kubernetes.io/dockercfg" => &[".dockercfg"],
        "kubernetes.io/dockerconfigjson" => &[".dockerconfigjson"],
        "kubernetes.io/ssh-auth" => &["ssh-privatekey"],
        "kubernetes.io/tls" => &["tls.crt", "tls.key"],
        "kubernetes.io/basic-auth" if !has("username") && !has("password") => {
            &["username", "password"]
        }
        _ => &[],
    };
    for key in required {
        if !has(key) {
            c.required(&idx("data", key), "");
        }
    }
    if secret_type == "kubernetes.io/service-account-token"
        && obj
            .pointer("/metadata/annotations/kubernetes.io~1service-account.name")
            .and_then(Value::as_str)
            .is_none_or(str::is_empty)
    {
        c.required(
            "metadata.annotations[kubernetes.io/service-account.name]",
            "",
        );
    }
    if let Some(old) = old {
        let old_type = str_at(old, "type");
        if old_type != secret_type {
            c.invalid("type", quoted(secret_type), "field is immutable");
        }
        validate_immutable(obj, old, &["data"], c);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    use crate::validation::test_support::fields;

    #[test]
    fn config_maps() {
        let ok = json!({"data": {"app.conf": "x", "KEY_1": "y"}, "binaryData": {"b": "AAE="}});
        assert_eq!(fields(|c| validate_config_map(&ok, None, c)), []);
        let bad = json!({"data": {"a b": "x", "b": "y"}, "binaryData": {"b": "AA=="}});
        assert_eq!(
            fields(|c| validate_config_map(&bad, None, c)),
            [
                ("data[a b]".to_string(), "FieldValueInvalid"),
                ("data[b]".to_string(), "FieldValueInvalid"),
            ]
        );
        let big = json!({"data": {"k": "x".repeat(MAX_DATA_SIZE)}});
        assert_eq!(
            fields(|c| validate_config_map(&big, None, c)),
            [(String::new(), "FieldValueTooLong")]
        );
        let frozen = json!({"immutable": true, "data": {"a": "1"}});
        let thawed = json!({"immutable": false, "data": {"a": "2"}});
        assert_eq!(
            fields(|c| validate_config_map(&thawed, Some(&frozen), c)),
            [
                ("immutable".to_string(), "FieldValueForbidden"),
                ("data".to_string(), "FieldValueForbidden"),
            ]
        );
    }

    #[test]
    fn secrets() {
        let tls = json!({"type": "kubernetes.io/tls", "data": {"tls.crt": "QQ=="}});
        assert_eq!(
            fields(|c| validate_secret(&tls, None, c)),
            [("data[tls.key]".to_string(), "FieldValueRequired")]
        );
        let token = json!({"type": "kubernetes.io/service-account-token"});
        assert_eq!(
            fields(|c| validate_secret(&token, None, c)),
            [(
                "metadata.annotations[kubernetes.io/service-account.name]".to_string(),
                "FieldValueRequired"
            )]
        );
        let opaque = json!({"type": "Opaque", "data": {"k": "QQ=="}});
        assert_eq!(fields(|c| validate_secret(&opaque, None, c)), []);
        assert_eq!(
            fields(|c| validate_secret(&opaque, Some(&json!({"type": "custom"})), c)),
            [("type".to_string(), "FieldValueInvalid")]
        );
    }
}
