//! The scheduler's view of the cluster: nodes with running totals, and where every pod it
//! knows is placed. Pods this scheduler just picked a node for are *assumed* there until the
//! watch of bound pods confirms them, so that a burst of decisions never overcommits a node.

use std::collections::HashMap;

use k8s_openapi::api::core::v1::Node;

use crate::node_info::{NodeEntry, NodeSpec};
use crate::pod_info::{Footprint, PodKey};

#[derive(Debug, Clone)]
struct Placement {
    node: String,
    footprint: Footprint,
    /// Placed by this scheduler and not yet seen bound through the watch.
    assumed: bool,
}

#[derive(Debug, Default)]
pub struct ClusterCache {
    /// Contiguous for fast scans; `index` finds a node's slot by name.
    nodes: Vec<NodeEntry>,
    index: HashMap<String, usize>,
    pods: HashMap<PodKey, Placement>,
    /// Nodes with a Node object, the denominator of "0/N nodes are available".
    known_nodes: usize,
}

impl ClusterCache {
    pub fn nodes(&self) -> &[NodeEntry] {
        &self.nodes
    }

    pub fn node_count(&self) -> usize {
        self.known_nodes
    }

    pub fn is_placed(&self, pod: &str) -> bool {
        self.pods.contains_key(pod)
    }

    /// Adds or refreshes a node, keeping the totals of the pods already on it; `true` when
    /// anything the filters read changed (a heartbeat alone changes nothing).
    pub fn upsert_node(&mut self, node: &Node) -> bool {
        let spec = NodeSpec::of(node);
        let slot = self.slot(&spec.name);
        let entry = &mut self.nodes[slot];
        if entry.spec.as_ref() == Some(&spec) {
            return false;
        }
        if entry.spec.is_none() {
            self.known_nodes += 1;
        }
        entry.spec = Some(spec);
        true
    }

    pub fn remove_node(&mut self, name: &str) {
        let Some(&slot) = self.index.get(name) else {
            return;
        };
        if self.nodes[slot].spec.take().is_some() {
            self.known_nodes -= 1;
        }
        self.drop_if_unused(name);
    }

    /// Names of nodes with a Node object, for reconciling after a relist.
    pub fn node_names(&self) -> Vec<String> {
        self.nodes
            .iter()
            .filter_map(|n| n.spec.as_ref().map(|s| s.name.clone()))
            .collect()
    }

    /// Records this scheduler's decision before the binding is written.
    pub fn assume(&mut self, pod: PodKey, node: &str, footprint: Footprint) {
        self.place(pod, node, footprint, true);
    }

    /// Drops an assumed placement whose binding failed; a confirmed one stays.
    pub fn forget(&mut self, pod: &str) {
        if self.pods.get(pod).is_some_and(|p| p.assumed) {
            self.remove_pod(pod);
        }
    }

    /// A pod the watch shows bound to `node`: confirms an assumption or records it anew.
    pub fn observe_bound(&mut self, pod: PodKey, node: &str, footprint: Footprint) {
        if let Some(existing) = self.pods.get_mut(&pod)
            && existing.node == node
            && existing.footprint == footprint
        {
            existing.assumed = false;
            return;
        }
        self.place(pod, node, footprint, false);
    }

    /// A bound pod that is gone (deleted, or finished).
    pub fn remove_pod(&mut self, pod: &str) {
        let Some(placement) = self.pods.remove(pod) else {
            return;
        };
        if let Some(&slot) = self.index.get(&placement.node) {
            self.nodes[slot].usage.remove(&placement.footprint);
            self.drop_if_unused(&placement.node);
        }
    }

    /// Confirmed pods, for reconciling after a relist of bound pods.
    pub fn confirmed_pods(&self) -> Vec<PodKey> {
        self.pods
            .iter()
            .filter(|(_, p)| !p.assumed)
            .map(|(k, _)| k.clone())
            .collect()
    }

    fn place(&mut self, pod: PodKey, node: &str, footprint: Footprint, assumed: bool) {
        self.remove_pod(&pod);
        let slot = self.slot(node);
        self.nodes[slot].usage.add(&footprint);
        self.pods.insert(
            pod,
            Placement {
                node: node.to_string(),
                footprint,
                assumed,
            },
        );
    }

    fn slot(&mut self, name: &str) -> usize {
        if let Some(&slot) = self.index.get(name) {
            return slot;
        }
        self.nodes.push(NodeEntry {
            name: name.to_string(),
            ..NodeEntry::default()
        });
        let slot = self.nodes.len() - 1;
        self.index.insert(name.to_string(), slot);
        slot
    }

    /// An entry with neither a Node object nor pods goes; the last entry fills its slot.
    fn drop_if_unused(&mut self, name: &str) {
        let Some(&slot) = self.index.get(name) else {
            return;
        };
        let entry = &self.nodes[slot];
        if entry.spec.is_some() || !entry.usage.is_empty() {
            return;
        }
        self.index.remove(name);
        self.nodes.swap_remove(slot);
        if let Some(moved) = self.nodes.get(slot) {
            self.index.insert(moved.name.clone(), slot);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::node_info::tests::node;
    use crate::resources::{PodRequests, Resources};

    fn footprint(milli_cpu: i64) -> Footprint {
        let r = Resources {
            milli_cpu,
            memory: 0,
        };
        Footprint {
            requests: PodRequests {
                exact: r,
                non_zero: r,
            },
            ..Footprint::default()
        }
    }

    fn requested(cache: &ClusterCache, node: &str) -> i64 {
        cache
            .nodes()
            .iter()
            .find(|n| n.name == node)
            .map_or(-1, |n| n.usage.requested.milli_cpu)
    }

    #[test]
    fn confirmation_does_not_count_twice_and_confirmed_pods_survive_forget() {
        let mut cache = ClusterCache::default();
        cache.upsert_node(&node("a", "4", "4Gi"));
        cache.assume("ns/p".into(), "a", footprint(100));
        cache.observe_bound("ns/p".into(), "a", footprint(100));
        assert_eq!(requested(&cache, "a"), 100);
        cache.forget("ns/p");
        assert_eq!(requested(&cache, "a"), 100);
        cache.remove_pod("ns/p");
        assert_eq!(requested(&cache, "a"), 0);
    }

    #[test]
    fn a_pod_seen_elsewhere_moves() {
        let mut cache = ClusterCache::default();
        cache.upsert_node(&node("a", "4", "4Gi"));
        cache.upsert_node(&node("b", "4", "4Gi"));
        cache.assume("ns/p".into(), "a", footprint(100));
        cache.observe_bound("ns/p".into(), "b", footprint(100));
        assert_eq!(requested(&cache, "a"), 0);
        assert_eq!(requested(&cache, "b"), 100);
    }

    #[test]
    fn pods_on_unknown_nodes_count_once_the_node_appears() {
        let mut cache = ClusterCache::default();
        cache.observe_bound("ns/p".into(), "late", footprint(300));
        assert_eq!(cache.node_count(), 0);
        assert!(cache.upsert_node(&node("other", "1", "1Gi")));
        assert!(cache.upsert_node(&node("late", "4", "4Gi")));
        assert!(!cache.upsert_node(&node("late", "4", "4Gi")));
        assert_eq!(cache.node_count(), 2);
        assert_eq!(requested(&cache, "late"), 300);
        cache.remove_node("late");
        assert_eq!(cache.node_count(), 1);
        assert_eq!(requested(&cache, "late"), 300);
        cache.remove_pod("ns/p");
        assert_eq!(requested(&cache, "late"), -1);
        assert_eq!(requested(&cache, "other"), 0);
    }
}
