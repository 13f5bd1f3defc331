//! What kube-apiserver's ServiceAccount admission does to a new pod: it runs as `default`
//! unless it names a service account, and unless automounting is turned off (on the pod, or
//! on its service account when the pod leaves it unset) every container gets the
//! `kube-api-access-*` projected volume: a bound token, the cluster CA and the namespace.

use serde_json::{Map, Value, json};

use super::{DEFAULT_NAME, core_resource};
use crate::error::ApiResult;
use crate::objects;
use crate::server::ApiServer;

/// Where containers find their token, CA and namespace.
pub const MOUNT_PATH: &str = "/var/run/secrets/kubernetes.io/serviceaccount";
const VOLUME_PREFIX: &str = "kube-api-access-";
/// A bit over an hour, as kube-apiserver asks, so kubelets refresh it well before it expires.
const TOKEN_EXPIRATION_SECONDS: i64 = 3607;
/// 0644.
const DEFAULT_MODE: i64 = 420;
pub const ROOT_CA_CONFIG_MAP: &str = "kube-root-ca.crt";

/// A pod whose service account does not exist (yet) is still admitted and mounts a token
/// volume; the token request fails until the account exists.
pub async fn admit(server: &ApiServer, pod: &mut Value) -> ApiResult<()> {
    let namespace = objects::namespace(pod).unwrap_or_default().to_string();
    let spec = crate::pod_admission::spec_mut(pod);
    let name = default_service_account(spec);
    let automount = match spec
        .get("automountServiceAccountToken")
        .and_then(Value::as_bool)
    {
        Some(on_pod) => on_pod,
        None => {
            let key = objects::key(core_resource("serviceaccounts")?, Some(&namespace), &name);
            server
                .admission_lookup(&key)
                .await?
                .and_then(|sa| sa.get("automountServiceAccountToken")?.as_bool())
                .unwrap_or(true)
        }
    };
    if automount {
        mount_token(crate::pod_admission::spec_mut(pod));
    }
    Ok(())
}

/// Fills `serviceAccountName` (from the deprecated `serviceAccount` when only that is set)
/// and mirrors it into `serviceAccount`; returns it.
fn default_service_account(spec: &mut Map<String, Value>) -> String {
    let named = |field: &str| {
        spec.get(field)
            .and_then(Value::as_str)
            .filter(|n| !n.is_empty())
            .map(String::from)
    };
    let name = named("serviceAccountName")
        .or_else(|| named("serviceAccount"))
        .unwrap_or_else(|| DEFAULT_NAME.to_string());
    spec.insert("serviceAccountName".into(), json!(name));
    spec.insert("serviceAccount".into(), json!(name));
    name
}

/// Mounts the token volume in every init and app container that does not already mount
/// something at `MOUNT_PATH`, adding the volume when one of them needed it.
fn mount_token(spec: &mut Map<String, Value>) {
    let existing = spec
        .get("volumes")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|v| v.get("name").and_then(Value::as_str))
        .find(|name| name.starts_with(VOLUME_PREFIX))
        .map(String::from);
    let volume = existing
        .clone()
        .unwrap_or_else(|| format!("{VOLUME_PREFIX}{}", crate::admission::random_suffix()));
    let mut mounted = false;
    for list in ["initContainers", "containers"] {
        let containers = spec.get_mut(list).and_then(Value::as_array_mut);
        for container in containers.into_iter().flatten() {
            mounted |= add_mount(container, &volume);
        }
    }
    if mounted && existing.is_none() {
        let volumes = spec.entry("volumes").or_insert_with(|| json!([]));
        if let Some(volumes) = volumes.as_array_mut() {
            volumes.push(token_volume(&volume));
        }
    }
}

fn add_mount(container: &mut Value, volume: &str) -> bool {
    let Some(container) = container.as_object_mut() else {
        return false;
    };
    let mounts = container.entry("volumeMounts").or_insert_with(|| json!([]));
    let Some(mounts) = mounts.as_array_mut() else {
        return false;
    };
    if mounts
        .iter()
        .any(|m| m.get("mountPath").and_then(Value::as_str) == Some(MOUNT_PATH))
    {
        return false;
    }
    mounts.push(json!({"name": volume, "readOnly": true, "mountPath": MOUNT_PATH}));
    true
}

fn token_volume(name: &str) -> Value {
    json!({
        "name": name,
        "projected": {
            "defaultMode": DEFAULT_MODE,
            "sources": [
                {"serviceAccountToken": {"expirationSeconds": TOKEN_EXPIRATION_SECONDS, "path": "token"}},
                {"configMap": {"name": ROOT_CA_CONFIG_MAP, "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
                {"downwardAPI": {"items": [{"path": "namespace",
                    "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}}]}},
            ],
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(value: Value) -> Map<String, Value> {
        value.as_object().cloned().unwrap_or_default()
    }

    #[test]
    fn the_service_account_defaults_and_mirrors() {
        let mut unnamed = spec(json!({}));
        assert_eq!(default_service_account(&mut unnamed), "default");
        assert_eq!(unnamed["serviceAccount"], "default");
        let mut legacy = spec(json!({"serviceAccount": "builder"}));
        assert_eq!(default_service_account(&mut legacy), "builder");
        assert_eq!(legacy["serviceAccountName"], "builder");
        let mut both = spec(json!({"serviceAccountName": "a", "serviceAccount": "b"}));
        assert_eq!(default_service_account(&mut both), "a");
        assert_eq!(both["serviceAccount"], "a");
    }

    #[test]
    fn every_container_mounts_one_projected_volume() {
        let mut s = spec(json!({
            "initContainers": [{"name": "init"}],
            "containers": [{"name": "app", "volumeMounts": [{"name": "data", "mountPath": "/data"}]}],
            "volumes": [{"name": "data", "emptyDir": {}}],
        }));
        mount_token(&mut s);
        let volumes = s["volumes"].as_array().unwrap();
        assert_eq!(volumes.len(), 2);
        let name = volumes[1]["name"].as_str().unwrap();
        let suffix = name.strip_prefix(VOLUME_PREFIX).unwrap();
        assert_eq!(suffix.len(), 5);
        assert!(
            suffix
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        );
        assert_eq!(volumes[1], token_volume(name));
        assert_eq!(
            volumes[1]["projected"]["sources"][1]["configMap"]["name"],
            "kube-root-ca.crt"
        );
        let mount = json!({"name": name, "readOnly": true, "mountPath": MOUNT_PATH});
        assert_eq!(s["initContainers"][0]["volumeMounts"], json!([mount]));
        assert_eq!(s["containers"][0]["volumeMounts"][1], mount);
    }

    #[test]
    fn containers_mounting_the_path_themselves_are_left_alone() {
        let own = json!({"name": "mine", "mountPath": MOUNT_PATH});
        let mut s = spec(json!({
            "containers": [{"name": "app", "volumeMounts": [own]}],
            "volumes": [{"name": "mine", "secret": {"secretName": "s"}}],
        }));
        mount_token(&mut s);
        assert_eq!(s["volumes"].as_array().unwrap().len(), 1);
        assert_eq!(s["containers"][0]["volumeMounts"], json!([own]));
    }
}
