//! Discovery (`/api`, `/apis`, group and resource lists), `/version` and OpenAPI.

use axum::extract::Path;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use rkube_api::resources::{self, ResourceInfo, Subresource};
use serde_json::{Value, json};

use crate::body;
use crate::error::ApiError;

/// The Kubernetes version rkube reports; kubectl picks its behaviour by it.
pub const KUBERNETES_VERSION: &str = "v1.33.0";

pub async fn version() -> Response {
    body::object_response(
        StatusCode::OK,
        &json!({
            "major": "1",
            "minor": "33",
            "gitVersion": format!("{KUBERNETES_VERSION}+rkube-{}", env!("CARGO_PKG_VERSION")),
            "gitCommit": "",
            "gitTreeState": "clean",
            "buildDate": "",
            "goVersion": "rust",
            "compiler": "rustc",
            "platform": format!("{}/{}", std::env::consts::OS, go_arch()),
        }),
    )
}

fn go_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

pub async fn core_versions() -> Response {
    body::object_response(
        StatusCode::OK,
        &json!({"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": []}),
    )
}

fn group_json(group: &str) -> Value {
    let gv = json!({"groupVersion": format!("{group}/v1"), "version": "v1"});
    json!({"name": group, "versions": [gv], "preferredVersion": gv})
}

pub async fn group_list() -> Response {
    let groups: Vec<Value> = resources::groups()
        .into_iter()
        .filter(|g| !g.is_empty())
        .map(group_json)
        .collect();
    body::object_response(
        StatusCode::OK,
        &json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}),
    )
}

pub fn group(group: &str) -> Response {
    if group.is_empty() || !resources::groups().contains(&group) {
        return ApiError::NoSuchRoute.into_response();
    }
    let mut body = group_json(group);
    body["kind"] = json!("APIGroup");
    body["apiVersion"] = json!("v1");
    body::object_response(StatusCode::OK, &body)
}

const VERBS: &[&str] = &[
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];

fn resource_json(r: &ResourceInfo) -> Value {
    json!({
        "name": r.plural,
        "singularName": r.singular,
        "namespaced": r.namespaced,
        "kind": r.kind,
        "verbs": VERBS,
        "shortNames": r.short_names,
        "categories": r.categories,
    })
}

fn subresource_json(r: &ResourceInfo, sub: Subresource) -> Value {
    let name = format!("{}/{}", r.plural, sub.name());
    let mut out = json!({"name": name, "singularName": "", "namespaced": r.namespaced});
    let (kind, verbs): (&str, &[&str]) = match sub {
        Subresource::Status => (r.kind, &["get", "patch", "update"]),
        Subresource::Scale => {
            out["group"] = json!("autoscaling");
            out["version"] = json!("v1");
            ("Scale", &["get", "patch", "update"])
        }
        Subresource::Binding => ("Binding", &["create"]),
        Subresource::Log => ("Pod", &["get"]),
        Subresource::Exec => ("PodExecOptions", &["create", "get"]),
    };
    out["kind"] = json!(kind);
    out["verbs"] = json!(verbs);
    out
}

pub fn resource_list(group: &str, version: &str) -> Response {
    let mut list = Vec::new();
    for r in resources::RESOURCES
        .iter()
        .filter(|r| r.group == group && r.version == version)
    {
        list.push(resource_json(r));
        for sub in r.subresources {
            list.push(subresource_json(r, *sub));
        }
    }
    if list.is_empty() {
        return ApiError::NoSuchRoute.into_response();
    }
    let group_version = if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    };
    body::object_response(
        StatusCode::OK,
        &json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": group_version, "resources": list}),
    )
}

pub async fn openapi_index() -> Response {
    body::object_response(StatusCode::OK, &rkube_api::openapi::index())
}

/// A group-version document; its bytes never change for one build, so clients may cache it.
pub async fn openapi_document(Path(path): Path<String>) -> Response {
    match rkube_api::openapi::document(&path) {
        Some(bytes) => {
            let mut response = body::json_response(StatusCode::OK, bytes);
            if let Some(hash) = rkube_api::openapi::document_hash(&path)
                && let Ok(etag) = axum::http::HeaderValue::from_str(&format!("\"{hash}\""))
            {
                response
                    .headers_mut()
                    .insert(axum::http::header::ETAG, etag);
            }
            response
        }
        None => ApiError::NoSuchRoute.into_response(),
    }
}
