//! Pod volumes as host directories: emptyDir, configMap, secret, downwardAPI and projected
//! volumes are written under the data dir; hostPath is the host's own directory. A wasm
//! container gets each as a preopened directory, like any other mount.

mod sources;
mod token;

use std::collections::HashMap;
use std::path::{Component, Path, PathBuf};

use k8s_openapi::api::core::v1::{Pod, ProjectedVolumeSource, Volume};
use kube::{Client, ResourceExt};

use crate::paths::Layout;
use sources::{DEFAULT_MODE, KeyedSource, VolumeFile, downward_files, mode_of};
pub use token::{KubeTokens, ProjectedToken, TokenSource, TokenSpec, keep_fresh};

#[derive(Debug, thiserror::Error)]
pub enum VolumeError {
    #[error("volume {volume}: {kind} {name} not found")]
    Missing {
        volume: String,
        kind: &'static str,
        name: String,
    },
    #[error("volume {volume}: {kind} {name} has no key {key}")]
    MissingKey {
        volume: String,
        kind: &'static str,
        name: String,
        key: String,
    },
    #[error("volume {volume}: reading {kind} {name}: {source}")]
    Read {
        volume: String,
        kind: &'static str,
        name: String,
        #[source]
        source: Box<kube::Error>,
    },
    #[error(
        "volume {volume}: requesting a token of service account {namespace}/{service_account}: {source}"
    )]
    Token {
        volume: String,
        namespace: String,
        service_account: String,
        #[source]
        source: token::TokenError,
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
    #[error("volume {volume}: unsupported downward api field {path}")]
    FieldPath { volume: String, path: String },
    #[error("volume {volume}: unsupported volume type")]
    Unsupported { volume: String },
}

/// The pod's volumes on the host.
#[derive(Debug)]
pub struct Prepared {
    /// Each volume's host directory, by volume name.
    pub dirs: HashMap<String, PathBuf>,
    /// The service-account token files in them, to keep fresh while the pod runs.
    pub tokens: Vec<ProjectedToken>,
}

