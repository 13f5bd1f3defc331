//! The ReplicaSet controller: keeps `spec.replicas` active pods from the template, adopts
//! matching orphans, releases pods whose labels stopped matching, and reports status.

mod plan;

use std::sync::Arc;

use futures::future::join_all;
use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, ObjectMeta, PostParams};
use kube::runtime::reflector::{ObjectRef, Store};
use rkube_api::selector::LabelSelector as Selector;
use rkube_client::events::{EventType, Recorder};

use crate::context::{Context, emit};
use crate::expectations::Expectations;
use crate::owned_pods;
use crate::ownership::{self, controller_of};
use crate::queue::{Key, Next, Queue};

pub use plan::{Scale, scale};

#[derive(Debug, thiserror::Error)]
pub enum ReplicaSetError {
    #[error("creating pods for replicaset {rs}: {source}")]
    Create {
        rs: Key,
        #[source]
        source: kube::Error,
    },
    #[error("deleting pod {pod} of replicaset {rs}: {source}")]
    Delete {
        rs: Key,
        pod: String,
        #[source]
        source: kube::Error,
    },
    #[error("claiming pod {pod} for replicaset {rs}: {source}")]
    Claim {
        rs: Key,
        pod: String,
        #[source]
        source: kube::Error,
    },
    #[error("rechecking replicaset {rs} before adopting pods: {source}")]
    Recheck {
        rs: Key,
        #[source]
        source: kube::Error,
    },
    #[error("updating status of replicaset {rs}: {source}")]
    Status {
        rs: Key,
        #[source]
        source: kube::Error,
    },
}

struct Shared {
    client: kube::Client,
    replicasets: Store<ReplicaSet>,
    pods: Store<Pod>,
    expectations: Expectations,
    recorder: Recorder,
}

pub async fn run(ctx: Context) -> Result<(), ReplicaSetError> {
    let queue = Queue::new();
    let rs_informer = ctx.informers.get::<ReplicaSet>();
    let pod_informer = ctx.informers.get::<Pod>();
    rs_informer.synced().await;
    pod_informer.synced().await;
    let shared = Arc::new(Shared {
        client: ctx.client.clone(),
        replicasets: rs_informer.store().clone(),
        pods: pod_informer.store().clone(),
        expectations: Expectations::default(),
        recorder: ctx.recorder("replicaset-controller"),
    });
    let q = queue.clone();
    rs_informer.on_change(move |rs| q.add(Key::of(rs)));
    let q = queue.clone();
    let replicasets = shared.replicasets.clone();
    pod_informer.on_change(move |pod| {
        owners_of_pod(&replicasets, pod)
            .into_iter()
            .for_each(|k| q.add(k))
    });
    queue
        .run("replicaset", ctx.options.workers, move |key| {
            let shared = Arc::clone(&shared);
            async move { reconcile(&shared, &key).await }
        })
        .await;
    Ok(())
}

/// The ReplicaSets a pod change concerns: its controller, or for an orphan every ReplicaSet
/// in its namespace that selects it (one may adopt it).
fn owners_of_pod(replicasets: &Store<ReplicaSet>, pod: &Pod) -> Vec<Key> {
    let namespace = pod.namespace().unwrap_or_default();
    if let Some(owner) = controller_of(&pod.metadata) {
        return if owner.kind == "ReplicaSet" {
            vec![Key::new(&namespace, &owner.name)]
        } else {
            Vec::new()
        };
    }
    replicasets
        .state()
        .iter()
        .filter(|rs| rs.namespace().as_deref() == Some(namespace.as_str()))
        .filter(|rs| {
            Selector::from_label_selector(rs.spec.as_ref().map(|s| &s.selector))
                .unwrap_or_else(|_| Selector::nothing())
                .matches(&pod.metadata.labels.as_ref())
        })
        .map(|rs| Key::of(rs.as_ref()))
        .collect()
}

