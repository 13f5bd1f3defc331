//! Writes a controller made but its cache has not shown yet. Without them a reconcile that
//! runs before the watch delivers the pods it just created would create them again.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::queue::Key;

/// How long an unobserved write is waited for before the cache is trusted again.
const EXPIRY: Duration = Duration::from_secs(60);

#[derive(Default)]
struct Pending {
    /// Names of objects created, not yet in the cache.
    created: HashMap<String, Instant>,
    /// Uids of objects deleted, still in the cache without a deletionTimestamp.
    deleted: HashMap<String, Instant>,
}

#[derive(Default)]
pub struct Expectations {
    pending: Mutex<HashMap<Key, Pending>>,
}

impl Expectations {
    pub fn created(&self, owner: &Key, name: String) {
        self.with(owner, |p| {
            p.created.insert(name, Instant::now());
        });
    }

    pub fn deleted(&self, owner: &Key, uid: String) {
        self.with(owner, |p| {
            p.deleted.insert(uid, Instant::now());
        });
    }

    pub fn forget(&self, owner: &Key) {
        self.pending
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(owner);
    }

    /// Drops what the cache now shows (`seen_name` says a name is cached, `still_live` that a
    /// uid is cached and not being deleted) and tells whether anything is still awaited.
    pub fn satisfied(
        &self,
        owner: &Key,
        seen_name: impl Fn(&str) -> bool,
        still_live: impl Fn(&str) -> bool,
    ) -> bool {
        let now = Instant::now();
        let fresh = |at: &Instant| now.duration_since(*at) < EXPIRY;
        self.with(owner, |p| {
            p.created.retain(|name, at| fresh(at) && !seen_name(name));
            p.deleted.retain(|uid, at| fresh(at) && still_live(uid));
            p.created.is_empty() && p.deleted.is_empty()
        })
    }

    fn with<T>(&self, owner: &Key, f: impl FnOnce(&mut Pending) -> T) -> T {
        let mut pending = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
        let entry = pending.entry(owner.clone()).or_default();
        let out = f(entry);
        if entry.created.is_empty() && entry.deleted.is_empty() {
            pending.remove(owner);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unobserved_writes_block_until_seen() {
        let e = Expectations::default();
        let rs = Key::new("ns", "rs");
        e.created(&rs, "rs-abcde".into());
        e.deleted(&rs, "uid-1".into());
        assert!(!e.satisfied(&rs, |_| false, |_| true));
        assert!(!e.satisfied(&rs, |n| n == "rs-abcde", |_| true));
        assert!(e.satisfied(&rs, |_| false, |_| false));
        assert!(e.pending.lock().unwrap().is_empty());
    }
}
