//! The seam between the node agent and whatever pulls images: the agent asks for an image by
//! name and gets back where its runtime finds it — a local `.wasm` file, or an image in the
//! runtime's own store — with its digest. Each runtime backend has its source.

use std::collections::HashMap;
use std::path::PathBuf;

use async_trait::async_trait;
use k8s_openapi::api::core::v1::Secret;

/// An image ready to hand to a runtime.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FetchedImage {
    pub location: ImageLocation,
    /// Content digest (`sha256:…`): the container's `imageID` and the runtime's cache key.
    pub digest: String,
    /// Bytes, as the `Pulled` event reports them; `None` when unknown.
    pub size: Option<u64>,
}

/// Where the runtime finds a fetched image.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ImageLocation {
    /// A `.wasm` module on disk.
    Module(PathBuf),
    /// An image in the runtime's image store, by the name it was pulled as.
    Store(String),
}

/// Why an image could not be fetched; the message ends up in the container's waiting state.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("image {image} not found")]
    NotFound { image: String },
    #[error("image {image} is not present locally and the pull policy is Never")]
    NeverPull { image: String },
    #[error("pulling image {image}: {reason}")]
    Pull { image: String, reason: String },
}

/// Fetches images for the node agent (an OCI puller in production).
#[async_trait]
pub trait ImageSource: Send + Sync {
    /// The image if it is already on the node, so that a pull policy other than `Always` skips
    /// the pull (and its events); `Ok(None)` also for sources that cannot tell beforehand.
    async fn local(&self, _image: &str) -> Result<Option<FetchedImage>, ImageError> {
        Ok(None)
    }

    /// Fetches `image` according to `pull_policy` (`Always`, `IfNotPresent`, `Never`), with the
    /// pod's image pull secrets (`kubernetes.io/dockerconfigjson`) for authentication.
    async fn fetch(
        &self,
        image: &str,
        pull_policy: &str,
        secrets: &[Secret],
    ) -> Result<FetchedImage, ImageError>;
}

/// TEST FAKE: images are names mapped to `.wasm` files already on disk; nothing is pulled.
/// The digest is a content hash of the file so that the runtime's artifact cache works.
#[derive(Clone, Debug, Default)]
pub struct LocalImages {
    modules: HashMap<String, PathBuf>,
}

impl LocalImages {
    pub fn new() -> Self {
        Self::default()
    }

    /// Makes `image` resolve to the module at `path`.
    pub fn insert(&mut self, image: impl Into<String>, path: impl Into<PathBuf>) {
        self.modules.insert(image.into(), path.into());
    }
}

#[async_trait]
impl ImageSource for LocalImages {
    async fn fetch(
        &self,
        image: &str,
        _pull_policy: &str,
        _secrets: &[Secret],
    ) -> Result<FetchedImage, ImageError> {
        let path = self
            .modules
            .get(image)
            .ok_or_else(|| ImageError::NotFound {
                image: image.to_string(),
            })?;
        let bytes = tokio::fs::read(path)
            .await
            .map_err(|error| ImageError::Pull {
                image: image.to_string(),
                reason: format!("reading {}: {error}", path.display()),
            })?;
        Ok(FetchedImage {
            location: ImageLocation::Module(path.clone()),
            digest: format!("sha256:{:016x}", fnv(&bytes)),
            size: u64::try_from(bytes.len()).ok(),
        })
    }
}

/// FNV-1a: enough to tell test modules apart without a hashing dependency.
fn fnv(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn local_images_resolve_known_names_only() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.wasm");
        std::fs::write(&path, b"\0asm").unwrap();
        let mut images = LocalImages::new();
        images.insert("example/a:1", &path);
        let fetched = images
            .fetch("example/a:1", "IfNotPresent", &[])
            .await
            .unwrap();
        assert_eq!(fetched.location, ImageLocation::Module(path));
        assert!(fetched.digest.starts_with("sha256:"));
        let missing = images.fetch("example/b:1", "IfNotPresent", &[]).await;
        assert!(matches!(missing, Err(ImageError::NotFound { .. })));
    }
}
