use std::path::PathBuf;

use crate::ContainerId;

/// Why a runtime call failed.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("container {id} not found")]
    NotFound { id: ContainerId },
    #[error("container {id} is {state}, cannot {action}")]
    InvalidState {
        id: ContainerId,
        state: &'static str,
        action: &'static str,
    },
    #[error("reading module {path}: {source}")]
    ReadModule {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid module {path}: {reason}")]
    InvalidModule { path: PathBuf, reason: String },
    #[error("module cache {path}: {reason}")]
    Cache { path: PathBuf, reason: String },
    #[error("log file {path}: {source}")]
    LogFile {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("mount {host_path} at {container_path}: {reason}")]
    Mount {
        host_path: PathBuf,
        container_path: String,
        reason: String,
    },
    #[error("instantiating container {id}: {reason}")]
    Instantiate { id: ContainerId, reason: String },
    #[error("wasm engine: {reason}")]
    Engine { reason: String },
    #[error("the {handler} runtime cannot run the image of container {container}")]
    UnsupportedImage {
        handler: &'static str,
        container: String,
    },
    #[error("containerd {operation} {target}: {reason}")]
    Containerd {
        operation: &'static str,
        target: String,
        reason: String,
    },
    #[error("pulling image {reference}: {reason}")]
    ImagePull { reference: String, reason: String },
    #[error("image {reference}: {reason}")]
    InvalidImage { reference: String, reason: String },
    #[error("stdio of container {id} at {path}: {source}")]
    Stdio {
        id: ContainerId,
        path: PathBuf,
        source: std::io::Error,
    },
}
