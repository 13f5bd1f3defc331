//! `paths` of a group-version document: for every served resource its collection, item,
//! all-namespaces and subresource paths, with operations shaped like Kubernetes' own
//! (`x-kubernetes-action`, `x-kubernetes-group-version-kind`, inline parameters).

use serde_json::{Map, Value, json};

use super::params;
use super::schemas::{
    Components, Gvk, MetaComponents, add_binding, add_scale, add_token_request, schema_ref,
};
use crate::resources::{ResourceInfo, Subresource};

/// `/api/v1` for the core group, `/apis/<group>/<version>` otherwise.
pub(super) fn url_prefix(group: &str, version: &str) -> String {
    if group.is_empty() {
        format!("/api/{version}")
    } else {
        format!("/apis/{group}/{version}")
    }
}

/// The group's short name as Kubernetes uses it in operation ids and tags: `core`, `apps`,
/// `node` for `node.k8s.io`.
pub(super) fn group_short_name(group: &str) -> &str {
    if group.is_empty() {
        "core"
    } else {
        group.split('.').next().unwrap_or(group)
    }
}

pub(super) fn capitalize(word: &str) -> String {
    let mut chars = word.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

const PATCH_CONTENT_TYPES: &[&str] = &[
    "application/json-patch+json",
    "application/merge-patch+json",
    "application/strategic-merge-patch+json",
    "application/apply-patch+yaml",
];

fn json_content(component: &str) -> Value {
    json!({"application/json": {"schema": schema_ref(component)}})
}

fn text_content() -> Value {
    json!({"text/plain": {"schema": {"type": "string"}}})
}

/// Responses with `content` under each success code, plus 401.
fn responses(codes: &[&str], content: &Value) -> Value {
    let mut out = Map::new();
    for code in codes {
        let reason = match *code {
            "201" => "Created",
            "202" => "Accepted",
            _ => "OK",
        };
        out.insert(
            (*code).to_string(),
            json!({"description": reason, "content": content}),
        );
    }
    out.insert("401".into(), json!({"description": "Unauthorized"}));
    Value::Object(out)
}

fn object_body(component: &str) -> Value {
    json!({"content": {"*/*": {"schema": schema_ref(component)}}, "required": true})
}

fn patch_body(patch_component: &str) -> Value {
    let content: Map<String, Value> = PATCH_CONTENT_TYPES
        .iter()
        .map(|t| {
            (
                (*t).to_string(),
                json!({"schema": schema_ref(patch_component)}),
            )
        })
        .collect();
    json!({"content": content, "required": true})
}

/// One operation before serialization.
struct Operation {
    action: &'static str,
    id: String,
    description: String,
    params: Vec<Value>,
    body: Option<Value>,
    responses: Value,
    gvk: Gvk,
}

/// Paths of one resource within its group-version document.
pub(super) struct ResourcePaths<'a> {
    info: &'a ResourceInfo,
    meta: &'a MetaComponents,
    gvk: Gvk,
    tag: String,
    /// `CoreV1`, `AppsV1`: the group-version part of operation ids.
    ident: String,
    /// `Namespaced` or empty: the scope part of operation ids.
    scope: &'static str,
    collection: String,
    item: String,
    kind: String,
    list: String,
}

impl<'a> ResourcePaths<'a> {
    pub fn new(c: &mut Components, info: &'a ResourceInfo, meta: &'a MetaComponents) -> Self {
        let kind = c.add_resource(info);
        let list = c.add_list(info, &kind);
        let prefix = url_prefix(info.group, info.version);
        let short = group_short_name(info.group);
        let (collection, scope) = if info.namespaced {
            (
                format!("{prefix}/namespaces/{{namespace}}/{}", info.plural),
                "Namespaced",
            )
        } else {
            (format!("{prefix}/{}", info.plural), "")
        };
        ResourcePaths {
            info,
            meta,
            gvk: Gvk::of(info),
            tag: format!("{short}_{}", info.version),
            ident: format!("{}{}", capitalize(short), capitalize(info.version)),
            scope,
            item: format!("{collection}/{{name}}"),
            collection,
            kind,
            list,
        }
    }

