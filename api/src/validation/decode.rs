//! Strict decoding: typing a JSON object as its k8s-openapi kind and finding the fields the
//! type does not know (k8s-openapi drops them silently, Kubernetes reports them).

use k8s_openapi::api::{apps, batch, certificates, coordination, core, discovery, node, rbac};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use crate::resources::ResourceInfo;

#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// The body does not fit the kind's schema, e.g. a string where an integer belongs;
    /// `path` is empty for the object itself.
    #[error("{}{message}", if path.is_empty() { String::new() } else { format!("{path}: ") })]
    Type { path: String, message: String },
    #[error("no type is known for kind {kind}")]
    UnknownKind { kind: String },
    #[error("cannot re-encode {kind}: {message}")]
    Encode { kind: String, message: String },
}

/// Types `obj` as the resource's kind; returns the paths of fields the kind does not have,
/// e.g. `spec.template.spec.containers[0].imagee`.
pub fn decode_strict(resource: &ResourceInfo, obj: &Value) -> Result<Vec<String>, DecodeError> {
    match resource.kind {
        "Namespace" => unknown_fields::<core::v1::Namespace>(resource, obj),
        "Pod" => unknown_fields::<core::v1::Pod>(resource, obj),
        "Node" => unknown_fields::<core::v1::Node>(resource, obj),
        "Service" => unknown_fields::<core::v1::Service>(resource, obj),
        "Endpoints" => unknown_fields::<core::v1::Endpoints>(resource, obj),
        "ConfigMap" => unknown_fields::<core::v1::ConfigMap>(resource, obj),
        "Secret" => unknown_fields::<core::v1::Secret>(resource, obj),
        "ServiceAccount" => unknown_fields::<core::v1::ServiceAccount>(resource, obj),
        "Event" => unknown_fields::<core::v1::Event>(resource, obj),
        "Deployment" => unknown_fields::<apps::v1::Deployment>(resource, obj),
        "ReplicaSet" => unknown_fields::<apps::v1::ReplicaSet>(resource, obj),
        "DaemonSet" => unknown_fields::<apps::v1::DaemonSet>(resource, obj),
        "StatefulSet" => unknown_fields::<apps::v1::StatefulSet>(resource, obj),
        "Job" => unknown_fields::<batch::v1::Job>(resource, obj),
        "CronJob" => unknown_fields::<batch::v1::CronJob>(resource, obj),
        "RuntimeClass" => unknown_fields::<node::v1::RuntimeClass>(resource, obj),
        "CertificateSigningRequest" => {
            unknown_fields::<certificates::v1::CertificateSigningRequest>(resource, obj)
        }
        "Role" => unknown_fields::<rbac::v1::Role>(resource, obj),
        "ClusterRole" => unknown_fields::<rbac::v1::ClusterRole>(resource, obj),
        "RoleBinding" => unknown_fields::<rbac::v1::RoleBinding>(resource, obj),
        "ClusterRoleBinding" => unknown_fields::<rbac::v1::ClusterRoleBinding>(resource, obj),
        "Lease" => unknown_fields::<coordination::v1::Lease>(resource, obj),
        "EndpointSlice" => unknown_fields::<discovery::v1::EndpointSlice>(resource, obj),
        other => Err(DecodeError::UnknownKind {
            kind: other.to_string(),
        }),
    }
}

fn unknown_fields<T: DeserializeOwned + Serialize>(
    resource: &ResourceInfo,
    obj: &Value,
) -> Result<Vec<String>, DecodeError> {
    let typed: T = serde_path_to_error::deserialize(obj).map_err(|err| {
        let path = err.path().to_string();
        DecodeError::Type {
            // serde_path_to_error renders the root as `.`.
            path: if path == "." { String::new() } else { path },
            message: err.inner().to_string(),
        }
    })?;
    let known = serde_json::to_value(&typed).map_err(|err| DecodeError::Encode {
        kind: resource.kind.to_string(),
        message: err.to_string(),
    })?;
    let mut unknown = Vec::new();
    if let (Value::Object(input), Value::Object(known)) = (obj, &known) {
        compare_objects(input, known, "", &mut unknown);
    }
    Ok(unknown)
}

/// Collects keys of `input` missing from the re-encoded `known`. A null input value decodes to
/// an absent field, so it is not unknown. Free-form JSON (`fieldsV1`, raw extensions) is
/// carried through whole and so never differs.
fn compare_objects(
    input: &Map<String, Value>,
    known: &Map<String, Value>,
    path: &str,
    unknown: &mut Vec<String>,
) {
    for (key, value) in input {
        let child = if path.is_empty() {
            key.clone()
        } else {
            format!("{path}.{key}")
        };
        match known.get(key) {
            None if value.is_null() => {}
            None => unknown.push(child),
            Some(known_value) => compare_values(value, known_value, &child, unknown),
        }
    }
}

