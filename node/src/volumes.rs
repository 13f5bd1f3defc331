//! Pod volumes as host directories: emptyDir, configMap, secret and downwardAPI are written
//! under the data dir; hostPath is the host's own directory.

use std::collections::{BTreeMap, HashMap};
use std::path::{Component, Path, PathBuf};

use k8s_openapi::api::core::v1::{ConfigMap, KeyToPath, Pod, Secret, Volume};
use kube::api::Api;
use kube::{Client, ResourceExt};

use crate::paths::Layout;

#[derive(Debug, thiserror::Error)]
pub enum VolumeError {
    #[error("volume {volume}: {kind} {name} not found")]
    Missing {
        volume: String,
        kind: &'static str,
        name: String,
    },
    #[error("volume {volume}: reading {kind} {name}: {source}")]
    Read {
        volume: String,
        kind: &'static str,
        name: String,
        #[source]
        source: Box<kube::Error>,
    },
    #[error("volume {volume}: writing {path}: {source}")]
    Write {
        volume: String,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("volume {volume}: path {path} escapes the volume")]
    BadPath { volume: String, path: String },
    #[error("volume {volume}: unsupported volume type")]
    Unsupported { volume: String },
}

/// Materialises the pod's volumes; returns each volume's host directory by name.
pub async fn prepare(
    client: &Client,
    layout: &Layout,
    pod: &Pod,
) -> Result<HashMap<String, PathBuf>, VolumeError> {
    let namespace = pod.namespace().unwrap_or_else(|| "default".into());
    let uid = pod.uid().unwrap_or_default();
    let volumes = pod
        .spec
        .as_ref()
        .and_then(|s| s.volumes.clone())
        .unwrap_or_default();
    let mut dirs = HashMap::new();
    for volume in &volumes {
        let dir = match &volume.host_path {
            Some(host) => PathBuf::from(&host.path),
            None => layout.volume(&uid, &volume.name),
        };
        let files = files_of(client, &namespace, pod, volume).await?;
        create_dir(&volume.name, &dir).await?;
        for (relative, bytes) in files {
            let path = dir.join(safe_relative(&volume.name, &relative)?);
            if let Some(parent) = path.parent() {
                create_dir(&volume.name, parent).await?;
            }
            tokio::fs::write(&path, bytes)
                .await
                .map_err(|source| VolumeError::Write {
                    volume: volume.name.clone(),
                    path: path.clone(),
                    source,
                })?;
        }
        dirs.insert(volume.name.clone(), dir);
    }
    Ok(dirs)
}

async fn create_dir(volume: &str, dir: &Path) -> Result<(), VolumeError> {
    tokio::fs::create_dir_all(dir)
        .await
        .map_err(|source| VolumeError::Write {
            volume: volume.to_string(),
            path: dir.to_path_buf(),
            source,
        })
}

/// The files a volume holds, relative path → content.
async fn files_of(
    client: &Client,
    namespace: &str,
    pod: &Pod,
    volume: &Volume,
) -> Result<Vec<(String, Vec<u8>)>, VolumeError> {
    if volume.empty_dir.is_some() || volume.host_path.is_some() {
        return Ok(Vec::new());
    }
    if let Some(source) = &volume.config_map {
        let optional = source.optional.unwrap_or(false);
        let api: Api<ConfigMap> = Api::namespaced(client.clone(), namespace);
        let Some(cm) = fetch(&api, &volume.name, "configmap", &source.name, optional).await? else {
            return Ok(Vec::new());
        };
        let mut data: BTreeMap<String, Vec<u8>> = cm
            .data
            .unwrap_or_default()
            .into_iter()
            .map(|(k, v)| (k, v.into_bytes()))
            .collect();
        data.extend(
            cm.binary_data
                .unwrap_or_default()
                .into_iter()
                .map(|(k, v)| (k, v.0)),
        );
        return Ok(project(data, source.items.as_deref()));
    }
    if let Some(source) = &volume.secret {
        let optional = source.optional.unwrap_or(false);
        let name = source.secret_name.clone().unwrap_or_default();
        let api: Api<Secret> = Api::namespaced(client.clone(), namespace);
        let Some(secret) = fetch(&api, &volume.name, "secret", &name, optional).await? else {
            return Ok(Vec::new());
        };
        let mut data: BTreeMap<String, Vec<u8>> = secret
            .data
            .unwrap_or_default()
            .into_iter()
            .map(|(k, v)| (k, v.0))
            .collect();
        data.extend(
            secret
                .string_data
                .unwrap_or_default()
                .into_iter()
                .map(|(k, v)| (k, v.into_bytes())),
        );
        return Ok(project(data, source.items.as_deref()));
    }
    if let Some(source) = &volume.downward_api {
        let mut files = Vec::new();
        for item in source.items.iter().flatten() {
            let Some(field) = &item.field_ref else {
                continue;
            };
            let value =
                downward_file(pod, &field.field_path).ok_or_else(|| VolumeError::Unsupported {
                    volume: volume.name.clone(),
                })?;
            files.push((item.path.clone(), value.into_bytes()));
        }
        return Ok(files);
    }
    Err(VolumeError::Unsupported {
        volume: volume.name.clone(),
    })
}

