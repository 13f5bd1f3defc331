//! Kubernetes protobuf request bodies (`application/vnd.kubernetes.protobuf`), decoded to JSON.
//!
//! client-go's typed clients (and so `kubectl create configmap …`) send built-in objects as
//! protobuf and never fall back to JSON, so the server must read them. k8s-rs-pb's generated
//! messages parse the wire format and serialize with serde under the JSON field names; the
//! few places where that serde form differs from Kubernetes JSON are normalized here.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use k8s_rs_pb::api;
use k8s_rs_pb::apimachinery::pkg::runtime::Unknown;
use protobuf::Message;
use rkube_api::resources::ResourceInfo;
use serde::Serialize;
use serde_json::{Map, Value};

/// Every Kubernetes protobuf body starts with these four bytes.
const MAGIC: &[u8] = b"k8s\0";

/// Fields Kubernetes embeds inline in JSON but as a nested message in protobuf.
const INLINE: &[&str] = &[
    "volumeSource",
    "handler",
    "ephemeralContainerCommon",
    "persistentVolumeSource",
];

#[derive(Debug, thiserror::Error)]
pub enum ProtobufError {
    #[error("protobuf body does not start with the kubernetes magic prefix")]
    NoMagic,
    #[error("decoding the protobuf envelope: {0}")]
    Envelope(protobuf::Error),
    #[error("no protobuf decoding for {api_version} {kind}")]
    UnknownKind { api_version: String, kind: String },
    #[error("decoding {kind} from protobuf: {source}")]
    Message {
        kind: String,
        #[source]
        source: protobuf::Error,
    },
    #[error("encoding {kind} as JSON: {source}")]
    Json {
        kind: String,
        #[source]
        source: serde_json::Error,
    },
}

/// Whether a content type names the Kubernetes protobuf encoding.
pub fn is_protobuf(content_type: &str) -> bool {
    content_type == "application/vnd.kubernetes.protobuf"
}

fn parse<T: Message + Serialize>(kind: &str, raw: &[u8]) -> Result<Value, ProtobufError> {
    let message = T::parse_from_bytes(raw).map_err(|source| ProtobufError::Message {
        kind: kind.to_string(),
        source,
    })?;
    serde_json::to_value(&message).map_err(|source| ProtobufError::Json {
        kind: kind.to_string(),
        source,
    })
}

/// The serde form of a message of the given type.
fn message_json(api_version: &str, kind: &str, raw: &[u8]) -> Result<Value, ProtobufError> {
    use api::{
        apps, authentication, autoscaling, batch, certificates, coordination, core, discovery,
        node, rbac,
    };
    match (api_version, kind) {
        ("v1", "Pod") => parse::<core::v1::Pod>(kind, raw),
        ("v1", "ConfigMap") => parse::<core::v1::ConfigMap>(kind, raw),
        ("v1", "Secret") => parse::<core::v1::Secret>(kind, raw),
        ("v1", "Service") => parse::<core::v1::Service>(kind, raw),
        ("v1", "Namespace") => parse::<core::v1::Namespace>(kind, raw),
        ("v1", "Node") => parse::<core::v1::Node>(kind, raw),
        ("v1", "ServiceAccount") => parse::<core::v1::ServiceAccount>(kind, raw),
        ("v1", "Endpoints") => parse::<core::v1::Endpoints>(kind, raw),
        ("v1", "Event") => parse::<core::v1::Event>(kind, raw),
        ("v1", "Binding") => parse::<core::v1::Binding>(kind, raw),
        ("apps/v1", "Deployment") => parse::<apps::v1::Deployment>(kind, raw),
        ("apps/v1", "ReplicaSet") => parse::<apps::v1::ReplicaSet>(kind, raw),
        ("apps/v1", "DaemonSet") => parse::<apps::v1::DaemonSet>(kind, raw),
        ("apps/v1", "StatefulSet") => parse::<apps::v1::StatefulSet>(kind, raw),
        ("batch/v1", "Job") => parse::<batch::v1::Job>(kind, raw),
        ("batch/v1", "CronJob") => parse::<batch::v1::CronJob>(kind, raw),
        ("node.k8s.io/v1", "RuntimeClass") => parse::<node::v1::RuntimeClass>(kind, raw),
        ("certificates.k8s.io/v1", "CertificateSigningRequest") => {
            parse::<certificates::v1::CertificateSigningRequest>(kind, raw)
        }
        ("rbac.authorization.k8s.io/v1", "Role") => parse::<rbac::v1::Role>(kind, raw),
        ("rbac.authorization.k8s.io/v1", "ClusterRole") => {
            parse::<rbac::v1::ClusterRole>(kind, raw)
        }
        ("rbac.authorization.k8s.io/v1", "RoleBinding") => {
            parse::<rbac::v1::RoleBinding>(kind, raw)
        }
        ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding") => {
            parse::<rbac::v1::ClusterRoleBinding>(kind, raw)
        }
        ("coordination.k8s.io/v1", "Lease") => parse::<coordination::v1::Lease>(kind, raw),
        ("discovery.k8s.io/v1", "EndpointSlice") => {
            parse::<discovery::v1::EndpointSlice>(kind, raw)
        }
        ("autoscaling/v1", "Scale") => parse::<autoscaling::v1::Scale>(kind, raw),
        ("authentication.k8s.io/v1", "TokenRequest") => {
            parse::<authentication::v1::TokenRequest>(kind, raw)
        }
        _ => Err(ProtobufError::UnknownKind {
            api_version: api_version.to_string(),
            kind: kind.to_string(),
        }),
    }
}

