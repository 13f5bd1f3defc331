//! Why an image could not be pulled, with the registry's own words kept.

use oci_client::errors::{OciDistributionError, OciErrorCode};

#[derive(Debug, thiserror::Error)]
pub enum ImagePullError {
    #[error("invalid image reference {image:?}: {reason}")]
    InvalidReference { image: String, reason: String },
    #[error("invalid image pull policy {policy:?}: want Always, IfNotPresent or Never")]
    InvalidPullPolicy { policy: String },
    #[error("ErrImageNeverPull: image {image:?} is not present and the pull policy is Never")]
    NeverPull { image: String },
    #[error("image {image:?} not found: {message}")]
    NotFound { image: String, message: String },
    #[error("unauthorized to pull {image:?}: {message}")]
    Unauthorized { image: String, message: String },
    #[error("registry error for {image:?}: {message}")]
    Registry { image: String, message: String },
    #[error("image {image:?} is not a wasm image: {reason}")]
    NotWasm { image: String, reason: String },
    #[error("invalid layer in {image:?}: {reason}")]
    InvalidLayer { image: String, reason: String },
    #[error("unsupported digest {digest:?}: want sha256:<64 hex digits>")]
    UnsupportedDigest { digest: String },
    #[error("image cache {path}: {source}")]
    Cache {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("reading {path}: {source}")]
    ReadFile {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
}

impl ImagePullError {
    /// Sorts an oci-client failure by what the registry said, keeping its message.
    pub(crate) fn from_registry(image: &str, error: OciDistributionError) -> ImagePullError {
        let image = image.to_string();
        match error {
            OciDistributionError::ImageManifestNotFoundError(message) => {
                ImagePullError::NotFound { image, message }
            }
            OciDistributionError::UnauthorizedError { url } => ImagePullError::Unauthorized {
                image,
                message: format!("registry answered 401 for {url}"),
            },
            OciDistributionError::AuthenticationFailure(message) => {
                ImagePullError::Unauthorized { image, message }
            }
            OciDistributionError::RegistryError { envelope, url } => {
                let message = envelope
                    .errors
                    .iter()
                    .map(|e| format!("{} ({:?})", e.message, e.code))
                    .collect::<Vec<_>>()
                    .join("; ");
                let message = format!("{message} at {url}");
                let codes = || envelope.errors.iter().map(|e| &e.code);
                if codes().any(|c| {
                    matches!(
                        c,
                        OciErrorCode::ManifestUnknown
                            | OciErrorCode::NameUnknown
                            | OciErrorCode::BlobUnknown
                            | OciErrorCode::NotFound
                    )
                }) {
                    ImagePullError::NotFound { image, message }
                } else if codes()
                    .any(|c| matches!(c, OciErrorCode::Unauthorized | OciErrorCode::Denied))
                {
                    ImagePullError::Unauthorized { image, message }
                } else {
                    ImagePullError::Registry { image, message }
                }
            }
            OciDistributionError::ServerError {
                code: 404,
                message,
                url,
            } => ImagePullError::NotFound {
                image,
                message: format!("{message} at {url}"),
            },
            OciDistributionError::ServerError {
                code: 401 | 403,
                message,
                url,
            } => ImagePullError::Unauthorized {
                image,
                message: format!("{message} at {url}"),
            },
            other => ImagePullError::Registry {
                image,
                message: other.to_string(),
            },
        }
    }
}
