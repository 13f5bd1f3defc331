//! The DaemonSet controller: one pod per eligible node, following nodes as they come, go
//! and change, rolling pods to a new template within `maxUnavailable`.

pub mod plan;

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, ListParams, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use kube::{Client, ResourceExt};
use rkube_client::events::{EventType, Recorder};

use crate::owned_pods::{self, OwnedPodsError};
use crate::{record, workload};

#[derive(Debug, thiserror::Error)]
pub enum DaemonSetError {
    #[error("reading daemonset {daemonset}: {source}")]
    Get {
        daemonset: String,
        #[source]
        source: kube::Error,
    },
    #[error("listing nodes for daemonset {daemonset}: {source}")]
    ListNodes {
        daemonset: String,
        #[source]
        source: kube::Error,
    },
    #[error(transparent)]
    Pods(#[from] OwnedPodsError),
    #[error("creating the pod of daemonset {daemonset} for node {node}: {source}")]
    CreatePod {
        daemonset: String,
        node: String,
        #[source]
        source: kube::Error,
    },
    #[error("deleting pod {pod} of daemonset {daemonset}: {source}")]
    DeletePod {
        daemonset: String,
        pod: String,
        #[source]
        source: kube::Error,
    },
    #[error("writing status of daemonset {daemonset}: {source}")]
    Status {
        daemonset: String,
        #[source]
        source: kube::Error,
    },
}

struct Context {
    client: Client,
    recorder: Recorder,
}

/// Runs the DaemonSet controller until its watches end. Any node change looks at every
/// DaemonSet again.
pub async fn run(client: Client) -> Result<(), DaemonSetError> {
    let context = Arc::new(Context {
        recorder: Recorder::new(client.clone(), "daemonset-controller"),
        client: client.clone(),
    });
    let controller = Controller::new(
        Api::<DaemonSet>::all(client.clone()),
        watcher::Config::default(),
    );
    let daemonsets = controller.store();
    controller
        .watches(
            Api::<Pod>::all(client.clone()),
            watcher::Config::default(),
            |child| owned_pods::controller_of::<DaemonSet, _>(&child),
        )
        .watches(
            Api::<Node>::all(client),
            watcher::Config::default(),
            move |_node| {
                daemonsets
                    .state()
                    .into_iter()
                    .map(|ds| ObjectRef::from_obj(&*ds))
                    .collect::<Vec<_>>()
            },
        )
        .run(reconcile, retry, context)
        .for_each(|result| async move {
            if let Err(err) = result {
                tracing::debug!(error = %err, "daemonset reconcile failed");
            }
        })
        .await;
    Ok(())
}

fn retry(_ds: Arc<DaemonSet>, err: &DaemonSetError, _context: Arc<Context>) -> Action {
    tracing::info!(error = %err, "daemonset reconcile failed; retrying");
    Action::requeue(Duration::from_millis(500))
}

async fn reconcile(
    cached: Arc<DaemonSet>,
    context: Arc<Context>,
) -> Result<Action, DaemonSetError> {
    let namespace = cached.namespace().unwrap_or_default();
    let name = cached.name_any();
    let key = format!("{namespace}/{name}");
    let api: Api<DaemonSet> = Api::namespaced(context.client.clone(), &namespace);
    let fresh = workload::live(&api, &name)
        .await
        .map_err(|source| DaemonSetError::Get {
            daemonset: key.clone(),
            source,
        })?;
    let Some(ds) = fresh else {
        return Ok(Action::await_change());
    };
    let nodes = Api::<Node>::all(context.client.clone())
        .list(&ListParams::default())
        .await
        .map_err(|source| DaemonSetError::ListNodes {
            daemonset: key.clone(),
            source,
        })?
        .items;
    let uid = ds.uid().unwrap_or_default();
    let selector = ds.spec.as_ref().map(|s| &s.selector);
    let pods = owned_pods::list(&context.client, &namespace, &key, selector, &uid).await?;
    let now = Timestamp::now();
    let next = plan::plan(&ds, &nodes, &pods, now);

    let pods_api: Api<Pod> = Api::namespaced(context.client.clone(), &namespace);
    workload::delete_pods(&pods_api, &context.recorder, &ds, &next.delete, |pod| {
        format!("Deleted pod: {pod}")
    })
    .await
    .map_err(|e| DaemonSetError::DeletePod {
        daemonset: key.clone(),
        pod: e.pod,
        source: e.source,
    })?;
    let hash = ds
        .spec
        .as_ref()
        .map(|s| owned_pods::template_hash(&s.template))
        .unwrap_or_default();
    for node in &next.create {
        let Some(pod) = plan::pod_for_node(&ds, node, &hash) else {
            continue;
        };
        let created = pods_api
            .create(&PostParams::default(), &pod)
            .await
            .map_err(|source| DaemonSetError::CreatePod {
                daemonset: key.clone(),
                node: node.clone(),
                source,
            })?;
        let message = format!("Created pod: {}", created.name_any());
        record::event(
            &context.recorder,
            &ds,
            EventType::Normal,
            "SuccessfulCreate",
            &message,
        )
        .await;
    }

    if ds.status.as_ref() != Some(&next.status) {
        let mut updated = ds.clone();
        updated.status = Some(next.status);
        api.replace_status(&name, &PostParams::default(), &updated)
            .await
            .map_err(|source| DaemonSetError::Status {
                daemonset: key,
                source,
            })?;
    }
    Ok(workload::requeue_for_availability(
        ds.spec.as_ref().and_then(|s| s.min_ready_seconds),
    ))
}