/// Decodes a protobuf body into the object's JSON form. The envelope names the type (a
/// subresource body such as a Scale or Binding is not the resource's kind); `resource`
/// stands in when it does not.
pub fn decode(resource: &ResourceInfo, bytes: &[u8]) -> Result<Value, ProtobufError> {
    let body = bytes.strip_prefix(MAGIC).ok_or(ProtobufError::NoMagic)?;
    let envelope = Unknown::parse_from_bytes(body).map_err(ProtobufError::Envelope)?;
    let mut api_version = envelope.typeMeta.apiVersion.clone().unwrap_or_default();
    let mut kind = envelope.typeMeta.kind.clone().unwrap_or_default();
    if kind.is_empty() {
        api_version = resource.api_version();
        kind = resource.kind.to_string();
    }
    let mut value = message_json(
        &api_version,
        &kind,
        envelope.raw.as_deref().unwrap_or_default(),
    )?;
    encode_bytes(&kind, &mut value);
    let mut object = match normalize(value) {
        Some(Value::Object(map)) => map,
        _ => Map::new(),
    };
    object.insert("apiVersion".into(), Value::String(api_version));
    object.insert("kind".into(), Value::String(kind));
    Ok(Value::Object(object))
}

/// `bytes` fields serialize as number arrays; Kubernetes JSON has them base64-encoded.
fn encode_bytes(kind: &str, value: &mut Value) {
    match kind {
        "Secret" => encode_map_values(value.get_mut("data")),
        "ConfigMap" => encode_map_values(value.get_mut("binaryData")),
        "CertificateSigningRequest" => {
            encode_array(value.pointer_mut("/spec/request"));
            encode_array(value.pointer_mut("/status/certificate"));
        }
        _ => {}
    }
}

fn encode_map_values(map: Option<&mut Value>) {
    if let Some(map) = map.and_then(Value::as_object_mut) {
        map.values_mut().for_each(|entry| encode_array(Some(entry)));
    }
}

fn encode_array(entry: Option<&mut Value>) {
    if let Some(entry) = entry
        && let Value::Array(items) = entry
    {
        let bytes: Vec<u8> = items
            .iter()
            .filter_map(Value::as_u64)
            .map(|b| b as u8)
            .collect();
        *entry = Value::String(STANDARD.encode(bytes));
    }
}

