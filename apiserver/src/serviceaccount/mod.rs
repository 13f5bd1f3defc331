//! ServiceAccount tokens, the API-server half: the signing key and JWT format (`token`),
//! issuing through `serviceaccounts/token` (`issue`), authenticating bearer tokens
//! (`authn`) and the token volume new pods get (`pod`).

pub mod authn;
pub mod issue;
pub mod pod;
pub mod token;

/// Service accounts authenticate as `system:serviceaccount:<namespace>:<name>`.
pub const USER_PREFIX: &str = "system:serviceaccount:";
/// Every service account is in this group and in `system:serviceaccounts:<namespace>`.
pub const ALL_GROUP: &str = "system:serviceaccounts";
/// The service account a pod runs as when it names none.
pub const DEFAULT_NAME: &str = "default";

pub fn user_name(namespace: &str, name: &str) -> String {
    format!("{USER_PREFIX}{namespace}:{name}")
}

/// The service account a pod runs as, as admission defaulted it.
pub fn of_pod(pod: &serde_json::Value) -> &str {
    pod.pointer("/spec/serviceAccountName")
        .and_then(serde_json::Value::as_str)
        .filter(|name| !name.is_empty())
        .unwrap_or(DEFAULT_NAME)
}

/// A registered core/v1 resource by its plural.
fn core_resource(
    plural: &str,
) -> crate::error::ApiResult<&'static rkube_api::resources::ResourceInfo> {
    crate::objects::resource("", "v1", plural)
}
