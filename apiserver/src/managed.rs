//! `metadata.managedFields` for server-side apply: which manager applied which fields.

use serde_json::{Map, Value, json};

use crate::objects::{self, meta_mut};

/// Records (or replaces) the Apply entry of `manager`, owning every field of `obj` but
/// the server-owned metadata and status.
pub fn record_apply(obj: &mut Value, manager: &str, api_version: &str) {
    let fields = fields_v1(obj);
    let entry = json!({
        "manager": manager,
        "operation": "Apply",
        "apiVersion": api_version,
        "time": objects::now_rfc3339(),
        "fieldsType": "FieldsV1",
        "fieldsV1": fields,
    });
    let meta = meta_mut(obj);
    let mut entries: Vec<Value> = meta
        .get("managedFields")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    entries.retain(|e| {
        !(e.get("manager").and_then(Value::as_str) == Some(manager)
            && e.get("operation").and_then(Value::as_str) == Some("Apply"))
    });
    entries.push(entry);
    meta.insert("managedFields".into(), Value::Array(entries));
}

/// The FieldsV1 set of an object: `f:<name>` for every map field, lists as a whole.
fn fields_v1(obj: &Value) -> Value {
    let mut root = Map::new();
    let Some(map) = obj.as_object() else {
        return Value::Object(root);
    };
    for (k, v) in map {
        match k.as_str() {
            "apiVersion" | "kind" | "status" => {}
            "metadata" => {
                let mut meta = Map::new();
                for (mk, mv) in v.as_object().into_iter().flatten() {
                    if matches!(
                        mk.as_str(),
                        "name"
                            | "namespace"
                            | "labels"
                            | "annotations"
                            | "finalizers"
                            | "ownerReferences"
                    ) {
                        meta.insert(format!("f:{mk}"), field_set(mv));
                    }
                }
                if !meta.is_empty() {
                    root.insert("f:metadata".into(), Value::Object(meta));
                }
            }
            _ => {
                root.insert(format!("f:{k}"), field_set(v));
            }
        }
    }
    Value::Object(root)
}

fn field_set(value: &Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| (format!("f:{k}"), field_set(v)))
                .collect(),
        ),
        _ => Value::Object(Map::new()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn apply_entries_are_replaced_per_manager() {
        let mut obj = json!({"metadata": {"name": "x", "uid": "u"}, "data": {"a": "1"}});
        record_apply(&mut obj, "kubectl", "v1");
        record_apply(&mut obj, "kubectl", "v1");
        let entries = obj["metadata"]["managedFields"].as_array().unwrap();
        assert_eq!(entries.len(), 1);
        assert_eq!(entries[0]["fieldsV1"]["f:data"]["f:a"], json!({}));
        assert!(entries[0]["fieldsV1"]["f:metadata"].get("f:uid").is_none());
    }
}
