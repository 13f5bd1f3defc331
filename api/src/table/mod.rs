//! Server-side tables (`Accept: application/json;as=Table;g=meta.k8s.io;v=v1`): the columns and
//! cells kube-apiserver prints for each kind, so `kubectl get` shows what users expect.
//!
//! Like kube-apiserver, rows always carry every column; priority-1 columns are the ones kubectl
//! shows only with `-o wide`.

mod cluster;
mod config;
mod network;
mod pods;
mod rbac;
pub mod time;
mod workloads;

use serde_json::{Map, Value, json};
use thiserror::Error;

use crate::resources::ResourceInfo;

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum TableError {
    #[error("unrecognized includeObject value: \"{value}\"")]
    UnknownIncludeObject { value: String },
}

/// What each row embeds as `object` (the `includeObject` query parameter).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum IncludeObject {
    None,
    /// A `meta.k8s.io/v1` `PartialObjectMetadata`; the default.
    #[default]
    Metadata,
    Object,
}

impl IncludeObject {
    /// Reads the query parameter; absent or empty means `Metadata`.
    pub fn from_query(value: Option<&str>) -> Result<Self, TableError> {
        match value.unwrap_or("") {
            "" | "Metadata" => Ok(IncludeObject::Metadata),
            "None" => Ok(IncludeObject::None),
            "Object" => Ok(IncludeObject::Object),
            other => Err(TableError::UnknownIncludeObject {
                value: other.to_string(),
            }),
        }
    }
}

/// One `columnDefinitions` entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Column {
    pub name: &'static str,
    /// The OpenAPI type: `string`, `integer`, `boolean`, `date`.
    pub kind: &'static str,
    pub format: &'static str,
    pub description: &'static str,
    /// 0 for default columns, 1 for `-o wide` only.
    pub priority: u8,
}

impl Column {
    const fn new(name: &'static str, kind: &'static str, description: &'static str) -> Self {
        Column {
            name,
            kind,
            format: "",
            description,
            priority: 0,
        }
    }

    const fn wide(self) -> Self {
        Column {
            priority: 1,
            ..self
        }
    }

    fn to_json(self) -> Value {
        json!({
            "name": self.name,
            "type": self.kind,
            "format": self.format,
            "description": self.description,
            "priority": self.priority,
        })
    }
}

const NAME: Column = Column {
    format: "name",
    ..Column::new("Name", "string", "Name must be unique within a namespace.")
};
const AGE: Column = Column::new(
    "Age",
    "string",
    "Time since the object was created (metadata.creationTimestamp).",
);
const CONTAINERS: Column = Column::new(
    "Containers",
    "string",
    "Names of each container in the template.",
)
.wide();
const IMAGES: Column = Column::new(
    "Images",
    "string",
    "Images referenced by each container in the template.",
)
.wide();

/// Builds a row's cells from an object and the current time (Unix seconds).
type Cells = fn(&Value, i64) -> Vec<Value>;

struct Printer {
    columns: &'static [Column],
    cells: Cells,
}

fn default_cells(object: &Value, now: i64) -> Vec<Value> {
    vec![name(object).into(), time::age(object, now).into()]
}

fn printer(resource: &ResourceInfo) -> Printer {
    let (columns, cells): (&'static [Column], Cells) = match (resource.group, resource.plural) {
        ("", "pods") => (pods::COLUMNS, pods::cells),
        ("", "nodes") => (cluster::NODE_COLUMNS, cluster::node_cells),
        ("", "namespaces") => (cluster::NAMESPACE_COLUMNS, cluster::namespace_cells),
        ("", "events") => (cluster::EVENT_COLUMNS, cluster::event_cells),
        ("", "services") => (network::SERVICE_COLUMNS, network::service_cells),
        ("", "endpoints") => (network::ENDPOINTS_COLUMNS, network::endpoints_cells),
        ("", "configmaps") => (config::CONFIGMAP_COLUMNS, config::configmap_cells),
        ("", "secrets") => (config::SECRET_COLUMNS, config::secret_cells),
        ("", "serviceaccounts") => (config::SERVICEACCOUNT_COLUMNS, config::serviceaccount_cells),
        ("apps", "deployments") => (workloads::DEPLOYMENT_COLUMNS, workloads::deployment_cells),
        ("apps", "replicasets") => (workloads::REPLICASET_COLUMNS, workloads::replicaset_cells),
        ("apps", "daemonsets") => (workloads::DAEMONSET_COLUMNS, workloads::daemonset_cells),
        ("apps", "statefulsets") => (workloads::STATEFULSET_COLUMNS, workloads::statefulset_cells),
        ("batch", "jobs") => (workloads::JOB_COLUMNS, workloads::job_cells),
        ("batch", "cronjobs") => (workloads::CRONJOB_COLUMNS, workloads::cronjob_cells),
        ("certificates.k8s.io", "certificatesigningrequests") => {
            (cluster::CSR_COLUMNS, cluster::csr_cells)
        }
        ("rbac.authorization.k8s.io", "roles" | "clusterroles") => {
            (rbac::ROLE_COLUMNS, rbac::role_cells)
        }
        ("rbac.authorization.k8s.io", "rolebindings" | "clusterrolebindings") => {
            (rbac::BINDING_COLUMNS, rbac::binding_cells)
        }
        ("coordination.k8s.io", "leases") => (cluster::LEASE_COLUMNS, cluster::lease_cells),
        ("node.k8s.io", "runtimeclasses") => {
            (cluster::RUNTIMECLASS_COLUMNS, cluster::runtimeclass_cells)
        }
        ("discovery.k8s.io", "endpointslices") => {
            (network::ENDPOINTSLICE_COLUMNS, network::endpointslice_cells)
        }
        _ => (&[NAME, AGE], default_cells),
    };
    Printer { columns, cells }
}

