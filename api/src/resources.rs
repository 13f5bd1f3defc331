//! The static registry of API resources the server serves: one row per resource, used by
//! routing, discovery, storage keys, tables and validation.

/// A subresource served under `/{plural}/{name}/{sub}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Subresource {
    Status,
    Scale,
    Binding,
    Log,
    Exec,
    /// `certificatesigningrequests/approval`: the Approved/Denied conditions.
    Approval,
    /// `serviceaccounts/token`: a TokenRequest for a service-account token.
    Token,
}

impl Subresource {
    pub fn name(self) -> &'static str {
        match self {
            Subresource::Status => "status",
            Subresource::Scale => "scale",
            Subresource::Binding => "binding",
            Subresource::Log => "log",
            Subresource::Exec => "exec",
            Subresource::Approval => "approval",
            Subresource::Token => "token",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        Some(match name {
            "status" => Subresource::Status,
            "scale" => Subresource::Scale,
            "binding" => Subresource::Binding,
            "log" => Subresource::Log,
            "exec" => Subresource::Exec,
            "approval" => Subresource::Approval,
            "token" => Subresource::Token,
            _ => return None,
        })
    }
}

/// One served resource, e.g. `apps/v1 deployments`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResourceInfo {
    /// API group; empty for the core group.
    pub group: &'static str,
    pub version: &'static str,
    pub kind: &'static str,
    pub plural: &'static str,
    pub singular: &'static str,
    pub namespaced: bool,
    pub short_names: &'static [&'static str],
    pub categories: &'static [&'static str],
    pub subresources: &'static [Subresource],
}

impl ResourceInfo {
    /// `v1` for core, `group/version` otherwise: the `apiVersion` of objects.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.to_string()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    pub fn list_kind(&self) -> String {
        format!("{}List", self.kind)
    }

    /// `deployments.apps`, or just `pods` for the core group: the name used in Status details.
    pub fn group_resource(&self) -> String {
        if self.group.is_empty() {
            self.plural.to_string()
        } else {
            format!("{}.{}", self.plural, self.group)
        }
    }

    pub fn has_subresource(&self, sub: Subresource) -> bool {
        self.subresources.contains(&sub)
    }
}

use Subresource::*;

// One positional row per resource keeps the table below readable as a table.
#[allow(clippy::too_many_arguments)]
const fn res(
    group: &'static str,
    kind: &'static str,
    plural: &'static str,
    singular: &'static str,
    namespaced: bool,
    short_names: &'static [&'static str],
    categories: &'static [&'static str],
    subresources: &'static [Subresource],
) -> ResourceInfo {
    ResourceInfo {
        group,
        version: "v1",
        kind,
        plural,
        singular,
        namespaced,
        short_names,
        categories,
        subresources,
    }
}

const ALL: &[&str] = &["all"];

