use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum NetworkError {
    #[error("cni plugin {path} is missing: install containernetworking-plugins")]
    MissingPlugin { path: PathBuf },
    #[error("pod network state {path}: {source}")]
    State {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("pod uid {uid:?} is not usable as a network name")]
    InvalidUid { uid: String },
    #[error("running {program}: {source}")]
    Spawn {
        program: String,
        source: std::io::Error,
    },
    #[error("{program} {command} failed: {message}")]
    Plugin {
        program: String,
        command: String,
        message: String,
    },
    #[error("cni result of {program}: {reason}")]
    Result { program: String, reason: String },
}
