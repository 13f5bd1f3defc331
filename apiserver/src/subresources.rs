//! The `scale` (autoscaling/v1 Scale) and `pods/binding` subresources.

use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use rkube_api::resources::Subresource;
use serde_json::{Value, json};

use crate::body::{self, PatchKind};
use crate::error::{ApiError, ApiResult};
use crate::handlers::fetch;
use crate::objects;
use crate::request::{Params, Target};
use crate::server::ApiServer;
use crate::{patches, write};

/// The Scale view of a workload.
fn scale_of(obj: &Value) -> Value {
    let selector = obj
        .pointer("/spec/selector/matchLabels")
        .and_then(Value::as_object)
        .map(|labels| {
            labels
                .iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
                .collect::<Vec<_>>()
                .join(",")
        })
        .unwrap_or_default();
    let meta = obj.get("metadata").cloned().unwrap_or_default();
    json!({
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {
            "name": meta.get("name"),
            "namespace": meta.get("namespace"),
            "uid": meta.get("uid"),
            "resourceVersion": meta.get("resourceVersion"),
            "creationTimestamp": meta.get("creationTimestamp"),
        },
        "spec": {"replicas": obj.pointer("/spec/replicas").cloned().unwrap_or(json!(1))},
        "status": {
            "replicas": obj.pointer("/status/replicas").cloned().unwrap_or(json!(0)),
            "selector": selector,
        },
    })
}

pub async fn get_scale(server: &ApiServer, target: &Target) -> ApiResult<Response> {
    let (_, obj) = fetch(server, target).await?;
    Ok(body::object_response(StatusCode::OK, &scale_of(&obj)))
}

/// PUT or PATCH of a Scale: the new `spec.replicas` is written to the workload.
pub async fn update_scale(
    server: &ApiServer,
    target: &Target,
    params: &Params,
    headers: &HeaderMap,
    bytes: &[u8],
    is_patch: bool,
) -> ApiResult<Response> {
    let (kind, input) = if is_patch {
        body::decode_patch(headers, bytes)?
    } else {
        (
            PatchKind::Merge,
            body::decode_object(target.resource, headers, bytes)?,
        )
    };
    let precondition = input
        .pointer("/metadata/resourceVersion")
        .and_then(Value::as_str)
        .and_then(|rv| rv.parse().ok());
    let main = Target {
        subresource: None,
        ..target.clone()
    };
    let scale_target = Target {
        subresource: Some(Subresource::Scale),
        ..target.clone()
    };
    let updated = write::guaranteed_update(server, &main, params, precondition, |current| {
        let scale = scale_of(current);
        let new_scale = if is_patch {
            patches::apply(kind, &scale, &input, target.resource)?
        } else {
            input.clone()
        };
        let replicas = new_scale
            .pointer("/spec/replicas")
            .and_then(Value::as_i64)
            .filter(|r| *r >= 0)
            .ok_or_else(|| ApiError::Invalid {
                target: scale_target.error_target(),
                causes: vec![crate::error::Cause {
                    reason: "FieldValueInvalid".into(),
                    field: "spec.replicas".into(),
                    message: "Invalid value: must be a non-negative integer".into(),
                }],
            })?;
        let mut next = current.clone();
        next["spec"]["replicas"] = json!(replicas);
        Ok(next)
    })
    .await?;
    Ok(body::object_response(StatusCode::OK, &scale_of(&updated)))
}

/// `POST pods/<name>/binding`: assigns an unbound pod to a node, once.
pub async fn bind(
    server: &ApiServer,
    target: &Target,
    headers: &HeaderMap,
    bytes: &[u8],
) -> ApiResult<Response> {
    let binding = body::decode_object(target.resource, headers, bytes)?;
    let node = binding
        .pointer("/target/name")
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty())
        .ok_or_else(|| ApiError::Invalid {
            target: crate::error::Target::new(
                target.resource,
                target.name.as_deref().unwrap_or_default(),
            ),
            causes: vec![crate::error::Cause {
                reason: "FieldValueRequired".into(),
                field: "target.name".into(),
                message: "Required value".into(),
            }],
        })?
        .to_string();
    let main = Target {
        subresource: None,
        ..target.clone()
    };
    let pod_name = target.name.clone().unwrap_or_default();
    // Binding conflicts name `pods/binding`, as kube-apiserver's do.
    let binding_target = crate::error::Target {
        resource: "pods/binding".into(),
        ..main.error_target()
    };
    let binding = Target {
        subresource: Some(Subresource::Binding),
        ..target.clone()
    };
    write::guaranteed_update(server, &binding, &Params::default(), None, |current| {
        if let Some(existing) = current.pointer("/spec/nodeName").and_then(Value::as_str)
            && !existing.is_empty()
        {
            return Err(ApiError::ConflictWith {
                target: binding_target.clone(),
                message: format!("pod {pod_name} is already assigned to node \"{existing}\""),
            });
        }
        if objects::is_deleting(current) {
            return Err(ApiError::ConflictWith {
                target: binding_target.clone(),
                message: format!("pod {pod_name} is being deleted, cannot be assigned to a host"),
            });
        }
        let mut next = current.clone();
        next["spec"]["nodeName"] = json!(node);
        mark_scheduled(&mut next);
        Ok(next)
    })
    .await?;
    let status = json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201});
    Ok(body::object_response(StatusCode::CREATED, &status))
}

/// Binding also marks the pod `PodScheduled=True` in the same write, as kube-apiserver's
/// BindingREST does: one revision per binding, not two, halves what a bind costs the store
/// and every pod watcher.
fn mark_scheduled(pod: &mut Value) {
    let mut conditions: Vec<Value> = pod
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    conditions.retain(|c| c.get("type").and_then(Value::as_str) != Some("PodScheduled"));
    conditions.push(json!({
        "type": "PodScheduled",
        "status": "True",
        "lastProbeTime": null,
        "lastTransitionTime": objects::now_rfc3339(),
    }));
    if !pod.get("status").is_some_and(Value::is_object) {
        pod["status"] = json!({});
    }
    pod["status"]["conditions"] = Value::Array(conditions);
}
