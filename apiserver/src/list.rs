//! LIST: served from the watch cache (or the store for exact past revisions), with
//! selectors, `limit`/`continue` and server-side Tables.

use std::sync::Arc;

use axum::http::StatusCode;
use axum::response::Response;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rkube_api::resources::ResourceInfo;
use rkube_api::table::{IncludeObject, to_table};
use serde_json::{Value, json};

use crate::body::{self, Wanted};
use crate::error::{ApiError, ApiResult};
use crate::filters::Filter;
use crate::objects::{self, Stored};
use crate::request::{Params, Target};
use crate::server::ApiServer;
use crate::store::Revision;

/// The opaque `continue` token: where the next page starts and at which revision.
#[derive(serde::Serialize, serde::Deserialize)]
struct ContinueToken {
    rv: Revision,
    start: String,
}

impl ContinueToken {
    fn encode(&self) -> String {
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(self).unwrap_or_default())
    }

    fn decode(token: &str) -> ApiResult<ContinueToken> {
        URL_SAFE_NO_PAD
            .decode(token)
            .ok()
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .ok_or_else(|| ApiError::BadRequest("continue key is not valid".into()))
    }
}

/// Objects of one list page and the metadata the List carries.
pub struct Page {
    pub items: Vec<Arc<Stored>>,
    pub revision: Revision,
    pub continue_token: Option<String>,
    pub remaining: Option<usize>,
}

pub async fn list(
    server: &ApiServer,
    target: &Target,
    params: &Params,
    wanted: Wanted,
) -> ApiResult<Response> {
    let filter = Filter::from_params(target.resource, params)?;
    let page = read_page(server, target, params, &filter).await?;
    let mut metadata = json!({"resourceVersion": page.revision.to_string()});
    if let Some(token) = &page.continue_token {
        metadata["continue"] = Value::String(token.clone());
    }
    if let Some(remaining) = page.remaining {
        metadata["remainingItemCount"] = Value::from(remaining);
    }
    match wanted {
        Wanted::Table => {
            let items: Vec<Value> = page.items.iter().map(|s| s.object.clone()).collect();
            let mut table = table(target.resource, params, &items)?;
            table["metadata"] = metadata;
            Ok(body::object_response(StatusCode::OK, &table))
        }
        Wanted::Object => Ok(body::json_response(
            StatusCode::OK,
            list_bytes(target.resource, &metadata, &page.items),
        )),
        Wanted::Metadata => {
            let items: Vec<Value> = page
                .items
                .iter()
                .map(|s| body::partial_metadata(&s.object))
                .collect();
            let list = json!({
                "kind": "PartialObjectMetadataList",
                "apiVersion": "meta.k8s.io/v1",
                "metadata": metadata,
                "items": items,
            });
            Ok(body::object_response(StatusCode::OK, &list))
        }
    }
}

/// Writes a `<Kind>List` from the cached bytes of its items without re-encoding them.
fn list_bytes(resource: &ResourceInfo, metadata: &Value, items: &[Arc<Stored>]) -> Vec<u8> {
    let total: usize = items.iter().map(|i| i.json.len() + 1).sum();
    let mut out = Vec::with_capacity(total + 256);
    out.extend_from_slice(
        format!(
            "{{\"kind\":\"{}\",\"apiVersion\":\"{}\",\"metadata\":{},\"items\":[",
            resource.list_kind(),
            resource.api_version(),
            metadata
        )
        .as_bytes(),
    );
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(&item.json);
    }
    out.extend_from_slice(b"]}");
    out
}

async fn read_page(
    server: &ApiServer,
    target: &Target,
    params: &Params,
    filter: &Filter,
) -> ApiResult<Page> {
    let prefix = objects::prefix(target.resource, target.object_namespace());
    let limit = params.int("limit")?.filter(|l| *l > 0).map(|l| l as usize);
    let (candidates, revision, start_after) = if let Some(token) = params.get("continue") {
        let token = ContinueToken::decode(token)?;
        let items = snapshot_at(server, &prefix, token.rv)
            .await
            .map_err(|err| {
                match err {
            ApiError::Expired(_) => ApiError::Expired(
                "The provided continue parameter is too old to display a consistent list result. \
                 You can start a new list without the continue parameter."
                    .into(),
            ),
            other => other,
        }
            })?;
        (items, token.rv, Some(token.start))
    } else {
        let exact = params.get("resourceVersionMatch") == Some("Exact");
        match params.resource_version()? {
            Some(rv) if exact && rv > 0 => (snapshot_at(server, &prefix, rv).await?, rv, None),
            Some(rv) => {
                server.cache.wait_for(rv).await?;
                let (items, at) = server.cache.list(&prefix);
                (items, at, None)
            }
            None => {
                // A consistent read: the cache must have caught up with the store.
                let current = server.store.current_revision().await?;
                server.cache.wait_for(current).await?;
                let (items, at) = server.cache.list(&prefix);
                (items, at, None)
            }
        }
    };
    let mut matching = candidates
        .into_iter()
        .filter(|s| {
            start_after
                .as_ref()
                .is_none_or(|start| s.key.as_str() > start.as_str())
        })
        .filter(|s| filter.matches(&s.object));
    let items: Vec<Arc<Stored>> = match limit {
        Some(limit) => matching.by_ref().take(limit).collect(),
        None => matching.by_ref().collect(),
    };
    let remaining = matching.count();
    let continue_token = (remaining > 0).then(|| {
        ContinueToken {
            rv: revision,
            start: items.last().map(|s| s.key.clone()).unwrap_or_default(),
        }
        .encode()
    });
    Ok(Page {
        items,
        revision,
        continue_token,
        remaining: (remaining > 0 && filter.is_everything()).then_some(remaining),
    })
}

/// The objects under `prefix` as of `revision`: from the cache when it has not moved since,
/// else from the store's history.
async fn snapshot_at(
    server: &ApiServer,
    prefix: &str,
    revision: Revision,
) -> ApiResult<Vec<Arc<Stored>>> {
    let (items, at) = server.cache.list(prefix);
    if at == revision {
        return Ok(items);
    }
    let listed = server.store.list(prefix, revision).await?;
    listed.items.iter().map(Stored::from_kv).collect()
}

/// A server-side Table of objects, honouring `includeObject`.
pub fn table(resource: &ResourceInfo, params: &Params, objects: &[Value]) -> ApiResult<Value> {
    let include = IncludeObject::from_query(params.get("includeObject"))
        .map_err(|e| ApiError::BadRequest(e.to_string()))?;
    Ok(to_table(resource, objects, include, unix_now()))
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs() as i64
}
