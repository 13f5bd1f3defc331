//! Strategic-merge metadata of the built-in kinds: which lists merge by key (and by which
//! key), which lists of primitives merge as sets, and which fields lead to such lists.
//! Fields missing from the table merge as maps when they are objects and are replaced when
//! they are lists — the default Kubernetes applies to untagged fields.

use crate::resources;

/// A Kubernetes type that owns (directly or through its children) a field with patch metadata.
/// Types sharing the same patch-relevant shape share a variant (e.g. every workload spec).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Type {
    /// A top-level object with nothing tagged beyond `metadata`.
    PlainObject,
    Namespace,
    Pod,
    Node,
    Service,
    ServiceAccount,
    /// Deployment, ReplicaSet, DaemonSet, StatefulSet and Job: `spec.template` + `status.conditions`.
    Workload,
    CronJob,
    ObjectMeta,
    /// A status whose only tagged field is `conditions` keyed by `type`.
    ConditionsStatus,
    WorkloadSpec,
    CronJobSpec,
    JobTemplateSpec,
    PodTemplateSpec,
    PodSpec,
    PodStatus,
    Container,
    NodeSpec,
    NodeStatus,
    ServiceSpec,
}

/// How a list field is patched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ListStrategy {
    /// The patch list replaces the live one (`atomic`, or no `patchStrategy` tag).
    Replace,
    /// Items are objects merged by the value of this key (`patchStrategy:"merge"` + `patchMergeKey`).
    MergeByKey(&'static str),
    /// Items are primitives merged as an ordered set (`patchStrategy:"merge"`, no key).
    MergeSet,
}

/// Patch metadata of one field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FieldMeta {
    /// The type of the field's value (or of its list items), when it has tagged descendants.
    pub child: Option<Type>,
    pub list: ListStrategy,
}

impl FieldMeta {
    /// The metadata of a field the table does not know: maps merge, lists are replaced.
    pub const UNTAGGED: FieldMeta = FieldMeta {
        child: None,
        list: ListStrategy::Replace,
    };
}

struct Field {
    name: &'static str,
    meta: FieldMeta,
}

/// A nested object (or an atomic list of such objects).
const fn obj(name: &'static str, child: Type) -> Field {
    Field {
        name,
        meta: FieldMeta {
            child: Some(child),
            list: ListStrategy::Replace,
        },
    }
}

/// A list of objects merged by `key`, whose items are of type `child` (if it matters).
const fn keyed(name: &'static str, key: &'static str, child: Option<Type>) -> Field {
    Field {
        name,
        meta: FieldMeta {
            child,
            list: ListStrategy::MergeByKey(key),
        },
    }
}

/// A list of primitives merged as a set.
const fn set(name: &'static str) -> Field {
    Field {
        name,
        meta: FieldMeta {
            child: None,
            list: ListStrategy::MergeSet,
        },
    }
}

use Type::*;

/// The table: every top-level kind has `metadata`; the rest is per type.
static TABLE: &[(Type, &[Field])] = &[
    (PlainObject, &[obj("metadata", ObjectMeta)]),
    (
        Namespace,
        &[obj("metadata", ObjectMeta), obj("status", ConditionsStatus)],
    ),
    (
        Pod,
        &[
            obj("metadata", ObjectMeta),
            obj("spec", PodSpec),
            obj("status", PodStatus),
        ],
    ),
    (
        Node,
        &[
            obj("metadata", ObjectMeta),
            obj("spec", NodeSpec),
            obj("status", NodeStatus),
        ],
    ),
    (
        Service,
        &[
            obj("metadata", ObjectMeta),
            obj("spec", ServiceSpec),
            obj("status", ConditionsStatus),
        ],
    ),
    (
        ServiceAccount,
        &[obj("metadata", ObjectMeta), keyed("secrets", "name", None)],
    ),
    (
        Workload,
        &[
            obj("metadata", ObjectMeta),
            obj("spec", WorkloadSpec),
            obj("status", ConditionsStatus),
        ],
    ),
    (
        CronJob,
        &[obj("metadata", ObjectMeta), obj("spec", CronJobSpec)],
    ),
    (
        ObjectMeta,
        &[keyed("ownerReferences", "uid", None), set("finalizers")],
    ),
    (ConditionsStatus, &[keyed("conditions", "type", None)]),
    (WorkloadSpec, &[obj("template", PodTemplateSpec)]),
    (CronJobSpec, &[obj("jobTemplate", JobTemplateSpec)]),
    (
        JobTemplateSpec,
        &[obj("metadata", ObjectMeta), obj("spec", WorkloadSpec)],
    ),
    (
        PodTemplateSpec,
        &[obj("metadata", ObjectMeta), obj("spec", PodSpec)],
    ),
    (
        PodSpec,
        &[
            keyed("volumes", "name", None),
            keyed("initContainers", "name", Some(Container)),
            keyed("containers", "name", Some(Container)),
            keyed("ephemeralContainers", "name", Some(Container)),
            keyed("imagePullSecrets", "name", None),
            keyed("hostAliases", "ip", None),
            keyed("topologySpreadConstraints", "topologyKey", None),
            keyed("schedulingGates", "name", None),
            keyed("resourceClaims", "name", None),
        ],
    ),
    (
        PodStatus,
        &[
            keyed("conditions", "type", None),
            keyed("hostIPs", "ip", None),
            keyed("podIPs", "ip", None),
            keyed("resourceClaimStatuses", "name", None),
        ],
    ),
    (
        Container,
        &[
            keyed("ports", "containerPort", None),
            keyed("env", "name", None),
            keyed("volumeMounts", "mountPath", None),
            keyed("volumeDevices", "devicePath", None),
        ],
    ),
    (NodeSpec, &[set("podCIDRs")]),
    (
        NodeStatus,
        &[
            keyed("conditions", "type", None),
            keyed("addresses", "type", None),
        ],
    ),
    (ServiceSpec, &[keyed("ports", "port", None)]),
];

