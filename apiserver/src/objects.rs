//! Stored objects: storage keys, metadata access and the JSON encoding the store holds.

use std::sync::Arc;

use rkube_api::resources::ResourceInfo;
use serde_json::{Map, Value};

use crate::error::{ApiError, ApiResult};
use crate::store::{KeyValue, Revision};

/// The storage key of an object: `/registry/<group-resource>/[<namespace>/]<name>`.
pub fn key(resource: &ResourceInfo, namespace: Option<&str>, name: &str) -> String {
    format!("{}{}", prefix(resource, namespace), name)
}

/// The key prefix of a resource, optionally within one namespace.
pub fn prefix(resource: &ResourceInfo, namespace: Option<&str>) -> String {
    match namespace {
        Some(ns) if resource.namespaced => format!("/registry/{}/{ns}/", resource.group_resource()),
        _ => format!("/registry/{}/", resource.group_resource()),
    }
}

/// Parses a stored value and stamps `metadata.resourceVersion` with its revision.
pub fn decode(kv: &KeyValue) -> ApiResult<Value> {
    let mut obj: Value = serde_json::from_slice(&kv.value).map_err(|e| {
        ApiError::Internal(format!("stored object {} is not valid JSON: {e}", kv.key))
    })?;
    set_resource_version(&mut obj, kv.mod_revision);
    Ok(obj)
}

/// The bytes the store keeps: the object without its resourceVersion (the revision is it).
pub fn encode(obj: &Value) -> Vec<u8> {
    // Creates arrive without a resourceVersion: serialize those without copying the object.
    if obj.pointer("/metadata/resourceVersion").is_none() {
        return serde_json::to_vec(obj).unwrap_or_default();
    }
    let mut obj = obj.clone();
    if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.remove("resourceVersion");
    }
    serde_json::to_vec(&obj).unwrap_or_default()
}

pub fn set_resource_version(obj: &mut Value, revision: Revision) {
    meta_mut(obj).insert(
        "resourceVersion".into(),
        Value::String(revision.to_string()),
    );
}

/// The object's metadata map, created when missing.
pub fn meta_mut(obj: &mut Value) -> &mut Map<String, Value> {
    if !obj.is_object() {
        *obj = Value::Object(Map::new());
    }
    let root = obj.as_object_mut().expect("just made an object");
    let meta = root
        .entry("metadata")
        .or_insert_with(|| Value::Object(Map::new()));
    if !meta.is_object() {
        *meta = Value::Object(Map::new());
    }
    meta.as_object_mut().expect("just made an object")
}

pub fn meta_str<'a>(obj: &'a Value, field: &str) -> Option<&'a str> {
    obj.get("metadata")?.get(field)?.as_str()
}

pub fn name(obj: &Value) -> &str {
    meta_str(obj, "name").unwrap_or_default()
}

pub fn namespace(obj: &Value) -> Option<&str> {
    meta_str(obj, "namespace")
}

pub fn resource_version(obj: &Value) -> Option<Revision> {
    meta_str(obj, "resourceVersion").and_then(|rv| rv.parse().ok())
}

pub fn labels(obj: &Value) -> Option<&Map<String, Value>> {
    obj.get("metadata")?.get("labels")?.as_object()
}

pub fn finalizers(obj: &Value) -> Vec<String> {
    obj.get("metadata")
        .and_then(|m| m.get("finalizers"))
        .and_then(Value::as_array)
        .map(|list| {
            list.iter()
                .filter_map(|f| f.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

pub fn is_deleting(obj: &Value) -> bool {
    meta_str(obj, "deletionTimestamp").is_some()
}

/// A cached object: the parsed value and its serialized bytes, both with resourceVersion set,
/// so LIST can write bytes without serializing again.
#[derive(Debug)]
pub struct Stored {
    pub key: String,
    pub object: Value,
    pub json: bytes::Bytes,
    pub revision: Revision,
}

impl Stored {
    pub fn from_kv(kv: &KeyValue) -> ApiResult<Arc<Stored>> {
        let object = decode(kv)?;
        let json = serde_json::to_vec(&object)
            .map_err(|e| ApiError::Internal(format!("encoding {}: {e}", kv.key)))?;
        Ok(Arc::new(Stored {
            key: kv.key.clone(),
            object,
            json: json.into(),
            revision: kv.mod_revision,
        }))
    }
}

/// The current time as Kubernetes writes timestamps (RFC 3339, seconds, UTC).
pub fn now_rfc3339() -> String {
    rfc3339(now_unix())
}

/// Seconds since the Unix epoch.
pub fn now_unix() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// A registered resource; one that is not is a bug of the server, not of the request.
pub fn resource(
    group: &str,
    version: &str,
    plural: &str,
) -> crate::error::ApiResult<&'static rkube_api::resources::ResourceInfo> {
    rkube_api::resources::find(group, version, plural)
        .ok_or_else(|| crate::error::ApiError::Internal(format!("{plural} are not registered")))
}

/// Formats Unix seconds as `YYYY-MM-DDTHH:MM:SSZ`.
pub fn rfc3339(unix: i64) -> String {
    let days = unix.div_euclid(86_400);
    let secs = unix.rem_euclid(86_400);
    // Civil-from-days (proleptic Gregorian), valid for every date we will see.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use rkube_api::resources::find;

    #[test]
    fn keys_separate_namespaces_and_groups() {
        let pods = find("", "v1", "pods").unwrap();
        let deploys = find("apps", "v1", "deployments").unwrap();
        let nodes = find("", "v1", "nodes").unwrap();
        assert_eq!(key(pods, Some("default"), "p"), "/registry/pods/default/p");
        assert_eq!(prefix(pods, None), "/registry/pods/");
        assert_eq!(
            key(deploys, Some("a"), "d"),
            "/registry/deployments.apps/a/d"
        );
        assert_eq!(key(nodes, Some("ignored"), "n1"), "/registry/nodes/n1");
    }

    #[test]
    fn encode_drops_and_decode_restores_resource_version() {
        let obj = serde_json::json!({"metadata": {"name": "x", "resourceVersion": "5"}});
        let bytes = encode(&obj);
        assert!(!String::from_utf8_lossy(&bytes).contains("resourceVersion"));
        let kv = KeyValue {
            key: "k".into(),
            value: bytes,
            create_revision: 7,
            mod_revision: 9,
        };
        assert_eq!(resource_version(&decode(&kv).unwrap()), Some(9));
        let fresh = serde_json::json!({"metadata": {"name": "x"}});
        assert_eq!(encode(&fresh), serde_json::to_vec(&fresh).unwrap());
    }

    #[test]
    fn formats_timestamps() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1795902385), "2026-11-28T21:46:25Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
    }
}