/// Every resource the server serves, grouped by API group in discovery order.
pub static RESOURCES: &[ResourceInfo] = &[
    res(
        "",
        "Namespace",
        "namespaces",
        "namespace",
        false,
        &["ns"],
        &[],
        &[Status],
    ),
    res(
        "",
        "Pod",
        "pods",
        "pod",
        true,
        &["po"],
        ALL,
        &[Status, Binding, Log, Exec],
    ),
    res("", "Node", "nodes", "node", false, &["no"], &[], &[Status]),
    res(
        "",
        "Service",
        "services",
        "service",
        true,
        &["svc"],
        ALL,
        &[Status],
    ),
    res(
        "",
        "Endpoints",
        "endpoints",
        "endpoints",
        true,
        &["ep"],
        &[],
        &[],
    ),
    res(
        "",
        "ConfigMap",
        "configmaps",
        "configmap",
        true,
        &["cm"],
        &[],
        &[],
    ),
    res("", "Secret", "secrets", "secret", true, &[], &[], &[]),
    res(
        "",
        "ServiceAccount",
        "serviceaccounts",
        "serviceaccount",
        true,
        &["sa"],
        &[],
        &[Token],
    ),
    res("", "Event", "events", "event", true, &["ev"], &[], &[]),
    res(
        "apps",
        "Deployment",
        "deployments",
        "deployment",
        true,
        &["deploy"],
        ALL,
        &[Status, Scale],
    ),
    res(
        "apps",
        "ReplicaSet",
        "replicasets",
        "replicaset",
        true,
        &["rs"],
        ALL,
        &[Status, Scale],
    ),
    res(
        "apps",
        "DaemonSet",
        "daemonsets",
        "daemonset",
        true,
        &["ds"],
        ALL,
        &[Status],
    ),
    res(
        "apps",
        "StatefulSet",
        "statefulsets",
        "statefulset",
        true,
        &["sts"],
        ALL,
        &[Status, Scale],
    ),
    res("batch", "Job", "jobs", "job", true, &[], ALL, &[Status]),
    res(
        "batch",
        "CronJob",
        "cronjobs",
        "cronjob",
        true,
        &["cj"],
        ALL,
        &[Status],
    ),
    res(
        "node.k8s.io",
        "RuntimeClass",
        "runtimeclasses",
        "runtimeclass",
        false,
        &[],
        &[],
        &[],
    ),
    res(
        "certificates.k8s.io",
        "CertificateSigningRequest",
        "certificatesigningrequests",
        "certificatesigningrequest",
        false,
        &["csr"],
        &[],
        &[Status, Approval],
    ),
    res(
        "rbac.authorization.k8s.io",
        "Role",
        "roles",
        "role",
        true,
        &[],
        &[],
        &[],
    ),
    res(
        "rbac.authorization.k8s.io",
        "ClusterRole",
        "clusterroles",
        "clusterrole",
        false,
        &[],
        &[],
        &[],
    ),
    res(
        "rbac.authorization.k8s.io",
        "RoleBinding",
        "rolebindings",
        "rolebinding",
        true,
        &[],
        &[],
        &[],
    ),
    res(
        "rbac.authorization.k8s.io",
        "ClusterRoleBinding",
        "clusterrolebindings",
        "clusterrolebinding",
        false,
        &[],
        &[],
        &[],
    ),
    res(
        "coordination.k8s.io",
        "Lease",
        "leases",
        "lease",
        true,
        &[],
        &[],
        &[],
    ),
    res(
        "discovery.k8s.io",
        "EndpointSlice",
        "endpointslices",
        "endpointslice",
        true,
        &[],
        &[],
        &[],
    ),
];

/// The API groups in discovery order (the core group, `""`, first).
pub fn groups() -> Vec<&'static str> {
    let mut groups: Vec<&'static str> = Vec::new();
    for r in RESOURCES {
        if !groups.contains(&r.group) {
            groups.push(r.group);
        }
    }
    groups
}

/// Looks a resource up by group, version and plural name, as it appears in a URL.
pub fn find(group: &str, version: &str, plural: &str) -> Option<&'static ResourceInfo> {
    RESOURCES
        .iter()
        .find(|r| r.group == group && r.version == version && r.plural == plural)
}

/// Looks a resource up by `apiVersion` and `kind`, as they appear in an object.
pub fn find_kind(api_version: &str, kind: &str) -> Option<&'static ResourceInfo> {
    RESOURCES
        .iter()
        .find(|r| r.kind == kind && r.api_version() == api_version)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookups_agree() {
        for r in RESOURCES {
            assert_eq!(find(r.group, r.version, r.plural), Some(r));
            assert_eq!(find_kind(&r.api_version(), r.kind), Some(r));
        }
        assert_eq!(
            find("apps", "v1", "deployments").unwrap().api_version(),
            "apps/v1"
        );
        assert_eq!(find("", "v1", "pods").unwrap().group_resource(), "pods");
        assert!(find("apps", "v1", "pods").is_none());
    }

    #[test]
    fn core_group_comes_first() {
        assert_eq!(groups()[0], "");
    }
}
