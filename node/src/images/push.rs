//! `rkube push`: a `.wasm` file as a CNCF wasm OCI artifact, or a directory as a one-layer
//! Linux container image.

use std::io::Write;
use std::path::Path;

use flate2::Compression;
use flate2::write::GzEncoder;
use http::HeaderValue;
use oci_client::client::{Config, ImageLayer};
use oci_client::manifest::{
    IMAGE_CONFIG_MEDIA_TYPE, IMAGE_LAYER_GZIP_MEDIA_TYPE, OCI_IMAGE_MEDIA_TYPE, OciImageManifest,
};
use sha2::{Digest, Sha256};

use super::layer::{WASM_CONFIG_MEDIA_TYPE, WASM_MEDIA_TYPE, check_wasm};
use super::{ImagePullError, cache, client};

/// Pushes `file` to `reference` (config `application/vnd.wasm.config.v0+json`, one
/// `application/wasm` layer) and returns the manifest digest.
pub async fn push_wasm(
    file: &Path,
    reference: &str,
    insecure_registries: &[String],
    auth: Option<(String, String)>,
) -> Result<String, ImagePullError> {
    let module = tokio::fs::read(file)
        .await
        .map_err(|source| ImagePullError::ReadFile {
            path: file.to_path_buf(),
            source,
        })?;
    check_wasm(&module, &file.display().to_string()).map_err(|reason| ImagePullError::NotWasm {
        image: reference.to_string(),
        reason,
    })?;
    let layer = ImageLayer::new(module, WASM_MEDIA_TYPE.to_string(), None);
    let config = Config::new(
        wasm_config(&layer).into_bytes(),
        WASM_CONFIG_MEDIA_TYPE.to_string(),
        None,
    );
    push_one_layer(reference, insecure_registries, auth, layer, config).await
}

/// Pushes the contents of `dir` as a container image for this host's architecture: one gzip
/// layer (owners 0:0, symlinks kept as links) and a config with the usual `PATH`. Pods give
/// the command; the image sets none. Returns the manifest digest.
pub async fn push_rootfs(
    dir: &Path,
    reference: &str,
    insecure_registries: &[String],
    auth: Option<(String, String)>,
) -> Result<String, ImagePullError> {
    let root = dir.to_path_buf();
    let read_error = |source| ImagePullError::ReadFile {
        path: dir.to_path_buf(),
        source,
    };
    let (layer, diff_id) = tokio::task::spawn_blocking(move || rootfs_layer(&root))
        .await
        .map_err(|join| read_error(std::io::Error::other(join)))?
        .map_err(read_error)?;
    let layer = ImageLayer::new(layer, IMAGE_LAYER_GZIP_MEDIA_TYPE.to_string(), None);
    let config = serde_json::json!({
        "architecture": crate::host::kube_arch(std::env::consts::ARCH),
        "os": "linux",
        "config": { "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"] },
        "rootfs": { "type": "layers", "diff_ids": [diff_id] },
    });
    let config = Config::new(
        config.to_string().into_bytes(),
        IMAGE_CONFIG_MEDIA_TYPE.to_string(),
        None,
    );
    push_one_layer(reference, insecure_registries, auth, layer, config).await
}

/// Pushes an OCI image manifest of one layer and its config.
async fn push_one_layer(
    reference: &str,
    insecure_registries: &[String],
    auth: Option<(String, String)>,
    layer: ImageLayer,
    config: Config,
) -> Result<String, ImagePullError> {
    let mut manifest = OciImageManifest::build(std::slice::from_ref(&layer), &config, None);
    manifest.media_type = Some(OCI_IMAGE_MEDIA_TYPE.to_string());
    push_manifest(
        reference,
        insecure_registries,
        auth,
        &[layer],
        config,
        &manifest,
    )
    .await
}

/// The gzip layer of `root` and the digest of its uncompressed tar (the image's diff id).
fn rootfs_layer(root: &Path) -> std::io::Result<(Vec<u8>, String)> {
    let mut tar = tar::Builder::new(Vec::new());
    // Deterministic: owners 0:0 and fixed times, so the same tree gives the same digest.
    tar.mode(tar::HeaderMode::Deterministic);
    tar.follow_symlinks(false);
    tar.append_dir_all(".", root)?;
    let tar = tar.into_inner()?;
    let diff_id = format!("sha256:{:x}", Sha256::digest(&tar));
    let mut gzip = GzEncoder::new(Vec::new(), Compression::fast());
    gzip.write_all(&tar)?;
    Ok((gzip.finish()?, diff_id))
}

