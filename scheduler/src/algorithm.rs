//! One scheduling decision: filter nodes (a rotating sample in large clusters, as
//! kube-scheduler's percentageOfNodesToScore), score the feasible ones, pick the best with a
//! random tie-break.

use std::hash::{BuildHasher, RandomState};

use crate::cache::ClusterCache;
use crate::fit_error::FitError;
use crate::node_info::NodeEntry;
use crate::plugins::{self, Candidate, Reason};

/// Below this many nodes every node is considered.
const MIN_FEASIBLE_NODES: usize = 100;
/// The sample never shrinks below this share of the cluster.
const MIN_PERCENTAGE: usize = 5;

/// How many feasible nodes are enough to pick from: all of a small cluster, then an adaptive
/// share (50% less 1% per 125 nodes, at least 5%) of a large one.
pub fn feasible_nodes_to_find(nodes: usize) -> usize {
    if nodes < MIN_FEASIBLE_NODES {
        return nodes;
    }
    let percentage = 50usize.saturating_sub(nodes / 125).max(MIN_PERCENTAGE);
    (nodes * percentage / 100).max(MIN_FEASIBLE_NODES)
}

pub struct Picker {
    /// Where the next scan starts, so that successive pods look at different nodes first.
    cursor: usize,
    rng: u64,
}

impl Default for Picker {
    fn default() -> Self {
        Picker {
            cursor: 0,
            rng: RandomState::new().hash_one(0u8) | 1,
        }
    }
}

impl Picker {
    pub fn pick(
        &mut self,
        cache: &ClusterCache,
        candidate: &Candidate<'_>,
    ) -> Result<String, FitError> {
        let nodes = cache.nodes();
        let wanted = feasible_nodes_to_find(cache.node_count());
        let mut feasible: Vec<&NodeEntry> = Vec::with_capacity(wanted.min(nodes.len()));
        let mut reasons: Vec<Reason> = Vec::new();
        let mut visited = 0;
        for offset in 0..nodes.len() {
            if feasible.len() >= wanted {
                break;
            }
            visited += 1;
            let entry = &nodes[(self.cursor + offset) % nodes.len()];
            if entry.spec.is_none() {
                continue;
            }
            match plugins::filter(candidate, entry) {
                Ok(()) => feasible.push(entry),
                Err(mut refused) => reasons.append(&mut refused),
            }
        }
        if !nodes.is_empty() {
            self.cursor = (self.cursor + visited) % nodes.len();
        }
        if feasible.is_empty() {
            return Err(FitError::from_reasons(cache.node_count(), &reasons));
        }
        let scores = plugins::score(candidate.pod, &feasible);
        Ok(self.best(&feasible, &scores).to_string())
    }

    /// The highest score; among equals each is equally likely (reservoir sampling).
    fn best<'a>(&mut self, nodes: &[&'a NodeEntry], scores: &[i64]) -> &'a str {
        let mut best = 0;
        let mut ties = 0u64;
        for (i, score) in scores.iter().enumerate() {
            if *score > scores[best] {
                best = i;
                ties = 1;
            } else if *score == scores[best] {
                ties += 1;
                if self.next_random().is_multiple_of(ties) {
                    best = i;
                }
            }
        }
        &nodes[best].name
    }

    /// xorshift64*: plenty for tie-breaks, no dependency.
    fn next_random(&mut self) -> u64 {
        self.rng ^= self.rng >> 12;
        self.rng ^= self.rng << 25;
        self.rng ^= self.rng >> 27;
        self.rng.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;
    use crate::node_info::tests::node;
    use crate::pod_info::PodInfo;
    use crate::resources::tests::container;

    fn pod(cpu: &str, memory: &str) -> PodInfo {
        let mut p = k8s_openapi::api::core::v1::Pod::default();
        p.metadata.name = Some("p".into());
        p.spec = Some(k8s_openapi::api::core::v1::PodSpec {
            containers: vec![container(cpu, memory)],
            ..Default::default()
        });
        PodInfo::of(&p)
    }

    #[test]
    fn sample_size_follows_kube_scheduler() {
        assert_eq!(feasible_nodes_to_find(3), 3);
        assert_eq!(feasible_nodes_to_find(100), 100);
        assert_eq!(feasible_nodes_to_find(1000), 420);
        assert_eq!(feasible_nodes_to_find(5000), 5000 * 10 / 100);
        assert_eq!(feasible_nodes_to_find(100_000), 5000);
    }

    #[test]
    fn prefers_the_emptier_node() {
        let mut cache = ClusterCache::default();
        cache.upsert_node(&node("small", "1", "1Gi"));
        cache.upsert_node(&node("big", "8", "16Gi"));
        let info = pod("500m", "512Mi");
        let candidate = Candidate {
            pod: &info,
            handler: "runc",
        };
        let mut picker = Picker::default();
        for _ in 0..5 {
            assert_eq!(picker.pick(&cache, &candidate).unwrap(), "big");
        }
    }

    #[test]
    fn ties_break_randomly() {
        let mut cache = ClusterCache::default();
        for name in ["a", "b", "c"] {
            cache.upsert_node(&node(name, "4", "4Gi"));
        }
        let info = pod("100m", "100Mi");
        let candidate = Candidate {
            pod: &info,
            handler: "runc",
        };
        let mut picker = Picker::default();
        let chosen: HashSet<String> = (0..60)
            .map(|_| picker.pick(&cache, &candidate).unwrap())
            .collect();
        assert_eq!(chosen.len(), 3);
    }

    #[test]
    fn assumed_pods_fill_nodes_and_the_error_counts_reasons() {
        let mut cache = ClusterCache::default();
        cache.upsert_node(&node("a", "1", "1Gi"));
        let info = pod("600m", "100Mi");
        let candidate = Candidate {
            pod: &info,
            handler: "runc",
        };
        let mut picker = Picker::default();
        let first = picker.pick(&cache, &candidate).unwrap();
        cache.assume("ns/one".into(), &first, info.footprint.clone());
        let err = picker.pick(&cache, &candidate).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("0/1 nodes are available: 1 Insufficient cpu.")
        );
        cache.forget("ns/one");
        assert_eq!(picker.pick(&cache, &candidate).unwrap(), "a");
    }
}
