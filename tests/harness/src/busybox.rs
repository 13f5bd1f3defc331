//! A busybox OCI image built on the spot from Debian's busybox-static and pushed
//! to a test registry, so container tests need no network.

use std::fs::Permissions;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use anyhow::{Context, bail};

use crate::Registry;

const BUSYBOX: &str = "/bin/busybox";
/// The applets the tests call, as symlinks to busybox.
const APPLETS: &[&str] = &[
    "sh", "echo", "cat", "head", "tr", "sleep", "true", "false", "id", "env", "ls", "kill", "test",
    "mkdir", "httpd", "wget",
];

/// Builds the image and pushes it as `<registry>/<repository>:<tag>` with `rkube push`'s
/// directory path; returns that reference.
pub async fn push_busybox(
    registry: &Registry,
    repository: &str,
    tag: &str,
    auth: Option<(&str, &str)>,
) -> anyhow::Result<String> {
    let rootfs = tempfile::tempdir()?;
    busybox_rootfs(rootfs.path())?;
    let reference = format!("{}/{repository}:{tag}", registry.host());
    let auth = auth.map(|(user, password)| (user.to_string(), password.to_string()));
    rkube_node::images::push_rootfs(rootfs.path(), &reference, &[], auth)
        .await
        .context("pushing the busybox image")?;
    Ok(reference)
}

/// /bin/busybox, its applet links, /etc/passwd and the usual empty directories, under `root`.
fn busybox_rootfs(root: &Path) -> anyhow::Result<()> {
    let busybox = std::fs::read(BUSYBOX)
        .with_context(|| format!("{BUSYBOX} is missing: apt-get install busybox-static"))?;
    if busybox.len() < 100_000 {
        bail!("{BUSYBOX} looks dynamically linked: install busybox-static");
    }
    for (dir, mode) in [
        ("bin", 0o755),
        ("etc", 0o755),
        ("tmp", 0o1777),
        ("proc", 0o755),
        ("sys", 0o755),
        ("dev", 0o755),
    ] {
        let path = root.join(dir);
        std::fs::create_dir_all(&path)?;
        std::fs::set_permissions(&path, Permissions::from_mode(mode))?;
    }
    let binary = root.join("bin/busybox");
    std::fs::write(&binary, busybox)?;
    std::fs::set_permissions(&binary, Permissions::from_mode(0o755))?;
    for applet in APPLETS {
        std::os::unix::fs::symlink("busybox", root.join("bin").join(applet))?;
    }
    std::fs::write(
        root.join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n",
    )?;
    Ok(())
}
