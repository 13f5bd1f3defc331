//! OCI image documents as rkube reads them: the manifest, the config's process defaults and
//! the chain of layer snapshots an image unpacks into.

use containerd_client::services::v1::{GetImageRequest, ReadContentRequest};
use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::PulledImage;
use super::connection::{Connection, is_not_found, rpc_error};
use crate::RuntimeError;

#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Descriptor {
    pub(crate) media_type: String,
    pub(crate) digest: String,
    pub(crate) size: i64,
}

#[derive(Debug, Deserialize)]
pub(crate) struct Manifest {
    pub(crate) config: Descriptor,
    pub(crate) layers: Vec<Descriptor>,
}

/// The parts of an image config that shape the container process.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct ImageConfig {
    #[serde(default)]
    pub(crate) config: ProcessDefaults,
    pub(crate) rootfs: RootFs,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct ProcessDefaults {
    pub(crate) user: Option<String>,
    pub(crate) env: Option<Vec<String>>,
    pub(crate) entrypoint: Option<Vec<String>>,
    pub(crate) cmd: Option<Vec<String>>,
    pub(crate) working_dir: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct RootFs {
    pub(crate) diff_ids: Vec<String>,
}

impl ImageConfig {
    pub(crate) fn parse(reference: &str, bytes: &[u8]) -> Result<Self, RuntimeError> {
        serde_json::from_slice(bytes).map_err(|e| RuntimeError::InvalidImage {
            reference: reference.to_string(),
            reason: format!("config: {e}"),
        })
    }

    /// The snapshot the image's top layer is committed as; `None` for an image with no layers.
    pub(crate) fn top_chain_id(&self) -> Option<String> {
        chain_ids(&self.rootfs.diff_ids).pop()
    }
}

impl Manifest {
    /// The image's size: this manifest (`own_size` bytes), its config and its layers.
    pub(crate) fn size(&self, own_size: usize) -> u64 {
        let blob = |d: &Descriptor| u64::try_from(d.size).unwrap_or(0);
        u64::try_from(own_size).unwrap_or(0)
            + blob(&self.config)
            + self.layers.iter().map(blob).sum::<u64>()
    }

    pub(crate) fn parse(reference: &str, bytes: &[u8]) -> Result<Self, RuntimeError> {
        serde_json::from_slice(bytes).map_err(|e| RuntimeError::InvalidImage {
            reference: reference.to_string(),
            reason: format!("manifest: {e}"),
        })
    }
}

/// The OCI chain ids of a layer stack: each names a layer together with everything below it.
pub(crate) fn chain_ids(diff_ids: &[String]) -> Vec<String> {
    let mut chain: Vec<String> = Vec::with_capacity(diff_ids.len());
    for diff_id in diff_ids {
        let next = match chain.last() {
            None => diff_id.clone(),
            Some(parent) => format!(
                "sha256:{:x}",
                Sha256::digest(format!("{parent} {diff_id}").as_bytes())
            ),
        };
        chain.push(next);
    }
    chain
}

/// An image in containerd's image store, ready to create containers from.
pub(crate) struct LocalImage {
    pub(crate) config: ImageConfig,
    /// What a pull of this image would report.
    pub(crate) pulled: PulledImage,
}

impl LocalImage {
    /// Loads a pulled image; `Ok(None)` when no image of that name is stored.
    pub(crate) async fn load(
        connection: &Connection,
        name: &str,
    ) -> Result<Option<LocalImage>, RuntimeError> {
        let response = connection
            .client
            .images()
            .get(connection.request(GetImageRequest {
                name: name.to_string(),
            }))
            .await;
        let image = match response {
            Ok(response) => response.into_inner().image,
            Err(status) if is_not_found(&status) => return Ok(None),
            Err(status) => return Err(rpc_error("image get", name)(status)),
        };
        let Some(target) = image.and_then(|image| image.target) else {
            return Ok(None);
        };
        let manifest_bytes = read_content(connection, &target.digest).await?;
        let manifest = Manifest::parse(name, &manifest_bytes)?;
        let config = read_content(connection, &manifest.config.digest).await?;
        Ok(Some(LocalImage {
            config: ImageConfig::parse(name, &config)?,
            pulled: PulledImage {
                name: name.to_string(),
                digest: target.digest,
                size: manifest.size(manifest_bytes.len()),
                config_digest: manifest.config.digest,
            },
        }))
    }
}

/// Reads a whole blob of the content store (manifests and configs: small).
pub(crate) async fn read_content(
    connection: &Connection,
    digest: &str,
) -> Result<Vec<u8>, RuntimeError> {
    let mut stream = connection
        .client
        .content()
        .read(connection.request(ReadContentRequest {
            digest: digest.to_string(),
            offset: 0,
            size: 0,
        }))
        .await
        .map_err(rpc_error("content read", digest))?
        .into_inner();
    let mut bytes = Vec::new();
    while let Some(chunk) = stream
        .message()
        .await
        .map_err(rpc_error("content read", digest))?
    {
        bytes.extend_from_slice(&chunk.data);
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_chain_id_is_the_first_diff_id() {
        let ids = chain_ids(&["sha256:aaa".to_string(), "sha256:bbb".to_string()]);
        assert_eq!(ids[0], "sha256:aaa");
        let expected = format!(
            "sha256:{:x}",
            Sha256::digest(b"sha256:aaa sha256:bbb".as_slice())
        );
        assert_eq!(ids[1], expected);
        assert!(chain_ids(&[]).is_empty());
    }

    #[test]
    fn an_image_config_keeps_the_process_defaults() {
        let json = br#"{"architecture":"amd64","config":{"Env":["PATH=/bin"],"Cmd":["sh"],
            "WorkingDir":"/srv","User":"1000:1000"},"rootfs":{"type":"layers","diff_ids":["sha256:x"]}}"#;
        let config = ImageConfig::parse("busybox", json).unwrap();
        assert_eq!(config.config.cmd, Some(vec!["sh".to_string()]));
        assert_eq!(config.config.working_dir.as_deref(), Some("/srv"));
        assert_eq!(config.top_chain_id().as_deref(), Some("sha256:x"));
        let err = ImageConfig::parse("busybox", b"[]").unwrap_err();
        assert!(err.to_string().contains("busybox"), "{err}");
    }
}
