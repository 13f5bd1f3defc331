//! A node as the scheduler keeps it: the parts of the Node object the filters read, and the
//! running totals of the pods placed on it (updated per pod, never recomputed by a scan).

use std::collections::{BTreeMap, HashMap};

use k8s_openapi::api::core::v1::{Node, Taint};

use crate::pod_info::{Footprint, HostPort};
use crate::resources::{Allocatable, Resources};

/// The handler of a node that reports none (a stock kubelet, a simulated node).
pub const DEFAULT_HANDLER: &str = "runc";

/// The scheduling-relevant view of a Node object.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NodeSpec {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub allocatable: Allocatable,
    pub ready: bool,
    pub unschedulable: bool,
    pub taints: Vec<Taint>,
    pub runtime_handlers: Vec<String>,
}

impl NodeSpec {
    pub fn of(node: &Node) -> NodeSpec {
        let status = node.status.as_ref();
        let ready = status
            .and_then(|s| s.conditions.as_ref())
            .into_iter()
            .flatten()
            .any(|c| c.type_ == "Ready" && c.status == "True");
        let mut runtime_handlers: Vec<String> = status
            .and_then(|s| s.runtime_handlers.as_ref())
            .into_iter()
            .flatten()
            .filter_map(|h| h.name.clone())
            .collect();
        if runtime_handlers.is_empty() {
            runtime_handlers.push(DEFAULT_HANDLER.into());
        }
        let spec = node.spec.as_ref();
        NodeSpec {
            name: node.metadata.name.clone().unwrap_or_default(),
            labels: node.metadata.labels.clone().unwrap_or_default(),
            allocatable: Allocatable::of(node),
            ready,
            unschedulable: spec.and_then(|s| s.unschedulable).unwrap_or(false),
            taints: spec.and_then(|s| s.taints.clone()).unwrap_or_default(),
            runtime_handlers,
        }
    }
}

/// The sum of what the pods on a node take.
#[derive(Debug, Clone, Default)]
pub struct Usage {
    pub requested: Resources,
    pub non_zero_requested: Resources,
    pub pods: i64,
    pub ports: HashMap<HostPort, u32>,
    /// Pods per controller uid.
    pub owners: HashMap<String, u32>,
}

impl Usage {
    pub fn add(&mut self, footprint: &Footprint) {
        self.requested.add(footprint.requests.exact);
        self.non_zero_requested.add(footprint.requests.non_zero);
        self.pods += 1;
        for port in &footprint.ports {
            *self.ports.entry(port.clone()).or_default() += 1;
        }
        if let Some(owner) = &footprint.owner {
            *self.owners.entry(owner.clone()).or_default() += 1;
        }
    }

    pub fn remove(&mut self, footprint: &Footprint) {
        self.requested.sub(footprint.requests.exact);
        self.non_zero_requested.sub(footprint.requests.non_zero);
        self.pods -= 1;
        for port in &footprint.ports {
            decrement(&mut self.ports, port);
        }
        if let Some(owner) = &footprint.owner {
            decrement(&mut self.owners, owner);
        }
    }

    pub fn is_empty(&self) -> bool {
        self.pods == 0
    }

    pub fn owned_by(&self, owner: &str) -> u32 {
        self.owners.get(owner).copied().unwrap_or(0)
    }
}

fn decrement<K: std::hash::Hash + Eq>(counts: &mut HashMap<K, u32>, key: &K) {
    if let Some(count) = counts.get_mut(key) {
        *count -= 1;
        if *count == 0 {
            counts.remove(key);
        }
    }
}

/// A node the cache knows: `spec` is `None` while pods are bound to a node whose object is
/// not (or no longer) there, so that its totals survive until it appears.
#[derive(Debug, Clone, Default)]
pub struct NodeEntry {
    pub name: String,
    pub spec: Option<NodeSpec>,
    pub usage: Usage,
}

#[cfg(test)]
pub(crate) mod tests {
    use k8s_openapi::api::core::v1::{
        NodeCondition, NodeRuntimeHandler, NodeSpec as CoreNodeSpec, NodeStatus,
    };
    use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

    use super::*;
    use crate::resources::PodRequests;

    /// A Ready node with the given allocatable cpu and memory and room for 110 pods.
    pub fn node(name: &str, cpu: &str, memory: &str) -> Node {
        let mut node = Node {
            spec: Some(CoreNodeSpec::default()),
            status: Some(NodeStatus {
                allocatable: Some(BTreeMap::from([
                    ("cpu".to_string(), Quantity(cpu.into())),
                    ("memory".to_string(), Quantity(memory.into())),
                    ("pods".to_string(), Quantity("110".into())),
                ])),
                conditions: Some(vec![NodeCondition {
                    type_: "Ready".into(),
                    status: "True".into(),
                    ..NodeCondition::default()
                }]),
                ..NodeStatus::default()
            }),
            ..Node::default()
        };
        node.metadata.name = Some(name.into());
        node
    }

    #[test]
    fn spec_reads_readiness_and_handlers() {
        let mut n = node("a", "1", "1Gi");
        let spec = NodeSpec::of(&n);
        assert!(spec.ready);
        assert_eq!(spec.runtime_handlers, vec!["runc".to_string()]);
        if let Some(status) = n.status.as_mut() {
            status.runtime_handlers = Some(vec![NodeRuntimeHandler {
                name: Some("wasmtime".into()),
                features: None,
            }]);
            status.conditions = None;
        }
        let spec = NodeSpec::of(&n);
        assert!(!spec.ready);
        assert_eq!(spec.runtime_handlers, vec!["wasmtime".to_string()]);
    }

    #[test]
    fn usage_adds_and_removes_footprints() {
        let footprint = Footprint {
            requests: PodRequests {
                exact: Resources {
                    milli_cpu: 100,
                    memory: 10,
                },
                non_zero: Resources {
                    milli_cpu: 100,
                    memory: 10,
                },
            },
            ports: vec![HostPort {
                protocol: "TCP".into(),
                ip: String::new(),
                port: 80,
            }],
            owner: Some("rs".into()),
        };
        let mut usage = Usage::default();
        usage.add(&footprint);
        usage.add(&footprint);
        assert_eq!(usage.requested.milli_cpu, 200);
        assert_eq!(usage.owned_by("rs"), 2);
        usage.remove(&footprint);
        usage.remove(&footprint);
        assert!(usage.is_empty());
        assert!(usage.ports.is_empty());
        assert!(usage.owners.is_empty());
        assert_eq!(usage.requested, Resources::default());
    }
}