/// Uploads the blobs then the manifest; the digest is of the exact manifest bytes sent.
pub(crate) async fn push_manifest(
    reference: &str,
    insecure_registries: &[String],
    auth: Option<(String, String)>,
    layers: &[ImageLayer],
    config: Config,
    manifest: &OciImageManifest,
) -> Result<String, ImagePullError> {
    let registry_error = |e| ImagePullError::from_registry(reference, e);
    let parsed = client::parse_reference(reference)?;
    let client = client::client_for(&parsed, insecure_registries)?;
    let login = auth.as_ref().map(|(u, p)| (u.as_str(), p.as_str()));
    let registry_auth = client::registry_auth(login);
    // Authenticate for push up front, so the blob uploads carry the credentials.
    client
        .auth(&parsed, &registry_auth, oci_client::RegistryOperation::Push)
        .await
        .map_err(registry_error)?;
    for layer in layers {
        client
            .push_blob(&parsed, layer.data.clone(), &layer.sha256_digest())
            .await
            .map_err(registry_error)?;
    }
    client
        .push_blob(&parsed, config.data.clone(), &config.sha256_digest())
        .await
        .map_err(registry_error)?;
    let body = serde_json::to_vec(manifest).map_err(|e| ImagePullError::Registry {
        image: reference.to_string(),
        message: format!("encoding the manifest: {e}"),
    })?;
    let digest = format!("sha256:{}", cache::hex_sha256(&body));
    client
        .push_manifest_raw(
            &parsed,
            body,
            HeaderValue::from_static(OCI_IMAGE_MEDIA_TYPE),
        )
        .await
        .map_err(registry_error)?;
    Ok(digest)
}

/// The CNCF wasm config: the module is a WASI preview 1 core module unless it says otherwise.
fn wasm_config(layer: &ImageLayer) -> String {
    serde_json::json!({
        "architecture": "wasm",
        "os": "wasip1",
        "layerDigests": [layer.sha256_digest()],
    })
    .to_string()
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use super::*;

    #[test]
    fn a_rootfs_layer_keeps_links_and_modes_and_drops_owners() {
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir(root.path().join("bin")).unwrap();
        std::fs::write(root.path().join("bin/tool"), b"#!/bin/sh\n").unwrap();
        std::fs::set_permissions(
            root.path().join("bin/tool"),
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        )
        .unwrap();
        std::os::unix::fs::symlink("tool", root.path().join("bin/alias")).unwrap();
        let (gzip, diff_id) = rootfs_layer(root.path()).unwrap();
        let mut tar = Vec::new();
        flate2::read::GzDecoder::new(gzip.as_slice())
            .read_to_end(&mut tar)
            .unwrap();
        assert_eq!(diff_id, format!("sha256:{:x}", Sha256::digest(&tar)));
        let mut archive = tar::Archive::new(tar.as_slice());
        let mut seen = Vec::new();
        for entry in archive.entries().unwrap() {
            let entry = entry.unwrap();
            let header = entry.header();
            assert_eq!((header.uid().unwrap(), header.gid().unwrap()), (0, 0));
            let path = entry.path().unwrap().display().to_string();
            match path.trim_start_matches("./") {
                "bin/tool" => assert_eq!(header.mode().unwrap() & 0o777, 0o755),
                "bin/alias" => assert_eq!(
                    entry.link_name().unwrap().unwrap().display().to_string(),
                    "tool"
                ),
                _ => {}
            }
            seen.push(path.trim_start_matches("./").to_string());
        }
        assert!(seen.contains(&"bin/tool".to_string()), "{seen:?}");
        assert!(seen.contains(&"bin/alias".to_string()), "{seen:?}");
        assert_eq!(
            rootfs_layer(root.path()).unwrap().1,
            diff_id,
            "deterministic"
        );
    }
}
