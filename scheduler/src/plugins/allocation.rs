//! Resource scores over cpu and memory, counting the pod as already placed: least-allocated
//! prefers emptier nodes, balanced prefers nodes whose cpu and memory fill evenly. Containers
//! without requests count with the defaults (`PodRequests::non_zero`) so that they spread.

use super::MAX_SCORE;
use crate::node_info::{NodeSpec, Usage};
use crate::pod_info::PodInfo;
use crate::resources::Resources;

fn after_placing(pod: &PodInfo, usage: &Usage) -> Resources {
    let mut requested = usage.non_zero_requested;
    requested.add(pod.footprint.requests.non_zero);
    requested
}

pub fn least_allocated(pod: &PodInfo, node: &NodeSpec, usage: &Usage) -> i64 {
    let requested = after_placing(pod, usage);
    let capacity = node.allocatable.resources;
    let free_share = |requested: i64, capacity: i64| {
        if capacity <= 0 || requested > capacity {
            0
        } else {
            (capacity - requested) * MAX_SCORE / capacity
        }
    };
    (free_share(requested.milli_cpu, capacity.milli_cpu)
        + free_share(requested.memory, capacity.memory))
        / 2
}

pub fn balanced(pod: &PodInfo, node: &NodeSpec, usage: &Usage) -> i64 {
    let requested = after_placing(pod, usage);
    let capacity = node.allocatable.resources;
    let fraction = |requested: i64, capacity: i64| {
        if capacity <= 0 {
            1.0
        } else {
            (requested as f64 / capacity as f64).min(1.0)
        }
    };
    let cpu = fraction(requested.milli_cpu, capacity.milli_cpu);
    let memory = fraction(requested.memory, capacity.memory);
    // The standard deviation of two values is half their distance.
    let deviation = (cpu - memory).abs() / 2.0;
    ((1.0 - deviation) * MAX_SCORE as f64) as i64
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pod_info::Footprint;
    use crate::resources::{Allocatable, PodRequests};

    fn pod(milli_cpu: i64, memory: i64) -> PodInfo {
        let r = Resources { milli_cpu, memory };
        PodInfo {
            footprint: Footprint {
                requests: PodRequests {
                    exact: r,
                    non_zero: r,
                },
                ..Footprint::default()
            },
            ..PodInfo::default()
        }
    }

    fn node() -> NodeSpec {
        NodeSpec {
            allocatable: Allocatable {
                resources: Resources {
                    milli_cpu: 1000,
                    memory: 1000,
                },
                pods: 10,
            },
            ..NodeSpec::default()
        }
    }

    #[test]
    fn emptier_nodes_score_higher() {
        let empty = Usage::default();
        let mut busy = Usage::default();
        busy.add(&pod(500, 500).footprint);
        assert_eq!(least_allocated(&pod(100, 100), &node(), &empty), 90);
        assert_eq!(least_allocated(&pod(100, 100), &node(), &busy), 40);
        assert_eq!(least_allocated(&pod(2000, 2000), &node(), &empty), 0);
    }

    #[test]
    fn even_fill_scores_higher() {
        let usage = Usage::default();
        assert_eq!(balanced(&pod(500, 500), &node(), &usage), 100);
        assert_eq!(balanced(&pod(1000, 0), &node(), &usage), 50);
    }
}