/// The column definitions for a resource, as in a Table's `columnDefinitions`.
pub fn column_definitions(resource: &ResourceInfo) -> &'static [Column] {
    printer(resource).columns
}

/// One `rows` entry for `object`; also what a watch in Table form sends per event.
pub fn table_row(
    resource: &ResourceInfo,
    object: &Value,
    include_object: IncludeObject,
    now_unix_seconds: i64,
) -> Value {
    let mut row = Map::new();
    row.insert(
        "cells".to_string(),
        Value::Array((printer(resource).cells)(object, now_unix_seconds)),
    );
    if resource.group.is_empty()
        && resource.plural == "pods"
        && let Some(conditions) = pods::row_conditions(object)
    {
        row.insert("conditions".to_string(), conditions);
    }
    row.insert(
        "object".to_string(),
        embedded_object(resource, object, include_object),
    );
    Value::Object(row)
}

/// A complete `meta.k8s.io/v1` Table; the caller fills `metadata.resourceVersion`/`continue`.
pub fn to_table(
    resource: &ResourceInfo,
    objects: &[Value],
    include_object: IncludeObject,
    now_unix_seconds: i64,
) -> Value {
    let columns: Vec<Value> = column_definitions(resource)
        .iter()
        .map(|c| c.to_json())
        .collect();
    let rows: Vec<Value> = objects
        .iter()
        .map(|o| table_row(resource, o, include_object, now_unix_seconds))
        .collect();
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": {},
        "columnDefinitions": columns,
        "rows": rows,
    })
}

fn embedded_object(resource: &ResourceInfo, object: &Value, include: IncludeObject) -> Value {
    match include {
        IncludeObject::None => Value::Null,
        IncludeObject::Metadata => json!({
            "kind": "PartialObjectMetadata",
            "apiVersion": "meta.k8s.io/v1",
            "metadata": object.get("metadata").cloned().unwrap_or_else(|| json!({})),
        }),
        IncludeObject::Object => {
            let mut full = object.clone();
            // Stored objects normally carry their type; fill it in if one does not.
            if let Some(map) = full.as_object_mut() {
                map.entry("apiVersion")
                    .or_insert_with(|| resource.api_version().into());
                map.entry("kind").or_insert_with(|| resource.kind.into());
            }
            full
        }
    }
}

/// The string at `pointer`, or "" when absent (Go's zero value, which the printers rely on).
fn text<'a>(object: &'a Value, pointer: &str) -> &'a str {
    object
        .pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or("")
}

/// The integer at `pointer`, or 0 when absent.
fn int(object: &Value, pointer: &str) -> i64 {
    object.pointer(pointer).and_then(Value::as_i64).unwrap_or(0)
}

fn flag(object: &Value, pointer: &str) -> bool {
    object
        .pointer(pointer)
        .and_then(Value::as_bool)
        .unwrap_or(false)
}

/// The array at `pointer`, or an empty slice.
fn list<'a>(object: &'a Value, pointer: &str) -> &'a [Value] {
    object
        .pointer(pointer)
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[])
}

/// The number of entries of the object or array at `pointer`.
fn len_at(object: &Value, pointer: &str) -> i64 {
    let len = match object.pointer(pointer) {
        Some(Value::Object(map)) => map.len(),
        Some(Value::Array(items)) => items.len(),
        _ => 0,
    };
    i64::try_from(len).unwrap_or(i64::MAX)
}

fn name(object: &Value) -> &str {
    text(object, "/metadata/name")
}