async fn fetch<K>(
    api: &Api<K>,
    volume: &str,
    kind: &'static str,
    name: &str,
    optional: bool,
) -> Result<Option<K>, VolumeError>
where
    K: Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let found = api
        .get_opt(name)
        .await
        .map_err(|source| VolumeError::Read {
            volume: volume.to_string(),
            kind,
            name: name.to_string(),
            source: Box::new(source),
        })?;
    match found {
        None if !optional => Err(VolumeError::Missing {
            volume: volume.to_string(),
            kind,
            name: name.to_string(),
        }),
        found => Ok(found),
    }
}

/// Keys become files; `items` selects keys and renames them.
fn project(data: BTreeMap<String, Vec<u8>>, items: Option<&[KeyToPath]>) -> Vec<(String, Vec<u8>)> {
    match items {
        None => data.into_iter().collect(),
        Some(items) => items
            .iter()
            .filter_map(|item| Some((item.path.clone(), data.get(&item.key)?.clone())))
            .collect(),
    }
}

/// A downwardAPI file: maps are written as `key="value"` lines, as the kubelet does.
fn downward_file(pod: &Pod, field_path: &str) -> Option<String> {
    let map_lines = |map: &BTreeMap<String, String>| {
        map.iter()
            .map(|(k, v)| format!("{k}={v:?}\n"))
            .collect::<String>()
    };
    match field_path {
        "metadata.name" => Some(pod.name_any()),
        "metadata.namespace" => pod.namespace(),
        "metadata.uid" => pod.uid(),
        "metadata.labels" => Some(map_lines(pod.labels())),
        "metadata.annotations" => Some(map_lines(pod.annotations())),
        _ => crate::env::field_value(pod, field_path, ""),
    }
}

/// Refuses absolute paths and `..` so that keys cannot write outside the volume.
fn safe_relative(volume: &str, path: &str) -> Result<PathBuf, VolumeError> {
    let relative = Path::new(path);
    let plain = relative
        .components()
        .all(|c| matches!(c, Component::Normal(_)));
    if path.is_empty() || !plain {
        return Err(VolumeError::BadPath {
            volume: volume.to_string(),
            path: path.to_string(),
        });
    }
    Ok(relative.to_path_buf())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_cannot_escape_the_volume() {
        assert!(safe_relative("v", "a/b.txt").is_ok());
        assert!(safe_relative("v", "../etc/passwd").is_err());
        assert!(safe_relative("v", "/etc/passwd").is_err());
        assert!(safe_relative("v", "").is_err());
    }

    #[test]
    fn items_select_and_rename_keys() {
        let data = BTreeMap::from([
            ("a".to_string(), b"1".to_vec()),
            ("b".to_string(), b"2".to_vec()),
        ]);
        let items = [KeyToPath {
            key: "b".into(),
            path: "renamed".into(),
            mode: None,
        }];
        assert_eq!(
            project(data.clone(), Some(&items)),
            vec![("renamed".to_string(), b"2".to_vec())]
        );
        assert_eq!(project(data, None).len(), 2);
    }

    #[test]
    fn downward_labels_are_quoted_lines() {
        let mut pod = Pod::default();
        pod.metadata.name = Some("p".into());
        pod.metadata.labels = Some(BTreeMap::from([("app".to_string(), "web".to_string())]));
        assert_eq!(
            downward_file(&pod, "metadata.labels").as_deref(),
            Some("app=\"web\"\n")
        );
        assert_eq!(downward_file(&pod, "metadata.name").as_deref(), Some("p"));
    }
}
