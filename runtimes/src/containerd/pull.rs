//! Client-side image pull: the registry is read with oci-client, blobs are written into
//! containerd's content store under a lease, the layers are unpacked into committed snapshots
//! named by chain id, and the image record points at the manifest.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};

use bytes::Bytes;
use containerd_client::services::v1::snapshots::{
    CommitSnapshotRequest, PrepareSnapshotRequest, RemoveSnapshotRequest, StatSnapshotRequest,
};
use containerd_client::services::v1::{
    ApplyRequest, CreateImageRequest, Image, InfoRequest, UpdateImageRequest, WriteAction,
    WriteContentRequest,
};
use containerd_client::tonic::Code;
use containerd_client::types::Descriptor as ContainerdDescriptor;
use futures::{Stream, StreamExt, stream};
use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::manifest::{
    IMAGE_MANIFEST_LIST_MEDIA_TYPE, IMAGE_MANIFEST_MEDIA_TYPE, OCI_IMAGE_INDEX_MEDIA_TYPE,
    OCI_IMAGE_MEDIA_TYPE, OciDescriptor,
};
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference};
use serde::Deserialize;

use super::connection::{Connection, LeaseId, is_not_found, rpc_error};
use super::image::{Descriptor, ImageConfig, Manifest, chain_ids};
use super::unique_suffix;
use crate::RuntimeError;

const ACCEPTED_MANIFESTS: &[&str] = &[
    OCI_IMAGE_MEDIA_TYPE,
    IMAGE_MANIFEST_MEDIA_TYPE,
    OCI_IMAGE_INDEX_MEDIA_TYPE,
    IMAGE_MANIFEST_LIST_MEDIA_TYPE,
];

/// An image now in containerd's store.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PulledImage {
    /// The normalised name it is stored as, e.g. `docker.io/library/busybox:latest`.
    pub name: String,
    /// Digest of the platform manifest.
    pub digest: String,
    /// Digest of the image config, the image id.
    pub config_digest: String,
    /// Bytes of the manifest, config and (compressed) layers, as containerd sizes an image.
    pub size: u64,
}

/// Registry credentials for one pull.
#[derive(Clone, Debug, Default)]
pub struct PullAuth {
    pub username: String,
    pub password: String,
}

/// The name an image reference is stored under, so `busybox` and its full form agree.
pub(crate) fn normalised_name(reference: &str) -> Result<String, RuntimeError> {
    parse(reference).map(|r| r.whole())
}

fn parse(reference: &str) -> Result<Reference, RuntimeError> {
    reference
        .parse::<Reference>()
        .map_err(|e| RuntimeError::ImagePull {
            reference: reference.to_string(),
            reason: e.to_string(),
        })
}

