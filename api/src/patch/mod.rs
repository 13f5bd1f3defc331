//! The patch engines the API server applies to stored objects: JSON patch (RFC 6902), JSON
//! merge patch (RFC 7396) and Kubernetes strategic merge patch.

mod json;
mod order;
mod schema;
mod strategic;

pub use json::{apply_json_patch, apply_merge_patch};
pub use strategic::apply_strategic_merge_patch;

/// Why a patch could not be applied. Paths are JSON pointers into the patched object.
#[derive(Debug, thiserror::Error)]
pub enum PatchError {
    #[error("the {what} must be a JSON object")]
    NotAnObject { what: &'static str },
    #[error("invalid json patch document: {reason}")]
    InvalidJsonPatch { reason: String },
    #[error("json patch operation {index} on path {path:?} failed: {reason}")]
    JsonPatchOperation {
        index: usize,
        path: String,
        reason: String,
    },
    #[error("unknown $patch value {value} at {path:?}")]
    UnknownPatchDirective { path: String, value: String },
    #[error("unsupported directive {key:?} at {path:?}")]
    UnsupportedDirective { path: String, key: String },
    #[error("invalid {directive} at {path:?}: {reason}")]
    InvalidDirective {
        path: String,
        directive: &'static str,
        reason: &'static str,
    },
    #[error("list item at {path:?} lacks its merge key {key:?}")]
    MissingMergeKey { path: String, key: &'static str },
    #[error("cannot merge the list at {path:?}: {reason}")]
    InvalidList { path: String, reason: &'static str },
    #[error("the order of the patch list at {path:?} does not match its $setElementOrder list")]
    ElementOrderMismatch { path: String },
}

/// The JSON pointer of `key` below `parent`, escaped per RFC 6901.
fn child_path(parent: &str, key: &str) -> String {
    format!("{parent}/{}", key.replace('~', "~0").replace('/', "~1"))
}
