//! The Job controller: runs pods until enough succeed (or too many fail, or the deadline
//! passes), writes status and conditions as Kubernetes does, and deletes finished Jobs after
//! their `ttlSecondsAfterFinished`.
//!
//! Finished pods are counted through the `batch.kubernetes.io/job-tracking` finalizer, like
//! Kubernetes: a pod's uid goes to `status.uncountedTerminatedPods` first, then its finalizer
//! is removed, then it moves into the counts, so no pod is counted twice or lost.

pub mod plan;

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::batch::v1::{Job, UncountedTerminatedPods};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams, Preconditions};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::watcher;
use kube::{Client, ResourceExt};
use rkube_client::events::{EventType, Recorder};
use serde_json::json;

use crate::owned_pods::{self, OwnedPodsError};
use crate::{api_status, record};

#[derive(Debug, thiserror::Error)]
pub enum JobError {
    #[error("reading job {job}: {source}")]
    Get {
        job: String,
        #[source]
        source: kube::Error,
    },
    #[error(transparent)]
    Pods(#[from] OwnedPodsError),
    #[error("writing status of job {job}: {source}")]
    Status {
        job: String,
        #[source]
        source: kube::Error,
    },
    #[error("creating a pod for job {job}: {source}")]
    CreatePod {
        job: String,
        #[source]
        source: kube::Error,
    },
    #[error("deleting pod {pod} of job {job}: {source}")]
    DeletePod {
        job: String,
        pod: String,
        #[source]
        source: kube::Error,
    },
    #[error("removing the tracking finalizer of pod {pod} of job {job}: {source}")]
    ReleasePod {
        job: String,
        pod: String,
        #[source]
        source: kube::Error,
    },
    #[error("deleting finished job {job}: {source}")]
    DeleteJob {
        job: String,
        #[source]
        source: kube::Error,
    },
}

struct Context {
    client: Client,
    recorder: Recorder,
}

/// Runs the Job controller until its watches end.
pub async fn run(client: Client) -> Result<(), JobError> {
    let context = Arc::new(Context {
        recorder: Recorder::new(client.clone(), "job-controller"),
        client: client.clone(),
    });
    Controller::new(Api::<Job>::all(client.clone()), watcher::Config::default())
        .watches(
            Api::<Pod>::all(client),
            watcher::Config::default(),
            |child| owned_pods::controller_of::<Job, _>(&child),
        )
        .run(reconcile, retry, context)
        .for_each(|result| async move {
            if let Err(err) = result {
                tracing::debug!(error = %err, "job reconcile failed");
            }
        })
        .await;
    Ok(())
}

fn retry(_job: Arc<Job>, err: &JobError, _context: Arc<Context>) -> Action {
    tracing::info!(error = %err, "job reconcile failed; retrying");
    Action::requeue(Duration::from_millis(500))
}

async fn reconcile(cached: Arc<Job>, context: Arc<Context>) -> Result<Action, JobError> {
    let namespace = cached.namespace().unwrap_or_default();
    let name = cached.name_any();
    let key = format!("{namespace}/{name}");
    let jobs: Api<Job> = Api::namespaced(context.client.clone(), &namespace);
    // The cached copy may predate this controller's own last status write.
    let job = jobs.get_opt(&name).await.map_err(|source| JobError::Get {
        job: key.clone(),
        source,
    })?;
    let Some(job) = job else {
        return Ok(Action::await_change());
    };
    if job.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let uid = job.uid().unwrap_or_default();
    let selector = job.spec.as_ref().and_then(|s| s.selector.as_ref());
    let pods = owned_pods::list(&context.client, &namespace, &key, selector, &uid).await?;
    let now = Timestamp::now();
    if plan::is_finished(&job) {
        release(
            &context,
            &key,
            &namespace,
            pods.iter().filter(|p| has_finalizer(p)),
        )
        .await?;
        return expire(&jobs, &job, &key, now).await;
    }
    let job = count_finished(&context, &jobs, job, &pods, &key).await?;
    let next = plan::plan(&job, &pods, now);

    let pods_api: Api<Pod> = Api::namespaced(context.client.clone(), &namespace);
    for pod in &next.delete {
        let deleted = pods_api.delete(pod, &DeleteParams::default()).await;
        api_status::ok_or_code(deleted, &[404]).map_err(|source| JobError::DeletePod {
            job: key.clone(),
            pod: pod.clone(),
            source,
        })?;
        record::event(
            &context.recorder,
            &job,
            EventType::Normal,
            "SuccessfulDelete",
            &format!("Deleted pod: {pod}"),
        )
        .await;
    }
    if let (Some(spec), Some(owner)) = (&job.spec, owned_pods::controller_ref(&job)) {
        for _ in 0..next.create {
            let mut pod = owned_pods::from_template(
                &spec.template,
                owner.clone(),
                &namespace,
                &format!("{name}-"),
                true,
            );
            pod.metadata
                .finalizers
                .get_or_insert_with(Vec::new)
                .push(plan::TRACKING_FINALIZER.to_string());
            let created = pods_api
                .create(&PostParams::default(), &pod)
                .await
                .map_err(|source| JobError::CreatePod {
                    job: key.clone(),
                    source,
                })?;
            record::event(
                &context.recorder,
                &job,
                EventType::Normal,
                "SuccessfulCreate",
                &format!("Created pod: {}", created.name_any()),
            )
            .await;
        }
    }

    let before = job.status.clone().unwrap_or_default();
    if job.status.as_ref() != Some(&next.status) {
        let mut updated = job.clone();
        updated.status = Some(next.status.clone());
        let written = jobs
            .replace_status(&name, &PostParams::default(), &updated)
            .await
            .map_err(|source| JobError::Status {
                job: key.clone(),
                source,
            })?;
        announce(&context, &written, &before).await;
    }
    Ok(next.requeue.map_or_else(Action::await_change, |after| {
        Action::requeue(after + Duration::from_millis(100))
    }))
}

fn has_finalizer(pod: &Pod) -> bool {
    pod.finalizers()
        .iter()
        .any(|f| f == plan::TRACKING_FINALIZER)
}

/// Records newly finished pods as uncounted, removes their finalizers, and returns the Job
/// with them moved into its counts (not yet written).
async fn count_finished(
    context: &Context,
    jobs: &Api<Job>,
    mut job: Job,
    pods: &[Pod],
    key: &str,
) -> Result<Job, JobError> {
    let (succeeded, failed) = plan::newly_finished(&job, pods);
    if !succeeded.is_empty() || !failed.is_empty() {
        let status = job.status.get_or_insert_with(Default::default);
        let uncounted = status
            .uncounted_terminated_pods
            .get_or_insert_with(UncountedTerminatedPods::default);
        uncounted
            .succeeded
            .get_or_insert_with(Vec::new)
            .extend(succeeded);
        uncounted.failed.get_or_insert_with(Vec::new).extend(failed);
        job = jobs
            .replace_status(&job.name_any(), &PostParams::default(), &job)
            .await
            .map_err(|source| JobError::Status {
                job: key.to_string(),
                source,
            })?;
    }
    let namespace = job.namespace().unwrap_or_default();
    release(
        context,
        key,
        &namespace,
        plan::releasable(&job, pods).into_iter(),
    )
    .await?;
    let mut status = job.status.take().unwrap_or_default();
    plan::count_uncounted(&mut status);
    job.status = Some(status);
    Ok(job)
}

/// Removes the tracking finalizer from `pods`.
async fn release<'a>(
    context: &Context,
    key: &str,
    namespace: &str,
    pods: impl Iterator<Item = &'a Pod>,
) -> Result<(), JobError> {
    let api: Api<Pod> = Api::namespaced(context.client.clone(), namespace);
    let patch =
        json!({"metadata": {"$deleteFromPrimitiveList/finalizers": [plan::TRACKING_FINALIZER]}});
    for pod in pods {
        let name = pod.name_any();
        let patched = api
            .patch(&name, &PatchParams::default(), &Patch::Strategic(&patch))
            .await;
        api_status::ok_or_code(patched, &[404]).map_err(|source| JobError::ReleasePod {
            job: key.to_string(),
            pod: name,
            source,
        })?;
    }
    Ok(())
}

