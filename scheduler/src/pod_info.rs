//! Everything the filters and scores read from a pod, extracted once per scheduling attempt.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{NodeSelector, Pod, PreferredSchedulingTerm, Toleration};

use crate::resources::PodRequests;

/// The RuntimeClass of pods that name none (design brief section 5).
pub const DEFAULT_RUNTIME_CLASS: &str = "runc";

/// `namespace/name`, the identity the queue and the cache track pods by.
pub type PodKey = String;

pub fn key_of(pod: &Pod) -> PodKey {
    format!(
        "{}/{}",
        pod.metadata.namespace.as_deref().unwrap_or("default"),
        pod.metadata.name.as_deref().unwrap_or_default()
    )
}

/// One host port a container asks for; conflicts are per protocol and port.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct HostPort {
    pub protocol: String,
    pub ip: String,
    pub port: i32,
}

impl HostPort {
    /// An unset or wildcard IP overlaps every address.
    pub fn conflicts_with(&self, other: &HostPort) -> bool {
        let wildcard = |ip: &str| ip.is_empty() || ip == "0.0.0.0" || ip == "::";
        self.port == other.port
            && self.protocol == other.protocol
            && (wildcard(&self.ip) || wildcard(&other.ip) || self.ip == other.ip)
    }
}

/// What a pod placed on a node takes from it; node aggregates add and remove these.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Footprint {
    pub requests: PodRequests,
    pub ports: Vec<HostPort>,
    /// The controller owner's uid, for spreading replicas.
    pub owner: Option<String>,
}

impl Footprint {
    pub fn of(pod: &Pod) -> Footprint {
        let Some(spec) = pod.spec.as_ref() else {
            return Footprint::default();
        };
        let ports = spec
            .containers
            .iter()
            .flat_map(|c| c.ports.iter().flatten())
            .filter(|p| p.host_port.is_some_and(|hp| hp > 0))
            .map(|p| HostPort {
                protocol: p.protocol.clone().unwrap_or_else(|| "TCP".into()),
                ip: p.host_ip.clone().unwrap_or_default(),
                port: p.host_port.unwrap_or_default(),
            })
            .collect();
        let owner = pod
            .metadata
            .owner_references
            .iter()
            .flatten()
            .find(|o| o.controller == Some(true))
            .map(|o| o.uid.clone());
        Footprint {
            requests: PodRequests::of(spec),
            ports,
            owner,
        }
    }
}

/// A pod as the scheduling algorithm sees it.
#[derive(Debug, Clone, Default)]
pub struct PodInfo {
    pub key: PodKey,
    pub footprint: Footprint,
    pub node_selector: BTreeMap<String, String>,
    pub required_affinity: Option<NodeSelector>,
    pub preferred_affinity: Vec<PreferredSchedulingTerm>,
    pub tolerations: Vec<Toleration>,
    /// The RuntimeClass the pod runs with (`runc` when unset).
    pub runtime_class: String,
}

impl PodInfo {
    pub fn of(pod: &Pod) -> PodInfo {
        let Some(spec) = pod.spec.as_ref() else {
            return PodInfo {
                key: key_of(pod),
                runtime_class: DEFAULT_RUNTIME_CLASS.into(),
                ..PodInfo::default()
            };
        };
        let affinity = spec
            .affinity
            .as_ref()
            .and_then(|a| a.node_affinity.as_ref());
        PodInfo {
            key: key_of(pod),
            footprint: Footprint::of(pod),
            node_selector: spec.node_selector.clone().unwrap_or_default(),
            required_affinity: affinity.and_then(|a| {
                a.required_during_scheduling_ignored_during_execution
                    .clone()
            }),
            preferred_affinity: affinity
                .and_then(|a| {
                    a.preferred_during_scheduling_ignored_during_execution
                        .clone()
                })
                .unwrap_or_default(),
            tolerations: spec.tolerations.clone().unwrap_or_default(),
            runtime_class: spec
                .runtime_class_name
                .clone()
                .filter(|n| !n.is_empty())
                .unwrap_or_else(|| DEFAULT_RUNTIME_CLASS.into()),
        }
    }
}

/// Whether this scheduler is responsible for `pod`: unbound, ungated, ours, not finished.
pub fn wants_scheduling(pod: &Pod, scheduler_name: &str) -> bool {
    let Some(spec) = pod.spec.as_ref() else {
        return false;
    };
    let unbound = spec.node_name.as_deref().is_none_or(str::is_empty);
    let ungated = spec.scheduling_gates.as_ref().is_none_or(Vec::is_empty);
    let ours = spec
        .scheduler_name
        .as_deref()
        .is_none_or(|n| n.is_empty() || n == scheduler_name);
    let alive = pod.metadata.deletion_timestamp.is_none();
    unbound && ungated && ours && alive
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::{Container, ContainerPort, PodSchedulingGate, PodSpec};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;

    use super::*;

    fn pod(spec: PodSpec) -> Pod {
        let mut pod = Pod {
            spec: Some(spec),
            ..Pod::default()
        };
        pod.metadata.name = Some("p".into());
        pod.metadata.namespace = Some("ns".into());
        pod
    }

    #[test]
    fn footprint_collects_host_ports_and_controller() {
        let mut p = pod(PodSpec {
            containers: vec![Container {
                ports: Some(vec![
                    ContainerPort {
                        container_port: 80,
                        host_port: Some(8080),
                        ..ContainerPort::default()
                    },
                    ContainerPort {
                        container_port: 81,
                        ..ContainerPort::default()
                    },
                ]),
                ..Container::default()
            }],
            ..PodSpec::default()
        });
        p.metadata.owner_references = Some(vec![OwnerReference {
            uid: "rs-1".into(),
            controller: Some(true),
            ..OwnerReference::default()
        }]);
        let f = Footprint::of(&p);
        assert_eq!(f.ports.len(), 1);
        assert_eq!(f.ports[0].protocol, "TCP");
        assert_eq!(f.owner.as_deref(), Some("rs-1"));
        assert_eq!(key_of(&p), "ns/p");
    }

    #[test]
    fn host_ports_conflict_on_wildcards_and_equal_ips() {
        let port = |ip: &str, port| HostPort {
            protocol: "TCP".into(),
            ip: ip.into(),
            port,
        };
        assert!(port("", 80).conflicts_with(&port("10.0.0.1", 80)));
        assert!(port("10.0.0.1", 80).conflicts_with(&port("10.0.0.1", 80)));
        assert!(!port("10.0.0.1", 80).conflicts_with(&port("10.0.0.2", 80)));
        assert!(!port("", 80).conflicts_with(&port("", 81)));
    }

    #[test]
    fn responsibility_excludes_bound_gated_and_foreign_pods() {
        let free = pod(PodSpec::default());
        assert!(wants_scheduling(&free, "default-scheduler"));
        assert_eq!(PodInfo::of(&free).runtime_class, "runc");
        let bound = pod(PodSpec {
            node_name: Some("n".into()),
            ..PodSpec::default()
        });
        assert!(!wants_scheduling(&bound, "default-scheduler"));
        let gated = pod(PodSpec {
            scheduling_gates: Some(vec![PodSchedulingGate { name: "g".into() }]),
            ..PodSpec::default()
        });
        assert!(!wants_scheduling(&gated, "default-scheduler"));
        let foreign = pod(PodSpec {
            scheduler_name: Some("other".into()),
            ..PodSpec::default()
        });
        assert!(!wants_scheduling(&foreign, "default-scheduler"));
    }
}
