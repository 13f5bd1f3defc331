//! Pull and push against a real registry (Debian's docker-registry).

use std::path::Path;

use oci_client::client::{Config, ImageLayer};
use oci_client::manifest::{OCI_IMAGE_MEDIA_TYPE, OciImageManifest};
use rkube_harness::{REGISTRY_PASSWORD, REGISTRY_USERNAME, Registry};

use super::layer::tests::tar_of;
use super::{ImagePullError, OciImages, push, push_wasm};

const WAT: &str = r#"(module (func (export "_start")))"#;

fn module() -> Vec<u8> {
    wat::parse_str(WAT).expect("valid wat")
}

fn registry() -> Registry {
    Registry::start().expect("docker-registry must run: apt-get install docker-registry")
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> std::path::PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).expect("write test file");
    path
}

/// Pushes a plain OCI image whose one gzipped tar layer holds `files`.
async fn push_image(reference: &str, files: &[(&str, &[u8])]) -> String {
    let layer = ImageLayer::oci_v1_gzip(tar_of(files, true), None);
    let config = Config::oci_v1(
        br#"{"architecture":"wasm","os":"wasip1","rootfs":{"type":"layers","diff_ids":[]}}"#
            .to_vec(),
        None,
    );
    let mut manifest = OciImageManifest::build(std::slice::from_ref(&layer), &config, None);
    manifest.media_type = Some(OCI_IMAGE_MEDIA_TYPE.to_string());
    push::push_manifest(reference, &[], None, &[layer], config, &manifest)
        .await
        .expect("push image")
}

