//! Applies a PATCH body to the stored object by patch type.

use rkube_api::resources::ResourceInfo;
use serde_json::Value;

use crate::body::PatchKind;
use crate::error::{ApiError, ApiResult};

pub fn apply(
    kind: PatchKind,
    current: &Value,
    patch: &Value,
    resource: &ResourceInfo,
) -> ApiResult<Value> {
    // PENDING(patch): rkube_api::patch at merge.
    let _ = resource;
    match kind {
        PatchKind::Json => {
            let ops: json_patch::Patch = serde_json::from_value(patch.clone())
                .map_err(|e| ApiError::BadRequest(format!("invalid JSON patch: {e}")))?;
            let mut doc = current.clone();
            json_patch::patch(&mut doc, &ops)
                .map_err(|e| ApiError::Invalid {
                    target: crate::error::Target::new(resource, crate::objects::name(current)),
                    causes: vec![crate::error::Cause { reason: "FieldValueInvalid".into(), field: String::new(), message: e.to_string() }],
                })?;
            Ok(doc)
        }
        PatchKind::Merge | PatchKind::Strategic | PatchKind::Apply => {
            let mut doc = current.clone();
            json_patch::merge(&mut doc, patch);
            Ok(doc)
        }
    }
}
