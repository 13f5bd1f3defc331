//! An in-memory store: the explicit fake for tests of everything above the store seam.
//! Same semantics as the durable backends (it passes the conformance suite), no durability.

use std::collections::BTreeMap;
use std::sync::Mutex;

use futures::StreamExt;
use tokio::sync::broadcast;
use tokio_stream::wrappers::BroadcastStream;

use super::{KeyValue, ListResult, Revision, Store, StoreError, WatchEvent, WatchStream};

const BACKEND: &str = "memory";

#[derive(Default)]
struct State {
    revision: Revision,
    compacted: Revision,
    /// Every version of every key: `(revision, value or None for a delete)`, oldest first.
    versions: BTreeMap<String, Vec<(Revision, Option<KeyValue>)>>,
    /// Every event since the compacted revision, in order.
    log: Vec<WatchEvent>,
}

impl State {
    fn latest(&self, key: &str) -> Option<&KeyValue> {
        self.versions
            .get(key)
            .and_then(|v| v.last())
            .and_then(|(_, kv)| kv.as_ref())
    }
}

pub struct MemoryStore {
    state: Mutex<State>,
    events: broadcast::Sender<WatchEvent>,
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryStore {
    pub fn new() -> Self {
        MemoryStore {
            state: Mutex::new(State::default()),
            events: broadcast::channel(16 * 1024).0,
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn record(&self, state: &mut State, event: WatchEvent) {
        let kv = event.kv().clone();
        let value = matches!(event, WatchEvent::Put { .. }).then_some(kv.clone());
        state
            .versions
            .entry(kv.key.clone())
            .or_default()
            .push((kv.mod_revision, value));
        state.log.push(event.clone());
        let _ = self.events.send(event);
    }
}

#[async_trait::async_trait]
impl Store for MemoryStore {
    async fn get(&self, key: &str) -> Result<Option<KeyValue>, StoreError> {
        Ok(self.state().latest(key).cloned())
    }

    async fn list(&self, prefix: &str, revision: Revision) -> Result<ListResult, StoreError> {
        let state = self.state();
        let at = if revision == 0 {
            state.revision
        } else {
            revision
        };
        if at > state.revision {
            return Err(StoreError::FutureRevision {
                requested: at,
                current: state.revision,
            });
        }
        if at < state.compacted {
            return Err(StoreError::Compacted {
                requested: at,
                compacted: state.compacted,
            });
        }
        let items = state
            .versions
            .range(prefix.to_string()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .filter_map(|(_, versions)| {
                versions
                    .iter()
                    .rev()
                    .find(|(rev, _)| *rev <= at)
                    .and_then(|(_, kv)| kv.clone())
            })
            .collect();
        Ok(ListResult {
            items,
            revision: at,
        })
    }

    async fn create(&self, key: &str, value: Vec<u8>) -> Result<Revision, StoreError> {
        let mut state = self.state();
        if state.latest(key).is_some() {
            return Err(StoreError::AlreadyExists { key: key.into() });
        }
        state.revision += 1;
        let rev = state.revision;
        let kv = KeyValue {
            key: key.into(),
            value,
            create_revision: rev,
            mod_revision: rev,
        };
        self.record(&mut state, WatchEvent::Put { kv });
        Ok(rev)
    }

    async fn update(
        &self,
        key: &str,
        value: Vec<u8>,
        expected: Revision,
    ) -> Result<Revision, StoreError> {
        let mut state = self.state();
        let Some(current) = state.latest(key) else {
            return Err(StoreError::NotFound { key: key.into() });
        };
        if current.mod_revision != expected {
            return Err(StoreError::Conflict {
                key: key.into(),
                expected,
                actual: current.mod_revision,
            });
        }
        let create_revision = current.create_revision;
        state.revision += 1;
        let rev = state.revision;
        let kv = KeyValue {
            key: key.into(),
            value,
            create_revision,
            mod_revision: rev,
        };
        self.record(&mut state, WatchEvent::Put { kv });
        Ok(rev)
    }

    async fn delete(&self, key: &str, expected: Option<Revision>) -> Result<Revision, StoreError> {
        let mut state = self.state();
        let Some(current) = state.latest(key).cloned() else {
            return Err(StoreError::NotFound { key: key.into() });
        };
        if let Some(expected) = expected
            && current.mod_revision != expected
        {
            return Err(StoreError::Conflict {
                key: key.into(),
                expected,
                actual: current.mod_revision,
            });
        }
        state.revision += 1;
        let rev = state.revision;
        let kv = KeyValue {
            mod_revision: rev,
            ..current
        };
        self.record(&mut state, WatchEvent::Delete { kv });
        Ok(rev)
    }

    async fn watch(&self, prefix: &str, after: Revision) -> Result<WatchStream, StoreError> {
        let state = self.state();
        if after < state.compacted {
            return Err(StoreError::Compacted {
                requested: after,
                compacted: state.compacted,
            });
        }
        // Subscribe while holding the lock so no event falls between history and live.
        let live = BroadcastStream::new(self.events.subscribe());
        let prefix = prefix.to_string();
        let history: Vec<_> = state
            .log
            .iter()
            .filter(|e| e.revision() > after && e.kv().key.starts_with(&prefix))
            .cloned()
            .map(Ok)
            .collect();
        let last = state.revision.max(after);
        drop(state);
        let live = live.filter_map(move |item| {
            let prefix = prefix.clone();
            async move {
                match item {
                    Ok(e) if e.revision() > last && e.kv().key.starts_with(&prefix) => Some(Ok(e)),
                    Ok(_) => None,
                    Err(e) => Some(Err(StoreError::Backend {
                        backend: BACKEND,
                        message: format!("watch fell behind: {e}"),
                    })),
                }
            }
        });
        Ok(Box::pin(futures::stream::iter(history).chain(live)))
    }

    async fn compact(&self, revision: Revision) -> Result<(), StoreError> {
        let mut state = self.state();
        if revision > state.revision {
            return Err(StoreError::FutureRevision {
                requested: revision,
                current: state.revision,
            });
        }
        if revision <= state.compacted {
            return Ok(());
        }
        state.compacted = revision;
        state.log.retain(|e| e.revision() > revision);
        for versions in state.versions.values_mut() {
            // Keep the newest version at or before the compaction point, and all after it.
            let keep_from = versions
                .iter()
                .rposition(|(rev, _)| *rev <= revision)
                .unwrap_or(0);
            versions.drain(..keep_from);
        }
        state
            .versions
            .retain(|_, v| !(v.len() == 1 && v[0].1.is_none() && v[0].0 <= revision));
        Ok(())
    }

    async fn current_revision(&self) -> Result<Revision, StoreError> {
        Ok(self.state().revision)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn passes_conformance() {
        super::super::conformance::run_all(&MemoryStore::new()).await;
    }
}
