//! Bearer tokens that are service-account JWTs: valid only while signed by this cluster's
//! key, unexpired, meant for the API server, and while the service account and any pod they
//! are bound to still exist with the same uid (and the pod is not being deleted).

use super::token::{ISSUER, ObjectRef};
use super::{ALL_GROUP, core_resource, user_name};
use crate::auth::User;
use crate::error::{ApiError, ApiResult};
use crate::objects;
use crate::objects::now_unix;
use crate::server::ApiServer;

/// A JWT has three dot-separated parts; a bootstrap token `<id>.<secret>` has two.
pub fn is_jwt(bearer: &str) -> bool {
    bearer.split('.').count() == 3
}

pub async fn authenticate(server: &ApiServer, bearer: &str) -> ApiResult<User> {
    let key = server.token_key.get().ok_or(ApiError::Unauthorized)?;
    let claims = key.verify(bearer, ISSUER, now_unix()).map_err(|err| {
        tracing::debug!(%err, "service-account token refused");
        ApiError::Unauthorized
    })?;
    let bound = &claims.kubernetes;
    let namespace = bound.namespace.as_str();
    let name = user_name(namespace, &bound.serviceaccount.name);
    if claims.sub != name {
        return Err(ApiError::Unauthorized);
    }
    live(server, "serviceaccounts", namespace, &bound.serviceaccount).await?;
    if let Some(pod) = &bound.pod {
        live(server, "pods", namespace, pod).await?;
    }
    Ok(User {
        name,
        groups: vec![
            ALL_GROUP.to_string(),
            format!("{ALL_GROUP}:{namespace}"),
            "system:authenticated".into(),
        ],
    })
}

/// Whether the object a claim names still exists, with the uid the token was issued for and
/// not being deleted; unauthorized otherwise.
async fn live(
    server: &ApiServer,
    plural: &str,
    namespace: &str,
    claimed: &ObjectRef,
) -> ApiResult<()> {
    let key = objects::key(core_resource(plural)?, Some(namespace), &claimed.name);
    match server.admission_lookup(&key).await? {
        Some(obj)
            if objects::meta_str(&obj, "uid") == Some(claimed.uid.as_str())
                && !objects::is_deleting(&obj) =>
        {
            Ok(())
        }
        _ => Err(ApiError::Unauthorized),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jwts_and_bootstrap_tokens_differ_in_shape() {
        assert!(is_jwt("eyJh.eyJi.c2ln"));
        assert!(!is_jwt("abcdef.0123456789abcdef"));
        assert!(!is_jwt("opaque"));
    }
}
