//! The EndpointSlice controller: for each Service with a selector, EndpointSlices (owned by
//! the Service) holding its pods, one slice per port set and address family, at most 100
//! endpoints each, with ready/serving/terminating conditions.

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Pod, Service};
use k8s_openapi::api::discovery::v1::{Endpoint, EndpointConditions, EndpointPort, EndpointSlice};
use kube::api::{Api, DeleteParams, ObjectMeta, PostParams};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Client, ResourceExt};

use crate::context::Context;
use crate::endpoints::{
    ResolvedPort, pod_ip, pod_ports, pod_reference, service_pods, services_of_pod,
};
use crate::owned_pods;
use crate::ownership::{self, controller_of};
use crate::queue::{Key, Next, Queue};

pub const SERVICE_NAME: &str = "kubernetes.io/service-name";
pub const MANAGED_BY: &str = "endpointslice.kubernetes.io/managed-by";
const CONTROLLER: &str = "endpointslice-controller.k8s.io";
const MAX_ENDPOINTS: usize = 100;

#[derive(Debug, thiserror::Error)]
#[error("{action} endpointslices of service {service}: {source}")]
pub struct EndpointSliceError {
    pub action: &'static str,
    pub service: Key,
    #[source]
    pub source: kube::Error,
}

/// What a slice holds: its address type, ports and endpoints.
#[derive(Debug, Clone, PartialEq)]
pub struct Desired {
    pub address_type: String,
    pub ports: Vec<EndpointPort>,
    pub endpoints: Vec<Endpoint>,
}

/// The slices a Service should have for its selected pods.
pub fn desired_slices(svc: &Service, selected: &[&Pod]) -> Vec<Desired> {
    let publish_not_ready = svc
        .spec
        .as_ref()
        .and_then(|s| s.publish_not_ready_addresses)
        .unwrap_or(false);
    let has_ports = svc
        .spec
        .as_ref()
        .and_then(|s| s.ports.as_ref())
        .is_some_and(|p| !p.is_empty());
    let mut groups: BTreeMap<(String, Vec<ResolvedPort>), Vec<Endpoint>> = BTreeMap::new();
    for pod in selected {
        let ports = pod_ports(svc, pod);
        if has_ports && ports.is_empty() {
            continue;
        }
        let ip = pod_ip(pod).unwrap_or_default();
        let family = if ip.contains(':') { "IPv6" } else { "IPv4" };
        let terminating = pod.metadata.deletion_timestamp.is_some();
        let serving = owned_pods::is_ready(pod);
        groups
            .entry((family.to_string(), ports))
            .or_default()
            .push(Endpoint {
                addresses: vec![ip],
                conditions: Some(EndpointConditions {
                    ready: Some(publish_not_ready || (serving && !terminating)),
                    serving: Some(serving),
                    terminating: Some(terminating),
                }),
                node_name: pod.spec.as_ref().and_then(|s| s.node_name.clone()),
                target_ref: Some(pod_reference(pod)),
                ..Endpoint::default()
            });
    }
    let mut out = Vec::new();
    for ((family, ports), endpoints) in groups {
        let ports: Vec<EndpointPort> = ports
            .into_iter()
            .map(|p| EndpointPort {
                name: p.name,
                port: Some(p.port),
                protocol: Some(p.protocol),
                app_protocol: p.app_protocol,
            })
            .collect();
        for chunk in endpoints.chunks(MAX_ENDPOINTS) {
            out.push(Desired {
                address_type: family.clone(),
                ports: ports.clone(),
                endpoints: chunk.to_vec(),
            });
        }
    }
    out
}

struct Shared {
    client: Client,
    services: Store<Service>,
    pods: Store<Pod>,
    slices: Store<EndpointSlice>,
}

pub async fn run(ctx: Context) -> Result<(), EndpointSliceError> {
    let services = ctx.informers.get::<Service>();
    let pods = ctx.informers.get::<Pod>();
    let slices = ctx.informers.get::<EndpointSlice>();
    services.synced().await;
    pods.synced().await;
    slices.synced().await;
    let shared = Arc::new(Shared {
        client: ctx.client.clone(),
        services: services.store().clone(),
        pods: pods.store().clone(),
        slices: slices.store().clone(),
    });
    let queue = Queue::new();
    let q = queue.clone();
    services.on_change(move |svc| q.add(Key::of(svc)));
    let q = queue.clone();
    slices.on_change(move |slice| {
        if let Some(svc) = slice.labels().get(SERVICE_NAME) {
            q.add(Key::new(&slice.namespace().unwrap_or_default(), svc));
        }
    });
    let (q, svc_store, slice_store) = (
        queue.clone(),
        shared.services.clone(),
        shared.slices.clone(),
    );
    pods.on_change(move |pod| {
        let listed = listing_pod(&slice_store, pod);
        services_of_pod(&svc_store, pod)
            .into_iter()
            .chain(listed)
            .for_each(|k| q.add(k))
    });
    queue
        .run("endpointslice", ctx.options.workers, move |key| {
            let shared = Arc::clone(&shared);
            async move { reconcile(&shared, &key).await }
        })
        .await;
    Ok(())
}

/// Services whose slices list the pod: its labels may have stopped matching.
fn listing_pod(slices: &Store<EndpointSlice>, pod: &Pod) -> Vec<Key> {
    let ns = pod.namespace();
    let uid = pod.metadata.uid.as_deref();
    slices
        .state()
        .iter()
        .filter(|s| s.namespace() == ns)
        .filter(|s| {
            s.endpoints
                .iter()
                .any(|e| e.target_ref.as_ref().and_then(|r| r.uid.as_deref()) == uid)
        })
        .filter_map(|s| {
            s.labels()
                .get(SERVICE_NAME)
                .map(|svc| Key::new(&s.namespace().unwrap_or_default(), svc))
        })
        .collect()
}