pub(crate) async fn pull(
    connection: &Connection,
    snapshotter: &str,
    insecure_registries: &[String],
    reference: &str,
    auth: Option<&PullAuth>,
) -> Result<PulledImage, RuntimeError> {
    let parsed = parse(reference)?;
    let name = parsed.whole();
    let registry_error = |e: oci_client::errors::OciDistributionError| RuntimeError::ImagePull {
        reference: name.clone(),
        reason: e.to_string(),
    };
    let client = registry_client(&parsed, insecure_registries);
    let auth = match auth {
        Some(auth) => RegistryAuth::Basic(auth.username.clone(), auth.password.clone()),
        None => RegistryAuth::Anonymous,
    };
    let (mut manifest_bytes, mut digest) = client
        .pull_manifest_raw(&parsed, &auth, ACCEPTED_MANIFESTS)
        .await
        .map_err(registry_error)?;
    if let Some(platform_digest) = platform_manifest(&name, &manifest_bytes)? {
        let by_digest = parsed.clone_with_digest(platform_digest);
        (manifest_bytes, digest) = client
            .pull_manifest_raw(&by_digest, &auth, ACCEPTED_MANIFESTS)
            .await
            .map_err(registry_error)?;
    }
    let manifest = Manifest::parse(&name, &manifest_bytes)?;
    let mut config_bytes = Vec::new();
    client
        .pull_blob(
            &parsed,
            &oci_descriptor(&manifest.config),
            &mut config_bytes,
        )
        .await
        .map_err(registry_error)?;
    let config = ImageConfig::parse(&name, &config_bytes)?;
    if config.rootfs.diff_ids.len() != manifest.layers.len() {
        return Err(RuntimeError::InvalidImage {
            reference: name,
            reason: format!(
                "{} layers but {} diff ids",
                manifest.layers.len(),
                config.rootfs.diff_ids.len()
            ),
        });
    }

    let size = manifest.size(manifest_bytes.len());
    let lease = connection
        .create_lease(&format!("rkube-pull-{}", unique_suffix()))
        .await?;
    let stored = Store {
        connection,
        lease: &lease,
        snapshotter,
        name: &name,
    };
    let fetched = Fetched {
        manifest: &manifest,
        manifest_bytes,
        manifest_digest: &digest,
        config: &config,
        config_bytes,
    };
    let result = stored.store(&client, &parsed, fetched).await;
    if let Err(error) = connection.delete_lease(lease).await {
        tracing::warn!(%error, image = %name, "deleting the pull lease");
    }
    result?;
    Ok(PulledImage {
        name,
        digest,
        config_digest: manifest.config.digest,
        size,
    })
}

/// The manifest to pull for this platform when `bytes` is an index; `None` for a manifest.
fn platform_manifest(name: &str, bytes: &[u8]) -> Result<Option<String>, RuntimeError> {
    #[derive(Deserialize)]
    struct Index {
        manifests: Option<Vec<Entry>>,
    }
    #[derive(Deserialize)]
    struct Entry {
        digest: String,
        platform: Option<Platform>,
    }
    #[derive(Deserialize)]
    struct Platform {
        os: String,
        architecture: String,
    }
    let index: Index = serde_json::from_slice(bytes).map_err(|e| RuntimeError::InvalidImage {
        reference: name.to_string(),
        reason: format!("manifest: {e}"),
    })?;
    let Some(entries) = index.manifests else {
        return Ok(None);
    };
    let arch = oci_architecture();
    entries
        .into_iter()
        .find(|entry| {
            entry
                .platform
                .as_ref()
                .is_some_and(|p| p.os == "linux" && p.architecture == arch)
        })
        .map(|entry| Some(entry.digest))
        .ok_or_else(|| RuntimeError::InvalidImage {
            reference: name.to_string(),
            reason: format!("no linux/{arch} image in the index"),
        })
}

fn oci_architecture() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

/// Plain HTTP only for loopback registries and those listed as insecure.
fn registry_client(reference: &Reference, insecure_registries: &[String]) -> Client {
    let registry = reference.resolve_registry();
    let host = registry
        .rsplit_once(':')
        .filter(|(_, port)| port.chars().all(|c| c.is_ascii_digit()))
        .map_or(registry, |(host, _)| host)
        .trim_start_matches('[')
        .trim_end_matches(']');
    let plain_http = host == "localhost"
        || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
        || insecure_registries
            .iter()
            .any(|name| name == registry || name == host);
    let protocol = if plain_http {
        ClientProtocol::Http
    } else {
        ClientProtocol::Https
    };
    // oci-client's rustls needs a process-wide provider; the binary installs ring first.
    let _ = rustls::crypto::ring::default_provider().install_default();
    Client::new(ClientConfig {
        protocol,
        ..ClientConfig::default()
    })
}

fn oci_descriptor(descriptor: &Descriptor) -> OciDescriptor {
    OciDescriptor {
        media_type: descriptor.media_type.clone(),
        digest: descriptor.digest.clone(),
        size: descriptor.size,
        ..OciDescriptor::default()
    }
}

fn containerd_descriptor(descriptor: &Descriptor) -> ContainerdDescriptor {
    ContainerdDescriptor {
        media_type: descriptor.media_type.clone(),
        digest: descriptor.digest.clone(),
        size: descriptor.size,
        annotations: HashMap::new(),
    }
}

