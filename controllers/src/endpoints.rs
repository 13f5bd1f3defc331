//! The Endpoints controller: for each Service with a selector, an Endpoints object of the
//! same name listing the selected pods' IPs (ready ones in `addresses`, others in
//! `notReadyAddresses`) with the service ports resolved against each pod.

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::core::v1::{
    EndpointAddress, EndpointPort, EndpointSubset, Endpoints, ObjectReference, Pod, Service,
    ServicePort,
};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::api::{Api, DeleteParams, ObjectMeta, PostParams};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Client, ResourceExt};

use crate::context::Context;
use crate::owned_pods;
use crate::queue::{Key, Next, Queue};

#[derive(Debug, thiserror::Error)]
#[error("{action} endpoints {key}: {source}")]
pub struct EndpointsError {
    pub action: &'static str,
    pub key: Key,
    #[source]
    pub source: kube::Error,
}

/// The pods a Service selects that may receive traffic: an IP assigned, not finished, and
/// (unless the Service publishes not-ready addresses) not being deleted.
pub fn service_pods<'a>(svc: &Service, pods: &'a [Arc<Pod>]) -> Vec<&'a Pod> {
    let spec = svc.spec.clone().unwrap_or_default();
    let Some(sel) = spec.selector.as_ref() else {
        return Vec::new();
    };
    let namespace = svc.namespace();
    let publish_not_ready = spec.publish_not_ready_addresses.unwrap_or(false);
    let mut selected: Vec<&Pod> = pods
        .iter()
        .map(Arc::as_ref)
        .filter(|p| p.namespace() == namespace)
        .filter(|p| service_selects(sel, p.metadata.labels.as_ref()))
        .filter(|p| pod_ip(p).is_some())
        .filter(|p| !owned_pods::is_finished(p))
        .filter(|p| publish_not_ready || p.metadata.deletion_timestamp.is_none())
        .collect();
    selected.sort_by_key(|p| (pod_ip(p).unwrap_or_default(), p.name_any()));
    selected
}

pub fn pod_ip(pod: &Pod) -> Option<String> {
    pod.status
        .as_ref()?
        .pod_ip
        .clone()
        .filter(|ip| !ip.is_empty())
}

/// The pod port a service port sends to: `targetPort` as a number, or the container port
/// of that name (and protocol); `None` when the pod has no such named port.
pub fn resolve_port(port: &ServicePort, pod: &Pod) -> Option<i32> {
    match port.target_port.as_ref() {
        None => Some(port.port),
        Some(IntOrString::Int(n)) => Some(*n),
        Some(IntOrString::String(name)) => {
            let protocol = port.protocol.as_deref().unwrap_or("TCP");
            pod.spec.as_ref()?.containers.iter().find_map(|c| {
                c.ports.iter().flatten().find_map(|p| {
                    let same_protocol = p.protocol.as_deref().unwrap_or("TCP") == protocol;
                    (p.name.as_deref() == Some(name.as_str()) && same_protocol)
                        .then_some(p.container_port)
                })
            })
        }
    }
}

/// A service port resolved against one pod.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct ResolvedPort {
    pub name: Option<String>,
    pub port: i32,
    pub protocol: String,
    pub app_protocol: Option<String>,
}

/// The ports of `svc` as `pod` serves them, in service order.
pub fn pod_ports(svc: &Service, pod: &Pod) -> Vec<ResolvedPort> {
    svc.spec
        .iter()
        .flat_map(|s| s.ports.iter().flatten())
        .filter_map(|port| {
            let target = resolve_port(port, pod)?;
            Some(ResolvedPort {
                name: port.name.clone(),
                port: target,
                protocol: port.protocol.clone().unwrap_or_else(|| "TCP".into()),
                app_protocol: port.app_protocol.clone(),
            })
        })
        .collect()
}

pub fn pod_reference(pod: &Pod) -> ObjectReference {
    ObjectReference {
        kind: Some("Pod".into()),
        namespace: pod.namespace(),
        name: pod.metadata.name.clone(),
        uid: pod.metadata.uid.clone(),
        ..ObjectReference::default()
    }
}

