//! Wasm images from OCI registries: pull (CNCF wasm artifacts and plain OCI images holding a
//! `.wasm` file), a content-addressed disk cache, pull policies, and pushing modules.

pub(crate) mod cache;
mod client;
mod containerd;
mod docker_config;
mod error;
mod layer;
mod push;
#[cfg(test)]
mod registry_tests;
mod source;

use std::path::PathBuf;

use oci_client::Reference;
use oci_client::manifest::{
    IMAGE_MANIFEST_LIST_MEDIA_TYPE, IMAGE_MANIFEST_MEDIA_TYPE, OCI_IMAGE_INDEX_MEDIA_TYPE,
    OCI_IMAGE_MEDIA_TYPE, OciDescriptor, OciImageManifest, OciManifest,
};

pub use containerd::ContainerdImages;
pub use docker_config::{DockerConfigError, parse_docker_config};
pub use error::ImagePullError;
pub use layer::{WASM_CONFIG_MEDIA_TYPE, WASM_MEDIA_TYPE};
pub use push::{push_rootfs, push_wasm};

use cache::Cache;
use layer::LayerKind;

const ACCEPTED_MANIFESTS: &[&str] = &[
    OCI_IMAGE_MEDIA_TYPE,
    IMAGE_MANIFEST_MEDIA_TYPE,
    OCI_IMAGE_INDEX_MEDIA_TYPE,
    IMAGE_MANIFEST_LIST_MEDIA_TYPE,
];

/// A module ready to run: its file on disk and the image manifest digest it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PulledModule {
    pub path: PathBuf,
    pub digest: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PullPolicy {
    Always,
    IfNotPresent,
    Never,
}

impl PullPolicy {
    /// An empty policy means the API server did not default it; IfNotPresent is the safe
    /// reading (the `:latest` → Always rule is the caller's).
    fn parse(policy: &str) -> Result<PullPolicy, ImagePullError> {
        match policy {
            "Always" => Ok(PullPolicy::Always),
            "IfNotPresent" | "" => Ok(PullPolicy::IfNotPresent),
            "Never" => Ok(PullPolicy::Never),
            other => Err(ImagePullError::InvalidPullPolicy {
                policy: other.to_string(),
            }),
        }
    }
}

/// Pulls wasm modules from OCI registries into a cache directory.
pub struct OciImages {
    cache: Cache,
    insecure_registries: Vec<String>,
}

impl OciImages {
    /// `insecure_registries` are `host[:port]` names reached over plain HTTP; loopback
    /// registries always are.
    pub fn new(cache_dir: PathBuf, insecure_registries: Vec<String>) -> OciImages {
        OciImages {
            cache: Cache::new(cache_dir),
            insecure_registries,
        }
    }

    /// The module for `image` under `pull_policy` (`Always`, `IfNotPresent`, `Never`).
    /// `credentials` are `(registry, username, password)` as from [`parse_docker_config`];
    /// `entry` is the container's command[0], naming the module inside a plain OCI image.
    pub async fn fetch(
        &self,
        image: &str,
        pull_policy: &str,
        credentials: &[(String, String, String)],
        entry: Option<&str>,
    ) -> Result<PulledModule, ImagePullError> {
        let policy = PullPolicy::parse(pull_policy)?;
        let reference = client::parse_reference(image)?;
        let key = reference.whole();
        if policy != PullPolicy::Always {
            if let Some(digest) = self.cache.resolved(&key).await
                && let Some(module) = self.cached_module(image, &digest, entry).await?
            {
                return Ok(module);
            }
            if policy == PullPolicy::Never {
                return Err(ImagePullError::NeverPull {
                    image: image.to_string(),
                });
            }
        }
        let module = self.pull(image, &reference, credentials, entry).await?;
        self.cache.record_resolved(&key, &module.digest).await?;
        Ok(module)
    }

    async fn pull(
        &self,
        image: &str,
        reference: &Reference,
        credentials: &[(String, String, String)],
        entry: Option<&str>,
    ) -> Result<PulledModule, ImagePullError> {
        let registry_error = |e| ImagePullError::from_registry(image, e);
        let client = client::client_for(reference, &self.insecure_registries)?;
        let login = credentials_for(credentials, reference.resolve_registry());
        let auth = client::registry_auth(login);
        let (manifest, digest) = self.pull_manifest(image, reference, &client, &auth).await?;
        // Always re-resolves the tag, but an unchanged digest needs no blob download.
        if let Some(module) = self.cached_module(image, &digest, entry).await? {
            return Ok(module);
        }
        let (layer, _) = wasm_layer(image, &manifest)?;
        let blob_path = self.cache.blob_path(&layer.digest)?;
        if !blob_path.exists() {
            let temp = cache::temp_path(&blob_path);
            let cache_error = |source| ImagePullError::Cache {
                path: blob_path.clone(),
                source,
            };
            if let Some(dir) = blob_path.parent() {
                tokio::fs::create_dir_all(dir).await.map_err(cache_error)?;
            }
            let file = tokio::fs::File::create(&temp).await.map_err(cache_error)?;
            // pull_blob checks the bytes against the layer digest.
            let pulled = client.pull_blob(reference, &layer, file).await;
            if let Err(e) = pulled {
                let _ = tokio::fs::remove_file(&temp).await;
                return Err(registry_error(e));
            }
            tokio::fs::rename(&temp, &blob_path)
                .await
                .map_err(cache_error)?;
        }
        self.cached_module(image, &digest, entry)
            .await?
            .ok_or_else(|| ImagePullError::Registry {
                image: image.to_string(),
                message: "the pulled layer vanished from the cache".to_string(),
            })
    }

