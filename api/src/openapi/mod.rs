//! The OpenAPI v3 documents served at `/openapi/v3` (the index) and `/openapi/v3/<path>` (one
//! document per group-version plus the discovery roots). kubectl reads them to decide whether
//! the server validates fields itself (`fieldValidation` on PATCH), to compute client-side apply
//! patches and for `kubectl explain`.
//!
//! All documents are generated once, on first use, and kept serialized.

mod params;
mod patch_meta;
mod paths;
mod schemas;

use std::collections::BTreeMap;
use std::sync::OnceLock;

use k8s_openapi::apimachinery::pkg::apis::meta::v1 as meta;
use k8s_openapi::apimachinery::pkg::version;
use serde_json::{Map, Value, json};

use crate::resources::{self, RESOURCES};
use paths::{ResourcePaths, capitalize, discovery_item, group_short_name, url_prefix};
use schemas::{Components, MetaComponents};

/// A serialized document and the digest clients pass back as `?hash=`.
struct Document {
    bytes: Vec<u8>,
    hash: String,
}

static DOCUMENTS: OnceLock<BTreeMap<String, Document>> = OnceLock::new();

fn documents() -> &'static BTreeMap<String, Document> {
    DOCUMENTS.get_or_init(|| {
        build_all()
            .into_iter()
            .map(|(path, doc)| {
                let bytes = serde_json::to_vec(&doc)
                    .expect("a serde_json::Value with string keys always serializes");
                let hash = digest(&bytes);
                (path, Document { bytes, hash })
            })
            .collect()
    })
}

/// The `/openapi/v3` index: every document path with its `serverRelativeURL`.
pub fn index() -> Value {
    let paths: Map<String, Value> = documents()
        .iter()
        .map(|(path, doc)| {
            (
                path.clone(),
                json!({"serverRelativeURL": format!("/openapi/v3/{path}?hash={}", doc.hash)}),
            )
        })
        .collect();
    json!({ "paths": paths })
}

/// The serialized JSON document for an index path such as `api/v1` or `apis/apps/v1`
/// (a leading `/` is tolerated); `None` for unknown paths.
pub fn document(path: &str) -> Option<&'static [u8]> {
    lookup(path).map(|d| d.bytes.as_slice())
}

/// The digest of a document as it appears in the index's `?hash=`, usable as an ETag.
pub fn document_hash(path: &str) -> Option<&'static str> {
    lookup(path).map(|d| d.hash.as_str())
}

fn lookup(path: &str) -> Option<&'static Document> {
    documents().get(path.trim_start_matches('/'))
}

/// 64-bit FNV-1a, hex: a stable content digest with no extra dependency. It only has to change
/// when the document does, so clients refetch after an upgrade.
fn digest(bytes: &[u8]) -> String {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let hash = bytes
        .iter()
        .fold(OFFSET, |h, b| (h ^ u64::from(*b)).wrapping_mul(PRIME));
    format!("{hash:016X}")
}

/// Every document keyed by its index path.
fn build_all() -> BTreeMap<String, Value> {
    let mut docs = BTreeMap::new();
    docs.insert(
        "api".to_string(),
        single_get_document::<meta::APIVersions>(
            "/api/",
            "core",
            "getCoreAPIVersions",
            "get available API versions",
        ),
    );
    docs.insert(
        "apis".to_string(),
        single_get_document::<meta::APIGroupList>(
            "/apis/",
            "apis",
            "getAPIVersions",
            "get available API versions",
        ),
    );
    docs.insert(
        "version".to_string(),
        single_get_document::<version::Info>(
            "/version/",
            "version",
            "getCodeVersion",
            "get the version information for this server",
        ),
    );
    for group in resources::groups() {
        if !group.is_empty() {
            let short = group_short_name(group);
            docs.insert(
                format!("apis/{group}"),
                single_get_document::<meta::APIGroup>(
                    &format!("/apis/{group}/"),
                    short,
                    &format!("get{}APIGroup", capitalize(short)),
                    "get information of a group",
                ),
            );
        }
    }
    for (group, version) in group_versions() {
        let key = url_prefix(group, version)
            .trim_start_matches('/')
            .to_string();
        docs.insert(key, group_version_document(group, version));
    }
    docs
}

/// The served group-versions, core first, in registry order.
fn group_versions() -> Vec<(&'static str, &'static str)> {
    let mut out: Vec<(&'static str, &'static str)> = Vec::new();
    for r in RESOURCES {
        if !out.contains(&(r.group, r.version)) {
            out.push((r.group, r.version));
        }
    }
    out
}

fn openapi_document(paths: Map<String, Value>, schemas: Map<String, Value>) -> Value {
    json!({
        "openapi": "3.0.0",
        // The API surface follows the Kubernetes release k8s-openapi is built for.
        "info": {"title": "Kubernetes", "version": "v1.33.0"},
        "paths": paths,
        "components": {"schemas": schemas},
    })
}

fn single_get_document<T: k8s_openapi::schemars::JsonSchema>(
    path: &str,
    tag: &str,
    id: &str,
    description: &str,
) -> Value {
    let mut c = Components::new();
    let component = c.add::<T>();
    let mut paths = Map::new();
    paths.insert(
        path.to_string(),
        discovery_item(tag, id, description, &component),
    );
    openapi_document(paths, c.finish())
}

fn group_version_document(group: &str, version: &str) -> Value {
    let mut c = Components::new();
    let meta = MetaComponents::add(&mut c, group, version);
    let short = group_short_name(group);
    let mut paths = Map::new();
    paths.insert(
        format!("{}/", url_prefix(group, version)),
        discovery_item(
            &format!("{short}_{version}"),
            &format!(
                "get{}{}APIResources",
                capitalize(short),
                capitalize(version)
            ),
            "get available resources",
            &meta.resource_list,
        ),
    );
    for r in RESOURCES
        .iter()
        .filter(|r| r.group == group && r.version == version)
    {
        ResourcePaths::new(&mut c, r, &meta).add_to(&mut c, &mut paths);
    }
    openapi_document(paths, c.finish())
}

#[cfg(test)]
mod tests;
