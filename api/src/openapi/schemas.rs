//! `components.schemas` of one OpenAPI document, generated from k8s-openapi's schemars impls
//! (which carry the Go doc comments as descriptions) and post-processed into the shape
//! Kubernetes publishes: `allOf`-wrapped refs with sibling descriptions, a
//! `x-kubernetes-group-version-kind` list on every kind, synthesized `<Kind>List` schemas and the
//! strategic-merge-patch extensions.

use std::collections::BTreeMap;

use k8s_openapi::api::{
    apps, authentication, autoscaling, batch, certificates, coordination, core, discovery, node,
    rbac,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1 as meta;
use k8s_openapi::schemars::{JsonSchema, SchemaGenerator, generate::SchemaSettings};
use serde_json::{Map, Value, json};

use super::patch_meta;
use crate::resources::ResourceInfo;

const SCHEMAS_PREFIX: &str = "#/components/schemas/";

/// A `{group, version, kind}` triple as the `x-kubernetes-group-version-kind` extension spells it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Gvk {
    pub group: String,
    pub version: String,
    pub kind: String,
}

impl Gvk {
    pub fn new(group: &str, version: &str, kind: &str) -> Self {
        Gvk {
            group: group.to_string(),
            version: version.to_string(),
            kind: kind.to_string(),
        }
    }

    pub fn of(r: &ResourceInfo) -> Self {
        Gvk::new(r.group, r.version, r.kind)
    }

    /// Exactly these three keys: kubectl explain matches the operation's GVK against the
    /// component's list by deep equality.
    pub fn to_value(&self) -> Value {
        json!({"group": self.group, "kind": self.kind, "version": self.version})
    }
}

/// `{"$ref": "#/components/schemas/<name>"}`.
pub(super) fn schema_ref(name: &str) -> Value {
    json!({ "$ref": format!("{SCHEMAS_PREFIX}{name}") })
}

/// Collects the schemas one document references.
pub(super) struct Components {
    generator: SchemaGenerator,
    /// GVKs to stamp on components once generation is done.
    kinds: BTreeMap<String, Vec<Value>>,
    /// Synthesized list kinds: list component name, item component name, list GVK.
    lists: Vec<(String, String, Gvk)>,
    /// Kinds with no known Rust type: stand-in schemas that accept any object.
    opaque: Vec<String>,
}

impl Components {
    pub fn new() -> Self {
        Components {
            generator: SchemaGenerator::new(SchemaSettings::openapi3()),
            kinds: BTreeMap::new(),
            lists: Vec::new(),
            opaque: Vec::new(),
        }
    }

    /// Registers `T` (and everything it references); returns its component name.
    pub fn add<T: JsonSchema>(&mut self) -> String {
        self.generator.subschema_for::<T>();
        T::schema_name().into_owned()
    }

    /// Registers `T` and tags it with `gvk`.
    pub fn add_kind<T: JsonSchema>(&mut self, gvk: &Gvk) -> String {
        let name = self.add::<T>();
        self.tag(&name, gvk);
        name
    }

    fn tag(&mut self, name: &str, gvk: &Gvk) {
        let gvks = self.kinds.entry(name.to_string()).or_default();
        let value = gvk.to_value();
        if !gvks.contains(&value) {
            gvks.push(value);
        }
    }

    /// Registers the kind a registry row serves; returns its component name.
    pub fn add_resource(&mut self, r: &ResourceInfo) -> String {
        let gvk = Gvk::of(r);
        match resource_component(self, r, &gvk) {
            Some(name) => name,
            None => {
                let name = opaque_name(r);
                self.tag(&name, &gvk);
                self.opaque.push(name.clone());
                name
            }
        }
    }

    /// Registers `<Kind>List` for a registry row whose kind is component `item`.
    pub fn add_list(&mut self, r: &ResourceInfo, item: &str) -> String {
        self.add::<meta::ListMeta>();
        let name = format!("{item}List");
        let gvk = Gvk::new(r.group, r.version, &r.list_kind());
        self.tag(&name, &gvk);
        self.lists.push((name.clone(), item.to_string(), gvk));
        name
    }