fn compare_values(input: &Value, known: &Value, path: &str, unknown: &mut Vec<String>) {
    match (input, known) {
        (Value::Object(input), Value::Object(known)) => {
            compare_objects(input, known, path, unknown)
        }
        (Value::Array(input), Value::Array(known)) if input.len() == known.len() => {
            for (i, (a, b)) in input.iter().zip(known).enumerate() {
                compare_values(a, b, &format!("{path}[{i}]"), unknown);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::find;
    use serde_json::json;

    fn res(group: &str, plural: &str) -> &'static ResourceInfo {
        find(group, "v1", plural).unwrap()
    }

    fn full_pod_spec() -> Value {
        json!({
            "containers": [{
                "name": "app", "image": "nginx:1.27", "imagePullPolicy": "IfNotPresent",
                "command": ["nginx"], "args": ["-g", "daemon off;"],
                "ports": [{"name": "http", "containerPort": 80, "protocol": "TCP"}],
                "env": [{"name": "A", "value": "1"},
                        {"name": "B", "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.name"}}}],
                "resources": {"requests": {"cpu": "100m", "memory": 64}, "limits": {"cpu": 1}},
                "volumeMounts": [{"name": "data", "mountPath": "/data", "readOnly": true}],
                "livenessProbe": {"httpGet": {"path": "/", "port": "http", "scheme": "HTTP"},
                                  "periodSeconds": 10},
                "securityContext": {"runAsNonRoot": true, "capabilities": {"drop": ["ALL"]}},
                "terminationMessagePath": "/dev/termination-log",
                "terminationMessagePolicy": "File"
            }],
            "volumes": [{"name": "data", "emptyDir": {}},
                        {"name": "cfg", "configMap": {"name": "c", "defaultMode": 420}}],
            "restartPolicy": "Always", "dnsPolicy": "ClusterFirst",
            "nodeSelector": {"disk": "ssd"}, "securityContext": {},
            "tolerations": [{"key": "k", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300}],
            "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution":
                {"nodeSelectorTerms": [{"matchExpressions": [{"key": "a", "operator": "In", "values": ["b"]}]}]}}}
        })
    }

    #[test]
    fn full_objects_have_no_unknown_fields() {
        let meta = json!({"name": "x", "namespace": "d", "labels": {"app": "x"}, "annotations": {},
            "uid": "1", "resourceVersion": "5", "creationTimestamp": "2024-01-01T00:00:00Z",
            "deletionTimestamp": null, "finalizers": [],
            "managedFields": [{"manager": "kubectl", "operation": "Apply", "apiVersion": "v1",
                "fieldsType": "FieldsV1", "fieldsV1": {"f:metadata": {"f:labels": {".": {}, "f:app": {}}}}}]});
        let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": full_pod_spec(),
            "status": {"phase": "Running", "conditions": [], "podIP": "10.0.0.1"}});
        assert_eq!(
            decode_strict(res("", "pods"), &pod).unwrap(),
            Vec::<String>::new()
        );
        let template = json!({"metadata": {"labels": {"app": "x"}}, "spec": full_pod_spec()});
        let deploy = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "x"},
            "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "x"}}, "template": template,
                "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": 0}},
                "revisionHistoryLimit": 10, "progressDeadlineSeconds": 600}});
        assert_eq!(
            decode_strict(res("apps", "deployments"), &deploy).unwrap(),
            Vec::<String>::new()
        );
        let job = json!({"metadata": {"name": "j"}, "spec": {"backoffLimit": 6, "completions": 1,
            "template": {"spec": {"containers": [{"name": "c", "image": "busybox"}], "restartPolicy": "Never"}}}});
        assert_eq!(
            decode_strict(res("batch", "jobs"), &job).unwrap(),
            Vec::<String>::new()
        );
        let svc = json!({"metadata": {"name": "s"}, "spec": {"type": "ClusterIP",
            "selector": {"app": "x"}, "ports": [{"name": "http", "port": 80, "targetPort": "http"}],
            "clusterIP": "10.96.0.10", "clusterIPs": ["10.96.0.10"], "ipFamilies": ["IPv4"],
            "ipFamilyPolicy": "SingleStack", "sessionAffinity": "None"},
            "status": {"loadBalancer": {}}});
        assert_eq!(
            decode_strict(res("", "services"), &svc).unwrap(),
            Vec::<String>::new()
        );
        let secret = json!({"metadata": {"name": "s"}, "type": "Opaque", "data": {"k": "QQ=="},
            "stringData": {"a": "b"}});
        assert_eq!(
            decode_strict(res("", "secrets"), &secret).unwrap(),
            Vec::<String>::new()
        );
    }

    #[test]
    fn finds_nested_unknown_fields() {
        let deploy = json!({"metadata": {"name": "x", "labelz": {}},
            "spec": {"foo": 1, "selector": {"matchLabels": {"app": "x"}},
                "template": {"metadata": {"labels": {"app": "x"}}, "spec": {"containers": [
                    {"name": "a", "image": "i"},
                    {"name": "b", "imagee": "i", "ports": [{"containerPort": 80, "hostIP2": "x"}]}]}}}});
        assert_eq!(
            decode_strict(res("apps", "deployments"), &deploy).unwrap(),
            [
                "metadata.labelz",
                "spec.foo",
                "spec.template.spec.containers[1].imagee",
                "spec.template.spec.containers[1].ports[0].hostIP2",
            ]
        );
    }

    #[test]
    fn type_errors_name_the_field() {
        let deploy = json!({"spec": {"replicas": "three"}});
        let err = decode_strict(res("apps", "deployments"), &deploy).unwrap_err();
        assert!(
            matches!(&err, DecodeError::Type { path, .. } if path == "spec.replicas"),
            "{err}"
        );
        let wrong_kind = json!({"kind": "Service"});
        assert!(decode_strict(res("", "pods"), &wrong_kind).is_err());
    }
}
