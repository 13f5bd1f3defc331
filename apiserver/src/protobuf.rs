//! Kubernetes protobuf request bodies (`application/vnd.kubernetes.protobuf`), decoded to JSON.
//!
//! client-go's typed clients (and so `kubectl create configmap …`) send built-in objects as
//! protobuf and never fall back to JSON, so the server must read them. The message schemas
//! come from the descriptors that k8s-rs-pb embeds; Kubernetes names proto fields by their
//! JSON names, so a reflective walk yields the JSON form, with the few special types
//! (Quantity, IntOrString, Time, RawExtension…) mapped as their JSON marshallers do.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use k8s_rs_pb::apimachinery::pkg::runtime::Unknown;
use protobuf::Message;
use protobuf::MessageDyn;
use protobuf::reflect::{FileDescriptor, MessageDescriptor, ReflectValueRef, RuntimeFieldType};
use rkube_api::resources::ResourceInfo;
use serde_json::{Map, Value};

/// Every Kubernetes protobuf body starts with these four bytes.
const MAGIC: &[u8] = b"k8s\0";

#[derive(Debug, thiserror::Error)]
pub enum ProtobufError {
    #[error("protobuf body does not start with the kubernetes magic prefix")]
    NoMagic,
    #[error("decoding the protobuf envelope: {0}")]
    Envelope(protobuf::Error),
    #[error("no protobuf schema for {api_version} {kind}")]
    UnknownKind { api_version: String, kind: String },
    #[error("decoding {kind} from protobuf: {source}")]
    Message {
        kind: String,
        #[source]
        source: protobuf::Error,
    },
    #[error("field {field} holds invalid JSON")]
    RawJson { field: String },
}

/// The proto file holding a group-version's types.
fn file_for(api_version: &str) -> Option<&'static FileDescriptor> {
    use k8s_rs_pb::api;
    Some(match api_version {
        "v1" => api::core::v1::file_descriptor(),
        "apps/v1" => api::apps::v1::file_descriptor(),
        "batch/v1" => api::batch::v1::file_descriptor(),
        "node.k8s.io/v1" => api::node::v1::file_descriptor(),
        "coordination.k8s.io/v1" => api::coordination::v1::file_descriptor(),
        "discovery.k8s.io/v1" => api::discovery::v1::file_descriptor(),
        "autoscaling/v1" => api::autoscaling::v1::file_descriptor(),
        _ => return None,
    })
}

/// Decodes a protobuf body into the object's JSON form; the envelope names its type (a
/// subresource body such as a Scale or Binding is not the resource's kind), `resource`
/// only when it does not.
pub fn decode(resource: &ResourceInfo, bytes: &[u8]) -> Result<Value, ProtobufError> {
    let body = bytes.strip_prefix(MAGIC).ok_or(ProtobufError::NoMagic)?;
    let envelope = Unknown::parse_from_bytes(body).map_err(ProtobufError::Envelope)?;
    let api_version = envelope.typeMeta.apiVersion.clone().unwrap_or_default();
    let kind = envelope.typeMeta.kind.clone().unwrap_or_default();
    let (api_version, kind) = if kind.is_empty() {
        (resource.api_version(), resource.kind.to_string())
    } else {
        (api_version, kind)
    };
    let descriptor = file_for(&api_version)
        .and_then(|f| f.message_by_package_relative_name(&kind))
        .ok_or_else(|| ProtobufError::UnknownKind {
            api_version: api_version.clone(),
            kind: kind.clone(),
        })?;
    let raw = envelope.raw.unwrap_or_default();
    let message = descriptor
        .parse_from_bytes(&raw)
        .map_err(|source| ProtobufError::Message {
            kind: kind.clone(),
            source,
        })?;
    let mut object = message_to_json(&*message)?;
    if let Value::Object(map) = &mut object {
        map.insert("apiVersion".into(), Value::String(api_version));
        map.insert("kind".into(), Value::String(kind));
    }
    Ok(object)
}