/// Subsets grouping pods by the ports they serve.
pub fn subsets(svc: &Service, selected: &[&Pod]) -> Vec<EndpointSubset> {
    let publish_not_ready = svc
        .spec
        .as_ref()
        .and_then(|s| s.publish_not_ready_addresses)
        .unwrap_or(false);
    let mut groups: BTreeMap<Vec<ResolvedPort>, EndpointSubset> = BTreeMap::new();
    for pod in selected {
        let ports = pod_ports(svc, pod);
        let has_ports = svc
            .spec
            .as_ref()
            .and_then(|s| s.ports.as_ref())
            .is_some_and(|p| !p.is_empty());
        if has_ports && ports.is_empty() {
            continue;
        }
        let subset = groups
            .entry(ports.clone())
            .or_insert_with(|| EndpointSubset {
                ports: (!ports.is_empty()).then(|| {
                    ports
                        .iter()
                        .map(|p| EndpointPort {
                            name: p.name.clone(),
                            port: p.port,
                            protocol: Some(p.protocol.clone()),
                            app_protocol: p.app_protocol.clone(),
                        })
                        .collect()
                }),
                ..EndpointSubset::default()
            });
        let address = EndpointAddress {
            ip: pod_ip(pod).unwrap_or_default(),
            node_name: pod.spec.as_ref().and_then(|s| s.node_name.clone()),
            target_ref: Some(pod_reference(pod)),
            hostname: None,
        };
        let ready = publish_not_ready
            || (owned_pods::is_ready(pod) && pod.metadata.deletion_timestamp.is_none());
        let list = if ready {
            subset.addresses.get_or_insert_with(Vec::new)
        } else {
            subset.not_ready_addresses.get_or_insert_with(Vec::new)
        };
        list.push(address);
    }
    groups.into_values().collect()
}

struct Shared {
    client: Client,
    services: Store<Service>,
    pods: Store<Pod>,
    endpoints: Store<Endpoints>,
}

pub async fn run(ctx: Context) -> Result<(), EndpointsError> {
    let services = ctx.informers.get::<Service>();
    let pods = ctx.informers.get::<Pod>();
    let endpoints = ctx.informers.get::<Endpoints>();
    services.synced().await;
    pods.synced().await;
    endpoints.synced().await;
    let shared = Arc::new(Shared {
        client: ctx.client.clone(),
        services: services.store().clone(),
        pods: pods.store().clone(),
        endpoints: endpoints.store().clone(),
    });
    let queue = Queue::new();
    let q = queue.clone();
    services.on_change(move |svc| q.add(Key::of(svc)));
    let q = queue.clone();
    endpoints.on_change(move |ep| q.add(Key::of(ep)));
    let (q, svc_store, ep_store) = (
        queue.clone(),
        shared.services.clone(),
        shared.endpoints.clone(),
    );
    pods.on_change(move |pod| {
        services_of_pod(&svc_store, pod)
            .into_iter()
            .chain(listing_pod(&ep_store, pod))
            .for_each(|k| q.add(k))
    });
    queue
        .run("endpoints", ctx.options.workers, move |key| {
            let shared = Arc::clone(&shared);
            async move { reconcile(&shared, &key).await }
        })
        .await;
    Ok(())
}

/// Whether a Service's map selector selects `labels`; an empty one selects none.
fn service_selects(
    selector: &BTreeMap<String, String>,
    labels: Option<&BTreeMap<String, String>>,
) -> bool {
    !selector.is_empty()
        && labels.is_some_and(|labels| selector.iter().all(|(k, v)| labels.get(k) == Some(v)))
}

/// Services in the pod's namespace whose selector matches it.
pub fn services_of_pod(services: &Store<Service>, pod: &Pod) -> Vec<Key> {
    let ns = pod.namespace();
    services
        .state()
        .iter()
        .filter(|s| s.namespace() == ns)
        .filter(|s| {
            s.spec
                .as_ref()
                .and_then(|spec| spec.selector.as_ref())
                .is_some_and(|sel| service_selects(sel, pod.metadata.labels.as_ref()))
        })
        .map(|s| Key::of(s.as_ref()))
        .collect()
}

/// Endpoints that list the pod: its labels may have stopped matching.
fn listing_pod(endpoints: &Store<Endpoints>, pod: &Pod) -> Vec<Key> {
    let ns = pod.namespace();
    let name = pod.metadata.name.as_deref();
    endpoints
        .state()
        .iter()
        .filter(|ep| ep.namespace() == ns)
        .filter(|ep| {
            ep.subsets.iter().flatten().any(|s| {
                s.addresses
                    .iter()
                    .chain(s.not_ready_addresses.iter())
                    .flatten()
                    .any(|a| a.target_ref.as_ref().and_then(|r| r.name.as_deref()) == name)
            })
        })
        .map(|ep| Key::of(ep.as_ref()))
        .collect()
}