    /// The finished `components.schemas` map.
    pub fn finish(mut self) -> Map<String, Value> {
        let mut schemas = self.generator.take_definitions(true);
        for name in &self.opaque {
            schemas.insert(
                name.clone(),
                json!({"type": "object", "x-kubernetes-preserve-unknown-fields": true}),
            );
        }
        for (list, item, gvk) in &self.lists {
            let schema = list_schema(schemas.get(item), item, gvk);
            schemas.insert(list.clone(), schema);
        }
        for (name, gvks) in self.kinds {
            if let Some(Value::Object(schema)) = schemas.get_mut(&name) {
                drop_required_metadata(schema);
                schema.insert("x-kubernetes-group-version-kind".into(), Value::Array(gvks));
            }
        }
        patch_meta::annotate(&mut schemas);
        schemas
    }
}

/// k8s-openapi marks `metadata` required because its Rust field is not optional; the API does
/// not, and kubectl explain would print a misleading `-required-`.
fn drop_required_metadata(schema: &mut Map<String, Value>) {
    let Some(Value::Array(required)) = schema.get_mut("required") else {
        return;
    };
    required.retain(|r| r != "metadata");
    if required.is_empty() {
        schema.remove("required");
    }
}

fn opaque_name(r: &ResourceInfo) -> String {
    let group = if r.group.is_empty() { "core" } else { r.group };
    format!("rkube.{group}.{}.{}", r.version, r.kind)
}

/// The `<Kind>List` schema, shaped like the ones Kubernetes generates. `apiVersion`/`kind` are
/// copied from the item schema so their descriptions match.
fn list_schema(item_schema: Option<&Value>, item: &str, gvk: &Gvk) -> Value {
    let item_props = item_schema.and_then(|s| s.get("properties"));
    let copied = |key: &str| {
        item_props
            .and_then(|p| p.get(key))
            .cloned()
            .unwrap_or_else(|| json!({"type": "string"}))
    };
    let item_kind = item.rsplit('.').next().unwrap_or(item);
    json!({
        "description": format!("{} is a list of {item_kind} objects.", gvk.kind),
        "type": "object",
        "required": ["items"],
        "properties": {
            "apiVersion": copied("apiVersion"),
            "items": {
                "description": format!("List of {item_kind} objects."),
                "type": "array",
                "items": schema_ref(item),
            },
            "kind": copied("kind"),
            "metadata": {
                "description": "Standard list metadata. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#types-kinds",
                "allOf": [schema_ref("io.k8s.apimachinery.pkg.apis.meta.v1.ListMeta")],
            },
        },
    })
}

/// Maps a registry row to its k8s-openapi type. `None` for kinds without one.
fn resource_component(c: &mut Components, r: &ResourceInfo, gvk: &Gvk) -> Option<String> {
    let name = match (r.group, r.version, r.kind) {
        ("", "v1", "Namespace") => c.add_kind::<core::v1::Namespace>(gvk),
        ("", "v1", "Pod") => c.add_kind::<core::v1::Pod>(gvk),
        ("", "v1", "Node") => c.add_kind::<core::v1::Node>(gvk),
        ("", "v1", "Service") => c.add_kind::<core::v1::Service>(gvk),
        ("", "v1", "Endpoints") => c.add_kind::<core::v1::Endpoints>(gvk),
        ("", "v1", "ConfigMap") => c.add_kind::<core::v1::ConfigMap>(gvk),
        ("", "v1", "Secret") => c.add_kind::<core::v1::Secret>(gvk),
        ("", "v1", "ServiceAccount") => c.add_kind::<core::v1::ServiceAccount>(gvk),
        ("", "v1", "Event") => c.add_kind::<core::v1::Event>(gvk),
        ("apps", "v1", "Deployment") => c.add_kind::<apps::v1::Deployment>(gvk),
        ("apps", "v1", "ReplicaSet") => c.add_kind::<apps::v1::ReplicaSet>(gvk),
        ("apps", "v1", "DaemonSet") => c.add_kind::<apps::v1::DaemonSet>(gvk),
        ("apps", "v1", "StatefulSet") => c.add_kind::<apps::v1::StatefulSet>(gvk),
        ("batch", "v1", "Job") => c.add_kind::<batch::v1::Job>(gvk),
        ("batch", "v1", "CronJob") => c.add_kind::<batch::v1::CronJob>(gvk),
        ("node.k8s.io", "v1", "RuntimeClass") => c.add_kind::<node::v1::RuntimeClass>(gvk),
        ("certificates.k8s.io", "v1", "CertificateSigningRequest") => {
            c.add_kind::<certificates::v1::CertificateSigningRequest>(gvk)
        }
        ("rbac.authorization.k8s.io", "v1", "Role") => c.add_kind::<rbac::v1::Role>(gvk),
        ("rbac.authorization.k8s.io", "v1", "ClusterRole") => {
            c.add_kind::<rbac::v1::ClusterRole>(gvk)
        }
        ("rbac.authorization.k8s.io", "v1", "RoleBinding") => {
            c.add_kind::<rbac::v1::RoleBinding>(gvk)
        }
        ("rbac.authorization.k8s.io", "v1", "ClusterRoleBinding") => {
            c.add_kind::<rbac::v1::ClusterRoleBinding>(gvk)
        }
        ("coordination.k8s.io", "v1", "Lease") => c.add_kind::<coordination::v1::Lease>(gvk),
        ("discovery.k8s.io", "v1", "EndpointSlice") => {
            c.add_kind::<discovery::v1::EndpointSlice>(gvk)
        }
        _ => return None,
    };
    Some(name)
}

