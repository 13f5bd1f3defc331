//! The watch cache: every object and a window of recent events in memory, fed by one store
//! watch. LIST and WATCH are served from here; one writer task, many cheap readers.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use futures::StreamExt;
use tokio::sync::{broadcast, watch};

use crate::error::{ApiError, ApiResult};
use crate::objects::Stored;
use crate::store::{Revision, Store, StoreError, WatchEvent};

/// Everything the API server stores lives under this prefix.
pub const ROOT: &str = "/registry/";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    Added,
    Modified,
    Deleted,
}

impl EventType {
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Added => "ADDED",
            EventType::Modified => "MODIFIED",
            EventType::Deleted => "DELETED",
        }
    }
}

/// One change, with the object before it (for selector transitions).
#[derive(Debug)]
pub struct CacheEvent {
    pub kind: EventType,
    pub object: Arc<Stored>,
    pub prev: Option<Arc<Stored>>,
}

impl CacheEvent {
    pub fn revision(&self) -> Revision {
        self.object.revision
    }
}

struct Inner {
    objects: BTreeMap<String, Arc<Stored>>,
    revision: Revision,
    events: VecDeque<Arc<CacheEvent>>,
    /// Events with revisions greater than this are all in `events`.
    window_start: Revision,
    /// The revision of the last change per resource (`pods`, `roles.rbac.authorization.k8s.io`),
    /// since `loaded_at`; what derived indexes check to know they are stale.
    changed: HashMap<String, Revision>,
    /// The revision objects were last loaded from a full list.
    loaded_at: Revision,
}

pub struct WatchCache {
    inner: RwLock<Inner>,
    events: broadcast::Sender<Arc<CacheEvent>>,
    revision: watch::Sender<Revision>,
    capacity: usize,
}

/// What a new watcher gets: the events to send first, and the live feed after them.
pub struct Subscription {
    pub backlog: Vec<Arc<CacheEvent>>,
    pub live: broadcast::Receiver<Arc<CacheEvent>>,
    /// The cache revision the backlog reaches.
    pub revision: Revision,
}

impl WatchCache {
    /// Loads every object from the store and starts following its changes.
    pub async fn start(store: Arc<dyn Store>, capacity: usize) -> ApiResult<Arc<WatchCache>> {
        let listed = store.list(ROOT, 0).await?;
        let mut objects = BTreeMap::new();
        for kv in &listed.items {
            objects.insert(kv.key.clone(), Stored::from_kv(kv)?);
        }
        let cache = Arc::new(WatchCache {
            inner: RwLock::new(Inner {
                objects,
                revision: listed.revision,
                events: VecDeque::with_capacity(capacity.min(4096)),
                window_start: listed.revision,
                changed: HashMap::new(),
                loaded_at: listed.revision,
            }),
            events: broadcast::channel(capacity.max(1024)).0,
            revision: watch::channel(listed.revision).0,
            capacity,
        });
        let stream = store.watch(ROOT, listed.revision).await?;
        tokio::spawn(Arc::clone(&cache).follow(store, stream));
        Ok(cache)
    }

