//! Authorization as kube-apiserver configures it with `--authorization-mode=Node,RBAC`:
//! `system:masters` may do everything, the Node authorizer decides what kubelets
//! (`system:node:<name>` in `system:nodes`) may touch, and RBAC roles and bindings, read from
//! the watch cache, decide the rest.

mod index;
pub mod node;
pub mod policy;
pub mod rules;
pub mod subjects;

use std::sync::{Arc, RwLock};

use axum::http::Method;

use crate::auth::User;
use crate::cache::WatchCache;
use crate::error::{ApiError, ApiResult};
use crate::request::{Params, Target};
use crate::store::Revision;

pub use index::{PolicyIndex, PolicyObjects};
pub use policy::{bootstrap_policy, ensure_bootstrap_policy};
pub use rules::Attributes;
pub use subjects::UserInfo;

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

/// The attributes of a resource request. Like kube-apiserver, a named `namespaces` request
/// is in that namespace, so a RoleBinding there can grant reading it.
pub fn attributes<'a>(verb: &'a str, target: &'a Target) -> Attributes<'a> {
    let resource = target.resource;
    let namespace = match (resource.group, resource.plural) {
        ("", "namespaces") => target.name.as_deref(),
        _ => target.object_namespace(),
    };
    Attributes {
        verb,
        group: resource.group,
        resource: resource.plural,
        subresource: target.subresource.map(|s| s.name()),
        namespace,
        name: target.name.as_deref(),
    }
}

/// The RBAC index with the cache revision of the RBAC objects it was built from.
struct Built {
    at: Revision,
    index: Arc<PolicyIndex>,
}

/// Decides resource requests; owns the RBAC index, rebuilt when the cache saw a change.
#[derive(Default)]
pub struct Authorizer {
    built: RwLock<Option<Built>>,
}

const RBAC_RESOURCES: [&str; 4] = [
    index::ROLES,
    index::CLUSTER_ROLES,
    index::ROLE_BINDINGS,
    index::CLUSTER_ROLE_BINDINGS,
];

impl Authorizer {
    /// Allows the request, or explains why not as kube-apiserver does.
    pub fn authorize(
        &self,
        cache: &WatchCache,
        user: &User,
        target: &Target,
        verb: &str,
    ) -> ApiResult<()> {
        let info = UserInfo::of(user);
        if info.in_group(subjects::MASTERS) {
            return Ok(());
        }
        let attrs = attributes(verb, target);
        let mut reason = None;
        if let Some(node) = node::node_name(&info) {
            match node::authorize(cache, node, &attrs) {
                node::Decision::Allow => return Ok(()),
                node::Decision::Deny(why) => {
                    return Err(forbidden(user, target, &attrs, Some(why)));
                }
                node::Decision::NoOpinion(why) => reason = why,
            }
        }
        if self.index(cache).allows(&info, &attrs) {
            return Ok(());
        }
        Err(forbidden(user, target, &attrs, reason))
    }

    /// The current index: cached, or rebuilt when a role or binding changed since.
    pub fn index(&self, cache: &WatchCache) -> Arc<PolicyIndex> {
        let latest = RBAC_RESOURCES
            .iter()
            .map(|r| cache.last_change(r))
            .max()
            .unwrap_or_default();
        if let Some(built) = self.read().as_ref()
            && built.at == latest
        {
            return Arc::clone(&built.index);
        }
        let lists = RBAC_RESOURCES.map(|r| cache.list(&format!("{}{r}/", crate::cache::ROOT)).0);
        let values = |i: usize| lists[i].iter().map(|s| &s.object).collect();
        let index = Arc::new(PolicyIndex::build(&PolicyObjects {
            roles: values(0),
            cluster_roles: values(1),
            role_bindings: values(2),
            cluster_role_bindings: values(3),
        }));
        let mut built = self.built.write().unwrap_or_else(|e| e.into_inner());
        if built.as_ref().is_none_or(|b| b.at <= latest) {
            *built = Some(Built {
                at: latest,
                index: Arc::clone(&index),
            });
        }
        index
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Option<Built>> {
        self.built.read().unwrap_or_else(|e| e.into_inner())
    }
}

/// kube's Forbidden message: `User "jane" cannot list resource "pods" in API group "" in the
/// namespace "default"`, with the deciding authorizer's reason appended when it gave one.
fn forbidden(
    user: &User,
    target: &Target,
    attrs: &Attributes<'_>,
    reason: Option<String>,
) -> ApiError {
    let resource = match attrs.subresource {
        Some(sub) => format!("{}/{sub}", attrs.resource),
        None => attrs.resource.to_string(),
    };
    let scope = match attrs.namespace {
        Some(ns) => format!("in the namespace \"{ns}\""),
        None => "at the cluster scope".to_string(),
    };
    let mut message = format!(
        "User \"{}\" cannot {} resource \"{resource}\" in API group \"{}\" {scope}",
        user.name, attrs.verb, attrs.group
    );
    if let Some(reason) = reason {
        message.push_str(": ");
        message.push_str(&reason);
    }
    ApiError::Forbidden {
        target: target.error_target(),
        message,
    }
}