    /// Resolves `reference` to an image manifest (through an image index if it names one) and
    /// stores the manifest bytes under their digest.
    async fn pull_manifest(
        &self,
        image: &str,
        reference: &Reference,
        client: &oci_client::Client,
        auth: &oci_client::secrets::RegistryAuth,
    ) -> Result<(OciImageManifest, String), ImagePullError> {
        let registry_error = |e| ImagePullError::from_registry(image, e);
        let (bytes, digest) = client
            .pull_manifest_raw(reference, auth, ACCEPTED_MANIFESTS)
            .await
            .map_err(registry_error)?;
        let (bytes, digest) = match parse_manifest(image, &bytes)? {
            OciManifest::Image(_) => (bytes, digest),
            OciManifest::ImageIndex(index) => {
                let chosen = client::wasm_platform_resolver(&index.manifests).ok_or_else(|| {
                    ImagePullError::NotWasm {
                        image: image.to_string(),
                        reason: "the image index has no wasm platform entry".to_string(),
                    }
                })?;
                client
                    .pull_manifest_raw(
                        &reference.clone_with_digest(chosen),
                        auth,
                        ACCEPTED_MANIFESTS,
                    )
                    .await
                    .map_err(registry_error)?
            }
        };
        let OciManifest::Image(manifest) = parse_manifest(image, &bytes)? else {
            return Err(ImagePullError::NotWasm {
                image: image.to_string(),
                reason: "the image index points at another index".to_string(),
            });
        };
        cache::write_atomic(&self.cache.blob_path(&digest)?, &bytes).await?;
        Ok((manifest, digest))
    }

    /// The module for manifest `digest` from disk alone: the extracted file, or extracted now
    /// from the cached manifest and layer. `None` when something is not cached.
    async fn cached_module(
        &self,
        image: &str,
        digest: &str,
        entry: Option<&str>,
    ) -> Result<Option<PulledModule>, ImagePullError> {
        let Ok(manifest_bytes) = tokio::fs::read(self.cache.blob_path(digest)?).await else {
            return Ok(None);
        };
        let OciManifest::Image(manifest) = parse_manifest(image, &manifest_bytes)? else {
            return Ok(None);
        };
        let (layer, kind) = wasm_layer(image, &manifest)?;
        // The entry only selects a file inside a filesystem layer.
        let entry = entry.filter(|_| kind == LayerKind::Filesystem);
        let module_path = self.cache.module_path(digest, entry)?;
        let found = |path| PulledModule {
            path,
            digest: digest.to_string(),
        };
        if module_path.exists() {
            return Ok(Some(found(module_path)));
        }
        let Ok(layer_bytes) = tokio::fs::read(self.cache.blob_path(&layer.digest)?).await else {
            return Ok(None);
        };
        let module = extract(image, layer_bytes, kind, entry).await?;
        cache::write_atomic(&module_path, &module).await?;
        Ok(Some(found(module_path)))
    }
}

fn parse_manifest(image: &str, bytes: &[u8]) -> Result<OciManifest, ImagePullError> {
    serde_json::from_slice(bytes).map_err(|e| ImagePullError::Registry {
        image: image.to_string(),
        message: format!("unreadable manifest: {e}"),
    })
}

/// The one layer a wasm image has, and how to read the module out of it.
fn wasm_layer(
    image: &str,
    manifest: &OciImageManifest,
) -> Result<(OciDescriptor, LayerKind), ImagePullError> {
    let not_wasm = |reason: String| ImagePullError::NotWasm {
        image: image.to_string(),
        reason,
    };
    let [layer] = manifest.layers.as_slice() else {
        return Err(not_wasm(format!(
            "it has {} layers; a wasm image has exactly one",
            manifest.layers.len()
        )));
    };
    // Whole-blob layers are read into memory, so the manifest's size must be bounded first.
    if u64::try_from(layer.size).unwrap_or(u64::MAX) > layer::MAX_LAYER_BYTES {
        return Err(not_wasm(format!(
            "its layer is {} bytes, over the {}-byte limit",
            layer.size,
            layer::MAX_LAYER_BYTES
        )));
    }
    let kind = layer::layer_kind(&layer.media_type).ok_or_else(|| {
        not_wasm(format!(
            "its layer media type {} is neither {WASM_MEDIA_TYPE} nor a tar layer",
            layer.media_type
        ))
    })?;
    Ok((layer.clone(), kind))
}

