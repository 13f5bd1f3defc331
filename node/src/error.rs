use std::path::PathBuf;

/// Why the node agent stopped.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error("registering node {node}: {source}")]
    Register {
        node: String,
        #[source]
        source: kube::Error,
    },
    #[error("preparing data dir {path}: {source}")]
    DataDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("node {node} has no runtimes configured")]
    NoRuntimes { node: String },
    #[error("starting the kubelet api of node {node}: {source}")]
    Kubelet {
        node: String,
        #[source]
        source: crate::kubelet::KubeletError,
    },
}
