//! Strategic-merge-patch metadata for the built-in types. k8s-openapi's schemas do not carry the
//! Go `patchStrategy`/`patchMergeKey` struct tags, yet kubectl computes client-side apply patches
//! from the OpenAPI v3 document whenever the PATCH operation accepts
//! `application/strategic-merge-patch+json`. Without these extensions it would treat keyed lists
//! such as `containers` as atomic and send patches the server merges by key, so removed entries
//! would never be deleted.

use serde_json::{Map, Value};

/// One tagged field: component schema, property, patch strategy, merge key (empty when none).
struct PatchField {
    component: &'static str,
    property: &'static str,
    strategy: &'static str,
    merge_key: &'static str,
}

const fn field(
    component: &'static str,
    property: &'static str,
    strategy: &'static str,
    merge_key: &'static str,
) -> PatchField {
    PatchField {
        component,
        property,
        strategy,
        merge_key,
    }
}

const CORE: &str = "io.k8s.api.core.v1.";
const APPS: &str = "io.k8s.api.apps.v1.";

/// Mirrors the `patchStrategy`/`patchMergeKey` tags of the Kubernetes v1.33 Go types that the
/// served kinds reach, as (component package prefix, field).
static PATCH_FIELDS: &[(&str, PatchField)] = &[
    (CORE, field("PodSpec", "containers", "merge", "name")),
    (CORE, field("PodSpec", "initContainers", "merge", "name")),
    (
        CORE,
        field("PodSpec", "ephemeralContainers", "merge", "name"),
    ),
    (
        CORE,
        field("PodSpec", "volumes", "merge,retainKeys", "name"),
    ),
    (CORE, field("PodSpec", "imagePullSecrets", "merge", "name")),
    (CORE, field("PodSpec", "hostAliases", "merge", "ip")),
    (
        CORE,
        field(
            "PodSpec",
            "topologySpreadConstraints",
            "merge",
            "topologyKey",
        ),
    ),
    (
        CORE,
        field("PodSpec", "resourceClaims", "merge,retainKeys", "name"),
    ),
    (CORE, field("PodSpec", "schedulingGates", "merge", "name")),
    (CORE, field("Container", "ports", "merge", "containerPort")),
    (CORE, field("Container", "env", "merge", "name")),
    (
        CORE,
        field("Container", "volumeMounts", "merge", "mountPath"),
    ),
    (
        CORE,
        field("Container", "volumeDevices", "merge", "devicePath"),
    ),
    (CORE, field("EphemeralContainer", "env", "merge", "name")),
    (
        CORE,
        field("EphemeralContainer", "volumeMounts", "merge", "mountPath"),
    ),
    (
        CORE,
        field("EphemeralContainer", "volumeDevices", "merge", "devicePath"),
    ),
    (CORE, field("PodStatus", "conditions", "merge", "type")),
    (CORE, field("PodStatus", "podIPs", "merge", "ip")),
    (CORE, field("PodStatus", "hostIPs", "merge", "ip")),
    (
        CORE,
        field(
            "PodStatus",
            "resourceClaimStatuses",
            "merge,retainKeys",
            "name",
        ),
    ),
    (CORE, field("ServiceSpec", "ports", "merge", "port")),
    (CORE, field("ServiceStatus", "conditions", "merge", "type")),
    (CORE, field("NodeSpec", "podCIDRs", "merge", "")),
    (CORE, field("NodeStatus", "conditions", "merge", "type")),
    (CORE, field("NodeStatus", "addresses", "merge", "type")),
    (
        CORE,
        field("NamespaceStatus", "conditions", "merge", "type"),
    ),
    (CORE, field("ServiceAccount", "secrets", "merge", "name")),
    (APPS, field("DeploymentSpec", "strategy", "retainKeys", "")),
    (
        APPS,
        field("DeploymentStatus", "conditions", "merge", "type"),
    ),
    (
        APPS,
        field("ReplicaSetStatus", "conditions", "merge", "type"),
    ),
    (
        APPS,
        field("DaemonSetStatus", "conditions", "merge", "type"),
    ),
    (
        APPS,
        field("StatefulSetStatus", "conditions", "merge", "type"),
    ),
    (
        "io.k8s.api.batch.v1.",
        field("JobStatus", "conditions", "merge", "type"),
    ),
    (
        "io.k8s.apimachinery.pkg.apis.meta.v1.",
        field("ObjectMeta", "finalizers", "merge", ""),
    ),
    (
        "io.k8s.apimachinery.pkg.apis.meta.v1.",
        field("ObjectMeta", "ownerReferences", "merge", "uid"),
    ),
];

/// Adds `x-kubernetes-patch-strategy` / `x-kubernetes-patch-merge-key` to the properties of the
/// components present in `schemas`.
pub(super) fn annotate(schemas: &mut Map<String, Value>) {
    for (package, f) in PATCH_FIELDS {
        let name = format!("{package}{}", f.component);
        let Some(property) = schemas
            .get_mut(&name)
            .and_then(|s| s.get_mut("properties"))
            .and_then(|p| p.get_mut(f.property))
            .and_then(Value::as_object_mut)
        else {
            continue;
        };
        property.insert("x-kubernetes-patch-strategy".into(), f.strategy.into());
        if !f.merge_key.is_empty() {
            property.insert("x-kubernetes-patch-merge-key".into(), f.merge_key.into());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::openapi::{document, group_versions, paths::url_prefix};

    #[test]
    fn every_row_annotates_a_real_field() {
        let docs: Vec<Value> = group_versions()
            .into_iter()
            .filter_map(|(g, v)| document(&url_prefix(g, v)))
            .map(|bytes| serde_json::from_slice(bytes).expect("document parses"))
            .collect();
        for (package, f) in PATCH_FIELDS {
            let name = format!("{package}{}", f.component);
            let annotated = docs.iter().any(|d| {
                d["components"]["schemas"][&name]["properties"][f.property]
                    ["x-kubernetes-patch-strategy"]
                    == f.strategy
            });
            assert!(annotated, "{name}.{} is not in any document", f.property);
        }
    }
}
