//! Admission for new pods, as kube-apiserver's RuntimeClass and DefaultTolerationSeconds
//! plugins do: the RuntimeClass must exist and brings its overhead, node selector and
//! tolerations; every pod tolerates not-ready/unreachable nodes for 300 s by default; and
//! the ServiceAccount plugin's defaulting and token volume (`serviceaccount::pod`).

use serde_json::{Map, Value, json};

use crate::error::{ApiError, ApiResult, Target};
use crate::objects;
use crate::server::ApiServer;

/// How long pods stay on a not-ready or unreachable node before eviction, by default.
const DEFAULT_TOLERATION_SECONDS: i64 = 300;

/// `target` names the pod in the Forbidden errors.
pub async fn admit_new_pod(server: &ApiServer, target: &Target, pod: &mut Value) -> ApiResult<()> {
    if let Some(class) = pod
        .pointer("/spec/runtimeClassName")
        .and_then(Value::as_str)
        .map(String::from)
    {
        let runtime_class = lookup_runtime_class(server, target, &class).await?;
        apply_runtime_class(pod, target, &class, &runtime_class)?;
    }
    add_default_tolerations(pod);
    crate::serviceaccount::pod::admit(server, pod).await
}

async fn lookup_runtime_class(
    server: &ApiServer,
    target: &Target,
    class: &str,
) -> ApiResult<Value> {
    let runtime_classes = crate::objects::resource("node.k8s.io", "v1", "runtimeclasses")?;
    let key = objects::key(runtime_classes, None, class);
    match server.admission_lookup(&key).await? {
        Some(runtime_class) => Ok(runtime_class),
        None => Err(ApiError::Forbidden {
            target: target.clone(),
            message: format!("pod rejected: RuntimeClass \"{class}\" not found"),
        }),
    }
}

/// The pod's spec map, created when missing.
pub(crate) fn spec_mut(pod: &mut Value) -> &mut Map<String, Value> {
    if !pod.get("spec").is_some_and(Value::is_object) {
        pod["spec"] = json!({});
    }
    pod["spec"].as_object_mut().expect("just made an object")
}

fn apply_runtime_class(
    pod: &mut Value,
    target: &Target,
    class: &str,
    runtime_class: &Value,
) -> ApiResult<()> {
    let forbidden = |what: &str| ApiError::Forbidden {
        target: target.clone(),
        message: format!("pod rejected: {what} conflicts with RuntimeClass \"{class}\""),
    };
    if let Some(overhead) = runtime_class.pointer("/overhead/podFixed") {
        let spec = spec_mut(pod);
        match spec.get("overhead") {
            Some(existing) if existing != overhead => return Err(forbidden("pod overhead")),
            _ => {
                spec.insert("overhead".into(), overhead.clone());
            }
        }
    }
    if let Some(selector) = runtime_class
        .pointer("/scheduling/nodeSelector")
        .and_then(Value::as_object)
    {
        let spec = spec_mut(pod);
        let pod_selector = spec
            .entry("nodeSelector")
            .or_insert_with(|| json!({}))
            .as_object_mut()
            .ok_or_else(|| forbidden("nodeSelector"))?;
        for (key, value) in selector {
            match pod_selector.get(key) {
                Some(existing) if existing != value => {
                    return Err(forbidden(&format!("nodeSelector {key}")));
                }
                _ => {
                    pod_selector.insert(key.clone(), value.clone());
                }
            }
        }
    }
    if let Some(tolerations) = runtime_class
        .pointer("/scheduling/tolerations")
        .and_then(Value::as_array)
    {
        for toleration in tolerations {
            add_toleration(pod, toleration.clone());
        }
    }
    Ok(())
}

fn add_toleration(pod: &mut Value, toleration: Value) {
    let spec = spec_mut(pod);
    let list = spec.entry("tolerations").or_insert_with(|| json!([]));
    if let Some(list) = list.as_array_mut()
        && !list.contains(&toleration)
    {
        list.push(toleration);
    }
}

/// Whether the pod already tolerates `key:NoExecute` (an empty key with Exists tolerates all).
fn tolerates(pod: &Value, key: &str) -> bool {
    pod.pointer("/spec/tolerations")
        .and_then(Value::as_array)
        .is_some_and(|list| {
            list.iter().any(|t| {
                let t_key = t.get("key").and_then(Value::as_str).unwrap_or_default();
                let effect = t.get("effect").and_then(Value::as_str).unwrap_or_default();
                (t_key == key || t_key.is_empty()) && (effect.is_empty() || effect == "NoExecute")
            })
        })
}

fn add_default_tolerations(pod: &mut Value) {
    for key in [
        "node.kubernetes.io/not-ready",
        "node.kubernetes.io/unreachable",
    ] {
        if !tolerates(pod, key) {
            add_toleration(
                pod,
                json!({
                    "key": key,
                    "operator": "Exists",
                    "effect": "NoExecute",
                    "tolerationSeconds": DEFAULT_TOLERATION_SECONDS,
                }),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runtime_class_scheduling_and_overhead_merge_into_the_pod() {
        let class = json!({
            "handler": "wasmtime",
            "overhead": {"podFixed": {"memory": "1Mi"}},
            "scheduling": {
                "nodeSelector": {"rkube.io/wasm": "true"},
                "tolerations": [{"key": "wasm", "operator": "Exists"}],
            },
        });
        let mut pod =
            json!({"spec": {"runtimeClassName": "wasmtime", "nodeSelector": {"zone": "a"}}});
        let target = Target::default();
        apply_runtime_class(&mut pod, &target, "wasmtime", &class).unwrap();
        assert_eq!(pod["spec"]["overhead"]["memory"], "1Mi");
        assert_eq!(
            pod["spec"]["nodeSelector"],
            json!({"zone": "a", "rkube.io/wasm": "true"})
        );
        assert_eq!(pod["spec"]["tolerations"][0]["key"], "wasm");

        let mut conflicting = json!({"spec": {"nodeSelector": {"rkube.io/wasm": "false"}}});
        assert!(matches!(
            apply_runtime_class(&mut conflicting, &target, "wasmtime", &class),
            Err(ApiError::Forbidden { .. })
        ));
    }

    #[test]
    fn default_tolerations_are_added_once() {
        let mut pod = json!({"spec": {}});
        add_default_tolerations(&mut pod);
        add_default_tolerations(&mut pod);
        let tolerations = pod["spec"]["tolerations"].as_array().unwrap();
        assert_eq!(tolerations.len(), 2);
        assert_eq!(tolerations[1]["key"], "node.kubernetes.io/unreachable");
        assert_eq!(tolerations[1]["tolerationSeconds"], 300);

        let mut tolerant = json!({"spec": {"tolerations": [{"operator": "Exists"}]}});
        add_default_tolerations(&mut tolerant);
        assert_eq!(tolerant["spec"]["tolerations"].as_array().unwrap().len(), 1);
    }
}
