//! Shared informers: one watch and one cache per resource type for the whole controller
//! manager, with change handlers that controllers use to enqueue work.

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::fmt::Debug;
use std::sync::{Arc, Mutex, PoisonError};

use futures::StreamExt;
use kube::api::Api;
use kube::runtime::WatchStreamExt;
use kube::runtime::reflector::{self, Store};
use kube::runtime::watcher::{self, Event};
use kube::{Client, Resource};
use serde::de::DeserializeOwned;
use tokio::sync::watch;

/// A change handler: receives each added, modified or deleted object.
pub type Handler<K> = Box<dyn Fn(&K) + Send + Sync>;

/// A cluster-wide cache of one resource type kept current by a watch.
pub struct Informer<K: Resource<DynamicType = ()> + 'static> {
    store: Store<K>,
    handlers: Arc<Mutex<Vec<Handler<K>>>>,
    // `Store::wait_until_ready` wakes only one of several waiters; this wakes them all.
    synced: watch::Receiver<bool>,
}

impl<K: Resource<DynamicType = ()> + 'static> Clone for Informer<K> {
    fn clone(&self) -> Self {
        Informer {
            store: self.store.clone(),
            handlers: Arc::clone(&self.handlers),
            synced: self.synced.clone(),
        }
    }
}

impl<K> Informer<K>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
{
    /// Starts watching every object of `K` in the cluster.
    fn start(client: Client) -> Self {
        let (store, mut writer) = reflector::store::<K>();
        let handlers: Arc<Mutex<Vec<Handler<K>>>> = Arc::default();
        let (synced_tx, synced) = watch::channel(false);
        let informer = Informer {
            store: store.clone(),
            handlers: Arc::clone(&handlers),
            synced,
        };
        let api: Api<K> = Api::all(client);
        tokio::spawn(async move {
            let mut events = watcher::watcher(api, watcher::Config::default())
                .default_backoff()
                .boxed();
            while let Some(event) = events.next().await {
                let event = match event {
                    Ok(event) => event,
                    Err(err) => {
                        tracing::warn!(kind = %K::kind(&()), error = %err, "watch failed; retrying");
                        continue;
                    }
                };
                // A relist replaces the cache: objects gone from it were deleted meanwhile.
                let before = matches!(event, Event::InitDone).then(|| store.state());
                writer.apply_watcher_event(&event);
                let handlers = handlers.lock().unwrap_or_else(PoisonError::into_inner);
                let notify = |obj: &K| handlers.iter().for_each(|h| h(obj));
                match &event {
                    Event::Apply(obj) | Event::Delete(obj) => notify(obj),
                    Event::InitDone => {
                        synced_tx.send_replace(true);
                        let now = store.state();
                        for old in before.unwrap_or_default() {
                            let key = reflector::ObjectRef::from_obj(old.as_ref());
                            if store.get(&key).is_none() {
                                notify(&old);
                            }
                        }
                        now.iter().for_each(|obj| notify(obj));
                    }
                    Event::Init | Event::InitApply(_) => {}
                }
            }
        });
        informer
    }

    /// The cache; complete once [`Informer::synced`] returned.
    pub fn store(&self) -> &Store<K> {
        &self.store
    }

    /// Waits for the first full list.
    pub async fn synced(&self) {
        let mut synced = self.synced.clone();
        // The sender lives as long as the watch task, which never ends on its own.
        let _ = synced.wait_for(|done| *done).await;
    }

    /// Registers a handler; it is called at once for every cached object, then for changes.
    pub fn on_change(&self, handler: impl Fn(&K) + Send + Sync + 'static) {
        let mut handlers = self.handlers.lock().unwrap_or_else(PoisonError::into_inner);
        self.store.state().iter().for_each(|obj| handler(obj));
        handlers.push(Box::new(handler));
    }
}

/// Hands out one informer per resource type, started on first use.
#[derive(Clone)]
pub struct Informers {
    client: Client,
    started: Arc<Mutex<HashMap<TypeId, Box<dyn Any + Send + Sync>>>>,
}

impl Informers {
    pub fn new(client: Client) -> Self {
        Informers {
            client,
            started: Arc::default(),
        }
    }

    pub fn get<K>(&self) -> Informer<K>
    where
        K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
    {
        let mut started = self.started.lock().unwrap_or_else(PoisonError::into_inner);
        let entry = started
            .entry(TypeId::of::<K>())
            .or_insert_with(|| Box::new(Informer::<K>::start(self.client.clone())));
        match entry.downcast_ref::<Informer<K>>() {
            Some(informer) => informer.clone(),
            // Entries are keyed by their own TypeId, so this arm is never taken.
            None => Informer::start(self.client.clone()),
        }
    }
}
