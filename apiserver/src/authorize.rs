//! Authorization. Until RBAC lands every authenticated user may do everything, except
//! bootstrap-token users: they may only request and read certificates, which is all a
//! joining node needs (kubeadm's `system:node-bootstrapper` role); and the anonymous user,
//! who may only read `kube-public/cluster-info`.

use axum::http::Method;

use crate::auth::{ANONYMOUS, User};
use crate::bootstrap::BOOTSTRAPPERS;
use crate::error::{ApiError, ApiResult};
use crate::request::{Params, Target};
use crate::run::CLUSTER_INFO;

/// The Kubernetes verb of a resource request.
pub fn verb(method: &Method, target: &Target, params: &Params) -> &'static str {
    match (method, target.name.is_some()) {
        (&Method::GET, false) if params.flag("watch") => "watch",
        (&Method::GET, false) => "list",
        (&Method::GET, true) => "get",
        (&Method::POST, _) => "create",
        (&Method::PUT, _) => "update",
        (&Method::PATCH, _) => "patch",
        (&Method::DELETE, true) => "delete",
        (&Method::DELETE, false) => "deletecollection",
        _ => "unknown",
    }
}

pub fn authorize(user: &User, verb: &str, target: &Target) -> ApiResult<()> {
    let resource = target.resource;
    let allowed = if user.name == ANONYMOUS {
        verb == "get"
            && resource.group.is_empty()
            && resource.plural == "configmaps"
            && target.subresource.is_none()
            && target.object_namespace() == Some("kube-public")
            && target.name.as_deref() == Some(CLUSTER_INFO)
    } else if user.groups.iter().any(|g| g == BOOTSTRAPPERS)
        && !user.groups.iter().any(|g| g == "system:masters")
    {
        resource.group == "certificates.k8s.io"
            && resource.plural == "certificatesigningrequests"
            && target.subresource.is_none()
            && matches!(verb, "create" | "get" | "list" | "watch")
    } else {
        true
    };
    if allowed {
        return Ok(());
    }
    let plural = match target.subresource {
        Some(sub) => format!("{}/{}", resource.plural, sub.name()),
        None => resource.plural.to_string(),
    };
    let scope = match target.object_namespace() {
        Some(ns) => format!("in the namespace \"{ns}\""),
        None => "at the cluster scope".to_string(),
    };
    Err(ApiError::Forbidden {
        target: target.error_target(),
        message: format!(
            "User \"{}\" cannot {verb} resource \"{plural}\" in API group \"{}\" {scope}",
            user.name, resource.group
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bootstrapper() -> User {
        User {
            name: "system:bootstrap:abcdef".into(),
            groups: vec![BOOTSTRAPPERS.into(), "system:authenticated".into()],
        }
    }

    fn target(group: &str, rest: &[&str]) -> Target {
        Target::parse(group, "v1", rest).unwrap()
    }

    #[test]
    fn bootstrappers_may_only_handle_certificate_requests() {
        let csrs = target("certificates.k8s.io", &["certificatesigningrequests"]);
        assert!(authorize(&bootstrapper(), "create", &csrs).is_ok());
        assert!(authorize(&bootstrapper(), "watch", &csrs).is_ok());
        assert!(authorize(&bootstrapper(), "delete", &csrs).is_err());
        let secrets = target("", &["namespaces", "kube-system", "secrets"]);
        let err = authorize(&bootstrapper(), "list", &secrets).unwrap_err();
        assert_eq!(err.code(), 403);
        assert_eq!(
            err.to_string(),
            "secrets is forbidden: User \"system:bootstrap:abcdef\" cannot list resource \"secrets\" in API group \"\" in the namespace \"kube-system\""
        );
    }

    #[test]
    fn anonymous_users_may_only_read_cluster_info() {
        let info = target(
            "",
            &["namespaces", "kube-public", "configmaps", "cluster-info"],
        );
        assert!(authorize(&User::anonymous(), "get", &info).is_ok());
        assert!(authorize(&User::anonymous(), "update", &info).is_err());
        let other = target("", &["namespaces", "kube-public", "configmaps", "other"]);
        assert!(authorize(&User::anonymous(), "get", &other).is_err());
    }

    #[test]
    fn other_users_are_not_restricted_yet() {
        let admin = User {
            name: "rkube-admin".into(),
            groups: vec!["system:masters".into()],
        };
        let secrets = target("", &["namespaces", "kube-system", "secrets"]);
        assert!(authorize(&admin, "list", &secrets).is_ok());
    }
}
