//! ReplicaSet writes the Deployment controller made, until its cache shows them. Acting on a
//! cache that misses our own last scale could break the surge and availability bounds.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::queue::Key;

const EXPIRY: Duration = Duration::from_secs(60);

/// Per Deployment: ReplicaSet name → resourceVersion written, and when.
type Writes = HashMap<Key, HashMap<String, (u64, Instant)>>;

#[derive(Default)]
pub struct Written {
    by_deployment: Mutex<Writes>,
}

impl Written {
    pub fn record(&self, deployment: &Key, rs_name: &str, resource_version: Option<&str>) {
        let Some(rv) = resource_version.and_then(|rv| rv.parse().ok()) else {
            return;
        };
        self.lock()
            .entry(deployment.clone())
            .or_default()
            .insert(rs_name.to_string(), (rv, Instant::now()));
    }

    /// Whether the cache (`cached_rv` gives a ReplicaSet's cached resourceVersion) shows every
    /// write; writes it shows are forgotten.
    pub fn caught_up(&self, deployment: &Key, cached_rv: impl Fn(&str) -> Option<u64>) -> bool {
        let mut all = self.lock();
        let Some(writes) = all.get_mut(deployment) else {
            return true;
        };
        let now = Instant::now();
        writes.retain(|name, (rv, at)| {
            now.duration_since(*at) < EXPIRY && cached_rv(name).is_none_or(|cached| cached < *rv)
        });
        let done = writes.is_empty();
        if done {
            all.remove(deployment);
        }
        done
    }

    pub fn forget(&self, deployment: &Key) {
        self.lock().remove(deployment);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Writes> {
        self.by_deployment
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_for_the_cache_to_reach_the_written_version() {
        let w = Written::default();
        let d = Key::new("ns", "web");
        w.record(&d, "web-abc", Some("12"));
        assert!(!w.caught_up(&d, |_| None), "not cached yet");
        assert!(!w.caught_up(&d, |_| Some(11)), "older version cached");
        assert!(w.caught_up(&d, |_| Some(12)));
        assert!(w.caught_up(&d, |_| None), "forgotten once seen");
    }
}
