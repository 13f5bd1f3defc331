//! JSON patch (RFC 6902) and JSON merge patch (RFC 7396), as `application/json-patch+json`
//! and `application/merge-patch+json` requests apply them.

use serde_json::Value;

use super::PatchError;

/// Applies an RFC 6902 patch (a list of operations) to a copy of `doc`. The result must still
/// be an object, since every API object is one.
pub fn apply_json_patch(doc: &Value, patch: &Value) -> Result<Value, PatchError> {
    let operations: json_patch::Patch =
        serde_json::from_value(patch.clone()).map_err(|e| PatchError::InvalidJsonPatch {
            reason: e.to_string(),
        })?;
    let mut patched = doc.clone();
    json_patch::patch(&mut patched, &operations).map_err(|e| PatchError::JsonPatchOperation {
        index: e.operation,
        path: e.path.to_string(),
        reason: e.kind.to_string(),
    })?;
    if !patched.is_object() {
        return Err(PatchError::NotAnObject {
            what: "patched object",
        });
    }
    Ok(patched)
}

/// Applies an RFC 7396 merge patch to a copy of `doc`. A non-object patch would replace the
/// whole object, which no API request may do, so it is rejected.
pub fn apply_merge_patch(doc: &Value, patch: &Value) -> Result<Value, PatchError> {
    if !patch.is_object() {
        return Err(PatchError::NotAnObject { what: "patch" });
    }
    let mut patched = doc.clone();
    json_patch::merge(&mut patched, patch);
    Ok(patched)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn doc() -> Value {
        json!({"metadata": {"name": "a", "labels": {"x": "1"}}, "spec": {"replicas": 1, "list": [1, 2, 3]}})
    }

    #[test]
    fn json_patch_operations() {
        let cases: &[(&str, Value, Value)] = &[
            (
                "add",
                json!([{"op": "add", "path": "/metadata/labels/y", "value": "2"}]),
                json!({"metadata": {"name": "a", "labels": {"x": "1", "y": "2"}}, "spec": {"replicas": 1, "list": [1, 2, 3]}}),
            ),
            (
                "add appends with -",
                json!([{"op": "add", "path": "/spec/list/-", "value": 4}]),
                json!({"metadata": {"name": "a", "labels": {"x": "1"}}, "spec": {"replicas": 1, "list": [1, 2, 3, 4]}}),
            ),
            (
                "remove",
                json!([{"op": "remove", "path": "/spec/list/0"}]),
                json!({"metadata": {"name": "a", "labels": {"x": "1"}}, "spec": {"replicas": 1, "list": [2, 3]}}),
            ),
            (
                "test then replace",
                json!([
                    {"op": "test", "path": "/spec/replicas", "value": 1},
                    {"op": "replace", "path": "/spec/replicas", "value": 5}
                ]),
                json!({"metadata": {"name": "a", "labels": {"x": "1"}}, "spec": {"replicas": 5, "list": [1, 2, 3]}}),
            ),
            (
                "move",
                json!([{"op": "move", "from": "/metadata/labels/x", "path": "/metadata/labels/z"}]),
                json!({"metadata": {"name": "a", "labels": {"z": "1"}}, "spec": {"replicas": 1, "list": [1, 2, 3]}}),
            ),
            (
                "copy",
                json!([{"op": "copy", "from": "/metadata/name", "path": "/metadata/labels/name"}]),
                json!({"metadata": {"name": "a", "labels": {"x": "1", "name": "a"}}, "spec": {"replicas": 1, "list": [1, 2, 3]}}),
            ),
        ];
        for (name, patch, want) in cases {
            assert_eq!(apply_json_patch(&doc(), patch).unwrap(), *want, "{name}");
        }
    }

    #[test]
    fn json_patch_failures() {
        let failing_test = json!([
            {"op": "replace", "path": "/spec/replicas", "value": 3},
            {"op": "test", "path": "/metadata/name", "value": "b"}
        ]);
        match apply_json_patch(&doc(), &failing_test) {
            Err(PatchError::JsonPatchOperation { index, path, .. }) => {
                assert_eq!((index, path.as_str()), (1, "/metadata/name"));
            }
            other => panic!("expected a failed test op, got {other:?}"),
        }
        let missing = json!([{"op": "remove", "path": "/spec/nothing"}]);
        assert!(matches!(
            apply_json_patch(&doc(), &missing),
            Err(PatchError::JsonPatchOperation { index: 0, .. })
        ));
        let not_ops = json!({"op": "add"});
        assert!(matches!(
            apply_json_patch(&doc(), &not_ops),
            Err(PatchError::InvalidJsonPatch { .. })
        ));
        let unknown_op = json!([{"op": "frobnicate", "path": "/a"}]);
        assert!(matches!(
            apply_json_patch(&doc(), &unknown_op),
            Err(PatchError::InvalidJsonPatch { .. })
        ));
        let replaces_root = json!([{"op": "replace", "path": "", "value": [1]}]);
        assert!(matches!(
            apply_json_patch(&doc(), &replaces_root),
            Err(PatchError::NotAnObject { .. })
        ));
    }

    #[test]
    fn merge_patch() {
        let cases: &[(Value, Value)] = &[
            (
                json!({"metadata": {"labels": {"x": null, "y": "2"}}}),
                json!({"metadata": {"name": "a", "labels": {"y": "2"}}, "spec": {"replicas": 1, "list": [1, 2, 3]}}),
            ),
            (
                json!({"spec": {"list": [9], "new": {"a": null, "b": 1}}}),
                json!({"metadata": {"name": "a", "labels": {"x": "1"}}, "spec": {"replicas": 1, "list": [9], "new": {"b": 1}}}),
            ),
            (
                json!({"spec": null}),
                json!({"metadata": {"name": "a", "labels": {"x": "1"}}}),
            ),
        ];
        for (patch, want) in cases {
            assert_eq!(apply_merge_patch(&doc(), patch).unwrap(), *want, "{patch}");
        }
        assert!(matches!(
            apply_merge_patch(&doc(), &json!([1])),
            Err(PatchError::NotAnObject { what: "patch" })
        ));
    }
}
