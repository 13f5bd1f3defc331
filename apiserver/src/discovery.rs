//! Discovery (`/api`, `/apis`, group and resource lists), `/version` and OpenAPI.

use axum::extract::Path;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
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

pub async fn core_versions(headers: HeaderMap) -> Response {
    if wants_aggregated(&headers) {
        return aggregated(|group| group.is_empty());
    }
    body::object_response(
        StatusCode::OK,
        &json!({"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": []}),
    )
}

fn group_json(group: &str) -> Value {
    let gv = json!({"groupVersion": format!("{group}/v1"), "version": "v1"});
    json!({"name": group, "versions": [gv], "preferredVersion": gv})
}

pub async fn group_list(headers: HeaderMap) -> Response {
    if wants_aggregated(&headers) {
        return aggregated(|group| !group.is_empty());
    }
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

/// The media type of aggregated discovery (one request for every group's resources), which
/// kubectl 1.30+ asks for first.
const AGGREGATED: &str = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList";

fn wants_aggregated(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|accept| {
            accept.split(',').any(|choice| {
                let params: Vec<&str> = choice.split(';').map(str::trim).collect();
                params.contains(&"as=APIGroupDiscoveryList")
                    && params.contains(&"g=apidiscovery.k8s.io")
                    && params.contains(&"v=v2")
            })
        })
}

fn aggregated_resource(r: &ResourceInfo) -> Value {
    let subresources: Vec<Value> = r
        .subresources
        .iter()
        .map(|sub| {
            let listed = subresource_json(r, *sub);
            let (group, version) = match sub {
                Subresource::Scale => ("autoscaling", "v1"),
                Subresource::Token => ("authentication.k8s.io", "v1"),
                _ => (r.group, r.version),
            };
            json!({
                "subresource": sub.name(),
                "responseKind": {"group": group, "version": version, "kind": listed["kind"]},
                "verbs": listed["verbs"],
            })
        })
        .collect();
    json!({
        "resource": r.plural,
        "responseKind": {"group": r.group, "version": r.version, "kind": r.kind},
        "scope": if r.namespaced { "Namespaced" } else { "Cluster" },
        "singularResource": r.singular,
        "verbs": VERBS,
        "shortNames": r.short_names,
        "categories": r.categories,
        "subresources": subresources,
    })
}

fn aggregated(include: impl Fn(&str) -> bool) -> Response {
    let items: Vec<Value> = resources::groups()
        .into_iter()
        .filter(|g| include(g))
        .map(|group| {
            let resources: Vec<Value> = resources::RESOURCES
                .iter()
                .filter(|r| r.group == group)
                .map(aggregated_resource)
                .collect();
            json!({
                "metadata": {"name": group},
                "versions": [{"version": "v1", "resources": resources, "freshness": "Current"}],
            })
        })
        .collect();
    let list = json!({
        "kind": "APIGroupDiscoveryList",
        "apiVersion": "apidiscovery.k8s.io/v2",
        "metadata": {},
        "items": items,
    });
    let mut response = body::object_response(StatusCode::OK, &list);
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(AGGREGATED));
    response
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
        Subresource::Approval => (r.kind, &["get", "patch", "update"]),
        Subresource::Token => {
            out["group"] = json!("authentication.k8s.io");
            out["version"] = json!("v1");
            ("TokenRequest", &["create"])
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    async fn json_of(response: Response) -> Value {
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        serde_json::from_slice(&bytes).unwrap()
    }

    #[tokio::test]
    async fn aggregated_discovery_lists_every_group_with_subresources() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::ACCEPT,
            HeaderValue::from_static(
                "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json",
            ),
        );
        let response = group_list(headers.clone()).await;
        assert_eq!(response.headers()[header::CONTENT_TYPE], AGGREGATED);
        let body = json_of(response).await;
        let apps = body["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|g| g["metadata"]["name"] == "apps")
            .unwrap();
        let deployments = &apps["versions"][0]["resources"][0];
        assert_eq!(deployments["resource"], "deployments");
        assert_eq!(deployments["scope"], "Namespaced");
        let scale = deployments["subresources"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["subresource"] == "scale")
            .unwrap();
        assert_eq!(scale["responseKind"]["group"], "autoscaling");

        let core = json_of(core_versions(headers).await).await;
        assert_eq!(core["items"].as_array().unwrap().len(), 1);
        assert_eq!(core["items"][0]["metadata"]["name"], "");
    }

    #[tokio::test]
    async fn legacy_discovery_without_the_aggregated_accept() {
        let body = json_of(group_list(HeaderMap::new()).await).await;
        assert_eq!(body["kind"], "APIGroupList");
        let list = json_of(resource_list("", "v1")).await;
        let names: Vec<&str> = list["resources"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|r| r["name"].as_str())
            .collect();
        assert!(names.contains(&"pods/binding") && names.contains(&"pods/status"));
    }
}
