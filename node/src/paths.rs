//! Where the node agent keeps pod data under its data dir:
//!
//! - `<data_dir>/pods/<pod uid>/<container>/<restart count>.log` — a container's log, one file
//!   per run, in the CRI log format the runtime writes (the kubelet API serves these);
//! - `<data_dir>/pods/<pod uid>/.etc/{hosts,resolv.conf}` — what a pod with its own network
//!   sees at those paths (a container name cannot start with a dot);
//! - `<data_dir>/volumes/<pod uid>/<volume>` — the pod's emptyDir, configMap, secret and
//!   downwardAPI volumes;
//! - `<data_dir>/runtimes/<handler>` — per-runtime state such as compiled-module caches;
//! - `<data_dir>/kubelet` — the kubelet API's self-signed serving certificate and key.

use std::path::PathBuf;

#[derive(Clone, Debug)]
pub struct Layout {
    root: PathBuf,
}

impl Layout {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    pub fn pod_logs(&self, uid: &str) -> PathBuf {
        self.root.join("pods").join(uid)
    }

    pub fn container_log(&self, uid: &str, container: &str, restart: i32) -> PathBuf {
        self.pod_logs(uid)
            .join(container)
            .join(format!("{restart}.log"))
    }

    pub fn pod_etc(&self, uid: &str) -> PathBuf {
        self.pod_logs(uid).join(".etc")
    }

    pub fn pod_volumes(&self, uid: &str) -> PathBuf {
        self.root.join("volumes").join(uid)
    }

    pub fn volume(&self, uid: &str, volume: &str) -> PathBuf {
        self.pod_volumes(uid).join(volume)
    }

    pub fn runtime_state(&self, handler: &str) -> PathBuf {
        self.root.join("runtimes").join(handler)
    }

    pub fn kubelet_pki(&self) -> PathBuf {
        self.root.join("kubelet")
    }
}

/// Writes a file that holds a private key: owner-only, written whole or not at all.
pub fn write_private(path: &std::path::Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let tmp = path.with_extension("tmp");
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    file.write_all(text.as_bytes())?;
    file.sync_all()?;
    std::fs::rename(tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_paths_follow_the_documented_scheme() {
        let layout = Layout::new("/data");
        assert_eq!(
            layout.container_log("u1", "app", 2),
            PathBuf::from("/data/pods/u1/app/2.log")
        );
        assert_eq!(
            layout.volume("u1", "cfg"),
            PathBuf::from("/data/volumes/u1/cfg")
        );
    }
}