async fn reconcile(shared: &Shared, key: &Key) -> Result<Next, EndpointSliceError> {
    let err = |action, source| EndpointSliceError {
        action,
        service: key.clone(),
        source,
    };
    let Some(svc) = shared
        .services
        .get(&ObjectRef::new(&key.name).within(&key.namespace))
    else {
        // Slices are owned by the Service: the garbage collector removes them.
        return Ok(Next::Done);
    };
    if svc
        .spec
        .as_ref()
        .and_then(|s| s.selector.as_ref())
        .is_none()
    {
        return Ok(Next::Done);
    }
    let svc_uid = svc.uid().unwrap_or_default();
    let mut existing: Vec<Arc<EndpointSlice>> = shared.slices.state_filter(|s| {
        s.namespace().as_deref() == Some(key.namespace.as_str())
            && s.labels().get(SERVICE_NAME) == Some(&key.name)
            && s.labels().get(MANAGED_BY).map(String::as_str) == Some(CONTROLLER)
            && controller_of(&s.metadata).is_some_and(|r| r.uid == svc_uid)
    });
    existing.sort_by_key(|s| s.name_any());
    let all_pods = shared.pods.state();
    let selected = service_pods(&svc, &all_pods);
    let wanted = desired_slices(&svc, &selected);
    let labels = slice_labels(&svc);
    let api: Api<EndpointSlice> = Api::namespaced(shared.client.clone(), &key.namespace);
    let mut unused: Vec<Arc<EndpointSlice>> = existing;
    for desired in wanted {
        // Reuse a slice with the same ports and family, else create one.
        let reuse = unused.iter().position(|s| {
            s.address_type == desired.address_type
                && s.ports.clone().unwrap_or_default() == desired.ports
        });
        match reuse.map(|i| unused.remove(i)) {
            Some(slice) => {
                let same = slice.endpoints == desired.endpoints
                    && slice.metadata.labels.as_ref() == Some(&labels);
                if !same {
                    let mut updated = (*slice).clone();
                    updated.endpoints = desired.endpoints;
                    updated.metadata.labels = Some(labels.clone());
                    api.replace(&slice.name_any(), &PostParams::default(), &updated)
                        .await
                        .map_err(|e| err("updating", e))?;
                }
            }
            None => {
                let slice = EndpointSlice {
                    metadata: ObjectMeta {
                        generate_name: Some(format!("{}-", key.name)),
                        namespace: Some(key.namespace.clone()),
                        labels: Some(labels.clone()),
                        owner_references: Some(vec![ownership::controller_ref(svc.as_ref())]),
                        ..ObjectMeta::default()
                    },
                    address_type: desired.address_type,
                    endpoints: desired.endpoints,
                    ports: Some(desired.ports),
                };
                api.create(&PostParams::default(), &slice)
                    .await
                    .map_err(|e| err("creating", e))?;
            }
        }
    }
    for slice in unused {
        match api
            .delete(&slice.name_any(), &DeleteParams::default())
            .await
        {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 404 => {}
            Err(source) => return Err(err("deleting", source)),
        }
    }
    Ok(Next::Done)
}

fn slice_labels(svc: &Service) -> BTreeMap<String, String> {
    let mut labels = svc.metadata.labels.clone().unwrap_or_default();
    labels.insert(SERVICE_NAME.into(), svc.name_any());
    labels.insert(MANAGED_BY.into(), CONTROLLER.into());
    labels
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::{PodCondition, PodStatus, ServicePort, ServiceSpec};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
    use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
    use k8s_openapi::jiff::Timestamp;

    use super::*;

    fn pod(name: &str, ip: &str, ready: bool, deleting: bool) -> Arc<Pod> {
        let mut p = Pod::default();
        p.metadata.name = Some(name.into());
        p.metadata.namespace = Some("ns".into());
        p.metadata.labels = Some([("app".to_string(), "web".to_string())].into());
        if deleting {
            p.metadata.deletion_timestamp = Some(Time(Timestamp::now()));
        }
        p.status = Some(PodStatus {
            pod_ip: Some(ip.into()),
            conditions: Some(vec![PodCondition {
                type_: "Ready".into(),
                status: if ready { "True" } else { "False" }.into(),
                ..PodCondition::default()
            }]),
            ..PodStatus::default()
        });
        Arc::new(p)
    }

    #[test]
    fn slices_carry_conditions_and_split_by_family() {
        let mut svc = Service::default();
        svc.metadata.namespace = Some("ns".into());
        svc.spec = Some(ServiceSpec {
            selector: Some([("app".to_string(), "web".to_string())].into()),
            ports: Some(vec![ServicePort {
                port: 80,
                target_port: Some(IntOrString::Int(8080)),
                ..ServicePort::default()
            }]),
            publish_not_ready_addresses: Some(true),
            ..ServiceSpec::default()
        });
        let pods = vec![
            pod("a", "10.0.0.1", true, false),
            pod("b", "10.0.0.2", false, false),
            pod("c", "fd00::1", true, true),
        ];
        let slices = desired_slices(&svc, &service_pods(&svc, &pods));
        assert_eq!(slices.len(), 2);
        let v4 = slices.iter().find(|s| s.address_type == "IPv4").unwrap();
        assert_eq!(v4.ports[0].port, Some(8080));
        assert_eq!(v4.endpoints.len(), 2);
        let v6 = slices.iter().find(|s| s.address_type == "IPv6").unwrap();
        let cond = v6.endpoints[0].conditions.clone().unwrap();
        assert_eq!((cond.serving, cond.terminating), (Some(true), Some(true)));
    }
}