/// `value`, or `fallback` when it is empty.
fn non_empty_or<'a>(value: &'a str, fallback: &'a str) -> &'a str {
    if value.is_empty() { fallback } else { value }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::{RESOURCES, find};

    fn configmaps() -> &'static ResourceInfo {
        find("", "v1", "configmaps").unwrap()
    }

    #[test]
    fn table_envelope_and_columns() {
        let cm = json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "cfg", "namespace": "default", "uid": "u1",
                "creationTimestamp": "1970-01-01T00:00:00Z"},
            "data": {"a": "1"}});
        let table = to_table(configmaps(), &[cm], IncludeObject::Metadata, 90);
        assert_eq!(table["kind"], "Table");
        assert_eq!(table["apiVersion"], "meta.k8s.io/v1");
        assert_eq!(table["metadata"], json!({}));
        assert_eq!(
            table["columnDefinitions"][0],
            json!({"name": "Name", "type": "string", "format": "name",
                "description": "Name must be unique within a namespace.", "priority": 0})
        );
        assert_eq!(table["rows"][0]["cells"], json!(["cfg", 1, "90s"]));
    }

    #[test]
    fn include_object_variants() {
        let cm = json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "cfg", "labels": {"a": "b"}}, "data": {}});
        let metadata = table_row(configmaps(), &cm, IncludeObject::Metadata, 0);
        assert_eq!(
            metadata["object"],
            json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
                "metadata": {"name": "cfg", "labels": {"a": "b"}}})
        );
        let full = table_row(configmaps(), &cm, IncludeObject::Object, 0);
        assert_eq!(full["object"], cm);
        let none = table_row(configmaps(), &cm, IncludeObject::None, 0);
        assert_eq!(none["object"], Value::Null);

        let untyped = json!({"metadata": {"name": "cfg"}});
        let filled = table_row(configmaps(), &untyped, IncludeObject::Object, 0);
        assert_eq!(filled["object"]["kind"], "ConfigMap");
        assert_eq!(filled["object"]["apiVersion"], "v1");
    }

    #[test]
    fn finished_pod_rows_carry_completed_condition() {
        let pods = find("", "v1", "pods").unwrap();
        let done = json!({"metadata": {"name": "job-x"}, "status": {"phase": "Succeeded"}});
        let running = json!({"metadata": {"name": "web"}, "status": {"phase": "Running"}});
        let table = to_table(pods, &[done, running], IncludeObject::None, 0);
        assert_eq!(table["rows"][0]["conditions"][0]["type"], "Completed");
        assert!(table["rows"][1].get("conditions").is_none());
        assert_eq!(table["columnDefinitions"].as_array().map(Vec::len), Some(9));
    }

    #[test]
    fn include_object_query_values() {
        assert_eq!(IncludeObject::from_query(None), Ok(IncludeObject::Metadata));
        assert_eq!(
            IncludeObject::from_query(Some("")),
            Ok(IncludeObject::Metadata)
        );
        assert_eq!(
            IncludeObject::from_query(Some("None")),
            Ok(IncludeObject::None)
        );
        assert_eq!(
            IncludeObject::from_query(Some("Object")),
            Ok(IncludeObject::Object)
        );
        assert_eq!(
            IncludeObject::from_query(Some("All"))
                .unwrap_err()
                .to_string(),
            "unrecognized includeObject value: \"All\""
        );
    }

    #[test]
    fn every_resource_has_matching_cells_and_columns() {
        let empty = json!({});
        for resource in RESOURCES {
            let columns = column_definitions(resource);
            let row = table_row(resource, &empty, IncludeObject::None, 0);
            assert_eq!(
                row["cells"].as_array().map(Vec::len),
                Some(columns.len()),
                "{}",
                resource.plural
            );
            assert_eq!(columns.iter().filter(|c| c.format == "name").count(), 1);
            // Wide columns always come after the default ones, except for events which
            // interleave them the way kube-apiserver does.
            if resource.plural != "events" {
                let first_wide = columns.iter().position(|c| c.priority == 1);
                if let Some(first_wide) = first_wide {
                    assert!(columns[first_wide..].iter().all(|c| c.priority == 1));
                }
            }
        }
    }

    #[test]
    fn wide_columns_have_priority_one() {
        let pods = find("", "v1", "pods").unwrap();
        let wide: Vec<&str> = column_definitions(pods)
            .iter()
            .filter(|c| c.priority == 1)
            .map(|c| c.name)
            .collect();
        assert_eq!(wide, ["IP", "Node", "Nominated Node", "Readiness Gates"]);
        let nodes = find("", "v1", "nodes").unwrap();
        let default: Vec<&str> = column_definitions(nodes)
            .iter()
            .filter(|c| c.priority == 0)
            .map(|c| c.name)
            .collect();
        assert_eq!(default, ["Name", "Status", "Roles", "Age", "Version"]);
    }
}