/// Materialises the pod's volumes.
pub async fn prepare(
    client: &Client,
    tokens: &dyn TokenSource,
    layout: &Layout,
    pod: &Pod,
) -> Result<Prepared, VolumeError> {
    let uid = pod.uid().unwrap_or_default();
    let volumes = pod
        .spec
        .as_ref()
        .and_then(|s| s.volumes.clone())
        .unwrap_or_default();
    let mut prepared = Prepared {
        dirs: HashMap::new(),
        tokens: Vec::new(),
    };
    for volume in &volumes {
        let dir = match &volume.host_path {
            Some(host) => PathBuf::from(&host.path),
            None => layout.volume(&uid, &volume.name),
        };
        let (files, pending) = contents_of(client, pod, volume, &dir).await?;
        create_dir(&volume.name, &dir).await?;
        for file in files {
            let path = dir.join(safe_relative(&volume.name, &file.path)?);
            write_file(&volume.name, &path, &file.bytes, file.mode).await?;
        }
        for mut token in pending {
            token.renew(tokens).await?;
            prepared.tokens.push(token);
        }
        prepared.dirs.insert(volume.name.clone(), dir);
    }
    Ok(prepared)
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

/// Replaces `path` whole: written to a temp file beside it with its mode set, then renamed
/// over it, so that a container never reads half a file (token rewrites while it runs).
async fn write_file(volume: &str, path: &Path, bytes: &[u8], mode: u32) -> Result<(), VolumeError> {
    use std::os::unix::fs::PermissionsExt;
    if let Some(parent) = path.parent() {
        create_dir(volume, parent).await?;
    }
    let temp = crate::images::cache::temp_path(path);
    let written = async {
        tokio::fs::write(&temp, bytes).await?;
        tokio::fs::set_permissions(&temp, std::fs::Permissions::from_mode(mode)).await?;
        tokio::fs::rename(&temp, path).await
    };
    if let Err(source) = written.await {
        // Best effort: the temp file may not exist.
        let _ = tokio::fs::remove_file(&temp).await;
        return Err(VolumeError::Write {
            volume: volume.to_string(),
            path: path.to_path_buf(),
            source,
        });
    }
    Ok(())
}

/// The files a volume holds, and the token files still to request (a projected volume's).
async fn contents_of(
    client: &Client,
    pod: &Pod,
    volume: &Volume,
    dir: &Path,
) -> Result<(Vec<VolumeFile>, Vec<ProjectedToken>), VolumeError> {
    let namespace = pod.namespace().unwrap_or_else(|| "default".into());
    let name = volume.name.as_str();
    if volume.empty_dir.is_some() || volume.host_path.is_some() {
        return Ok((Vec::new(), Vec::new()));
    }
    if let Some(source) = &volume.config_map {
        let keyed = KeyedSource {
            volume: name,
            name: &source.name,
            items: source.items.as_deref(),
            optional: source.optional.unwrap_or(false),
            default_mode: mode_of(source.default_mode, DEFAULT_MODE),
        };
        return Ok((keyed.config_map(client, &namespace).await?, Vec::new()));
    }
    if let Some(source) = &volume.secret {
        let keyed = KeyedSource {
            volume: name,
            name: source.secret_name.as_deref().unwrap_or_default(),
            items: source.items.as_deref(),
            optional: source.optional.unwrap_or(false),
            default_mode: mode_of(source.default_mode, DEFAULT_MODE),
        };
        return Ok((keyed.secret(client, &namespace).await?, Vec::new()));
    }
    if let Some(source) = &volume.downward_api {
        let default_mode = mode_of(source.default_mode, DEFAULT_MODE);
        let items = source.items.as_deref().unwrap_or_default();
        return Ok((downward_files(name, pod, items, default_mode)?, Vec::new()));
    }
    if let Some(source) = &volume.projected {
        return projected(client, &namespace, pod, name, source, dir).await;
    }
    Err(VolumeError::Unsupported {
        volume: name.to_string(),
    })
}

/// A projected volume: its sources' files together in one directory, all with the volume's
/// defaultMode unless an item sets its own.
async fn projected(
    client: &Client,
    namespace: &str,
    pod: &Pod,
    volume: &str,
    projected: &ProjectedVolumeSource,
    dir: &Path,
) -> Result<(Vec<VolumeFile>, Vec<ProjectedToken>), VolumeError> {
    let default_mode = mode_of(projected.default_mode, DEFAULT_MODE);
    let mut files = Vec::new();
    let mut tokens = Vec::new();
    for source in projected.sources.iter().flatten() {
        if let Some(cm) = &source.config_map {
            let keyed = KeyedSource {
                volume,
                name: &cm.name,
                items: cm.items.as_deref(),
                optional: cm.optional.unwrap_or(false),
                default_mode,
            };
            files.extend(keyed.config_map(client, namespace).await?);
        } else if let Some(secret) = &source.secret {
            let keyed = KeyedSource {
                volume,
                name: &secret.name,
                items: secret.items.as_deref(),
                optional: secret.optional.unwrap_or(false),
                default_mode,
            };
            files.extend(keyed.secret(client, namespace).await?);
        } else if let Some(downward) = &source.downward_api {
            let items = downward.items.as_deref().unwrap_or_default();
            files.extend(downward_files(volume, pod, items, default_mode)?);
        } else if let Some(token) = &source.service_account_token {
            tokens.push(ProjectedToken {
                volume: volume.to_string(),
                file: dir.join(safe_relative(volume, &token.path)?),
                mode: default_mode,
                spec: TokenSpec::for_pod(pod, token),
                refresh_at: tokio::time::Instant::now(),
            });
        } else {
            return Err(VolumeError::Unsupported {
                volume: volume.to_string(),
            });
        }
    }
    Ok((files, tokens))
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
    use std::os::unix::fs::PermissionsExt;
    use std::sync::Arc;
    use std::time::Duration;

    use k8s_openapi::api::core::v1::{ConfigMap, Secret};
    use kube::api::{Api, PostParams};
    use rkube_apiserver::in_process;
    use rkube_apiserver::server::{ApiServer, router};
    use rkube_apiserver::store::memory::MemoryStore;
    use serde_json::json;

    use super::token::fake::FakeTokens;
    use super::*;

    async fn client() -> Client {
        let server = ApiServer::new(Arc::new(MemoryStore::new())).await.unwrap();
        rkube_apiserver::run::ensure_system_namespaces(&server)
            .await
            .unwrap();
        in_process::client(router(server), in_process::admin())
    }

    async fn objects(client: &Client) {
        let cm: ConfigMap = serde_json::from_value(json!({
            "metadata": {"name": "kube-root-ca.crt"},
            "data": {"ca.crt": "PEM", "other": "x"}
        }))
        .unwrap();
        Api::<ConfigMap>::namespaced(client.clone(), "default")
            .create(&PostParams::default(), &cm)
            .await
            .unwrap();
        let secret: Secret = serde_json::from_value(json!({
            "metadata": {"name": "creds"},
            "stringData": {"user": "admin"}
        }))
        .unwrap();
        Api::<Secret>::namespaced(client.clone(), "default")
            .create(&PostParams::default(), &secret)
            .await
            .unwrap();
    }

    fn pod(volumes: serde_json::Value) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": "p", "namespace": "default", "uid": "u1"},
            "spec": {"containers": [], "volumes": volumes}
        }))
        .unwrap()
    }

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[tokio::test]
    async fn a_projected_volume_holds_every_source() {
        let client = client().await;
        objects(&client).await;
        let dir = tempfile::tempdir().unwrap();
        let layout = Layout::new(dir.path());
        let tokens = FakeTokens::new(Duration::from_secs(3600));
        let pod = pod(
            json!([{"name": "api", "projected": {"defaultMode": 0o440, "sources": [
                {"serviceAccountToken": {"path": "token", "audience": "vault", "expirationSeconds": 7200}},
                {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
                {"configMap": {"name": "absent", "optional": true}},
                {"secret": {"name": "creds", "items": [{"key": "user", "path": "creds/user", "mode": 0o400}]}},
                {"downwardAPI": {"items": [{"path": "namespace", "fieldRef": {"fieldPath": "metadata.namespace"}}]}}
            ]}}]),
        );
        let prepared = prepare(&client, &tokens, &layout, &pod).await.unwrap();
        let volume = layout.volume("u1", "api");
        assert_eq!(prepared.dirs.get("api"), Some(&volume));
        let read = |name: &str| std::fs::read_to_string(volume.join(name)).unwrap();
        assert_eq!(read("token"), "token-1-for-default");
        assert_eq!(read("ca.crt"), "PEM");
        assert_eq!(read("creds/user"), "admin");
        assert_eq!(read("namespace"), "default");
        assert!(!volume.join("other").exists());
        assert_eq!(mode(&volume.join("token")), 0o440);
        assert_eq!(mode(&volume.join("ca.crt")), 0o440);
        assert_eq!(mode(&volume.join("creds/user")), 0o400);

        let issued = tokens.issued.lock().unwrap().clone();
        assert_eq!(issued.len(), 1);
        assert_eq!(issued[0].audience.as_deref(), Some("vault"));
        assert_eq!(issued[0].expiration_seconds, 7200);
        assert_eq!(issued[0].pod_uid, "u1");
        assert_eq!(prepared.tokens.len(), 1);
        assert_eq!(prepared.tokens[0].file, volume.join("token"));
    }

    #[tokio::test]
    async fn a_missing_source_fails_unless_optional() {
        let client = client().await;
        let dir = tempfile::tempdir().unwrap();
        let layout = Layout::new(dir.path());
        let tokens = FakeTokens::new(Duration::from_secs(3600));
        let required = pod(json!([{"name": "api", "projected": {"sources": [
            {"configMap": {"name": "absent"}}
        ]}}]));
        let refused = prepare(&client, &tokens, &layout, &required).await;
        assert!(matches!(refused, Err(VolumeError::Missing { name, .. }) if name == "absent"));
        let optional =
            pod(json!([{"name": "cfg", "configMap": {"name": "absent", "optional": true}}]));
        let prepared = prepare(&client, &tokens, &layout, &optional).await.unwrap();
        let empty = std::fs::read_dir(layout.volume("u1", "cfg"))
            .unwrap()
            .count();
        assert_eq!(empty, 0);
        assert!(prepared.tokens.is_empty());
    }

    #[tokio::test]
    async fn a_config_map_volume_takes_its_default_mode() {
        let client = client().await;
        objects(&client).await;
        let dir = tempfile::tempdir().unwrap();
        let layout = Layout::new(dir.path());
        let tokens = FakeTokens::new(Duration::from_secs(3600));
        let pod = pod(
            json!([{"name": "cfg", "configMap": {"name": "kube-root-ca.crt", "defaultMode": 0o600}}]),
        );
        prepare(&client, &tokens, &layout, &pod).await.unwrap();
        let volume = layout.volume("u1", "cfg");
        assert_eq!(mode(&volume.join("ca.crt")), 0o600);
        assert_eq!(std::fs::read_to_string(volume.join("other")).unwrap(), "x");
    }

    #[test]
    fn keys_cannot_escape_the_volume() {
        assert!(safe_relative("v", "a/b.txt").is_ok());
        assert!(safe_relative("v", "../etc/passwd").is_err());
        assert!(safe_relative("v", "/etc/passwd").is_err());
        assert!(safe_relative("v", "").is_err());
    }
}