/// The documents of an image read from the registry; layers are streamed separately.
struct Fetched<'a> {
    manifest: &'a Manifest,
    manifest_bytes: Bytes,
    manifest_digest: &'a str,
    config: &'a ImageConfig,
    config_bytes: Vec<u8>,
}

struct Store<'a> {
    connection: &'a Connection,
    lease: &'a LeaseId,
    snapshotter: &'a str,
    name: &'a str,
}

impl Store<'_> {
    async fn store(
        &self,
        client: &Client,
        reference: &Reference,
        fetched: Fetched<'_>,
    ) -> Result<(), RuntimeError> {
        let Fetched {
            manifest,
            manifest_bytes,
            manifest_digest,
            config,
            config_bytes,
        } = fetched;
        for layer in &manifest.layers {
            if self.has_content(&layer.digest).await? {
                continue;
            }
            let blob = client
                .pull_blob_stream(reference, &oci_descriptor(layer))
                .await
                .map_err(|e| RuntimeError::ImagePull {
                    reference: self.name.to_string(),
                    reason: e.to_string(),
                })?;
            self.write(layer, HashMap::new(), blob.stream).await?;
        }
        let top = config.top_chain_id();
        // Garbage-collection references: manifest → config and layers, config → snapshot.
        let mut config_labels = HashMap::new();
        if let Some(top) = &top {
            config_labels.insert(
                format!("containerd.io/gc.ref.snapshot.{}", self.snapshotter),
                top.clone(),
            );
        }
        self.write_bytes(&manifest.config, config_labels, config_bytes)
            .await?;
        let mut manifest_labels = HashMap::from([(
            "containerd.io/gc.ref.content.config".to_string(),
            manifest.config.digest.clone(),
        )]);
        for (i, layer) in manifest.layers.iter().enumerate() {
            manifest_labels.insert(
                format!("containerd.io/gc.ref.content.l.{i}"),
                layer.digest.clone(),
            );
        }
        let manifest_descriptor = Descriptor {
            media_type: manifest_media_type(&manifest_bytes),
            digest: manifest_digest.to_string(),
            size: i64::try_from(manifest_bytes.len()).unwrap_or(i64::MAX),
        };
        self.write_bytes(
            &manifest_descriptor,
            manifest_labels,
            manifest_bytes.to_vec(),
        )
        .await?;
        self.unpack(manifest, config).await?;
        self.record_image(&manifest_descriptor).await
    }

    async fn has_content(&self, digest: &str) -> Result<bool, RuntimeError> {
        let info = self
            .connection
            .client
            .content()
            .info(self.connection.request(InfoRequest {
                digest: digest.to_string(),
            }))
            .await;
        match info {
            Ok(_) => Ok(true),
            Err(status) if is_not_found(&status) => Ok(false),
            Err(status) => Err(rpc_error("content info", digest)(status)),
        }
    }

    async fn write_bytes(
        &self,
        descriptor: &Descriptor,
        labels: HashMap<String, String>,
        bytes: Vec<u8>,
    ) -> Result<(), RuntimeError> {
        if self.has_content(&descriptor.digest).await? {
            return Ok(());
        }
        let data = stream::once(async move { Ok(Bytes::from(bytes)) });
        self.write(descriptor, labels, data).await
    }

    /// Streams one blob into the content store and commits it, checked against its digest.
    async fn write(
        &self,
        descriptor: &Descriptor,
        labels: HashMap<String, String>,
        data: impl Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static,
    ) -> Result<(), RuntimeError> {
        let digest = descriptor.digest.clone();
        let total = descriptor.size;
        let write_ref = format!("rkube-{}-{}", digest, unique_suffix());
        let read_error: Arc<Mutex<Option<std::io::Error>>> = Arc::default();
        let failed = read_error.clone();
        let (ref_for_writes, digest_for_writes) = (write_ref.clone(), digest.clone());
        // A stream that stops early (a registry error) ends without the commit message,
        // which makes containerd drop the partial write.
        let writes = data
            .scan(0_i64, move |offset, chunk| {
                let request = match chunk {
                    Ok(chunk) => {
                        let at = *offset;
                        *offset += i64::try_from(chunk.len()).unwrap_or(i64::MAX);
                        Some(WriteContentRequest {
                            action: WriteAction::Write.into(),
                            r#ref: ref_for_writes.clone(),
                            total,
                            expected: digest_for_writes.clone(),
                            offset: at,
                            data: chunk.to_vec(),
                            labels: HashMap::new(),
                        })
                    }
                    Err(error) => {
                        *failed.lock().unwrap_or_else(PoisonError::into_inner) = Some(error);
                        None
                    }
                };
                std::future::ready(request)
            })
            .chain(stream::once(std::future::ready(WriteContentRequest {
                action: WriteAction::Commit.into(),
                r#ref: write_ref.clone(),
                total,
                expected: digest.clone(),
                offset: total,
                data: Vec::new(),
                labels,
            })));
        let outcome = async {
            let mut responses = self
                .connection
                .client
                .content()
                .write(self.connection.leased(writes, self.lease))
                .await?
                .into_inner();
            let mut committed = false;
            while let Some(response) = responses.message().await? {
                committed |= response.action == i32::from(WriteAction::Commit);
            }
            Ok::<bool, containerd_client::tonic::Status>(committed)
        }
        .await;
        if let Some(error) = read_error
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
        {
            return Err(RuntimeError::ImagePull {
                reference: self.name.to_string(),
                reason: format!("reading {digest}: {error}"),
            });
        }
        match outcome {
            Ok(true) => Ok(()),
            // Another pull committed the same blob first.
            Err(status) if status.code() == Code::AlreadyExists => Ok(()),
            Ok(false) => Err(RuntimeError::ImagePull {
                reference: self.name.to_string(),
                reason: format!("containerd did not commit {digest}"),
            }),
            Err(status) => Err(rpc_error("content write", digest)(status)),
        }
    }

    /// Applies each layer onto its parent snapshot and commits it under its chain id.
    async fn unpack(&self, manifest: &Manifest, config: &ImageConfig) -> Result<(), RuntimeError> {
        let chain = chain_ids(&config.rootfs.diff_ids);
        let snapshots = || self.connection.client.snapshots();
        let mut parent = String::new();
        for ((layer, chain_id), diff_id) in manifest
            .layers
            .iter()
            .zip(&chain)
            .zip(&config.rootfs.diff_ids)
        {
            let exists = snapshots()
                .stat(self.connection.request(StatSnapshotRequest {
                    snapshotter: self.snapshotter.to_string(),
                    key: chain_id.clone(),
                }))
                .await;
            match exists {
                Ok(_) => {
                    parent = chain_id.clone();
                    continue;
                }
                Err(status) if is_not_found(&status) => {}
                Err(status) => return Err(rpc_error("snapshot stat", chain_id)(status)),
            }
            let key = format!("rkube-extract-{}-{chain_id}", unique_suffix());
            let mounts = snapshots()
                .prepare(self.connection.leased(
                    PrepareSnapshotRequest {
                        snapshotter: self.snapshotter.to_string(),
                        key: key.clone(),
                        parent: parent.clone(),
                        labels: HashMap::new(),
                    },
                    self.lease,
                ))
                .await
                .map_err(rpc_error("snapshot prepare", &key))?
                .into_inner()
                .mounts;
            let applied = self
                .connection
                .client
                .diff()
                .apply(self.connection.leased(
                    ApplyRequest {
                        diff: Some(containerd_descriptor(layer)),
                        mounts,
                        payloads: HashMap::new(),
                        sync_fs: false,
                    },
                    self.lease,
                ))
                .await
                .map_err(rpc_error("diff apply", &layer.digest));
            let applied = match applied {
                Ok(response) => response.into_inner().applied,
                Err(error) => {
                    self.remove_snapshot(&key).await;
                    return Err(error);
                }
            };
            if applied.as_ref().map(|d| d.digest.as_str()) != Some(diff_id.as_str()) {
                self.remove_snapshot(&key).await;
                return Err(RuntimeError::InvalidImage {
                    reference: self.name.to_string(),
                    reason: format!("layer {} does not unpack to {diff_id}", layer.digest),
                });
            }
            let committed = snapshots()
                .commit(self.connection.leased(
                    CommitSnapshotRequest {
                        snapshotter: self.snapshotter.to_string(),
                        name: chain_id.clone(),
                        key: key.clone(),
                        labels: HashMap::new(),
                    },
                    self.lease,
                ))
                .await;
            match committed {
                Ok(_) => {}
                // A parallel pull unpacked the same layer.
                Err(status) if status.code() == Code::AlreadyExists => {
                    self.remove_snapshot(&key).await;
                }
                Err(status) => {
                    self.remove_snapshot(&key).await;
                    return Err(rpc_error("snapshot commit", chain_id)(status));
                }
            }
            parent = chain_id.clone();
        }
        Ok(())
    }

    async fn remove_snapshot(&self, key: &str) {
        let removed = self
            .connection
            .client
            .snapshots()
            .remove(self.connection.request(RemoveSnapshotRequest {
                snapshotter: self.snapshotter.to_string(),
                key: key.to_string(),
            }))
            .await;
        if let Err(status) = removed {
            tracing::warn!(key, error = %status.message(), "removing an unpack snapshot");
        }
    }

    /// Creates the image record, or points an existing one at the new manifest.
    async fn record_image(&self, manifest: &Descriptor) -> Result<(), RuntimeError> {
        let image = Image {
            name: self.name.to_string(),
            labels: HashMap::new(),
            target: Some(containerd_descriptor(manifest)),
            created_at: None,
            updated_at: None,
        };
        let created = self
            .connection
            .client
            .images()
            .create(self.connection.request(CreateImageRequest {
                image: Some(image.clone()),
                source_date_epoch: None,
            }))
            .await;
        match created {
            Ok(_) => Ok(()),
            Err(status) if status.code() == Code::AlreadyExists => self
                .connection
                .client
                .images()
                .update(self.connection.request(UpdateImageRequest {
                    image: Some(image),
                    update_mask: None,
                    source_date_epoch: None,
                }))
                .await
                .map(|_| ())
                .map_err(rpc_error("image update", self.name)),
            Err(status) => Err(rpc_error("image create", self.name)(status)),
        }
    }
}

