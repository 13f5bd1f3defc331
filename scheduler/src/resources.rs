//! What a pod asks for and what a node offers, in the units the filters compare.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Container, Node, PodSpec};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use rkube_api::quantity::{parse_milli, parse_units};

/// Scoring counts a container without requests as this much, so that such pods still spread.
const DEFAULT_MILLI_CPU: i64 = 100;
const DEFAULT_MEMORY: i64 = 200 << 20;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Resources {
    pub milli_cpu: i64,
    pub memory: i64,
}

impl Resources {
    pub fn add(&mut self, other: Resources) {
        self.milli_cpu = self.milli_cpu.saturating_add(other.milli_cpu);
        self.memory = self.memory.saturating_add(other.memory);
    }

    pub fn sub(&mut self, other: Resources) {
        self.milli_cpu = self.milli_cpu.saturating_sub(other.milli_cpu);
        self.memory = self.memory.saturating_sub(other.memory);
    }

    fn max(self, other: Resources) -> Resources {
        Resources {
            milli_cpu: self.milli_cpu.max(other.milli_cpu),
            memory: self.memory.max(other.memory),
        }
    }

    fn from_list(list: Option<&BTreeMap<String, Quantity>>) -> Resources {
        let get = |name: &str, parse: fn(&str) -> Option<i64>| {
            list.and_then(|l| l.get(name))
                .and_then(|q| parse(&q.0))
                .unwrap_or(0)
                .max(0)
        };
        Resources {
            milli_cpu: get("cpu", parse_milli),
            memory: get("memory", parse_units),
        }
    }
}

/// A pod's effective requests: what filters check, and the non-zero form scores use.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PodRequests {
    pub exact: Resources,
    pub non_zero: Resources,
}

impl PodRequests {
    /// Containers add up; init containers run one at a time (sidecars, with restartPolicy
    /// Always, keep running beside the later ones), so the pod needs the larger of the two;
    /// the RuntimeClass overhead comes on top.
    pub fn of(spec: &PodSpec) -> PodRequests {
        let mut exact = Resources::default();
        let mut non_zero = Resources::default();
        for container in &spec.containers {
            exact.add(container_requests(container));
            non_zero.add(non_zero_requests(container));
        }
        let mut sidecars = Resources::default();
        let mut sidecars_non_zero = Resources::default();
        let mut init_peak = Resources::default();
        let mut init_peak_non_zero = Resources::default();
        for container in spec.init_containers.iter().flatten() {
            let requests = container_requests(container);
            let requests_non_zero = non_zero_requests(container);
            if container.restart_policy.as_deref() == Some("Always") {
                sidecars.add(requests);
                sidecars_non_zero.add(requests_non_zero);
                init_peak = init_peak.max(sidecars);
                init_peak_non_zero = init_peak_non_zero.max(sidecars_non_zero);
            } else {
                let mut running = requests;
                running.add(sidecars);
                init_peak = init_peak.max(running);
                let mut running = requests_non_zero;
                running.add(sidecars_non_zero);
                init_peak_non_zero = init_peak_non_zero.max(running);
            }
        }
        exact.add(sidecars);
        non_zero.add(sidecars_non_zero);
        let overhead = Resources::from_list(spec.overhead.as_ref());
        let mut exact = exact.max(init_peak);
        let mut non_zero = non_zero.max(init_peak_non_zero);
        exact.add(overhead);
        non_zero.add(overhead);
        PodRequests { exact, non_zero }
    }
}

fn container_requests(container: &Container) -> Resources {
    Resources::from_list(
        container
            .resources
            .as_ref()
            .and_then(|r| r.requests.as_ref()),
    )
}

fn non_zero_requests(container: &Container) -> Resources {
    let requests = container
        .resources
        .as_ref()
        .and_then(|r| r.requests.as_ref());
    let has = |name: &str| requests.is_some_and(|r| r.contains_key(name));
    let exact = container_requests(container);
    Resources {
        milli_cpu: if has("cpu") {
            exact.milli_cpu
        } else {
            DEFAULT_MILLI_CPU
        },
        memory: if has("memory") {
            exact.memory
        } else {
            DEFAULT_MEMORY
        },
    }
}

/// What a node can give to pods.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Allocatable {
    pub resources: Resources,
    pub pods: i64,
}

impl Allocatable {
    pub fn of(node: &Node) -> Allocatable {
        let status = node.status.as_ref();
        // Allocatable falls back to capacity, as the kubelet reports both.
        let list = status
            .and_then(|s| s.allocatable.as_ref())
            .or_else(|| status.and_then(|s| s.capacity.as_ref()));
        Allocatable {
            resources: Resources::from_list(list),
            pods: list
                .and_then(|l| l.get("pods"))
                .and_then(|q| parse_units(&q.0))
                .unwrap_or(0),
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use k8s_openapi::api::core::v1::ResourceRequirements;

    use super::*;

    pub fn container(cpu: &str, memory: &str) -> Container {
        let mut requests = BTreeMap::new();
        if !cpu.is_empty() {
            requests.insert("cpu".to_string(), Quantity(cpu.into()));
        }
        if !memory.is_empty() {
            requests.insert("memory".to_string(), Quantity(memory.into()));
        }
        Container {
            name: "c".into(),
            resources: Some(ResourceRequirements {
                requests: Some(requests),
                ..ResourceRequirements::default()
            }),
            ..Container::default()
        }
    }

    #[test]
    fn containers_add_up_and_init_containers_take_the_max() {
        let spec = PodSpec {
            containers: vec![container("100m", "100Mi"), container("200m", "100Mi")],
            init_containers: Some(vec![container("1", "10Mi"), container("50m", "1Gi")]),
            ..PodSpec::default()
        };
        let r = PodRequests::of(&spec).exact;
        assert_eq!(r.milli_cpu, 1000);
        assert_eq!(r.memory, 1 << 30);
    }

    #[test]
    fn sidecars_run_beside_containers_and_overhead_adds() {
        let mut sidecar = container("100m", "0");
        sidecar.restart_policy = Some("Always".into());
        let spec = PodSpec {
            containers: vec![container("100m", "")],
            init_containers: Some(vec![sidecar, container("150m", "")]),
            overhead: Some(BTreeMap::from([(
                "cpu".to_string(),
                Quantity("10m".into()),
            )])),
            ..PodSpec::default()
        };
        let r = PodRequests::of(&spec);
        // Sidecar 100m beside the 150m init container beats 100m + 100m.
        assert_eq!(r.exact.milli_cpu, 260);
        assert_eq!(r.exact.memory, 0);
        assert_eq!(r.non_zero.memory, DEFAULT_MEMORY);
    }

    #[test]
    fn allocatable_reads_cpu_memory_and_pods() {
        let node = Node {
            status: Some(k8s_openapi::api::core::v1::NodeStatus {
                allocatable: Some(BTreeMap::from([
                    ("cpu".to_string(), Quantity("4".into())),
                    ("memory".to_string(), Quantity("8Gi".into())),
                    ("pods".to_string(), Quantity("110".into())),
                ])),
                ..Default::default()
            }),
            ..Node::default()
        };
        let a = Allocatable::of(&node);
        assert_eq!(a.resources.milli_cpu, 4000);
        assert_eq!(a.resources.memory, 8 << 30);
        assert_eq!(a.pods, 110);
    }
}
