use std::time::Instant;

use serde_json::{Value, json};

use super::*;

fn parsed(path: &str) -> Value {
    let bytes = document(path).unwrap_or_else(|| panic!("no document {path}"));
    serde_json::from_slice(bytes).unwrap_or_else(|e| panic!("{path} does not parse: {e}"))
}

/// Resolves `#/components/schemas/<name>` refs and single `allOf` wrappers, the way kubectl
/// explain and the strategic-merge-patch lookup do.
fn resolve<'a>(doc: &'a Value, mut schema: &'a Value) -> &'a Value {
    loop {
        if let Some(inner) = schema.get("allOf").and_then(|a| a.get(0))
            && schema.get("properties").is_none()
        {
            schema = inner;
            continue;
        }
        if let Some(r) = schema.get("$ref").and_then(Value::as_str) {
            let name = r
                .strip_prefix("#/components/schemas/")
                .unwrap_or_else(|| panic!("foreign ref {r}"));
            schema = &doc["components"]["schemas"][name];
            assert!(!schema.is_null(), "dangling ref {r}");
            continue;
        }
        return schema;
    }
}

fn property<'a>(doc: &'a Value, schema: &'a Value, name: &str) -> &'a Value {
    let field = &resolve(doc, schema)["properties"][name];
    assert!(!field.is_null(), "no property {name}");
    field
}

fn collect_refs<'a>(value: &'a Value, out: &mut Vec<&'a str>) {
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                match (k.as_str(), v) {
                    ("$ref", Value::String(r)) => out.push(r),
                    _ => collect_refs(v, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| collect_refs(v, out)),
        _ => {}
    }
}

fn operations(doc: &Value) -> impl Iterator<Item = (&String, &str, &Value)> {
    doc["paths"].as_object().into_iter().flat_map(|paths| {
        paths.iter().flat_map(|(path, item)| {
            ["get", "put", "post", "patch", "delete"]
                .into_iter()
                .filter_map(move |m| item.get(m).map(|op| (path, m, op)))
        })
    })
}

#[test]
fn index_lists_every_group_version_with_matching_hash() {
    let index = index();
    let paths = index["paths"].as_object().expect("paths object");
    for r in RESOURCES {
        let key = url_prefix(r.group, r.version)
            .trim_start_matches('/')
            .to_string();
        let url = paths[&key]["serverRelativeURL"]
            .as_str()
            .unwrap_or_else(|| panic!("{key} missing from index"));
        let hash = document_hash(&key).expect("hash");
        assert_eq!(url, format!("/openapi/v3/{key}?hash={hash}"));
    }
    for key in ["api", "apis", "apis/apps", "apis/node.k8s.io", "version"] {
        assert!(paths.contains_key(key), "{key} missing from index");
    }
    for key in paths.keys() {
        assert!(
            document(key).is_some(),
            "index lists {key} without a document"
        );
    }
}

#[test]
fn lookups_tolerate_a_leading_slash_and_reject_unknown_paths() {
    assert_eq!(document("/api/v1"), document("api/v1"));
    assert!(document("apis/apps/v2").is_none());
    assert!(document_hash("nope").is_none());
}

#[test]
fn every_document_parses_and_every_ref_resolves() {
    for key in index()["paths"].as_object().expect("paths").keys() {
        let doc = parsed(key);
        assert_eq!(doc["openapi"], "3.0.0", "{key}");
        assert!(doc["paths"].as_object().is_some_and(|p| !p.is_empty()));
        let mut refs = Vec::new();
        collect_refs(&doc, &mut refs);
        for r in refs {
            let name = r.strip_prefix("#/components/schemas/").expect("local ref");
            assert!(
                doc["components"]["schemas"].get(name).is_some(),
                "{key}: dangling {r}"
            );
        }
    }
}

#[test]
fn pods_patch_declares_field_validation_and_strategic_merge() {
    let doc = parsed("api/v1");
    let patch = &doc["paths"]["/api/v1/namespaces/{namespace}/pods/{name}"]["patch"];
    assert_eq!(
        patch["x-kubernetes-group-version-kind"],
        json!({"group": "", "version": "v1", "kind": "Pod"})
    );
    assert_eq!(patch["x-kubernetes-action"], "patch");
    let params = patch["parameters"].as_array().expect("parameters");
    for name in ["fieldValidation", "dryRun", "fieldManager", "force"] {
        assert!(
            params
                .iter()
                .any(|p| p["name"] == name && p["in"] == "query"),
            "missing {name}"
        );
    }
    assert!(
        patch["requestBody"]["content"]
            .get("application/strategic-merge-patch+json")
            .is_some()
    );
}

/// kubectl stops at the first PATCH operation carrying the kind's GVK, in random order, so every
/// one of them must declare `fieldValidation`.
#[test]
fn every_patch_operation_declares_field_validation() {
    for (group, version) in group_versions() {
        let key = url_prefix(group, version)
            .trim_start_matches('/')
            .to_string();
        let doc = parsed(&key);
        for (path, method, op) in operations(&doc) {
            // The group-version root (`.../v1/`) is discovery and carries no action.
            if !path.ends_with('/') {
                assert!(op.get("x-kubernetes-action").is_some(), "{path} {method}");
            }
            if method == "patch" {
                let params = op["parameters"].as_array().expect("parameters");
                assert!(
                    params.iter().any(|p| p["name"] == "fieldValidation"),
                    "{path}"
                );
            }
        }
    }
}