/// The patch metadata of `field` inside a value of type `parent` (`None`: schema-less).
pub(crate) fn field(parent: Option<Type>, field: &str) -> FieldMeta {
    let fields = parent.and_then(|ty| TABLE.iter().find(|(t, _)| *t == ty));
    fields
        .and_then(|(_, fields)| fields.iter().find(|f| f.name == field))
        .map_or(FieldMeta::UNTAGGED, |f| f.meta)
}

/// The type of a top-level object, or `None` for kinds the server does not build in.
pub(crate) fn root(api_version: &str, kind: &str) -> Option<Type> {
    resources::find_kind(api_version, kind)?;
    Some(match kind {
        "Namespace" => Namespace,
        "Pod" => Pod,
        "Node" => Node,
        "Service" => Service,
        "ServiceAccount" => ServiceAccount,
        "Deployment" | "ReplicaSet" | "DaemonSet" | "StatefulSet" | "Job" => Workload,
        "CronJob" => CronJob,
        _ => PlainObject,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookups() {
        let deploy = root("apps/v1", "Deployment");
        assert_eq!(deploy, Some(Workload));
        let cases: &[(Option<Type>, &str, FieldMeta)] = &[
            (
                deploy,
                "spec",
                FieldMeta {
                    child: Some(WorkloadSpec),
                    list: ListStrategy::Replace,
                },
            ),
            (
                Some(PodSpec),
                "containers",
                FieldMeta {
                    child: Some(Container),
                    list: ListStrategy::MergeByKey("name"),
                },
            ),
            (Some(PodSpec), "tolerations", FieldMeta::UNTAGGED),
            (Some(Container), "envFrom", FieldMeta::UNTAGGED),
            (
                Some(ObjectMeta),
                "finalizers",
                FieldMeta {
                    child: None,
                    list: ListStrategy::MergeSet,
                },
            ),
            (None, "containers", FieldMeta::UNTAGGED),
        ];
        for (parent, name, want) in cases {
            assert_eq!(field(*parent, name), *want, "{parent:?}.{name}");
        }
    }

    #[test]
    fn each_type_has_one_row() {
        for (i, (ty, _)) in TABLE.iter().enumerate() {
            let rows = TABLE.iter().filter(|(t, _)| t == ty).count();
            assert_eq!(rows, 1, "row {i}: {ty:?}");
        }
    }

    #[test]
    fn every_served_kind_has_a_root() {
        for r in resources::RESOURCES {
            assert!(root(&r.api_version(), r.kind).is_some(), "{}", r.kind);
        }
    }

    #[test]
    fn roots_only_for_served_kinds() {
        assert_eq!(root("v1", "ConfigMap"), Some(PlainObject));
        assert_eq!(root("batch/v1", "CronJob"), Some(CronJob));
        assert_eq!(root("v1", "Deployment"), None);
        assert_eq!(root("example.com/v1", "Widget"), None);
    }
}