    async fn follow(self: Arc<Self>, store: Arc<dyn Store>, mut stream: crate::store::WatchStream) {
        loop {
            while let Some(item) = stream.next().await {
                match item {
                    Ok(event) => self.apply(event),
                    Err(err) => {
                        tracing::warn!(error = %err, "store watch failed, resuming");
                        break;
                    }
                }
            }
            let from = self.current_revision();
            stream = loop {
                match store.watch(ROOT, from).await {
                    Ok(s) => break s,
                    Err(StoreError::Compacted { .. }) => {
                        if let Err(err) = self.reload(store.as_ref()).await {
                            tracing::error!(error = %err, "watch cache reload failed");
                        }
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                    Err(err) => {
                        tracing::warn!(error = %err, "store watch restart failed");
                        tokio::time::sleep(Duration::from_millis(500)).await;
                    }
                }
            };
        }
    }

    /// Rebuilds from a fresh list when the store compacted past our position; watchers
    /// lose their window and get 410 on resume, as with kube-apiserver.
    async fn reload(&self, store: &dyn Store) -> ApiResult<()> {
        let listed = store.list(ROOT, 0).await?;
        let mut objects = BTreeMap::new();
        for kv in &listed.items {
            objects.insert(kv.key.clone(), Stored::from_kv(kv)?);
        }
        let mut inner = self.write();
        inner.objects = objects;
        inner.revision = listed.revision;
        inner.events.clear();
        inner.window_start = listed.revision;
        inner.changed.clear();
        inner.loaded_at = listed.revision;
        drop(inner);
        self.revision.send_replace(listed.revision);
        Ok(())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Inner> {
        self.inner.write().unwrap_or_else(|e| e.into_inner())
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Inner> {
        self.inner.read().unwrap_or_else(|e| e.into_inner())
    }

    fn apply(&self, event: WatchEvent) {
        let kv = event.kv();
        let stored = match Stored::from_kv(kv) {
            Ok(s) => s,
            Err(err) => {
                tracing::error!(key = %kv.key, error = %err, "skipping undecodable object");
                return;
            }
        };
        let mut inner = self.write();
        if stored.revision <= inner.revision {
            return;
        }
        let prev = match &event {
            WatchEvent::Put { .. } => inner.objects.insert(kv.key.clone(), Arc::clone(&stored)),
            WatchEvent::Delete { .. } => inner.objects.remove(&kv.key),
        };
        let kind = match (&event, &prev) {
            (WatchEvent::Delete { .. }, _) => EventType::Deleted,
            (WatchEvent::Put { .. }, None) => EventType::Added,
            (WatchEvent::Put { .. }, Some(_)) => EventType::Modified,
        };
        let event = Arc::new(CacheEvent {
            kind,
            object: stored,
            prev,
        });
        inner.revision = event.revision();
        if let Some(resource) = resource_of(&kv.key) {
            let revision = inner.revision;
            match inner.changed.get_mut(resource) {
                Some(at) => *at = revision,
                None => {
                    inner.changed.insert(resource.to_string(), revision);
                }
            }
        }
        if inner.events.len() >= self.capacity
            && let Some(dropped) = inner.events.pop_front()
        {
            inner.window_start = dropped.revision();
        }
        inner.events.push_back(Arc::clone(&event));
        // Send under the lock so subscribers see history and live events without a gap.
        let _ = self.events.send(event);
        let revision = inner.revision;
        drop(inner);
        self.revision.send_replace(revision);
    }

    /// The revision of the last change to objects of `group_resource` (as in storage keys:
    /// `pods`, `roles.rbac.authorization.k8s.io`), or of the last full load if later.
    pub fn last_change(&self, group_resource: &str) -> Revision {
        let inner = self.read();
        inner
            .changed
            .get(group_resource)
            .copied()
            .unwrap_or(inner.loaded_at)
    }

    pub fn current_revision(&self) -> Revision {
        self.read().revision
    }

    /// Waits until the cache has seen `revision` (bounded, so a stuck store cannot hang a
    /// request forever).
    pub async fn wait_for(&self, revision: Revision) -> ApiResult<()> {
        let mut rx = self.revision.subscribe();
        let wait = rx.wait_for(|seen| *seen >= revision);
        match tokio::time::timeout(Duration::from_secs(3), wait).await {
            Ok(Ok(_)) => Ok(()),
            _ => Err(ApiError::ServiceUnavailable(format!(
                "Too large resource version: {revision}, current: {}",
                self.current_revision()
            ))),
        }
    }

    /// Every object under `prefix`, ordered by key, and the revision they were read at.
    pub fn list(&self, prefix: &str) -> (Vec<Arc<Stored>>, Revision) {
        let inner = self.read();
        let items = inner
            .objects
            .range(prefix.to_string()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(_, v)| Arc::clone(v))
            .collect();
        (items, inner.revision)
    }

    pub fn get(&self, key: &str) -> Option<Arc<Stored>> {
        self.read().objects.get(key).cloned()
    }

    /// Subscribes to changes after `after`, or, with `None`, to the current state as
    /// synthetic ADDED events followed by changes. `Expired` if `after` left the window.
    pub fn subscribe(&self, prefix: &str, after: Option<Revision>) -> ApiResult<Subscription> {
        let inner = self.read();
        let live = self.events.subscribe();
        let backlog = match after {
            None => inner
                .objects
                .range(prefix.to_string()..)
                .take_while(|(k, _)| k.starts_with(prefix))
                .map(|(_, o)| {
                    Arc::new(CacheEvent {
                        kind: EventType::Added,
                        object: Arc::clone(o),
                        prev: None,
                    })
                })
                .collect(),
            Some(after) if after < inner.window_start => {
                return Err(ApiError::Expired(format!(
                    "too old resource version: {after} ({})",
                    inner.window_start + 1
                )));
            }
            Some(after) => inner
                .events
                .iter()
                .filter(|e| e.revision() > after && e.object.key.starts_with(prefix))
                .cloned()
                .collect(),
        };
        Ok(Subscription {
            backlog,
            live,
            revision: inner.revision,
        })
    }
}

/// The resource segment of a storage key: `pods` in `/registry/pods/ns/name`.
fn resource_of(key: &str) -> Option<&str> {
    key.strip_prefix(ROOT)?.split('/').next()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::memory::MemoryStore;

    fn obj(name: &str) -> Vec<u8> {
        serde_json::to_vec(&serde_json::json!({"metadata": {"name": name}})).unwrap()
    }

    #[tokio::test]
    async fn follows_the_store_and_replays_from_a_revision() {
        let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
        let first = store.create("/registry/pods/a/x", obj("x")).await.unwrap();
        let cache = WatchCache::start(Arc::clone(&store), 100).await.unwrap();
        let rev = store.create("/registry/pods/a/y", obj("y")).await.unwrap();
        store.delete("/registry/pods/a/x", None).await.unwrap();
        let last = store.create("/registry/nodes/n", obj("n")).await.unwrap();
        cache.wait_for(last).await.unwrap();

        let (pods, at) = cache.list("/registry/pods/");
        assert_eq!(at, last);
        assert_eq!(pods.len(), 1);
        assert_eq!(
            pods[0].object["metadata"]["resourceVersion"],
            rev.to_string()
        );

        let sub = cache.subscribe("/registry/pods/", Some(first)).unwrap();
        let kinds: Vec<_> = sub.backlog.iter().map(|e| e.kind).collect();
        assert_eq!(kinds, vec![EventType::Added, EventType::Deleted]);

        let initial = cache.subscribe("/registry/", None).unwrap();
        assert_eq!(initial.backlog.len(), 2);

        assert_eq!(cache.last_change("nodes"), last);
        assert_eq!(cache.last_change("pods"), last - 1);
        assert_eq!(cache.last_change("secrets"), first);
    }

    #[tokio::test]
    async fn too_old_revision_is_expired() {
        let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
        let cache = WatchCache::start(Arc::clone(&store), 2).await.unwrap();
        let mut last = 0;
        for i in 0..5 {
            last = store
                .create(&format!("/registry/pods/a/{i}"), obj("p"))
                .await
                .unwrap();
        }
        cache.wait_for(last).await.unwrap();
        assert!(matches!(
            cache.subscribe("/registry/", Some(1)),
            Err(ApiError::Expired(_))
        ));
        assert_eq!(
            cache
                .subscribe("/registry/", Some(last - 2))
                .unwrap()
                .backlog
                .len(),
            2
        );
    }
}