#[tokio::test]
async fn pushed_artifact_is_pulled_cached_and_re_resolved() {
    let registry = registry();
    let work = tempfile::tempdir().expect("tempdir");
    let file = write(work.path(), "app.wasm", &module());
    let reference = format!("{}/apps/hello:v1", registry.host());
    let pushed = push_wasm(&file, &reference, &[], None).await.expect("push");

    let images = OciImages::new(work.path().join("cache"), vec![]);
    let first = images
        .fetch(&reference, "IfNotPresent", &[], None)
        .await
        .expect("pull");
    assert_eq!(first.digest, pushed);
    assert_eq!(std::fs::read(&first.path).expect("module"), module());
    let hex = pushed.trim_start_matches("sha256:");
    assert!(first.path.ends_with(format!("modules/{hex}.wasm")));
    assert!(work.path().join("cache/blobs/sha256").join(hex).is_file());

    // Always re-resolves the tag: a new push under it is picked up.
    let other = wat::parse_str(r#"(module (func (export "_start") nop))"#).expect("wat");
    let file2 = write(work.path(), "app2.wasm", &other);
    let repushed = push_wasm(&file2, &reference, &[], None)
        .await
        .expect("push");
    assert_ne!(repushed, pushed);
    let cached = images
        .fetch(&reference, "IfNotPresent", &[], None)
        .await
        .expect("cached");
    assert_eq!(cached.digest, pushed, "IfNotPresent keeps what it has");
    let fresh = images
        .fetch(&reference, "Always", &[], None)
        .await
        .expect("pull");
    assert_eq!(fresh.digest, repushed);
    assert_eq!(std::fs::read(&fresh.path).expect("module"), other);

    // With the registry gone, IfNotPresent and Never are served from disk; Always fails.
    drop(registry);
    for policy in ["IfNotPresent", "Never"] {
        let offline = images
            .fetch(&reference, policy, &[], None)
            .await
            .expect(policy);
        assert_eq!(offline, fresh);
    }
    let err = images
        .fetch(&reference, "Always", &[], None)
        .await
        .expect_err("registry is down");
    assert!(matches!(err, ImagePullError::Registry { .. }), "{err}");
}

#[tokio::test]
async fn a_missing_tag_reports_the_registry_message() {
    let registry = registry();
    let work = tempfile::tempdir().expect("tempdir");
    let file = write(work.path(), "app.wasm", &module());
    let repo = format!("{}/apps/hello", registry.host());
    push_wasm(&file, &format!("{repo}:v1"), &[], None)
        .await
        .expect("push");
    let images = OciImages::new(work.path().join("cache"), vec![]);
    let err = images
        .fetch(&format!("{repo}:nope"), "IfNotPresent", &[], None)
        .await
        .expect_err("no such tag");
    assert!(matches!(err, ImagePullError::NotFound { .. }), "{err}");
    assert!(err.to_string().contains("manifest unknown"), "{err}");
}

#[tokio::test]
async fn plain_oci_image_layers_yield_the_module() {
    let registry = registry();
    let work = tempfile::tempdir().expect("tempdir");
    let images = OciImages::new(work.path().join("cache"), vec![]);
    let other = b"\0asm\x01\0\0\0".to_vec();

    let single = format!("{}/apps/single:v1", registry.host());
    let digest = push_image(
        &single,
        &[("etc/motd", b"hi"), ("app/main.wasm", &module())],
    )
    .await;
    let pulled = images
        .fetch(&single, "IfNotPresent", &[], None)
        .await
        .expect("pull");
    assert_eq!(pulled.digest, digest);
    assert_eq!(std::fs::read(&pulled.path).expect("module"), module());

    let multi = format!("{}/apps/multi:v1", registry.host());
    push_image(&multi, &[("a.wasm", &module()), ("bin/b.wasm", &other)]).await;
    let b = images
        .fetch(&multi, "IfNotPresent", &[], Some("/bin/b.wasm"))
        .await
        .expect("entry b");
    assert_eq!(std::fs::read(&b.path).expect("module"), other);
    let a = images
        .fetch(&multi, "IfNotPresent", &[], Some("a.wasm"))
        .await
        .expect("entry a");
    assert_eq!(std::fs::read(&a.path).expect("module"), module());
    assert_ne!(a.path, b.path);
    let err = images
        .fetch(&multi, "IfNotPresent", &[], None)
        .await
        .expect_err("ambiguous without an entry");
    assert!(err.to_string().contains("several .wasm files"), "{err}");
}

#[tokio::test]
async fn non_wasm_content_is_refused() {
    let registry = registry();
    let work = tempfile::tempdir().expect("tempdir");
    let script = write(work.path(), "app.wasm", b"#!/bin/sh\necho hi\n");
    let reference = format!("{}/apps/script:v1", registry.host());
    let err = push_wasm(&script, &reference, &[], None)
        .await
        .expect_err("push refuses non-wasm");
    assert!(matches!(err, ImagePullError::NotWasm { .. }), "{err}");

    // An image that holds a fake .wasm file passes the push but fails the pull.
    push_image(&reference, &[("app.wasm", b"#!/bin/sh\n")]).await;
    let images = OciImages::new(work.path().join("cache"), vec![]);
    let err = images
        .fetch(&reference, "IfNotPresent", &[], None)
        .await
        .expect_err("not wasm");
    assert!(matches!(err, ImagePullError::NotWasm { .. }), "{err}");
    assert!(err.to_string().contains("wasm magic number"), "{err}");
}

#[tokio::test]
async fn a_login_registry_needs_the_credentials() {
    let registry = Registry::start_with_login().expect("docker-registry with htpasswd");
    let work = tempfile::tempdir().expect("tempdir");
    let file = write(work.path(), "app.wasm", &module());
    let reference = format!("{}/private/app:v1", registry.host());
    let login = (REGISTRY_USERNAME.to_string(), REGISTRY_PASSWORD.to_string());

    let err = push_wasm(&file, &reference, &[], None)
        .await
        .expect_err("anonymous push");
    assert!(matches!(err, ImagePullError::Unauthorized { .. }), "{err}");
    let pushed = push_wasm(&file, &reference, &[], Some(login))
        .await
        .expect("push with login");

    let images = OciImages::new(work.path().join("cache"), vec![]);
    let err = images
        .fetch(&reference, "Always", &[], None)
        .await
        .expect_err("anonymous pull");
    assert!(matches!(err, ImagePullError::Unauthorized { .. }), "{err}");
    let wrong = [(
        registry.host(),
        REGISTRY_USERNAME.to_string(),
        "wrong".to_string(),
    )];
    let err = images
        .fetch(&reference, "Always", &wrong, None)
        .await
        .expect_err("wrong password");
    assert!(matches!(err, ImagePullError::Unauthorized { .. }), "{err}");

    let secret = format!(
        r#"{{"auths":{{"{}":{{"username":"{REGISTRY_USERNAME}","password":"{REGISTRY_PASSWORD}"}}}}}}"#,
        registry.host()
    );
    let credentials = super::parse_docker_config(secret.as_bytes()).expect("docker config");
    let pulled = images
        .fetch(&reference, "Always", &credentials, None)
        .await
        .expect("pull with login");
    assert_eq!(pulled.digest, pushed);
}

/// The raw manifest a tag names, for building an index over it.
async fn manifest_entry(reference: &str, platform: serde_json::Value) -> serde_json::Value {
    let parsed = super::client::parse_reference(reference).expect("reference");
    let client = super::client::client_for(&parsed, &[]).expect("client");
    let (bytes, digest) = client
        .pull_manifest_raw(
            &parsed,
            &oci_client::secrets::RegistryAuth::Anonymous,
            &[OCI_IMAGE_MEDIA_TYPE],
        )
        .await
        .expect("manifest");
    serde_json::json!({
        "mediaType": OCI_IMAGE_MEDIA_TYPE,
        "digest": digest,
        "size": bytes.len(),
        "platform": platform,
    })
}

#[tokio::test]
async fn an_image_index_resolves_to_its_wasm_entry() {
    let registry = registry();
    let work = tempfile::tempdir().expect("tempdir");
    let repo = format!("{}/apps/multi-arch", registry.host());
    let file = write(work.path(), "app.wasm", &module());
    let wasm_digest = push_wasm(&file, &format!("{repo}:wasm"), &[], None)
        .await
        .expect("push wasm");
    push_image(
        &format!("{repo}:linux"),
        &[("bin/sh.wasm", b"\0asm\x01\0\0\0")],
    )
    .await;

    let index = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": oci_client::manifest::OCI_IMAGE_INDEX_MEDIA_TYPE,
        "manifests": [
            manifest_entry(&format!("{repo}:linux"), serde_json::json!({"architecture": "amd64", "os": "linux"})).await,
            manifest_entry(&format!("{repo}:wasm"), serde_json::json!({"architecture": "wasm", "os": "wasip1"})).await,
        ],
    });
    let reference = format!("{repo}:v1");
    let parsed = super::client::parse_reference(&reference).expect("reference");
    let client = super::client::client_for(&parsed, &[]).expect("client");
    client
        .push_manifest_raw(
            &parsed,
            serde_json::to_vec(&index).expect("json"),
            http::HeaderValue::from_static(oci_client::manifest::OCI_IMAGE_INDEX_MEDIA_TYPE),
        )
        .await
        .expect("push index");

    let images = OciImages::new(work.path().join("cache"), vec![]);
    let pulled = images
        .fetch(&reference, "Always", &[], None)
        .await
        .expect("pull");
    assert_eq!(pulled.digest, wasm_digest);
    assert_eq!(std::fs::read(&pulled.path).expect("module"), module());
}
