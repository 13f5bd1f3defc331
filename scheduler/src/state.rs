//! The state the watches feed and the scheduling loop reads: the cluster cache and the queue,
//! behind one lock (held for one event or one decision at a time).

use std::collections::HashSet;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use k8s_openapi::api::core::v1::{Node, Pod};
use tokio::sync::Notify;

use crate::cache::ClusterCache;
use crate::pod_info::{Footprint, PodKey, key_of, wants_scheduling};
use crate::queue::SchedulingQueue;

#[derive(Default)]
pub struct State {
    pub cache: ClusterCache,
    pub queue: SchedulingQueue,
}

/// State plus the signal that wakes the scheduling loop.
pub struct Shared {
    state: Mutex<State>,
    pub wake: Notify,
    scheduler_name: String,
}

impl Shared {
    pub fn new(scheduler_name: &str) -> Arc<Shared> {
        Arc::new(Shared {
            state: Mutex::new(State::default()),
            wake: Notify::new(),
            scheduler_name: scheduler_name.to_string(),
        })
    }

    /// The lock is never held across an await or a panic-prone call, so poisoning only
    /// follows a bug elsewhere; the state is still consistent per event, so keep going.
    pub fn lock(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// An unbound pod from the watch: queue it if it is ours to schedule.
    pub fn pending_pod(&self, pod: Pod) {
        let key = key_of(&pod);
        let wanted = wants_scheduling(&pod, &self.scheduler_name);
        let mut state = self.lock();
        if wanted && !state.cache.is_placed(&key) {
            state.queue.upsert(key, Arc::new(pod), Instant::now());
            drop(state);
            self.wake.notify_one();
        } else {
            state.queue.remove(&key);
        }
    }

    pub fn pending_pod_gone(&self, pod: &Pod) {
        self.lock().queue.remove(&key_of(pod));
    }

    /// After a relist of unbound pods: drop queued pods the list no longer has.
    pub fn pending_pods_listed(&self, listed: &HashSet<PodKey>) {
        self.lock().queue.retain(|key| listed.contains(key));
    }

    /// A pod the watch shows bound: confirm or record its placement.
    pub fn bound_pod(&self, pod: &Pod) {
        let Some(node) = pod.spec.as_ref().and_then(|s| s.node_name.as_deref()) else {
            return;
        };
        let key = key_of(pod);
        let mut state = self.lock();
        state.queue.remove(&key);
        state.cache.observe_bound(key, node, Footprint::of(pod));
    }

    /// A bound pod left (deleted or finished): its room may fit a waiting pod.
    pub fn bound_pod_gone(&self, pod: &Pod) {
        let mut state = self.lock();
        state.cache.remove_pod(&key_of(pod));
        state.queue.cluster_changed(Instant::now());
        drop(state);
        self.wake.notify_one();
    }

    /// After a relist of bound pods: drop confirmed placements the list no longer has.
    pub fn bound_pods_listed(&self, listed: &HashSet<PodKey>) {
        let mut state = self.lock();
        for key in state.cache.confirmed_pods() {
            if !listed.contains(&key) {
                state.cache.remove_pod(&key);
            }
        }
        state.queue.cluster_changed(Instant::now());
        drop(state);
        self.wake.notify_one();
    }

    /// A node added or changed; waiting pods are retried only if what filters read changed.
    pub fn node(&self, node: &Node) {
        let mut state = self.lock();
        if state.cache.upsert_node(node) {
            state.queue.cluster_changed(Instant::now());
            drop(state);
            self.wake.notify_one();
        }
    }

    pub fn node_gone(&self, name: &str) {
        self.lock().cache.remove_node(name);
    }

    /// After a relist of nodes: drop nodes the list no longer has.
    pub fn nodes_listed(&self, listed: &HashSet<String>) {
        let mut state = self.lock();
        for name in state.cache.node_names() {
            if !listed.contains(&name) {
                state.cache.remove_node(&name);
            }
        }
    }

    /// RuntimeClasses changed: a pod waiting on a missing class may now resolve.
    pub fn runtime_classes_changed(&self) {
        self.lock().queue.cluster_changed(Instant::now());
        self.wake.notify_one();
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::PodSpec;

    use super::*;
    use crate::node_info::tests::node;
    use crate::resources::tests::container;

    fn pod(name: &str, node_name: Option<&str>) -> Pod {
        let mut pod = Pod {
            spec: Some(PodSpec {
                containers: vec![container("1", "1Gi")],
                node_name: node_name.map(str::to_string),
                ..PodSpec::default()
            }),
            ..Pod::default()
        };
        pod.metadata.name = Some(name.into());
        pod.metadata.namespace = Some("ns".into());
        pod
    }

    #[test]
    fn pending_pods_queue_and_bound_pods_count() {
        let shared = Shared::new("default-scheduler");
        shared.node(&node("n", "2", "2Gi"));
        shared.pending_pod(pod("a", None));
        assert_eq!(shared.lock().queue.len(), 1);
        shared.bound_pod(&pod("a", Some("n")));
        let state = shared.lock();
        assert!(state.queue.is_empty());
        assert_eq!(state.cache.nodes()[0].usage.requested.milli_cpu, 1000);
    }

    #[test]
    fn assumed_pods_are_not_requeued_by_stale_events() {
        let shared = Shared::new("default-scheduler");
        shared.node(&node("n", "2", "2Gi"));
        let p = pod("a", None);
        shared
            .lock()
            .cache
            .assume(key_of(&p), "n", Footprint::of(&p));
        shared.pending_pod(p);
        assert!(shared.lock().queue.is_empty());
    }

    #[test]
    fn relists_drop_what_is_gone() {
        let shared = Shared::new("default-scheduler");
        shared.node(&node("n", "2", "2Gi"));
        shared.node(&node("m", "2", "2Gi"));
        shared.bound_pod(&pod("a", Some("n")));
        shared.pending_pod(pod("b", None));
        shared.bound_pods_listed(&HashSet::new());
        shared.pending_pods_listed(&HashSet::new());
        shared.nodes_listed(&HashSet::from(["m".to_string()]));
        let state = shared.lock();
        assert!(state.queue.is_empty());
        assert_eq!(state.cache.node_count(), 1);
        assert_eq!(state.cache.node_names(), vec!["m".to_string()]);
    }
}
