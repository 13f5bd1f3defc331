//! WATCH: chunked JSON event lines served from the watch cache, with selector transitions,
//! bookmarks, `sendInitialEvents` and `timeoutSeconds`.

use std::time::Duration;

use axum::body::Body;
use axum::http::StatusCode;
use axum::response::Response;
use bytes::Bytes;
use futures::StreamExt;
use rkube_api::resources::ResourceInfo;
use serde_json::{Value, json};
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::mpsc;

use crate::body::{self, Wanted};
use crate::cache::{CacheEvent, EventType, Subscription};
use crate::error::{ApiError, ApiResult};
use crate::filters::Filter;
use crate::list;
use crate::objects;
use crate::request::{Params, Target};
use crate::server::ApiServer;
use crate::store::Revision;

const BOOKMARK_EVERY: Duration = Duration::from_secs(30);
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(1800);

struct Watcher {
    resource: &'static ResourceInfo,
    filter: Filter,
    prefix: String,
    name: Option<String>,
    params: Params,
    wanted: Wanted,
    bookmarks: bool,
}

pub async fn watch(
    server: &ApiServer,
    target: &Target,
    params: &Params,
    wanted: Wanted,
) -> ApiResult<Response> {
    let resource = target.resource;
    let filter = Filter::from_params(resource, params)?;
    let initial_events = params.flag("sendInitialEvents");
    let bookmarks = params.flag("allowWatchBookmarks");
    if initial_events && (params.get("resourceVersionMatch") != Some("NotOlderThan") || !bookmarks)
    {
        return Err(ApiError::Invalid {
            target: crate::error::Target::new(resource, ""),
            causes: vec![crate::error::Cause {
                reason: "FieldValueForbidden".into(),
                field: "sendInitialEvents".into(),
                message: "Forbidden: sendInitialEvents requires setting resourceVersionMatch to NotOlderThan and allowWatchBookmarks to true".into(),
            }],
        });
    }
    let timeout = params
        .int("timeoutSeconds")?
        .filter(|t| *t > 0)
        .map_or(DEFAULT_TIMEOUT, |t| Duration::from_secs(t as u64));
    let prefix = objects::prefix(resource, target.object_namespace());
    let rv = params.resource_version()?;
    let from = match rv {
        // Unset: the current state as synthetic ADDED events, then changes; like a LIST
        // without a resourceVersion this is a consistent read, so it waits for the cache to
        // reach the store (else writes acknowledged before the watch could be missing from
        // the initial events).
        None => {
            let current = server.store.current_revision().await?;
            server.cache.wait_for(current).await?;
            None
        }
        // "0": the same from whatever the cache holds.
        Some(0) => None,
        Some(rv) if initial_events => {
            server.cache.wait_for(rv).await?;
            None
        }
        Some(rv) => {
            server.cache.wait_for(rv).await?;
            Some(rv)
        }
    };
    let watcher = Watcher {
        resource,
        filter,
        prefix: prefix.clone(),
        name: target.name.clone(),
        params: params.clone(),
        wanted,
        bookmarks,
    };
    let (tx, rx) = mpsc::channel::<Bytes>(64);
    match server.cache.subscribe(&prefix, from) {
        Ok(subscription) => {
            tokio::spawn(watcher.run(subscription, initial_events, timeout, tx));
        }
        Err(err @ ApiError::Expired(_)) => {
            // Like kube-apiserver: the watch starts, then reports 410 as an ERROR event.
            let _ = tx.send(error_event(&err)).await;
        }
        Err(err) => return Err(err),
    }
    let stream = tokio_stream::wrappers::ReceiverStream::new(rx).map(Ok::<_, std::io::Error>);
    let mut response = body::json_response(StatusCode::OK, Body::from_stream(stream));
    response.headers_mut().insert(
        axum::http::header::CACHE_CONTROL,
        axum::http::HeaderValue::from_static("no-cache, private"),
    );
    Ok(response)
}

fn error_event(err: &ApiError) -> Bytes {
    line(
        "ERROR",
        &serde_json::to_vec(&err.status()).unwrap_or_default(),
    )
}

