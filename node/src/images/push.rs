//! `rkube push`: a `.wasm` file as a CNCF wasm OCI artifact.

use std::path::Path;

use http::HeaderValue;
use oci_client::client::{Config, ImageLayer};
use oci_client::manifest::{OCI_IMAGE_MEDIA_TYPE, OciImageManifest};

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
