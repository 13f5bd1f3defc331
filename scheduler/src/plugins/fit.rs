//! Resources: the pod's requests must fit in the node's allocatable minus what the pods
//! already on it (bound, or assumed by this scheduler) request. Every short resource counts.

use super::Reason;
use crate::node_info::{NodeSpec, Usage};
use crate::pod_info::PodInfo;

pub fn filter(pod: &PodInfo, node: &NodeSpec, usage: &Usage) -> Result<(), Vec<Reason>> {
    let mut reasons = Vec::new();
    if usage.pods + 1 > node.allocatable.pods {
        reasons.push(Reason::TooManyPods);
    }
    let wanted = pod.footprint.requests.exact;
    let free = node.allocatable.resources;
    if wanted.milli_cpu > 0 && usage.requested.milli_cpu + wanted.milli_cpu > free.milli_cpu {
        reasons.push(Reason::Insufficient("cpu"));
    }
    if wanted.memory > 0 && usage.requested.memory + wanted.memory > free.memory {
        reasons.push(Reason::Insufficient("memory"));
    }
    if reasons.is_empty() {
        Ok(())
    } else {
        Err(reasons)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pod_info::Footprint;
    use crate::resources::{Allocatable, PodRequests, Resources};

    fn pod(milli_cpu: i64, memory: i64) -> PodInfo {
        let exact = Resources { milli_cpu, memory };
        PodInfo {
            footprint: Footprint {
                requests: PodRequests {
                    exact,
                    non_zero: exact,
                },
                ..Footprint::default()
            },
            ..PodInfo::default()
        }
    }

    fn node(milli_cpu: i64, memory: i64, pods: i64) -> NodeSpec {
        NodeSpec {
            allocatable: Allocatable {
                resources: Resources { milli_cpu, memory },
                pods,
            },
            ..NodeSpec::default()
        }
    }

    #[test]
    fn requests_must_fit_what_is_left() {
        let n = node(1000, 1000, 2);
        let mut usage = Usage::default();
        assert_eq!(filter(&pod(600, 600), &n, &usage), Ok(()));
        usage.add(&pod(600, 600).footprint);
        assert_eq!(
            filter(&pod(600, 600), &n, &usage),
            Err(vec![
                Reason::Insufficient("cpu"),
                Reason::Insufficient("memory")
            ])
        );
        assert_eq!(
            filter(&pod(100, 600), &n, &usage),
            Err(vec![Reason::Insufficient("memory")])
        );
        usage.add(&pod(0, 0).footprint);
        assert_eq!(
            filter(&pod(0, 0), &n, &usage),
            Err(vec![Reason::TooManyPods])
        );
    }
}
