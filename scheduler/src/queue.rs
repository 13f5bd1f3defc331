//! The scheduling queue: pods waiting for a decision. Active pods are tried in arrival order;
//! pods whose binding failed wait out a backoff (1 s doubling to 10 s); pods no node fits wait
//! as unschedulable until the cluster changes (a node added or updated, a pod gone, a
//! RuntimeClass changed) or a minute passes, and then still honour their backoff.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Pod;

use crate::pod_info::PodKey;

const INITIAL_BACKOFF: Duration = Duration::from_secs(1);
const MAX_BACKOFF: Duration = Duration::from_secs(10);
/// Unschedulable pods are retried after this long even if nothing seemed to change.
const UNSCHEDULABLE_FLUSH: Duration = Duration::from_secs(60);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Active,
    /// Waiting until the instant; then active.
    Backoff(Instant),
    /// Waiting for a cluster change; `since` bounds the wait, `ready` is the backoff end.
    Unschedulable {
        since: Instant,
        ready: Instant,
    },
    /// Popped and being scheduled or bound.
    InFlight,
}

struct Entry {
    pod: Arc<Pod>,
    attempts: u32,
    state: State,
}

#[derive(Default)]
pub struct SchedulingQueue {
    entries: HashMap<PodKey, Entry>,
    /// May hold keys whose entry moved on; `pop` skips those.
    active: VecDeque<PodKey>,
    backoff: BinaryHeap<Reverse<(Instant, PodKey)>>,
}

pub fn backoff_for(attempts: u32) -> Duration {
    let doublings = attempts.saturating_sub(1).min(16);
    (INITIAL_BACKOFF * 2u32.pow(doublings)).min(MAX_BACKOFF)
}

impl SchedulingQueue {
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// A new or changed pending pod. A change to what scheduling reads may make an
    /// unschedulable pod fit, so it is tried again (after its backoff); a status-only change
    /// (such as this scheduler's own PodScheduled condition) is not.
    pub fn upsert(&mut self, key: PodKey, pod: Arc<Pod>, now: Instant) {
        match self.entries.get_mut(&key) {
            Some(entry) => {
                let relevant = entry.pod.spec != pod.spec
                    || entry.pod.metadata.labels != pod.metadata.labels
                    || entry.pod.metadata.annotations != pod.metadata.annotations;
                entry.pod = pod;
                if relevant && let State::Unschedulable { ready, .. } = entry.state {
                    self.wake(key, ready, now);
                }
            }
            None => {
                self.entries.insert(
                    key.clone(),
                    Entry {
                        pod,
                        attempts: 0,
                        state: State::Active,
                    },
                );
                self.active.push_back(key);
            }
        }
    }

    /// The pod is gone, or bound.
    pub fn remove(&mut self, key: &str) {
        self.entries.remove(key);
    }

    /// Up to `max` pods to schedule now; they are in flight until `remove` or `requeue`.
    pub fn pop(&mut self, max: usize, now: Instant) -> Vec<(PodKey, Arc<Pod>)> {
        self.release_backoffs(now);
        let mut out = Vec::new();
        while out.len() < max {
            let Some(key) = self.active.pop_front() else {
                break;
            };
            if let Some(entry) = self.entries.get_mut(&key)
                && entry.state == State::Active
            {
                entry.state = State::InFlight;
                out.push((key, Arc::clone(&entry.pod)));
            }
        }
        out
    }

    /// A failed attempt: binding errors back off, fit failures wait for a cluster change.
    pub fn requeue(&mut self, key: &str, unschedulable: bool, now: Instant) {
        let Some(entry) = self.entries.get_mut(key) else {
            return;
        };
        if entry.state != State::InFlight {
            return;
        }
        entry.attempts += 1;
        let ready = now + backoff_for(entry.attempts);
        if unschedulable {
            entry.state = State::Unschedulable { since: now, ready };
        } else {
            entry.state = State::Backoff(ready);
            self.backoff.push(Reverse((ready, key.to_string())));
        }
    }

    /// Something changed that may let unschedulable pods fit.
    pub fn cluster_changed(&mut self, now: Instant) {
        let waiting: Vec<(PodKey, Instant)> = self
            .entries
            .iter()
            .filter_map(|(key, e)| match e.state {
                State::Unschedulable { ready, .. } => Some((key.clone(), ready)),
                _ => None,
            })
            .collect();
        for (key, ready) in waiting {
            self.wake(key, ready, now);
        }
    }

    /// Moves due backoffs and long-waiting unschedulable pods to active.
    pub fn release_backoffs(&mut self, now: Instant) {
        while let Some(Reverse((ready, _))) = self.backoff.peek() {
            if *ready > now {
                break;
            }
            let Some(Reverse((ready, key))) = self.backoff.pop() else {
                break;
            };
            if let Some(entry) = self.entries.get_mut(&key)
                && entry.state == State::Backoff(ready)
            {
                entry.state = State::Active;
                self.active.push_back(key);
            }
        }
        let stale: Vec<(PodKey, Instant)> = self
            .entries
            .iter()
            .filter_map(|(key, e)| match e.state {
                State::Unschedulable { since, ready } if now >= since + UNSCHEDULABLE_FLUSH => {
                    Some((key.clone(), ready))
                }
                _ => None,
            })
            .collect();
        for (key, ready) in stale {
            self.wake(key, ready, now);
        }
    }

