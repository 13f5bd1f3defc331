//! A container's environment: literal values, `valueFrom` references and `envFrom` sources.

use k8s_openapi::api::core::v1::{ConfigMap, Container, Pod, Secret};
use kube::api::Api;
use kube::{Client, ResourceExt};

#[derive(Debug, thiserror::Error)]
pub enum EnvError {
    #[error("env {variable}: {kind} {name} not found")]
    MissingObject {
        variable: String,
        kind: &'static str,
        name: String,
    },
    #[error("env {variable}: key {key} not found in {kind} {name}")]
    MissingKey {
        variable: String,
        kind: &'static str,
        name: String,
        key: String,
    },
    #[error("env {variable}: unsupported field path {path}")]
    FieldPath { variable: String, path: String },
    #[error("env {variable}: reading {kind} {name}: {source}")]
    Read {
        variable: String,
        kind: &'static str,
        name: String,
        #[source]
        source: Box<kube::Error>,
    },
}

/// The pod fields `fieldRef` may name; `pod_ip` stands for `status.podIP` and `status.hostIP`
/// (wasm pods share the node's address).
pub fn field_value(pod: &Pod, path: &str, pod_ip: &str) -> Option<String> {
    let spec = pod.spec.as_ref();
    let bracketed = |prefix: &str| {
        path.strip_prefix(prefix)?
            .strip_prefix("['")?
            .strip_suffix("']")
            .map(str::to_string)
    };
    if let Some(key) = bracketed("metadata.labels") {
        return pod.labels().get(&key).cloned().or(Some(String::new()));
    }
    if let Some(key) = bracketed("metadata.annotations") {
        return pod.annotations().get(&key).cloned().or(Some(String::new()));
    }
    match path {
        "metadata.name" => Some(pod.name_any()),
        "metadata.namespace" => pod.namespace(),
        "metadata.uid" => pod.uid(),
        "spec.nodeName" => spec.and_then(|s| s.node_name.clone()),
        "spec.serviceAccountName" => spec.and_then(|s| s.service_account_name.clone()),
        "status.podIP" | "status.hostIP" | "status.podIPs" | "status.hostIPs" => {
            Some(pod_ip.to_string())
        }
        _ => None,
    }
}

/// Resolves `container`'s environment in declaration order (`envFrom` first, then `env`, as
/// the kubelet does, so that `env` wins).
pub async fn resolve(
    client: &Client,
    pod: &Pod,
    container: &Container,
    pod_ip: &str,
) -> Result<Vec<(String, String)>, EnvError> {
    let namespace = pod.namespace().unwrap_or_else(|| "default".into());
    let config_maps: Api<ConfigMap> = Api::namespaced(client.clone(), &namespace);
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &namespace);
    let mut env: Vec<(String, String)> = Vec::new();
    let set = |env: &mut Vec<(String, String)>, name: String, value: String| {
        env.retain(|(n, _)| *n != name);
        env.push((name, value));
    };

    for source in container.env_from.iter().flatten() {
        let prefix = source.prefix.clone().unwrap_or_default();
        if let Some(cm_ref) = &source.config_map_ref {
            let optional = cm_ref.optional.unwrap_or(false);
            let found = get(&config_maps, "envFrom", "configmap", &cm_ref.name, optional).await?;
            for (k, v) in found.and_then(|cm| cm.data).unwrap_or_default() {
                set(&mut env, format!("{prefix}{k}"), v);
            }
        }
        if let Some(secret_ref) = &source.secret_ref {
            let optional = secret_ref.optional.unwrap_or(false);
            let found = get(&secrets, "envFrom", "secret", &secret_ref.name, optional).await?;
            for (k, v) in found.and_then(|s| s.data).unwrap_or_default() {
                set(&mut env, format!("{prefix}{k}"), lossy(&v.0));
            }
        }
    }

    for var in container.env.iter().flatten() {
        let name = var.name.clone();
        let Some(from) = &var.value_from else {
            set(&mut env, name, var.value.clone().unwrap_or_default());
            continue;
        };
        if let Some(key_ref) = &from.config_map_key_ref {
            let optional = key_ref.optional.unwrap_or(false);
            let found = get(&config_maps, &name, "configmap", &key_ref.name, optional).await?;
            let value = found.and_then(|cm| cm.data?.get(&key_ref.key).cloned());
            match value {
                Some(value) => set(&mut env, name, value),
                None if optional => {}
                None => return Err(missing_key(name, "configmap", &key_ref.name, &key_ref.key)),
            }
        } else if let Some(key_ref) = &from.secret_key_ref {
            let optional = key_ref.optional.unwrap_or(false);
            let found = get(&secrets, &name, "secret", &key_ref.name, optional).await?;
            let value = found.and_then(|s| s.data?.get(&key_ref.key).map(|v| lossy(&v.0)));
            match value {
                Some(value) => set(&mut env, name, value),
                None if optional => {}
                None => return Err(missing_key(name, "secret", &key_ref.name, &key_ref.key)),
            }
        } else if let Some(field) = &from.field_ref {
            let value =
                field_value(pod, &field.field_path, pod_ip).ok_or_else(|| EnvError::FieldPath {
                    variable: name.clone(),
                    path: field.field_path.clone(),
                })?;
            set(&mut env, name, value);
        }
    }
    Ok(env)
}

fn lossy(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn missing_key(variable: String, kind: &'static str, name: &str, key: &str) -> EnvError {
    EnvError::MissingKey {
        variable,
        kind,
        name: name.to_string(),
        key: key.to_string(),
    }
}

async fn get<K>(
    api: &Api<K>,
    variable: &str,
    kind: &'static str,
    name: &str,
    optional: bool,
) -> Result<Option<K>, EnvError>
where
    K: Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let found = api.get_opt(name).await.map_err(|source| EnvError::Read {
        variable: variable.to_string(),
        kind,
        name: name.to_string(),
        source: Box::new(source),
    })?;
    match found {
        None if !optional => Err(EnvError::MissingObject {
            variable: variable.to_string(),
            kind,
            name: name.to_string(),
        }),
        found => Ok(found),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use k8s_openapi::api::core::v1::PodSpec;

    use super::*;

    #[test]
    fn field_paths_of_the_pod() {
        let mut pod = Pod::default();
        pod.metadata.name = Some("web".into());
        pod.metadata.namespace = Some("prod".into());
        pod.metadata.labels = Some(BTreeMap::from([("tier".to_string(), "front".to_string())]));
        pod.spec = Some(PodSpec {
            node_name: Some("n1".into()),
            ..PodSpec::default()
        });
        let value = |path| field_value(&pod, path, "10.0.0.5");
        assert_eq!(value("metadata.name").as_deref(), Some("web"));
        assert_eq!(value("metadata.namespace").as_deref(), Some("prod"));
        assert_eq!(value("metadata.labels['tier']").as_deref(), Some("front"));
        assert_eq!(value("spec.nodeName").as_deref(), Some("n1"));
        assert_eq!(value("status.podIP").as_deref(), Some("10.0.0.5"));
        assert_eq!(value("spec.containers"), None);
    }
}