async fn reconcile(shared: &Shared, key: &Key) -> Result<Next, ReplicaSetError> {
    let Some(rs) = shared
        .replicasets
        .get(&ObjectRef::new(&key.name).within(&key.namespace))
    else {
        shared.expectations.forget(key);
        return Ok(Next::Done);
    };
    let uid = rs.uid().unwrap_or_default();
    let pod_api: Api<Pod> = Api::namespaced(shared.client.clone(), &key.namespace);
    let in_namespace = shared
        .pods
        .state_filter(|p| p.namespace().as_deref() == Some(key.namespace.as_str()));
    let rs_api: Api<ReplicaSet> = Api::namespaced(shared.client.clone(), &key.namespace);
    let mut rechecked = false;
    let mut owned: Vec<Arc<Pod>> = Vec::new();
    // Validation refuses malformed selectors; one that got past it selects nothing.
    let sel = Selector::from_label_selector(rs.spec.as_ref().map(|s| &s.selector))
        .unwrap_or_else(|_| Selector::nothing());
    for pod in in_namespace {
        let matching = sel.matches(&pod.metadata.labels.as_ref());
        let controller = controller_of(&pod.metadata);
        match controller {
            Some(r) if r.uid == uid => {
                if matching || rs.metadata.deletion_timestamp.is_some() {
                    owned.push(pod);
                } else {
                    ownership::release(&pod_api, pod.as_ref(), &uid)
                        .await
                        .map_err(|source| claim_error(key, &pod, source))?;
                }
            }
            None if matching
                && rs.metadata.deletion_timestamp.is_none()
                && pod.metadata.deletion_timestamp.is_none() =>
            {
                if !rechecked {
                    let live = ownership::can_adopt(&rs_api, &key.name, &uid)
                        .await
                        .map_err(|source| ReplicaSetError::Recheck {
                            rs: key.clone(),
                            source,
                        })?;
                    if !live {
                        // Being deleted or gone: its event brings us back.
                        return Ok(Next::Done);
                    }
                    rechecked = true;
                }
                let adopted = ownership::adopt(
                    &pod_api,
                    pod.as_ref(),
                    ownership::controller_ref(rs.as_ref()),
                )
                .await
                .map_err(|source| claim_error(key, &pod, source))?;
                owned.push(Arc::new(adopted));
            }
            _ => {}
        }
    }
    let active: Vec<&Pod> = owned
        .iter()
        .map(Arc::as_ref)
        .filter(|p| owned_pods::is_active(p))
        .collect();
    let satisfied = shared.expectations.satisfied(
        key,
        |name| {
            owned
                .iter()
                .any(|p| p.metadata.name.as_deref() == Some(name))
        },
        |pod_uid| {
            active
                .iter()
                .any(|p| p.metadata.uid.as_deref() == Some(pod_uid))
        },
    );
    let mut deleted = Vec::new();
    if satisfied && rs.metadata.deletion_timestamp.is_none() {
        let wanted = rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
        match plan::scale(wanted, &active) {
            Scale::Create(count) => create_pods(shared, key, &rs, count).await?,
            Scale::Delete(names) => {
                delete_pods(shared, key, &rs, &active, &names).await?;
                deleted = names;
            }
            Scale::Steady => {}
        }
    }
    // The status must not count pods just deleted: a Deployment scaling down old
    // ReplicaSets reads their available replicas and would remove too many.
    let remaining: Vec<&Pod> = active
        .iter()
        .copied()
        .filter(|p| {
            !p.metadata
                .name
                .as_ref()
                .is_some_and(|n| deleted.contains(n))
        })
        .collect();
    let now = Timestamp::now();
    let status = plan::status(&rs, &remaining, now);
    if rs.status.as_ref() != Some(&status) {
        let mut updated = (*rs).clone();
        updated.status = Some(status);
        rs_api
            .replace_status(&key.name, &PostParams::default(), &updated)
            .await
            .map_err(|source| ReplicaSetError::Status {
                rs: key.clone(),
                source,
            })?;
    }
    Ok(match plan::next_availability(&rs, &remaining, now) {
        Some(secs) => Next::After(std::time::Duration::from_secs(secs.unsigned_abs())),
        None => Next::Done,
    })
}

fn claim_error(rs: &Key, pod: &Pod, source: kube::Error) -> ReplicaSetError {
    ReplicaSetError::Claim {
        rs: rs.clone(),
        pod: pod.name_any(),
        source,
    }
}

/// A pod from the template, named `<rs>-<random>` by the server and controlled by `rs`.
fn pod_from_template(rs: &ReplicaSet) -> Pod {
    let template = rs.spec.as_ref().and_then(|s| s.template.clone());
    let template_meta = template
        .as_ref()
        .and_then(|t| t.metadata.clone())
        .unwrap_or_default();
    Pod {
        metadata: ObjectMeta {
            generate_name: Some(format!("{}-", rs.name_any())),
            namespace: rs.namespace(),
            labels: template_meta.labels,
            annotations: template_meta.annotations,
            finalizers: template_meta.finalizers,
            owner_references: Some(vec![ownership::controller_ref(rs)]),
            ..ObjectMeta::default()
        },
        spec: template.and_then(|t| t.spec),
        status: None,
    }
}

/// Creates pods in doubling batches (1, 2, 4, …) so that a failing template costs one error,
/// not hundreds, as Kubernetes' slow start does.
async fn create_pods(
    shared: &Shared,
    key: &Key,
    rs: &ReplicaSet,
    count: usize,
) -> Result<(), ReplicaSetError> {
    let api: Api<Pod> = Api::namespaced(shared.client.clone(), &key.namespace);
    let pod = pod_from_template(rs);
    let params = PostParams::default();
    let mut remaining = count;
    let mut batch = 1;
    while remaining > 0 {
        let size = batch.min(remaining);
        let results = join_all((0..size).map(|_| api.create(&params, &pod))).await;
        let mut failure = None;
        for result in results {
            match result {
                Ok(created) => {
                    shared.expectations.created(key, created.name_any());
                    let message = format!("Created pod: {}", created.name_any());
                    emit(
                        &shared.recorder,
                        rs,
                        EventType::Normal,
                        "SuccessfulCreate",
                        &message,
                    )
                }
                Err(source) => failure = Some(source),
            }
        }
        if let Some(source) = failure {
            let message = format!("Error creating: {source}");
            emit(
                &shared.recorder,
                rs,
                EventType::Warning,
                "FailedCreate",
                &message,
            );
            return Err(ReplicaSetError::Create {
                rs: key.clone(),
                source,
            });
        }
        remaining -= size;
        batch *= 2;
    }
    Ok(())
}

async fn delete_pods(
    shared: &Shared,
    key: &Key,
    rs: &ReplicaSet,
    active: &[&Pod],
    names: &[String],
) -> Result<(), ReplicaSetError> {
    let api: Api<Pod> = Api::namespaced(shared.client.clone(), &key.namespace);
    for name in names {
        let uid = active
            .iter()
            .find(|p| p.metadata.name.as_deref() == Some(name.as_str()))
            .and_then(|p| p.metadata.uid.clone())
            .unwrap_or_default();
        match api.delete(name, &DeleteParams::default()).await {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 404 => {}
            Err(source) => {
                return Err(ReplicaSetError::Delete {
                    rs: key.clone(),
                    pod: name.clone(),
                    source,
                });
            }
        }
        shared.expectations.deleted(key, uid);
        let message = format!("Deleted pod: {name}");
        emit(
            &shared.recorder,
            rs,
            EventType::Normal,
            "SuccessfulDelete",
            &message,
        );
    }
    Ok(())
}
