//! The OCI puller as the node agent's [`ImageSource`].

use async_trait::async_trait;
use k8s_openapi::api::core::v1::Secret;

use super::{ImagePullError, OciImages, parse_docker_config};
use crate::image_source::{FetchedImage, ImageError, ImageLocation, ImageSource};

/// Registry credentials from the pod's `kubernetes.io/dockerconfigjson` pull secrets; an
/// unreadable secret is skipped (the pull then fails with the registry's own refusal).
pub(crate) fn credentials(secrets: &[Secret]) -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    for secret in secrets {
        let Some(config) = secret
            .data
            .as_ref()
            .and_then(|d| d.get(".dockerconfigjson"))
        else {
            continue;
        };
        match parse_docker_config(&config.0) {
            Ok(entries) => out.extend(entries),
            Err(err) => tracing::warn!(
                secret = secret.metadata.name.as_deref().unwrap_or_default(),
                error = %err,
                "skipping an unreadable image pull secret"
            ),
        }
    }
    out
}

#[async_trait]
impl ImageSource for OciImages {
    async fn fetch(
        &self,
        image: &str,
        pull_policy: &str,
        secrets: &[Secret],
    ) -> Result<FetchedImage, ImageError> {
        let pulled = OciImages::fetch(self, image, pull_policy, &credentials(secrets), None)
            .await
            .map_err(|err| match err {
                ImagePullError::NeverPull { image } => ImageError::NeverPull { image },
                // Keep the registry's words: they end up in the container's waiting message.
                other => ImageError::Pull {
                    image: image.to_string(),
                    reason: other.to_string(),
                },
            })?;
        let size = tokio::fs::metadata(&pulled.path)
            .await
            .ok()
            .map(|m| m.len());
        Ok(FetchedImage {
            location: ImageLocation::Module(pulled.path),
            digest: pulled.digest,
            size,
        })
    }
}