#[test]
fn pod_schema_leads_to_container_image_description() {
    let doc = parsed("api/v1");
    let pod = &doc["components"]["schemas"]["io.k8s.api.core.v1.Pod"];
    let gvks = pod["x-kubernetes-group-version-kind"]
        .as_array()
        .expect("gvk list");
    assert!(gvks.contains(&json!({"group": "", "version": "v1", "kind": "Pod"})));
    assert!(pod.get("required").is_none(), "metadata is not required");

    let spec = property(&doc, pod, "spec");
    assert!(spec["allOf"].is_array(), "described refs are allOf-wrapped");
    let containers = property(&doc, spec, "containers");
    assert_eq!(containers["x-kubernetes-patch-merge-key"], "name");
    assert_eq!(containers["x-kubernetes-patch-strategy"], "merge");
    let container = resolve(&doc, &containers["items"]);
    assert_eq!(
        container,
        &doc["components"]["schemas"]["io.k8s.api.core.v1.Container"]
    );
    let image = property(&doc, container, "image");
    assert!(image["description"].as_str().is_some_and(|d| !d.is_empty()));
    let meta = resolve(&doc, property(&doc, pod, "metadata"));
    assert!(meta["properties"]["labels"]["additionalProperties"].is_object());
}

/// Mirrors kubectl explain: find the GVK on an operation of the resource's collection or item
/// path, then the component schema listing that GVK.
#[test]
fn every_resource_is_explainable() {
    for r in RESOURCES {
        let key = url_prefix(r.group, r.version)
            .trim_start_matches('/')
            .to_string();
        let doc = parsed(&key);
        let prefix = url_prefix(r.group, r.version);
        let path = if r.namespaced {
            format!("{prefix}/namespaces/{{namespace}}/{}", r.plural)
        } else {
            format!("{prefix}/{}", r.plural)
        };
        let gvk = &doc["paths"][&path]["get"]["x-kubernetes-group-version-kind"];
        assert_eq!(gvk["kind"], r.kind);
        let schema = doc["components"]["schemas"]
            .as_object()
            .expect("schemas")
            .values()
            .find(|s| {
                s["x-kubernetes-group-version-kind"]
                    .as_array()
                    .is_some_and(|l| l.contains(gvk))
            })
            .unwrap_or_else(|| panic!("no schema for {}", r.kind));
        assert!(
            schema["description"]
                .as_str()
                .is_some_and(|d| !d.is_empty())
        );
        assert!(schema["properties"].get("metadata").is_some(), "{}", r.kind);

        let list = &doc["paths"][&path]["get"]["responses"]["200"]["content"]["application/json"]["schema"];
        let list = resolve(&doc, list);
        assert_eq!(
            list["x-kubernetes-group-version-kind"][0]["kind"],
            r.list_kind()
        );
        assert_eq!(resolve(&doc, &list["properties"]["items"]["items"]), schema);
    }
}

#[test]
fn scale_subresource_uses_autoscaling_scale() {
    let doc = parsed("apis/apps/v1");
    let patch =
        &doc["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}/scale"]["patch"];
    assert_eq!(patch["x-kubernetes-group-version-kind"]["kind"], "Scale");
    let scale = &doc["components"]["schemas"]["io.k8s.api.autoscaling.v1.Scale"];
    assert!(scale["properties"]["spec"].is_object());
    let strategy = property(
        &doc,
        &doc["components"]["schemas"]["io.k8s.api.apps.v1.DeploymentSpec"],
        "strategy",
    );
    assert_eq!(strategy["x-kubernetes-patch-strategy"], "retainKeys");
}

#[test]
fn shared_meta_schemas_are_present() {
    let doc = parsed("apis/batch/v1");
    let schemas = &doc["components"]["schemas"];
    for name in [
        "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta",
        "io.k8s.apimachinery.pkg.apis.meta.v1.ListMeta",
        "io.k8s.apimachinery.pkg.apis.meta.v1.Status",
        "io.k8s.apimachinery.pkg.apis.meta.v1.DeleteOptions",
        "io.k8s.apimachinery.pkg.apis.meta.v1.Patch",
        "io.k8s.apimachinery.pkg.apis.meta.v1.WatchEvent",
        "io.k8s.api.batch.v1.CronJobList",
    ] {
        assert!(schemas.get(name).is_some(), "{name}");
    }
    assert!(
        schemas["io.k8s.apimachinery.pkg.apis.meta.v1.DeleteOptions"]
            ["x-kubernetes-group-version-kind"]
            .as_array()
            .is_some_and(|l| l.contains(&json!({"group": "batch", "version": "v1", "kind": "DeleteOptions"})))
    );
}

#[test]
fn digest_is_fnv1a() {
    assert_eq!(digest(b""), "CBF29CE484222325");
    assert_eq!(digest(b"a"), "AF63DC4C8601EC8C");
}

#[test]
fn generation_is_quick() {
    let start = Instant::now();
    let docs = build_all();
    let bytes: usize = docs
        .values()
        .map(|d| serde_json::to_vec(d).map(|b| b.len()).unwrap_or(0))
        .sum();
    let elapsed = start.elapsed();
    println!(
        "generated {} documents, {bytes} bytes, in {elapsed:?}",
        docs.len()
    );
    assert!(elapsed.as_secs() < 5, "generation took {elapsed:?}");
}