/// Layer bytes → module bytes, off the async threads (gunzip and untar are CPU work).
async fn extract(
    image: &str,
    layer_bytes: Vec<u8>,
    kind: LayerKind,
    entry: Option<&str>,
) -> Result<Vec<u8>, ImagePullError> {
    let entry = entry.map(str::to_string);
    let work = tokio::task::spawn_blocking(move || match kind {
        LayerKind::Module => Ok(layer_bytes),
        LayerKind::Filesystem => layer::wasm_from_tar(&layer_bytes, entry.as_deref()),
    });
    let module = work
        .await
        .map_err(|e| ImagePullError::InvalidLayer {
            image: image.to_string(),
            reason: format!("extraction task failed: {e}"),
        })?
        .map_err(|reason| ImagePullError::InvalidLayer {
            image: image.to_string(),
            reason,
        })?;
    layer::check_wasm(&module, "the module").map_err(|reason| ImagePullError::NotWasm {
        image: image.to_string(),
        reason,
    })?;
    Ok(module)
}

/// The login for `registry` among `(registry, username, password)` entries.
pub(crate) fn credentials_for<'a>(
    credentials: &'a [(String, String, String)],
    registry: &str,
) -> Option<(&'a str, &'a str)> {
    let wanted = docker_config::canonical_registry(registry);
    credentials
        .iter()
        .find(|(name, _, _)| docker_config::canonical_registry(name) == wanted)
        .map(|(_, user, password)| (user.as_str(), password.as_str()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pull_policies_parse() {
        assert_eq!(PullPolicy::parse("Always").ok(), Some(PullPolicy::Always));
        assert_eq!(PullPolicy::parse("").ok(), Some(PullPolicy::IfNotPresent));
        assert_eq!(PullPolicy::parse("Never").ok(), Some(PullPolicy::Never));
        assert!(PullPolicy::parse("always").is_err());
    }

    #[test]
    fn credentials_match_by_registry() {
        let creds = vec![
            (
                "https://index.docker.io/v1/".into(),
                "hub".into(),
                "p1".into(),
            ),
            ("127.0.0.1:5000".into(), "local".into(), "p2".into()),
        ];
        assert_eq!(
            credentials_for(&creds, "index.docker.io"),
            Some(("hub", "p1"))
        );
        assert_eq!(
            credentials_for(&creds, "127.0.0.1:5000"),
            Some(("local", "p2"))
        );
        assert_eq!(credentials_for(&creds, "127.0.0.1:5001"), None);
    }

    #[test]
    fn a_wasm_image_has_one_bounded_layer_of_a_known_type() {
        let layer = |media_type: &str, size: i64| OciDescriptor {
            media_type: media_type.to_string(),
            digest: "sha256:00".to_string(),
            size,
            ..OciDescriptor::default()
        };
        let manifest = |layers| OciImageManifest {
            layers,
            ..OciImageManifest::default()
        };
        let ok = manifest(vec![layer(WASM_MEDIA_TYPE, 10)]);
        assert_eq!(wasm_layer("i", &ok).expect("wasm").1, LayerKind::Module);
        let too_big = i64::try_from(layer::MAX_LAYER_BYTES + 1).expect("fits");
        for bad in [
            manifest(vec![]),
            manifest(vec![layer(WASM_MEDIA_TYPE, 1), layer(WASM_MEDIA_TYPE, 1)]),
            manifest(vec![layer("application/json", 1)]),
            manifest(vec![layer(WASM_MEDIA_TYPE, too_big)]),
        ] {
            let err = wasm_layer("i", &bad).expect_err("not a wasm image");
            assert!(matches!(err, ImagePullError::NotWasm { .. }), "{err}");
        }
    }

    #[tokio::test]
    async fn never_with_an_empty_cache_is_err_image_never_pull() {
        let dir = tempfile::tempdir().expect("tempdir");
        let images = OciImages::new(dir.path().to_path_buf(), vec![]);
        let err = images
            .fetch("127.0.0.1:1/app:v1", "Never", &[], None)
            .await
            .expect_err("nothing cached");
        assert!(matches!(err, ImagePullError::NeverPull { .. }), "{err}");
        assert!(err.to_string().contains("ErrImageNeverPull"), "{err}");
    }
}