async fn reconcile(shared: &Shared, key: &Key) -> Result<Next, EndpointsError> {
    let err = |action, source| EndpointsError {
        action,
        key: key.clone(),
        source,
    };
    let api: Api<Endpoints> = Api::namespaced(shared.client.clone(), &key.namespace);
    let existing = shared
        .endpoints
        .get(&ObjectRef::new(&key.name).within(&key.namespace));
    let Some(svc) = shared
        .services
        .get(&ObjectRef::new(&key.name).within(&key.namespace))
    else {
        if existing.is_some() {
            match api.delete(&key.name, &DeleteParams::default()).await {
                Ok(_) => {}
                Err(kube::Error::Api(s)) if s.code == 404 => {}
                Err(source) => return Err(err("deleting", source)),
            }
        }
        return Ok(Next::Done);
    };
    if svc
        .spec
        .as_ref()
        .and_then(|s| s.selector.as_ref())
        .is_none()
    {
        // Endpoints of a Service without selector are the user's.
        return Ok(Next::Done);
    }
    let all_pods = shared.pods.state();
    let selected = service_pods(&svc, &all_pods);
    let subsets = subsets(&svc, &selected);
    let labels = svc.metadata.labels.clone();
    if let Some(current) = &existing
        && current.subsets.clone().unwrap_or_default() == subsets
        && current.metadata.labels == labels
    {
        return Ok(Next::Done);
    }
    let mut desired = Endpoints {
        metadata: ObjectMeta {
            name: Some(key.name.clone()),
            namespace: Some(key.namespace.clone()),
            labels,
            ..ObjectMeta::default()
        },
        subsets: (!subsets.is_empty()).then_some(subsets),
    };
    match existing {
        Some(current) => {
            desired.metadata.resource_version = current.resource_version();
            desired.metadata.annotations = current.metadata.annotations.clone();
            api.replace(&key.name, &PostParams::default(), &desired)
                .await
                .map_err(|e| err("updating", e))?;
        }
        None => match api.create(&PostParams::default(), &desired).await {
            Ok(_) => {}
            // Created by an earlier pass the cache has not shown yet; its event brings us back.
            Err(kube::Error::Api(s)) if s.code == 409 => {}
            Err(source) => return Err(err("creating", source)),
        },
    }
    Ok(Next::Done)
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::{
        Container, ContainerPort, PodCondition, PodSpec, PodStatus, ServiceSpec,
    };

    use super::*;

    fn pod(name: &str, ip: &str, ready: bool, port_name: &str, port: i32) -> Arc<Pod> {
        let mut p = Pod::default();
        p.metadata.name = Some(name.into());
        p.metadata.namespace = Some("ns".into());
        p.metadata.labels = Some([("app".to_string(), "web".to_string())].into());
        p.spec = Some(PodSpec {
            containers: vec![Container {
                name: "c".into(),
                ports: Some(vec![ContainerPort {
                    name: Some(port_name.into()),
                    container_port: port,
                    ..ContainerPort::default()
                }]),
                ..Container::default()
            }],
            ..PodSpec::default()
        });
        p.status = Some(PodStatus {
            pod_ip: Some(ip.into()),
            phase: Some("Running".into()),
            conditions: Some(vec![PodCondition {
                type_: "Ready".into(),
                status: if ready { "True" } else { "False" }.into(),
                ..PodCondition::default()
            }]),
            ..PodStatus::default()
        });
        Arc::new(p)
    }

    fn service(target: IntOrString) -> Service {
        let mut s = Service::default();
        s.metadata.name = Some("web".into());
        s.metadata.namespace = Some("ns".into());
        s.spec = Some(ServiceSpec {
            selector: Some([("app".to_string(), "web".to_string())].into()),
            ports: Some(vec![ServicePort {
                name: Some("http".into()),
                port: 80,
                target_port: Some(target),
                ..ServicePort::default()
            }]),
            ..ServiceSpec::default()
        });
        s
    }

    #[test]
    fn named_target_ports_resolve_per_pod_and_group_subsets() {
        let pods = vec![
            pod("a", "10.0.0.2", true, "web", 8080),
            pod("b", "10.0.0.1", false, "web", 9090),
            pod("c", "10.0.0.3", true, "other", 7000),
        ];
        let svc = service(IntOrString::String("web".into()));
        let selected = service_pods(&svc, &pods);
        let subsets = subsets(&svc, &selected);
        assert_eq!(subsets.len(), 2, "c has no port named web");
        let by_port = |port| {
            subsets
                .iter()
                .find(|s| s.ports.as_ref().unwrap()[0].port == port)
                .unwrap()
        };
        assert_eq!(by_port(8080).addresses.as_ref().unwrap()[0].ip, "10.0.0.2");
        assert_eq!(
            by_port(9090).not_ready_addresses.as_ref().unwrap()[0].ip,
            "10.0.0.1"
        );
    }

    #[test]
    fn service_selectors_need_every_pair_and_select_nothing_when_empty() {
        let map = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        let pod = map(&[("app", "web"), ("x", "y")]);
        assert!(service_selects(&map(&[("app", "web")]), Some(&pod)));
        assert!(!service_selects(&map(&[("app", "db")]), Some(&pod)));
        assert!(!service_selects(&BTreeMap::new(), Some(&pod)));
        assert!(!service_selects(&map(&[("app", "web")]), None));
    }

    #[test]
    fn numeric_target_ports_apply_to_every_pod() {
        let pods = vec![
            pod("a", "10.0.0.2", true, "x", 1),
            pod("b", "10.0.0.1", true, "y", 2),
        ];
        let svc = service(IntOrString::Int(8080));
        let subsets = subsets(&svc, &service_pods(&svc, &pods));
        assert_eq!(subsets.len(), 1);
        let ips: Vec<&str> = subsets[0]
            .addresses
            .iter()
            .flatten()
            .map(|a| a.ip.as_str())
            .collect();
        assert_eq!(ips, ["10.0.0.1", "10.0.0.2"]);
    }
}