/// Drops unset fields (null), empty strings and empty lists, renames `type_` to `type`, and inlines the
/// embedded messages listed in [`INLINE`]. Empty objects stay: an empty message is a set
/// field (`emptyDir: {}`).
fn normalize(value: Value) -> Option<Value> {
    match value {
        Value::Null => None,
        // gogo-protobuf writes Go's non-pointer strings even when empty; Go's JSON omits them.
        Value::String(s) if s.is_empty() => None,
        Value::Array(items) if items.is_empty() => None,
        Value::Array(items) => Some(Value::Array(
            items
                .into_iter()
                .map(|i| normalize(i).unwrap_or(Value::Null))
                .collect(),
        )),
        Value::Object(map) => {
            let mut out = Map::new();
            for (key, inner) in map {
                let Some(inner) = normalize(inner) else {
                    continue;
                };
                let key = if key == "type_" {
                    "type".to_string()
                } else {
                    key
                };
                match inner {
                    Value::Object(embedded) if INLINE.contains(&key.as_str()) => {
                        out.extend(embedded);
                    }
                    other => {
                        out.insert(key, other);
                    }
                }
            }
            Some(Value::Object(out))
        }
        other => Some(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_rs_pb::api::core::v1::{
        ConfigMap, Container, EmptyDirVolumeSource, Pod, PodSpec, Secret, Service, ServicePort,
        ServiceSpec, Volume, VolumeSource,
    };
    use k8s_rs_pb::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
    use k8s_rs_pb::apimachinery::pkg::runtime::TypeMeta;
    use k8s_rs_pb::apimachinery::pkg::util::intstr::IntOrString;
    use protobuf::MessageField;
    use rkube_api::resources::find;

    fn envelope(api_version: &str, kind: &str, raw: Vec<u8>) -> Vec<u8> {
        let mut unknown = Unknown::new();
        let mut meta = TypeMeta::new();
        meta.apiVersion = Some(api_version.into());
        meta.kind = Some(kind.into());
        unknown.typeMeta = MessageField::some(meta);
        unknown.raw = Some(raw);
        let mut out = MAGIC.to_vec();
        out.extend(unknown.write_to_bytes().unwrap());
        out
    }

    fn meta(name: &str) -> MessageField<ObjectMeta> {
        let mut meta = ObjectMeta::new();
        meta.name = Some(name.into());
        let mut created = Time::new();
        created.seconds = Some(0);
        meta.creationTimestamp = MessageField::some(created);
        MessageField::some(meta)
    }

    #[test]
    fn decodes_a_token_request_as_kubectl_create_token_sends_it() {
        use k8s_rs_pb::api::authentication::v1::{TokenRequest, TokenRequestSpec};
        let mut spec = TokenRequestSpec::new();
        spec.expirationSeconds = Some(600);
        spec.audiences.push("api".into());
        let mut request = TokenRequest::new();
        request.spec = MessageField::some(spec);
        let bytes = envelope(
            "authentication.k8s.io/v1",
            "TokenRequest",
            request.write_to_bytes().unwrap(),
        );
        let json = decode(find("", "v1", "serviceaccounts").unwrap(), &bytes).unwrap();
        assert_eq!(json["kind"], "TokenRequest");
        assert_eq!(json["spec"]["expirationSeconds"], 600);
        assert_eq!(json["spec"]["audiences"][0], "api");
    }

    #[test]
    fn decodes_configmaps_and_secrets_as_kubectl_sends_them() {
        let mut cm = ConfigMap::new();
        cm.metadata = meta("settings");
        cm.data.insert("a".into(), "b".into());
        cm.binaryData.insert("bin".into(), vec![0, 1, 2]);
        let bytes = envelope("v1", "ConfigMap", cm.write_to_bytes().unwrap());
        let json = decode(find("", "v1", "configmaps").unwrap(), &bytes).unwrap();
        assert_eq!(json["kind"], "ConfigMap");
        assert_eq!(json["metadata"]["name"], "settings");
        assert_eq!(
            json["metadata"]["creationTimestamp"],
            "1970-01-01T00:00:00Z"
        );
        assert_eq!(json["data"]["a"], "b");
        assert_eq!(json["binaryData"]["bin"], "AAEC");
        assert!(json["metadata"].get("uid").is_none());

        let mut secret = Secret::new();
        secret.metadata = meta("s");
        secret.data.insert("k".into(), b"hi".to_vec());
        secret.type_ = Some("Opaque".into());
        let bytes = envelope("v1", "Secret", secret.write_to_bytes().unwrap());
        let json = decode(find("", "v1", "secrets").unwrap(), &bytes).unwrap();
        assert_eq!(json["data"]["k"], "aGk=");
        assert_eq!(json["type"], "Opaque");
    }

    #[test]
    fn inlines_volume_sources_and_keeps_empty_messages() {
        let mut pod = Pod::new();
        let mut spec = PodSpec::new();
        let mut c = Container::new();
        c.name = Some("app".into());
        c.args = vec!["sleep".into(), "10".into()];
        spec.containers.push(c);
        let mut volume = Volume::new();
        volume.name = Some("scratch".into());
        let mut source = VolumeSource::new();
        source.emptyDir = MessageField::some(EmptyDirVolumeSource::new());
        volume.volumeSource = MessageField::some(source);
        spec.volumes.push(volume);
        pod.spec = MessageField::some(spec);
        let bytes = envelope("v1", "Pod", pod.write_to_bytes().unwrap());
        let json = decode(find("", "v1", "pods").unwrap(), &bytes).unwrap();
        assert_eq!(json["spec"]["containers"][0]["args"][1], "10");
        assert_eq!(
            json["spec"]["volumes"][0],
            serde_json::json!({"name": "scratch", "emptyDir": {}})
        );
    }

    #[test]
    fn int_or_string_keeps_its_form() {
        let mut svc = Service::new();
        let mut spec = ServiceSpec::new();
        for (ty, int, s) in [(1, None, Some("http")), (0, Some(8080), None)] {
            let mut port = ServicePort::new();
            let mut target = IntOrString::new();
            target.type_ = Some(ty);
            target.intVal = int;
            target.strVal = s.map(String::from);
            port.targetPort = MessageField::some(target);
            spec.ports.push(port);
        }
        spec.type_ = Some("NodePort".into());
        svc.spec = MessageField::some(spec);
        let bytes = envelope("v1", "Service", svc.write_to_bytes().unwrap());
        let json = decode(find("", "v1", "services").unwrap(), &bytes).unwrap();
        assert_eq!(json["spec"]["ports"][0]["targetPort"], "http");
        assert_eq!(json["spec"]["ports"][1]["targetPort"], 8080);
        assert_eq!(json["spec"]["type"], "NodePort");
    }

    #[test]
    fn refuses_garbage_and_unknown_kinds() {
        let pods = find("", "v1", "pods").unwrap();
        assert!(matches!(decode(pods, b"{}"), Err(ProtobufError::NoMagic)));
        assert!(decode(pods, b"k8s\0\xff\xff\xff").is_err());
        let unknown = envelope("v1", "NoSuchKind", Vec::new());
        assert!(matches!(
            decode(pods, &unknown),
            Err(ProtobufError::UnknownKind { .. })
        ));
    }
}