    fn operation(&self, op: Operation) -> Value {
        let mut out = Map::new();
        out.insert("tags".into(), json!([self.tag]));
        out.insert("description".into(), op.description.into());
        out.insert("operationId".into(), op.id.into());
        if !op.params.is_empty() {
            out.insert("parameters".into(), Value::Array(op.params));
        }
        if let Some(body) = op.body {
            out.insert("requestBody".into(), body);
        }
        out.insert("responses".into(), op.responses);
        out.insert("x-kubernetes-action".into(), op.action.into());
        out.insert("x-kubernetes-group-version-kind".into(), op.gvk.to_value());
        Value::Object(out)
    }

    /// `<verb><Ident><Scope><Kind><suffix>`, e.g. `patchCoreV1NamespacedPodStatus`.
    fn id(&self, verb: &str, suffix: &str) -> String {
        format!(
            "{verb}{}{}{}{suffix}",
            self.ident, self.scope, self.info.kind
        )
    }

    fn path_params(&self, with_name: bool) -> Value {
        let mut out = Vec::new();
        if with_name {
            out.push(params::path(
                "name",
                &format!("name of the {}", self.info.kind),
            ));
        }
        if self.info.namespaced {
            out.push(params::namespace());
        }
        out.push(params::pretty());
        Value::Array(out)
    }

    /// Adds every path of this resource to `paths`.
    pub fn add_to(&self, c: &mut Components, paths: &mut Map<String, Value>) {
        paths.insert(self.collection.clone(), self.collection_item());
        paths.insert(self.item.clone(), self.object_item());
        if self.info.namespaced {
            paths.insert(
                format!(
                    "{}/{}",
                    url_prefix(self.info.group, self.info.version),
                    self.info.plural
                ),
                self.all_namespaces_item(),
            );
        }
        for sub in self.info.subresources {
            let item = match sub {
                Subresource::Status => self.read_write_item("Status", &self.kind, &self.gvk),
                Subresource::Approval => self.read_write_item("Approval", &self.kind, &self.gvk),
                Subresource::Scale => {
                    let scale = add_scale(c);
                    self.read_write_item("Scale", &scale, &Gvk::new("autoscaling", "v1", "Scale"))
                }
                Subresource::Binding => self.create_item("Binding", &add_binding(c), "", "Binding"),
                Subresource::Token => self.create_item(
                    "Token",
                    &add_token_request(c),
                    "authentication.k8s.io",
                    "TokenRequest",
                ),
                Subresource::Log => self.log_item(),
                Subresource::Exec => self.exec_item(),
            };
            paths.insert(format!("{}/{}", self.item, sub.name()), item);
        }
    }

    fn collection_item(&self) -> Value {
        let kind = self.info.kind;
        let mut item = Map::new();
        item.insert("parameters".into(), self.path_params(false));
        item.insert(
            "get".into(),
            self.operation(Operation {
                action: "list",
                id: self.id("list", ""),
                description: format!("list or watch objects of kind {kind}"),
                params: params::list(),
                body: None,
                responses: responses(&["200"], &json_content(&self.list)),
                gvk: self.gvk.clone(),
            }),
        );
        item.insert(
            "post".into(),
            self.operation(Operation {
                action: "post",
                id: self.id("create", ""),
                description: format!("create a {kind}"),
                params: params::write(),
                body: Some(object_body(&self.kind)),
                responses: responses(&["200", "201", "202"], &json_content(&self.kind)),
                gvk: self.gvk.clone(),
            }),
        );
        // Kubernetes serves no deletecollection for namespaces.
        if self.info.plural != "namespaces" {
            item.insert(
                "delete".into(),
                self.operation(Operation {
                    action: "deletecollection",
                    id: format!("delete{}Collection{}{kind}", self.ident, self.scope),
                    description: format!("delete collection of {kind}"),
                    params: params::delete_collection(),
                    body: Some(object_body(&self.meta.delete_options)),
                    responses: responses(&["200"], &json_content(&self.meta.status)),
                    gvk: self.gvk.clone(),
                }),
            );
        }
        Value::Object(item)
    }

    fn object_item(&self) -> Value {
        let kind = self.info.kind;
        let mut item = self.read_write_map("", &self.kind, &self.gvk);
        item.insert(
            "delete".into(),
            self.operation(Operation {
                action: "delete",
                id: self.id("delete", ""),
                description: format!("delete a {kind}"),
                params: params::delete(),
                body: Some(object_body(&self.meta.delete_options)),
                responses: responses(&["200", "202"], &json_content(&self.kind)),
                gvk: self.gvk.clone(),
            }),
        );
        Value::Object(item)
    }

