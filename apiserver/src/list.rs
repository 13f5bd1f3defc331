//! LIST: served from the watch cache (or the store for exact past revisions), with
//! selectors, `limit`/`continue` and server-side Tables.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{HeaderValue, StatusCode, header};
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
        Wanted::Object => Ok(list_response(target.resource, &metadata, page.items)),
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

/// Size of the pieces a list body is streamed in: large enough for few writes, small enough
/// to stay in cache and be reused by the allocator.
const LIST_CHUNK: usize = 64 * 1024;

/// Streams a `<Kind>List` from the cached bytes of its items, without re-encoding them and
/// without a buffer the size of the whole list (which costs a page fault every 4 KiB).
fn list_response(resource: &ResourceInfo, metadata: &Value, items: Vec<Arc<Stored>>) -> Response {
    let head = format!(
        "{{\"kind\":\"{}\",\"apiVersion\":\"{}\",\"metadata\":{},\"items\":[",
        resource.list_kind(),
        resource.api_version(),
        metadata
    )
    .into_bytes();
    let commas = items.len().saturating_sub(1);
    let length = head.len() + items.iter().map(|i| i.json.len()).sum::<usize>() + commas + 2;
    let chunks = ListChunks {
        pending: Some(head),
        items: items.into_iter(),
        first: true,
    };
    let stream = futures::stream::iter(chunks.map(Ok::<_, std::convert::Infallible>));
    let mut response = body::json_response(StatusCode::OK, Body::from_stream(stream));
    response
        .headers_mut()
        .insert(header::CONTENT_LENGTH, HeaderValue::from(length));
    response
}

/// The pieces of a list body: the head, the items joined by commas, and the closing `]}`.
struct ListChunks {
    /// The bytes not yet handed out; `None` once the closing bracket was.
    pending: Option<Vec<u8>>,
    items: std::vec::IntoIter<Arc<Stored>>,
    first: bool,
}

impl Iterator for ListChunks {
    type Item = bytes::Bytes;

    fn next(&mut self) -> Option<bytes::Bytes> {
        let mut chunk = self.pending.take()?;
        for item in self.items.by_ref() {
            if !std::mem::take(&mut self.first) {
                chunk.push(b',');
            }
            chunk.extend_from_slice(&item.json);
            if chunk.len() >= LIST_CHUNK {
                self.pending = Some(Vec::with_capacity(LIST_CHUNK + LIST_CHUNK / 4));
                return Some(chunk.into());
            }
        }
        chunk.extend_from_slice(b"]}");
        Some(chunk.into())
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::KeyValue;

    fn pod(i: usize) -> Arc<Stored> {
        let padding = "x".repeat(i % 700);
        let value =
            serde_json::to_vec(&json!({"metadata": {"name": format!("p{i}")}, "pad": padding}))
                .unwrap();
        Stored::from_kv(&KeyValue {
            key: format!("/registry/pods/ns/p{i}"),
            value,
            create_revision: 1,
            mod_revision: i as i64 + 1,
        })
        .unwrap()
    }

    async fn body_of(count: usize) -> (Option<usize>, Value, usize) {
        let pods = rkube_api::resources::find("", "v1", "pods").unwrap();
        let items: Vec<Arc<Stored>> = (0..count).map(pod).collect();
        let response = list_response(pods, &json!({"resourceVersion": "9"}), items);
        let declared = response
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok());
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        (
            declared,
            serde_json::from_slice(&bytes).unwrap(),
            bytes.len(),
        )
    }

    #[tokio::test]
    async fn streamed_lists_are_whole_and_declare_their_length() {
        // Empty, one item, and enough to span many chunks.
        for count in [0, 1, 1000] {
            let (declared, list, length) = body_of(count).await;
            assert_eq!(declared, Some(length), "{count} items");
            assert_eq!(list["kind"], "PodList");
            assert_eq!(list["metadata"]["resourceVersion"], "9");
            let items = list["items"].as_array().unwrap();
            assert_eq!(items.len(), count);
            for (i, item) in items.iter().enumerate() {
                assert_eq!(item["metadata"]["name"], format!("p{i}"));
                assert_eq!(item["metadata"]["resourceVersion"], (i + 1).to_string());
            }
        }
        assert!(
            body_of(1000).await.2 > 2 * LIST_CHUNK,
            "the test spans chunks"
        );
    }
}