fn line(kind: &str, object: &[u8]) -> Bytes {
    let mut out = Vec::with_capacity(object.len() + 32);
    out.extend_from_slice(b"{\"type\":\"");
    out.extend_from_slice(kind.as_bytes());
    out.extend_from_slice(b"\",\"object\":");
    out.extend_from_slice(object);
    out.extend_from_slice(b"}\n");
    Bytes::from(out)
}

impl Watcher {
    async fn run(
        self,
        subscription: Subscription,
        initial_events: bool,
        timeout: Duration,
        tx: mpsc::Sender<Bytes>,
    ) {
        let Subscription {
            backlog,
            mut live,
            revision,
        } = subscription;
        let mut last = revision;
        for event in &backlog {
            if let Some(bytes) = self.render(event)
                && tx.send(bytes).await.is_err()
            {
                return;
            }
        }
        if initial_events {
            let bookmark = self.bookmark(revision, true);
            if tx.send(bookmark).await.is_err() {
                return;
            }
        }
        let deadline = tokio::time::sleep(timeout);
        tokio::pin!(deadline);
        let mut ticker = tokio::time::interval(BOOKMARK_EVERY);
        ticker.tick().await;
        loop {
            tokio::select! {
                _ = &mut deadline => return,
                _ = tx.closed() => return,
                _ = ticker.tick(), if self.bookmarks => {
                    if tx.send(self.bookmark(last, false)).await.is_err() {
                        return;
                    }
                }
                received = live.recv() => match received {
                    Ok(event) => {
                        // Events already covered by the backlog are skipped.
                        if event.revision() <= revision {
                            continue;
                        }
                        last = event.revision();
                        if let Some(bytes) = self.render(&event)
                            && tx.send(bytes).await.is_err()
                        {
                            return;
                        }
                    }
                    Err(RecvError::Lagged(_)) => {
                        let err = ApiError::Expired(format!(
                            "too old resource version: {last}: the watcher fell behind"
                        ));
                        let _ = tx.send(error_event(&err)).await;
                        return;
                    }
                    Err(RecvError::Closed) => return,
                }
            }
        }
    }

    fn selects(&self, obj: &Value) -> bool {
        self.name.as_deref().is_none_or(|n| objects::name(obj) == n) && self.filter.matches(obj)
    }

    /// The line for one event, or `None` when this watcher does not see it. An object that
    /// moves into the selection is ADDED, one that leaves it DELETED.
    fn render(&self, event: &CacheEvent) -> Option<Bytes> {
        if !event.object.key.starts_with(&self.prefix) {
            return None;
        }
        let now = self.selects(&event.object.object);
        let before = event.prev.as_ref().map(|p| self.selects(&p.object));
        let kind = match (event.kind, before, now) {
            (EventType::Deleted, _, _) if before.unwrap_or(now) => EventType::Deleted,
            (EventType::Deleted, _, _) => return None,
            (_, Some(true), true) => EventType::Modified,
            (_, Some(true), false) => EventType::Deleted,
            (_, _, true) => EventType::Added,
            (_, _, false) => return None,
        };
        match self.wanted {
            Wanted::Object => Some(line(kind.as_str(), &event.object.json)),
            Wanted::Table => {
                let table = list::table(
                    self.resource,
                    &self.params,
                    std::slice::from_ref(&event.object.object),
                )
                .ok()?;
                Some(line(kind.as_str(), &serde_json::to_vec(&table).ok()?))
            }
        }
    }

    fn bookmark(&self, revision: Revision, initial_events_end: bool) -> Bytes {
        let mut metadata = json!({"resourceVersion": revision.to_string()});
        if initial_events_end {
            metadata["annotations"] = json!({"k8s.io/initial-events-end": "true"});
        }
        let object = json!({
            "kind": self.resource.kind,
            "apiVersion": self.resource.api_version(),
            "metadata": metadata,
        });
        line("BOOKMARK", &serde_json::to_vec(&object).unwrap_or_default())
    }
}
