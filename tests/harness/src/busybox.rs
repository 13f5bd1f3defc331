//! A busybox OCI image built on the spot (Debian's busybox-static in one gzip layer) and pushed
//! to a test registry, so container tests need no network.

use std::io::Write;

use anyhow::{Context, bail};
use flate2::Compression;
use flate2::write::GzEncoder;
use oci_client::client::{ClientConfig, ClientProtocol, Config, ImageLayer};
use oci_client::manifest::{IMAGE_CONFIG_MEDIA_TYPE, IMAGE_LAYER_GZIP_MEDIA_TYPE};
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference};
use sha2::{Digest, Sha256};

use crate::Registry;

const BUSYBOX: &str = "/bin/busybox";
/// The applets the tests call, as symlinks to busybox.
const APPLETS: &[&str] = &[
    "sh", "echo", "cat", "head", "tr", "sleep", "true", "false", "id", "env", "ls", "kill", "test",
];

/// Builds the image and pushes it as `<registry>/<repository>:<tag>`; returns that reference.
pub async fn push_busybox(
    registry: &Registry,
    repository: &str,
    tag: &str,
    auth: Option<(&str, &str)>,
) -> anyhow::Result<String> {
    let layer = busybox_layer()?;
    let diff_id = format!("sha256:{:x}", Sha256::digest(&layer));
    let mut gzip = GzEncoder::new(Vec::new(), Compression::fast());
    gzip.write_all(&layer)?;
    let compressed = gzip.finish()?;
    let config = serde_json::json!({
        "architecture": oci_architecture(),
        "os": "linux",
        "config": {
            "Env": ["PATH=/usr/sbin:/usr/bin:/sbin:/bin"],
            "Cmd": ["sh"],
        },
        "rootfs": { "type": "layers", "diff_ids": [diff_id] },
    });
    let reference: Reference = format!("{}/{repository}:{tag}", registry.host())
        .parse()
        .context("building the image reference")?;
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = Client::new(ClientConfig {
        protocol: ClientProtocol::Http,
        ..ClientConfig::default()
    });
    let auth = match auth {
        Some((user, password)) => RegistryAuth::Basic(user.into(), password.into()),
        None => RegistryAuth::Anonymous,
    };
    client
        .push(
            &reference,
            &[ImageLayer::new(
                compressed,
                IMAGE_LAYER_GZIP_MEDIA_TYPE.to_string(),
                None,
            )],
            Config::new(
                serde_json::to_vec(&config)?,
                IMAGE_CONFIG_MEDIA_TYPE.to_string(),
                None,
            ),
            &auth,
            None,
        )
        .await
        .context("pushing the busybox image")?;
    Ok(reference.whole())
}

/// The uncompressed layer: /bin/busybox, its applet links and the usual empty directories.
fn busybox_layer() -> anyhow::Result<Vec<u8>> {
    let busybox = std::fs::read(BUSYBOX)
        .with_context(|| format!("{BUSYBOX} is missing: apt-get install busybox-static"))?;
    if busybox.len() < 100_000 {
        bail!("{BUSYBOX} looks dynamically linked: install busybox-static");
    }
    let mut tar = tar::Builder::new(Vec::new());
    for (dir, mode) in [
        ("bin/", 0o755),
        ("etc/", 0o755),
        ("tmp/", 0o1777),
        ("proc/", 0o755),
        ("sys/", 0o755),
        ("dev/", 0o755),
    ] {
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(tar::EntryType::Directory);
        header.set_mode(mode);
        header.set_size(0);
        tar.append_data(&mut header, dir, std::io::empty())?;
    }
    let mut header = tar::Header::new_gnu();
    header.set_mode(0o755);
    header.set_size(busybox.len() as u64);
    tar.append_data(&mut header, "bin/busybox", busybox.as_slice())?;
    for applet in APPLETS {
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(tar::EntryType::Symlink);
        header.set_mode(0o777);
        header.set_size(0);
        tar.append_link(&mut header, format!("bin/{applet}"), "busybox")?;
    }
    let passwd = b"root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n";
    let mut header = tar::Header::new_gnu();
    header.set_mode(0o644);
    header.set_size(passwd.len() as u64);
    tar.append_data(&mut header, "etc/passwd", passwd.as_slice())?;
    Ok(tar.into_inner()?)
}

fn oci_architecture() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}
