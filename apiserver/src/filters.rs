//! Label and field selectors of list, watch and deletecollection requests.

use rkube_api::fields::FieldSelector;
use rkube_api::resources::ResourceInfo;
use rkube_api::selector::LabelSelector;
use serde_json::Value;

use crate::error::{ApiError, ApiResult};
use crate::request::Params;

/// The selectors of one request, applied to objects in their JSON form.
#[derive(Debug, Clone)]
pub struct Filter {
    resource: &'static ResourceInfo,
    labels: LabelSelector,
    fields: FieldSelector,
}

impl Filter {
    pub fn from_params(resource: &'static ResourceInfo, params: &Params) -> ApiResult<Filter> {
        let labels = LabelSelector::parse(params.get("labelSelector").unwrap_or_default())
            .map_err(|e| ApiError::BadRequest(format!("unable to parse requirement: {e}")))?;
        let fields =
            FieldSelector::parse_for(resource, params.get("fieldSelector").unwrap_or_default())
                .map_err(|e| ApiError::BadRequest(e.to_string()))?;
        Ok(Filter {
            resource,
            labels,
            fields,
        })
    }

    pub fn is_everything(&self) -> bool {
        self.labels.is_empty() && self.fields.is_empty()
    }

    pub fn matches(&self, obj: &Value) -> bool {
        // The common unfiltered LIST skips the per-object metadata lookups.
        self.is_everything()
            || (self.labels.matches_object(obj) && self.fields.matches(self.resource, obj))
    }
}