/// Shared meta types every resource document references.
pub(super) struct MetaComponents {
    pub status: String,
    pub delete_options: String,
    pub patch: String,
    pub resource_list: String,
}

impl MetaComponents {
    pub fn add(c: &mut Components, group: &str, version: &str) -> Self {
        // Kubernetes publishes WatchEvent (the watch stream's frames) in every group-version
        // document, tagged with that group-version.
        c.add_kind::<meta::WatchEvent<()>>(&Gvk::new(group, version, "WatchEvent"));
        MetaComponents {
            status: c.add_kind::<meta::Status>(&Gvk::new("", "v1", "Status")),
            // Like WatchEvent, DeleteOptions is tagged with every group-version serving it.
            delete_options: c.add_kind::<meta::DeleteOptions>(&Gvk::new(
                group,
                version,
                "DeleteOptions",
            )),
            patch: c.add::<meta::Patch>(),
            resource_list: c.add::<meta::APIResourceList>(),
        }
    }
}

/// `autoscaling/v1 Scale`, the body of every `/scale` subresource.
pub(super) fn add_scale(c: &mut Components) -> String {
    c.add_kind::<autoscaling::v1::Scale>(&Gvk::new("autoscaling", "v1", "Scale"))
}

/// `authentication.k8s.io/v1 TokenRequest`, the body of `serviceaccounts/token`.
pub(super) fn add_token_request(c: &mut Components) -> String {
    c.add_kind::<authentication::v1::TokenRequest>(&Gvk::new(
        "authentication.k8s.io",
        "v1",
        "TokenRequest",
    ))
}

/// `v1 Binding`, the body of `pods/binding`.
pub(super) fn add_binding(c: &mut Components) -> String {
    c.add_kind::<core::v1::Binding>(&Gvk::new("", "v1", "Binding"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_without_a_rust_type_get_an_open_tagged_schema() {
        let widget = ResourceInfo {
            group: "example.com",
            version: "v1",
            kind: "Widget",
            plural: "widgets",
            singular: "widget",
            namespaced: true,
            short_names: &[],
            categories: &[],
            subresources: &[],
        };
        let mut c = Components::new();
        let name = c.add_resource(&widget);
        let list = c.add_list(&widget, &name);
        let schemas = c.finish();
        assert_eq!(
            schemas[&name]["x-kubernetes-group-version-kind"],
            json!([{"group": "example.com", "version": "v1", "kind": "Widget"}])
        );
        assert_eq!(schemas[&name]["x-kubernetes-preserve-unknown-fields"], true);
        assert_eq!(
            schemas[&list]["properties"]["items"]["items"],
            schema_ref(&name)
        );
    }

    #[test]
    fn described_refs_become_all_of() {
        let mut c = Components::new();
        let pod = c.add::<core::v1::Pod>();
        let schemas = c.finish();
        let spec = &schemas[&pod]["properties"]["spec"];
        assert_eq!(
            spec["allOf"],
            json!([schema_ref("io.k8s.api.core.v1.PodSpec")])
        );
        assert!(spec.get("$ref").is_none());
        assert!(spec["description"].is_string());
    }
}