/// The media type a manifest declares, OCI when it declares none.
fn manifest_media_type(bytes: &[u8]) -> String {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Typed {
        media_type: Option<String>,
    }
    serde_json::from_slice::<Typed>(bytes)
        .ok()
        .and_then(|t| t.media_type)
        .unwrap_or_else(|| OCI_IMAGE_MEDIA_TYPE.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_index_resolves_to_this_platform() {
        let arch = oci_architecture();
        let index = format!(
            r#"{{"manifests":[{{"digest":"sha256:other","platform":{{"os":"linux","architecture":"s390x"}}}},
            {{"digest":"sha256:mine","platform":{{"os":"linux","architecture":"{arch}"}}}}]}}"#
        );
        assert_eq!(
            platform_manifest("x", index.as_bytes()).unwrap(),
            Some("sha256:mine".to_string())
        );
        assert_eq!(
            platform_manifest("x", br#"{"config":{},"layers":[]}"#).unwrap(),
            None
        );
        let foreign = br#"{"manifests":[{"digest":"sha256:o","platform":{"os":"windows","architecture":"amd64"}}]}"#;
        assert!(platform_manifest("x", foreign).is_err());
    }

    #[test]
    fn short_names_are_normalised() {
        assert_eq!(
            normalised_name("busybox").unwrap(),
            "docker.io/library/busybox:latest"
        );
        assert_eq!(
            normalised_name("127.0.0.1:5000/bb:1").unwrap(),
            "127.0.0.1:5000/bb:1"
        );
        assert!(normalised_name("UPPER/Case").is_err());
    }
}
