//! Where the node agent keeps pod data under its data dir:
//!
//! - `<data_dir>/pods/<pod uid>/<container>/<restart count>.log` — a container's log, one file
//!   per run, in the CRI log format the runtime writes (the kubelet API serves these);
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
