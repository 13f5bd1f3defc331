//! Applies a PATCH body to the stored object by patch type.

use rkube_api::patch::{self, PatchError};
use rkube_api::resources::ResourceInfo;
use serde_json::Value;

use crate::body::PatchKind;
use crate::error::{ApiError, ApiResult, Cause, Target};
use crate::objects;

pub fn apply(
    kind: PatchKind,
    current: &Value,
    patch: &Value,
    resource: &ResourceInfo,
) -> ApiResult<Value> {
    let api_version = resource.api_version();
    let result = match kind {
        PatchKind::Json => patch::apply_json_patch(current, patch),
        PatchKind::Merge => patch::apply_merge_patch(current, patch),
        // An apply merges the applied configuration onto the live object, keyed like SMP.
        PatchKind::Strategic | PatchKind::Apply => {
            patch::apply_strategic_merge_patch(current, patch, &api_version, resource.kind)
        }
    };
    result.map_err(|err| match err {
        // A JSON patch whose operation fails (a `test`, a missing path) is a 422 in Kubernetes.
        PatchError::JsonPatchOperation { .. } => ApiError::Invalid {
            target: Target::new(resource, objects::name(current)),
            causes: vec![Cause {
                reason: "FieldValueInvalid".into(),
                field: String::new(),
                message: err.to_string(),
            }],
        },
        other => ApiError::BadRequest(other.to_string()),
    })
}
