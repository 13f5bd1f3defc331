//! Label and field selectors of list, watch and deletecollection requests.

use rkube_api::resources::ResourceInfo;
use serde_json::Value;

use crate::error::ApiResult;
use crate::request::Params;

/// The selectors of one request, applied to objects in their JSON form.
#[derive(Debug, Clone)]
pub struct Filter {
    // PENDING(selector): replaced by rkube_api::selector at merge.
    labels: Vec<(String, String)>,
    fields: Vec<(String, String)>,
}

impl Filter {
    pub fn from_params(_resource: &'static ResourceInfo, params: &Params) -> ApiResult<Filter> {
        let pairs = |s: Option<&str>| -> Vec<(String, String)> {
            s.unwrap_or_default()
                .split(',')
                .filter_map(|p| p.split_once('='))
                .map(|(k, v)| (k.trim_end_matches('=').to_string(), v.to_string()))
                .collect()
        };
        Ok(Filter {
            labels: pairs(params.get("labelSelector")),
            fields: pairs(params.get("fieldSelector")),
        })
    }

    pub fn is_everything(&self) -> bool {
        self.labels.is_empty() && self.fields.is_empty()
    }

    pub fn matches(&self, obj: &Value) -> bool {
        let labels_ok = self.labels.iter().all(|(k, v)| {
            obj.pointer(&format!("/metadata/labels/{k}")).and_then(Value::as_str) == Some(v)
        });
        let fields_ok = self.fields.iter().all(|(k, v)| {
            let path = format!("/{}", k.replace('.', "/"));
            obj.pointer(&path).and_then(Value::as_str).unwrap_or_default() == v
        });
        labels_ok && fields_ok
    }
}