/// Deletes a finished Job whose TTL has passed, or comes back when it will have.
async fn expire(jobs: &Api<Job>, job: &Job, key: &str, now: Timestamp) -> Result<Action, JobError> {
    let Some(remaining) = plan::ttl_remaining(job, now) else {
        return Ok(Action::await_change());
    };
    if !remaining.is_zero() {
        return Ok(Action::requeue(remaining + Duration::from_millis(100)));
    }
    let params = DeleteParams {
        propagation_policy: Some(kube::api::PropagationPolicy::Background),
        preconditions: Some(Preconditions {
            uid: job.uid(),
            resource_version: None,
        }),
        ..DeleteParams::default()
    };
    let deleted = jobs.delete(&job.name_any(), &params).await;
    // 409: the uid precondition failed, a new Job of the same name is not ours to delete.
    api_status::ok_or_code(deleted, &[404, 409]).map_err(|source| JobError::DeleteJob {
        job: key.to_string(),
        source,
    })?;
    Ok(Action::await_change())
}

/// Events for the conditions that just turned True, as `kubectl describe job` shows them.
async fn announce(context: &Context, job: &Job, before: &k8s_openapi::api::batch::v1::JobStatus) {
    let was = |kind: &str| {
        before
            .conditions
            .iter()
            .flatten()
            .any(|c| c.type_ == kind && c.status == "True")
    };
    for condition in job
        .status
        .iter()
        .flat_map(|s| s.conditions.iter().flatten())
    {
        if condition.status != "True" || was(&condition.type_) {
            continue;
        }
        let reason = condition.reason.as_deref().unwrap_or_default();
        let (kind, reason, message) = match condition.type_.as_str() {
            "Complete" => (EventType::Normal, "Completed", "Job completed"),
            "Failed" => (
                EventType::Warning,
                reason,
                condition.message.as_deref().unwrap_or_default(),
            ),
            "Suspended" => (EventType::Normal, "Suspended", "Job suspended"),
            _ => continue,
        };
        record::event(&context.recorder, job, kind, reason, message).await;
    }
}