fn message_to_json(message: &dyn MessageDyn) -> Result<Value, ProtobufError> {
    let descriptor = message.descriptor_dyn();
    if let Some(special) = special_to_json(&descriptor, message)? {
        return Ok(special);
    }
    let mut out = Map::new();
    for field in descriptor.fields() {
        let name = field.name().to_string();
        let value = match field.runtime_field_type() {
            RuntimeFieldType::Singular(_) => match field.get_singular(message) {
                Some(v) => value_to_json(v, &name)?,
                None => continue,
            },
            RuntimeFieldType::Repeated(_) => {
                let list = field.get_repeated(message);
                if list.is_empty() {
                    continue;
                }
                let items = list
                    .into_iter()
                    .map(|v| value_to_json(v, &name))
                    .collect::<Result<Vec<_>, _>>()?;
                Value::Array(items)
            }
            RuntimeFieldType::Map(_, _) => {
                let map = field.get_map(message);
                if map.is_empty() {
                    continue;
                }
                let mut entries = Map::new();
                for (k, v) in &map {
                    let key = match k {
                        ReflectValueRef::String(s) => s.to_string(),
                        other => scalar_key(&other),
                    };
                    entries.insert(key, value_to_json(v, &name)?);
                }
                Value::Object(entries)
            }
        };
        out.insert(name, value);
    }
    Ok(Value::Object(out))
}

fn scalar_key(value: &ReflectValueRef) -> String {
    match value {
        ReflectValueRef::I32(n) => n.to_string(),
        ReflectValueRef::I64(n) => n.to_string(),
        ReflectValueRef::U32(n) => n.to_string(),
        ReflectValueRef::U64(n) => n.to_string(),
        ReflectValueRef::Bool(b) => b.to_string(),
        _ => String::new(),
    }
}

fn value_to_json(value: ReflectValueRef, field: &str) -> Result<Value, ProtobufError> {
    Ok(match value {
        ReflectValueRef::U32(n) => Value::from(n),
        ReflectValueRef::U64(n) => Value::from(n),
        ReflectValueRef::I32(n) => Value::from(n),
        ReflectValueRef::I64(n) => Value::from(n),
        ReflectValueRef::F32(n) => Value::from(f64::from(n)),
        ReflectValueRef::F64(n) => Value::from(n),
        ReflectValueRef::Bool(b) => Value::Bool(b),
        ReflectValueRef::String(s) => Value::String(s.to_string()),
        ReflectValueRef::Bytes(b) => Value::String(STANDARD.encode(b)),
        ReflectValueRef::Enum(_, n) => Value::from(n),
        ReflectValueRef::Message(m) => message_to_json(&*m).map_err(|e| match e {
            ProtobufError::RawJson { field: inner } => ProtobufError::RawJson {
                field: format!("{field}.{inner}"),
            },
            other => other,
        })?,
    })
}

fn string_field(descriptor: &MessageDescriptor, message: &dyn MessageDyn, name: &str) -> Option<String> {
    match descriptor.field_by_name(name)?.get_singular(message)? {
        ReflectValueRef::String(s) => Some(s.to_string()),
        _ => None,
    }
}

fn int_field(descriptor: &MessageDescriptor, message: &dyn MessageDyn, name: &str) -> Option<i64> {
    match descriptor.field_by_name(name)?.get_singular(message)? {
        ReflectValueRef::I64(n) => Some(n),
        ReflectValueRef::I32(n) => Some(i64::from(n)),
        _ => None,
    }
}

fn bytes_field(descriptor: &MessageDescriptor, message: &dyn MessageDyn, name: &str) -> Option<Vec<u8>> {
    match descriptor.field_by_name(name)?.get_singular(message)? {
        ReflectValueRef::Bytes(b) => Some(b.to_vec()),
        _ => None,
    }
}

