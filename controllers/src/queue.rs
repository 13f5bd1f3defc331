//! A work queue of object keys, as client-go's: a key is queued at most once, and a key being
//! processed is not handed to a second worker; changes during processing queue it again.

use std::collections::{HashSet, VecDeque};
use std::fmt;
use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use kube::{Resource, ResourceExt};
use tokio::sync::Notify;

/// Names one object: its namespace (empty for cluster-scoped objects) and name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Key {
    pub namespace: String,
    pub name: String,
}

impl Key {
    pub fn new(namespace: &str, name: &str) -> Self {
        Key {
            namespace: namespace.to_string(),
            name: name.to_string(),
        }
    }

    pub fn of<K: Resource>(obj: &K) -> Self {
        Key {
            namespace: obj.namespace().unwrap_or_default(),
            name: obj.name_any(),
        }
    }
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.namespace.is_empty() {
            f.write_str(&self.name)
        } else {
            write!(f, "{}/{}", self.namespace, self.name)
        }
    }
}

#[derive(Default)]
struct State {
    queue: VecDeque<Key>,
    dirty: HashSet<Key>,
    processing: HashSet<Key>,
}

#[derive(Clone, Default)]
pub struct Queue {
    state: Arc<Mutex<State>>,
    notify: Arc<Notify>,
}

/// What a reconcile asks of the queue afterwards.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    Done,
    /// Look again after this long (time-based conditions, progress deadlines).
    After(Duration),
}

/// Retry delays after failures: doubling from 100 ms, capped at 30 s.
const RETRY_FIRST: Duration = Duration::from_millis(100);
const RETRY_MAX: Duration = Duration::from_secs(30);
/// Failures in a row before a reconcile failure is logged as a warning.
const WARN_AFTER: u32 = 3;

impl Queue {
    pub fn new() -> Self {
        Queue::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn add(&self, key: Key) {
        let mut state = self.lock();
        if !state.dirty.insert(key.clone()) {
            return;
        }
        if !state.processing.contains(&key) {
            state.queue.push_back(key);
            drop(state);
            self.notify.notify_one();
        }
    }

    pub fn add_after(&self, key: Key, delay: Duration) {
        let queue = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            queue.add(key);
        });
    }

    async fn take(&self) -> Key {
        loop {
            let notified = self.notify.notified();
            {
                let mut state = self.lock();
                if let Some(key) = state.queue.pop_front() {
                    state.dirty.remove(&key);
                    state.processing.insert(key.clone());
                    if !state.queue.is_empty() {
                        self.notify.notify_one();
                    }
                    return key;
                }
            }
            notified.await;
        }
    }

    fn done(&self, key: &Key) {
        let mut state = self.lock();
        state.processing.remove(key);
        if state.dirty.contains(key) {
            state.queue.push_back(key.clone());
            drop(state);
            self.notify.notify_one();
        }
    }

    /// Runs `workers` loops that reconcile queued keys until the process ends. Failures are
    /// logged and retried with a per-key backoff.
    pub async fn run<F, Fut, E>(&self, name: &'static str, workers: usize, reconcile: F)
    where
        F: Fn(Key) -> Fut + Clone + Send + 'static,
        Fut: Future<Output = Result<Next, E>> + Send,
        E: fmt::Display,
    {
        let failures: Arc<Mutex<std::collections::HashMap<Key, u32>>> = Arc::default();
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..workers.max(1) {
            let queue = self.clone();
            let reconcile = reconcile.clone();
            let failures = Arc::clone(&failures);
            tasks.spawn(async move {
                loop {
                    let key = queue.take().await;
                    let outcome = reconcile(key.clone()).await;
                    queue.done(&key);
                    let mut failures = failures.lock().unwrap_or_else(PoisonError::into_inner);
                    match outcome {
                        Ok(next) => {
                            failures.remove(&key);
                            if let Next::After(delay) = next {
                                queue.add_after(key, delay);
                            }
                        }
                        Err(err) => {
                            let count = failures.entry(key.clone()).or_insert(0);
                            let delay = RETRY_FIRST
                                .saturating_mul(2u32.saturating_pow(*count))
                                .min(RETRY_MAX);
                            *count = count.saturating_add(1);
                            // Conflicts with a stale cache are routine; repeated failures are not.
                            if *count >= WARN_AFTER {
                                tracing::warn!(controller = name, object = %key, error = %err, "reconcile failed");
                            } else {
                                tracing::debug!(controller = name, object = %key, error = %err, "reconcile failed");
                            }
                            queue.add_after(key, delay);
                        }
                    }
                }
            });
        }
        while tasks.join_next().await.is_some() {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_key_queued_twice_is_taken_once() {
        let queue = Queue::new();
        queue.add(Key::new("a", "x"));
        queue.add(Key::new("a", "x"));
        queue.add(Key::new("a", "y"));
        assert_eq!(queue.take().await, Key::new("a", "x"));
        assert_eq!(queue.take().await, Key::new("a", "y"));
        assert!(queue.lock().queue.is_empty());
    }

    #[tokio::test]
    async fn a_key_changed_while_processing_comes_back_after_done() {
        let queue = Queue::new();
        queue.add(Key::new("", "n"));
        let key = queue.take().await;
        queue.add(key.clone());
        assert!(
            queue.lock().queue.is_empty(),
            "not handed out twice at once"
        );
        queue.done(&key);
        assert_eq!(queue.take().await, key);
    }
}
