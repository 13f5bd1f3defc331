//! The StatefulSet controller: pods with stable ordinal names, brought up in order (or in
//! parallel), scaled down in reverse, and rolled to a new template from the highest ordinal
//! down to the partition.

pub mod plan;

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::watcher;
use kube::{Client, ResourceExt};
use rkube_client::events::{EventType, Recorder};

use crate::owned_pods::{self, OwnedPodsError};
use crate::{api_status, record, workload};

#[derive(Debug, thiserror::Error)]
pub enum StatefulSetError {
    #[error("reading statefulset {statefulset}: {source}")]
    Get {
        statefulset: String,
        #[source]
        source: kube::Error,
    },
    #[error(transparent)]
    Pods(#[from] OwnedPodsError),
    #[error("creating pod {pod} of statefulset {statefulset}: {source}")]
    CreatePod {
        statefulset: String,
        pod: String,
        #[source]
        source: kube::Error,
    },
    #[error("deleting pod {pod} of statefulset {statefulset}: {source}")]
    DeletePod {
        statefulset: String,
        pod: String,
        #[source]
        source: kube::Error,
    },
    #[error("writing status of statefulset {statefulset}: {source}")]
    Status {
        statefulset: String,
        #[source]
        source: kube::Error,
    },
}

struct Context {
    client: Client,
    recorder: Recorder,
}

/// Runs the StatefulSet controller until its watches end.
pub async fn run(client: Client) -> Result<(), StatefulSetError> {
    let context = Arc::new(Context {
        recorder: Recorder::new(client.clone(), "statefulset-controller"),
        client: client.clone(),
    });
    Controller::new(
        Api::<StatefulSet>::all(client.clone()),
        watcher::Config::default(),
    )
    .watches(
        Api::<Pod>::all(client),
        watcher::Config::default(),
        |child| owned_pods::controller_of::<StatefulSet, _>(&child),
    )
    .run(reconcile, retry, context)
    .for_each(|result| async move {
        if let Err(err) = result {
            tracing::debug!(error = %err, "statefulset reconcile failed");
        }
    })
    .await;
    Ok(())
}

fn retry(_sts: Arc<StatefulSet>, err: &StatefulSetError, _context: Arc<Context>) -> Action {
    tracing::info!(error = %err, "statefulset reconcile failed; retrying");
    Action::requeue(Duration::from_millis(500))
}

async fn reconcile(
    cached: Arc<StatefulSet>,
    context: Arc<Context>,
) -> Result<Action, StatefulSetError> {
    let namespace = cached.namespace().unwrap_or_default();
    let name = cached.name_any();
    let key = format!("{namespace}/{name}");
    let api: Api<StatefulSet> = Api::namespaced(context.client.clone(), &namespace);
    let fresh = workload::live(&api, &name)
        .await
        .map_err(|source| StatefulSetError::Get {
            statefulset: key.clone(),
            source,
        })?;
    let Some(sts) = fresh else {
        return Ok(Action::await_change());
    };
    let uid = sts.uid().unwrap_or_default();
    let selector = sts.spec.as_ref().map(|s| &s.selector);
    let pods = owned_pods::list(&context.client, &namespace, &key, selector, &uid).await?;
    let next = plan::plan(&sts, &pods, Timestamp::now());

    let pods_api: Api<Pod> = Api::namespaced(context.client.clone(), &namespace);
    workload::delete_pods(&pods_api, &context.recorder, &sts, &next.delete, |pod| {
        format!("delete Pod {pod} in StatefulSet {name} successful")
    })
    .await
    .map_err(|e| StatefulSetError::DeletePod {
        statefulset: key.clone(),
        pod: e.pod,
        source: e.source,
    })?;
    for ordinal in &next.create {
        let Some(pod) = plan::pod_for(&sts, *ordinal) else {
            continue;
        };
        let pod_name = pod.name_any();
        let created = pods_api.create(&PostParams::default(), &pod).await;
        // 409: the previous pod of that name is still going away; its deletion brings us back.
        api_status::ok_or_code(created, &[409]).map_err(|source| StatefulSetError::CreatePod {
            statefulset: key.clone(),
            pod: pod_name.clone(),
            source,
        })?;
        let message = format!("create Pod {pod_name} in StatefulSet {name} successful");
        record::event(
            &context.recorder,
            &sts,
            EventType::Normal,
            "SuccessfulCreate",
            &message,
        )
        .await;
    }

    if sts.status.as_ref() != Some(&next.status) {
        let mut updated = sts.clone();
        updated.status = Some(next.status);
        api.replace_status(&name, &PostParams::default(), &updated)
            .await
            .map_err(|source| StatefulSetError::Status {
                statefulset: key,
                source,
            })?;
    }
    Ok(workload::requeue_for_availability(
        sts.spec.as_ref().and_then(|s| s.min_ready_seconds),
    ))
}
