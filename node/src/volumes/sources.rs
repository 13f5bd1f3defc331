//! The files that configMap, secret and downwardAPI sources put into a volume, with the modes
//! and the `items`/`optional` rules of the kubelet; shared by the plain volume types and the
//! sources of a projected volume.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{ConfigMap, DownwardAPIVolumeFile, KeyToPath, Pod, Secret};
use kube::api::Api;
use kube::{Client, ResourceExt};

use super::VolumeError;

/// The mode of files whose volume and item name none (0644).
pub const DEFAULT_MODE: u32 = 0o644;

/// One file of a volume: its path inside the volume, content and permission bits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VolumeFile {
    pub path: String,
    pub bytes: Vec<u8>,
    pub mode: u32,
}

/// A mode as the API writes it (decimal of the octal bits); `fallback` when unset or invalid.
pub fn mode_of(mode: Option<i32>, fallback: u32) -> u32 {
    mode.and_then(|m| u32::try_from(m).ok())
        .map_or(fallback, |m| m & 0o777)
}

/// Where a keyed source's data comes from.
pub struct KeyedSource<'a> {
    pub volume: &'a str,
    pub name: &'a str,
    pub items: Option<&'a [KeyToPath]>,
    pub optional: bool,
    pub default_mode: u32,
}

impl KeyedSource<'_> {
    pub async fn config_map(
        &self,
        client: &Client,
        namespace: &str,
    ) -> Result<Vec<VolumeFile>, VolumeError> {
        let api: Api<ConfigMap> = Api::namespaced(client.clone(), namespace);
        let Some(cm) = self.fetch(&api, "configmap").await? else {
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
        self.files(data, "configmap")
    }

    pub async fn secret(
        &self,
        client: &Client,
        namespace: &str,
    ) -> Result<Vec<VolumeFile>, VolumeError> {
        let api: Api<Secret> = Api::namespaced(client.clone(), namespace);
        let Some(secret) = self.fetch(&api, "secret").await? else {
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
        self.files(data, "secret")
    }

    /// The object, or `None` when it is missing and optional.
    async fn fetch<K>(&self, api: &Api<K>, kind: &'static str) -> Result<Option<K>, VolumeError>
    where
        K: Clone + serde::de::DeserializeOwned + std::fmt::Debug,
    {
        let found = api
            .get_opt(self.name)
            .await
            .map_err(|source| VolumeError::Read {
                volume: self.volume.to_string(),
                kind,
                name: self.name.to_string(),
                source: Box::new(source),
            })?;
        match found {
            None if !self.optional => Err(VolumeError::Missing {
                volume: self.volume.to_string(),
                kind,
                name: self.name.to_string(),
            }),
            found => Ok(found),
        }
    }

    /// Every key as a file, or with `items` the keys named, renamed and with their own mode;
    /// an item naming a missing key is an error unless the source is optional.
    fn files(
        &self,
        data: BTreeMap<String, Vec<u8>>,
        kind: &'static str,
    ) -> Result<Vec<VolumeFile>, VolumeError> {
        let Some(items) = self.items.filter(|items| !items.is_empty()) else {
            return Ok(data
                .into_iter()
                .map(|(path, bytes)| VolumeFile {
                    path,
                    bytes,
                    mode: self.default_mode,
                })
                .collect());
        };
        let mut files = Vec::new();
        for item in items {
            let Some(bytes) = data.get(&item.key) else {
                if self.optional {
                    continue;
                }
                return Err(VolumeError::MissingKey {
                    volume: self.volume.to_string(),
                    kind,
                    name: self.name.to_string(),
                    key: item.key.clone(),
                });
            };
            files.push(VolumeFile {
                path: item.path.clone(),
                bytes: bytes.clone(),
                mode: mode_of(item.mode, self.default_mode),
            });
        }
        Ok(files)
    }
}

/// The files of downwardAPI items that name pod fields.
pub fn downward_files(
    volume: &str,
    pod: &Pod,
    items: &[DownwardAPIVolumeFile],
    default_mode: u32,
) -> Result<Vec<VolumeFile>, VolumeError> {
    let mut files = Vec::new();
    for item in items {
        // resourceFieldRef items (container limits) are not supported yet.
        let Some(field) = &item.field_ref else {
            continue;
        };
        let value =
            downward_value(pod, &field.field_path).ok_or_else(|| VolumeError::FieldPath {
                volume: volume.to_string(),
                path: field.field_path.clone(),
            })?;
        files.push(VolumeFile {
            path: item.path.clone(),
            bytes: value.into_bytes(),
            mode: mode_of(item.mode, default_mode),
        });
    }
    Ok(files)
}

/// A downwardAPI file: maps are written as `key="value"` lines, as the kubelet does.
fn downward_value(pod: &Pod, field_path: &str) -> Option<String> {
    let map_lines = |map: &BTreeMap<String, String>| {
        map.iter()
            .map(|(k, v)| format!("{k}={v:?}\n"))
            .collect::<String>()
    };
    match field_path {
        "metadata.labels" => Some(map_lines(pod.labels())),
        "metadata.annotations" => Some(map_lines(pod.annotations())),
        _ => crate::env::field_value(pod, field_path, ""),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn source<'a>(items: Option<&'a [KeyToPath]>, optional: bool) -> KeyedSource<'a> {
        KeyedSource {
            volume: "v",
            name: "cm",
            items,
            optional,
            default_mode: 0o640,
        }
    }

    fn data() -> BTreeMap<String, Vec<u8>> {
        BTreeMap::from([
            ("a".to_string(), b"1".to_vec()),
            ("b".to_string(), b"2".to_vec()),
        ])
    }

    #[test]
    fn items_select_rename_and_set_modes() {
        let items = [KeyToPath {
            key: "b".into(),
            path: "dir/renamed".into(),
            mode: Some(0o400),
        }];
        let files = source(Some(&items), false)
            .files(data(), "configmap")
            .unwrap();
        let expected = VolumeFile {
            path: "dir/renamed".into(),
            bytes: b"2".to_vec(),
            mode: 0o400,
        };
        assert_eq!(files, vec![expected]);
        let all = source(None, false).files(data(), "configmap").unwrap();
        assert_eq!(all.len(), 2);
        assert!(all.iter().all(|f| f.mode == 0o640));
    }

    #[test]
    fn a_missing_key_fails_unless_optional() {
        let items = [KeyToPath {
            key: "nope".into(),
            path: "x".into(),
            mode: None,
        }];
        let refused = source(Some(&items), false).files(data(), "configmap");
        assert!(matches!(refused, Err(VolumeError::MissingKey { key, .. }) if key == "nope"));
        let skipped = source(Some(&items), true)
            .files(data(), "configmap")
            .unwrap();
        assert!(skipped.is_empty());
    }

    #[test]
    fn modes_are_the_permission_bits_of_the_api_value() {
        assert_eq!(mode_of(Some(420), 0), 0o644);
        assert_eq!(mode_of(Some(-1), 0o600), 0o600);
        assert_eq!(mode_of(None, 0o600), 0o600);
    }

    #[test]
    fn downward_labels_are_quoted_lines() {
        let mut pod = Pod::default();
        pod.metadata.name = Some("p".into());
        pod.metadata.labels = Some(BTreeMap::from([("app".to_string(), "web".to_string())]));
        assert_eq!(
            downward_value(&pod, "metadata.labels").as_deref(),
            Some("app=\"web\"\n")
        );
        assert_eq!(downward_value(&pod, "metadata.name").as_deref(), Some("p"));
    }
}