    /// When `pop` may next have something that is not active now.
    pub fn next_wakeup(&self) -> Option<Instant> {
        let backoff = self.backoff.peek().map(|Reverse((ready, _))| *ready);
        let flush = self
            .entries
            .values()
            .filter_map(|e| match e.state {
                State::Unschedulable { since, .. } => Some(since + UNSCHEDULABLE_FLUSH),
                _ => None,
            })
            .min();
        backoff.into_iter().chain(flush).min()
    }

    /// Keeps only the pods `keep` accepts (after a relist).
    pub fn retain(&mut self, keep: impl Fn(&str) -> bool) {
        self.entries.retain(|key, _| keep(key));
    }

    fn wake(&mut self, key: PodKey, ready: Instant, now: Instant) {
        let Some(entry) = self.entries.get_mut(&key) else {
            return;
        };
        if ready <= now {
            entry.state = State::Active;
            self.active.push_back(key);
        } else {
            entry.state = State::Backoff(ready);
            self.backoff.push(Reverse((ready, key)));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod() -> Arc<Pod> {
        Arc::new(Pod::default())
    }

    fn keys(popped: &[(PodKey, Arc<Pod>)]) -> Vec<&str> {
        popped.iter().map(|(k, _)| k.as_str()).collect()
    }

    #[test]
    fn backoff_doubles_to_ten_seconds() {
        assert_eq!(backoff_for(1), Duration::from_secs(1));
        assert_eq!(backoff_for(2), Duration::from_secs(2));
        assert_eq!(backoff_for(4), Duration::from_secs(8));
        assert_eq!(backoff_for(5), Duration::from_secs(10));
        assert_eq!(backoff_for(100), Duration::from_secs(10));
    }

    #[test]
    fn pops_in_order_once() {
        let now = Instant::now();
        let mut q = SchedulingQueue::default();
        q.upsert("a".into(), pod(), now);
        q.upsert("b".into(), pod(), now);
        q.upsert("a".into(), pod(), now);
        assert_eq!(keys(&q.pop(10, now)), vec!["a", "b"]);
        assert!(q.pop(10, now).is_empty());
        q.remove("a");
        assert_eq!(q.len(), 1);
    }

    #[test]
    fn binding_failures_back_off() {
        let now = Instant::now();
        let mut q = SchedulingQueue::default();
        q.upsert("a".into(), pod(), now);
        q.pop(1, now);
        q.requeue("a", false, now);
        assert!(q.pop(1, now).is_empty());
        assert_eq!(q.next_wakeup(), Some(now + Duration::from_secs(1)));
        assert_eq!(keys(&q.pop(1, now + Duration::from_secs(1))), vec!["a"]);
        q.requeue("a", false, now);
        assert!(q.pop(1, now + Duration::from_secs(1)).is_empty());
        assert_eq!(keys(&q.pop(1, now + Duration::from_secs(2))), vec!["a"]);
    }

    #[test]
    fn unschedulable_pods_wait_for_a_cluster_change() {
        let now = Instant::now();
        let mut q = SchedulingQueue::default();
        q.upsert("a".into(), pod(), now);
        q.pop(1, now);
        q.requeue("a", true, now);
        let later = now + Duration::from_secs(5);
        assert!(q.pop(1, later).is_empty());
        q.cluster_changed(later);
        assert_eq!(keys(&q.pop(1, later)), vec!["a"]);
        // A change during the backoff waits for the backoff to end.
        q.requeue("a", true, later);
        q.cluster_changed(later);
        assert!(q.pop(1, later).is_empty());
        assert_eq!(keys(&q.pop(1, later + Duration::from_secs(2))), vec!["a"]);
    }

    #[test]
    fn only_spec_changes_wake_an_unschedulable_pod() {
        let now = Instant::now();
        let later = now + Duration::from_secs(5);
        let mut q = SchedulingQueue::default();
        q.upsert("a".into(), pod(), now);
        q.pop(1, now);
        q.requeue("a", true, now);
        let status_only = Pod {
            status: Some(Default::default()),
            ..Pod::default()
        };
        q.upsert("a".into(), Arc::new(status_only), later);
        assert!(q.pop(1, later).is_empty());
        let changed = Pod {
            spec: Some(Default::default()),
            ..Pod::default()
        };
        q.upsert("a".into(), Arc::new(changed), later);
        assert_eq!(keys(&q.pop(1, later)), vec!["a"]);
    }

    #[test]
    fn unschedulable_pods_are_flushed_after_a_while() {
        let now = Instant::now();
        let mut q = SchedulingQueue::default();
        q.upsert("a".into(), pod(), now);
        q.pop(1, now);
        q.requeue("a", true, now);
        assert_eq!(q.next_wakeup(), Some(now + UNSCHEDULABLE_FLUSH));
        assert_eq!(keys(&q.pop(1, now + UNSCHEDULABLE_FLUSH)), vec!["a"]);
    }
}