/// The types whose JSON form is not their message shape.
fn special_to_json(
    descriptor: &MessageDescriptor,
    message: &dyn MessageDyn,
) -> Result<Option<Value>, ProtobufError> {
    let full = descriptor.full_name();
    let value = match full.rsplit('.').next().unwrap_or_default() {
        _ if !full.starts_with("apimachinery.") => return Ok(None),
        "Quantity" => Value::String(string_field(descriptor, message, "string").unwrap_or_default()),
        "IntOrString" => match int_field(descriptor, message, "type") {
            Some(1) => Value::String(string_field(descriptor, message, "strVal").unwrap_or_default()),
            _ => Value::from(int_field(descriptor, message, "intVal").unwrap_or_default()),
        },
        "Time" => {
            let seconds = int_field(descriptor, message, "seconds").unwrap_or_default();
            Value::String(crate::objects::rfc3339(seconds))
        }
        "MicroTime" => {
            let seconds = int_field(descriptor, message, "seconds").unwrap_or_default();
            let nanos = int_field(descriptor, message, "nanos").unwrap_or_default();
            let base = crate::objects::rfc3339(seconds);
            Value::String(format!("{}.{:06}Z", base.trim_end_matches('Z'), nanos / 1000))
        }
        "RawExtension" | "FieldsV1" => {
            let field = if full.ends_with("FieldsV1") { "Raw" } else { "raw" };
            let raw = bytes_field(descriptor, message, field).unwrap_or_default();
            if raw.is_empty() {
                Value::Null
            } else {
                serde_json::from_slice(&raw).map_err(|_| ProtobufError::RawJson {
                    field: field.to_string(),
                })?
            }
        }
        _ => return Ok(None),
    };
    Ok(Some(value))
}

/// Whether a content type names the Kubernetes protobuf encoding.
pub fn is_protobuf(content_type: &str) -> bool {
    content_type == "application/vnd.kubernetes.protobuf"
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_rs_pb::api::core::v1::{ConfigMap, Container, Pod, PodSpec};
    use k8s_rs_pb::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
    use k8s_rs_pb::apimachinery::pkg::runtime::TypeMeta;
    use rkube_api::resources::find;

    fn envelope(api_version: &str, kind: &str, raw: Vec<u8>) -> Vec<u8> {
        let mut unknown = Unknown::new();
        let mut meta = TypeMeta::new();
        meta.apiVersion = Some(api_version.into());
        meta.kind = Some(kind.into());
        unknown.typeMeta = protobuf::MessageField::some(meta);
        unknown.raw = Some(raw);
        let mut out = MAGIC.to_vec();
        out.extend(unknown.write_to_bytes().unwrap());
        out
    }

    #[test]
    fn decodes_a_configmap_as_kubectl_sends_it() {
        let mut cm = ConfigMap::new();
        let mut meta = ObjectMeta::new();
        meta.name = Some("settings".into());
        meta.namespace = Some("default".into());
        let mut created = Time::new();
        created.seconds = Some(0);
        meta.creationTimestamp = protobuf::MessageField::some(created);
        cm.metadata = protobuf::MessageField::some(meta);
        cm.data.insert("a".into(), "b".into());
        cm.binaryData.insert("bin".into(), vec![0, 1, 2]);
        let bytes = envelope("v1", "ConfigMap", cm.write_to_bytes().unwrap());
        let json = decode(find("", "v1", "configmaps").unwrap(), &bytes).unwrap();
        assert_eq!(json["kind"], "ConfigMap");
        assert_eq!(json["metadata"]["name"], "settings");
        assert_eq!(json["metadata"]["creationTimestamp"], "1970-01-01T00:00:00Z");
        assert_eq!(json["data"]["a"], "b");
        assert_eq!(json["binaryData"]["bin"], "AAEC");
    }

    #[test]
    fn decodes_nested_pod_fields() {
        let mut pod = Pod::new();
        let mut spec = PodSpec::new();
        let mut c = Container::new();
        c.name = Some("app".into());
        c.image = Some("busybox".into());
        c.args = vec!["sleep".into(), "10".into()];
        spec.containers.push(c);
        spec.terminationGracePeriodSeconds = Some(5);
        pod.spec = protobuf::MessageField::some(spec);
        let bytes = envelope("v1", "Pod", pod.write_to_bytes().unwrap());
        let json = decode(find("", "v1", "pods").unwrap(), &bytes).unwrap();
        assert_eq!(json["spec"]["containers"][0]["args"][1], "10");
        assert_eq!(json["spec"]["terminationGracePeriodSeconds"], 5);
    }

    #[test]
    fn refuses_garbage_and_the_wrong_kind() {
        let pods = find("", "v1", "pods").unwrap();
        assert!(matches!(decode(pods, b"{}"), Err(ProtobufError::NoMagic)));
        assert!(decode(pods, b"k8s\0\xff\xff\xff").is_err());
        let unknown = envelope("v1", "NoSuchKind", Vec::new());
        assert!(matches!(decode(pods, &unknown), Err(ProtobufError::UnknownKind { .. })));
    }
}