    fn all_namespaces_item(&self) -> Value {
        json!({
            "parameters": [params::pretty()],
            "get": self.operation(Operation {
                action: "list",
                id: format!("list{}{}ForAllNamespaces", self.ident, self.info.kind),
                description: format!("list or watch objects of kind {}", self.info.kind),
                params: params::list(),
                body: None,
                responses: responses(&["200"], &json_content(&self.list)),
                gvk: self.gvk.clone(),
            }),
        })
    }

    fn read_write_item(&self, suffix: &str, component: &str, gvk: &Gvk) -> Value {
        Value::Object(self.read_write_map(suffix, component, gvk))
    }

    /// get, put and patch of the object (`suffix` empty) or of a subresource.
    fn read_write_map(&self, suffix: &str, component: &str, gvk: &Gvk) -> Map<String, Value> {
        let what = if suffix.is_empty() {
            format!("the specified {}", self.info.kind)
        } else {
            format!(
                "{} of the specified {}",
                suffix.to_lowercase(),
                self.info.kind
            )
        };
        let mut item = Map::new();
        item.insert("parameters".into(), self.path_params(true));
        item.insert(
            "get".into(),
            self.operation(Operation {
                action: "get",
                id: self.id("read", suffix),
                description: format!("read {what}"),
                params: Vec::new(),
                body: None,
                responses: responses(&["200"], &json_content(component)),
                gvk: gvk.clone(),
            }),
        );
        item.insert(
            "put".into(),
            self.operation(Operation {
                action: "put",
                id: self.id("replace", suffix),
                description: format!("replace {what}"),
                params: params::write(),
                body: Some(object_body(component)),
                responses: responses(&["200", "201"], &json_content(component)),
                gvk: gvk.clone(),
            }),
        );
        item.insert(
            "patch".into(),
            self.operation(Operation {
                action: "patch",
                id: self.id("patch", suffix),
                description: format!("partially update {what}"),
                params: params::patch(),
                body: Some(patch_body(&self.meta.patch)),
                responses: responses(&["200", "201"], &json_content(component)),
                gvk: gvk.clone(),
            }),
        );
        item
    }

    /// A create-only subresource (`pods/binding`, `serviceaccounts/token`) whose body is
    /// `schema`, a `group`/v1 `kind`.
    fn create_item(&self, suffix: &str, schema: &str, group: &str, kind: &str) -> Value {
        json!({
            "parameters": self.path_params(true),
            "post": self.operation(Operation {
                action: "post",
                id: self.id("create", suffix),
                description: format!("create {} of a {}", suffix.to_lowercase(), self.info.kind),
                params: params::write(),
                body: Some(object_body(schema)),
                responses: responses(&["200", "201", "202"], &json_content(schema)),
                gvk: Gvk::new(group, "v1", kind),
            }),
        })
    }

    fn log_item(&self) -> Value {
        json!({
            "parameters": self.path_params(true),
            "get": self.operation(Operation {
                action: "get",
                id: self.id("read", "Log"),
                description: format!("read log of the specified {}", self.info.kind),
                params: params::log(),
                body: None,
                responses: responses(&["200"], &text_content()),
                gvk: self.gvk.clone(),
            }),
        })
    }

    fn exec_item(&self) -> Value {
        let gvk = Gvk::new(
            self.info.group,
            self.info.version,
            &format!("{}ExecOptions", self.info.kind),
        );
        let connect = |method: &str| {
            self.operation(Operation {
                action: "connect",
                id: format!(
                    "connect{}{method}{}{}Exec",
                    self.ident, self.scope, self.info.kind
                ),
                description: format!("connect {method} requests to exec of {}", self.info.kind),
                params: params::exec(),
                body: None,
                responses: responses(&["200"], &text_content()),
                gvk: gvk.clone(),
            })
        };
        json!({
            "parameters": self.path_params(true),
            "get": connect("Get"),
            "post": connect("Post"),
        })
    }
}

/// A path with a single `get` returning `component`, for discovery endpoints.
pub(super) fn discovery_item(tag: &str, id: &str, description: &str, component: &str) -> Value {
    json!({
        "get": {
            "tags": [tag],
            "description": description,
            "operationId": id,
            "responses": responses(&["200"], &json_content(component)),
        }
    })
}
