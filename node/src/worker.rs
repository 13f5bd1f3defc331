//! One task per pod: picks the runtime, prepares volumes, runs init containers in order and
//! then the containers, writes the pod status when it changes, and tears the pod down.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{
    Container, ContainerState, ContainerStateTerminated, ContainerStatus, Pod, PodStatus, Secret,
};
use k8s_openapi::api::node::v1::RuntimeClass;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, Patch, PatchParams, Preconditions};
use rkube_client::events::EventType;
use rkube_runtimes::{ContainerId, ContainerState as RuntimeState};
use serde_json::json;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::backend::RuntimeBackend;
use crate::container::{Outcome, StopSignal, Supervisor, restarts};
use crate::context::{Context, Leftover};
use crate::network::{PodAddress, PodNetwork};
use crate::pod_files::PodFiles;
use crate::pod_state::{Containers, Kind, Shared, pod_status, terminated_of, waiting};

/// The handler of pods that name no RuntimeClass.
const DEFAULT_HANDLER: &str = "runc";
/// How long containers of a pod that vanished from the API get to stop.
const ORPHAN_GRACE: Duration = Duration::from_secs(2);
/// The most a container gets to stop when the node agent shuts down: a wasm guest cannot catch
/// `Term`, so waiting longer would only delay the shutdown.
const NODE_SHUTDOWN_GRACE: Duration = Duration::from_secs(2);
/// How long a new pod's first status waits for its containers to change: a wasm container
/// starts in about a millisecond, and a Pending write would cost a store commit that the
/// Running write then queues behind.
const FIRST_STATUS_WAIT: Duration = Duration::from_millis(50);

/// The latest pod as the watch saw it; `None` once it is gone from the API.
pub type PodFeed = watch::Receiver<Option<Pod>>;

fn is_finished(pod: &Pod) -> bool {
    matches!(
        pod.status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Succeeded" | "Failed")
    )
}

/// How long the pod's containers get between `Term` and `Kill`.
pub fn grace_of(pod: &Pod) -> Duration {
    let seconds = pod
        .metadata
        .deletion_grace_period_seconds
        .or_else(|| pod.spec.as_ref()?.termination_grace_period_seconds)
        .unwrap_or(30);
    Duration::from_secs(u64::try_from(seconds).unwrap_or(0))
}

pub async fn run(ctx: Arc<Context>, mut feed: PodFeed) {
    let Some(pod) = feed.borrow().clone() else {
        return;
    };
    let uid = pod.uid().unwrap_or_default();
    let deleting = pod.metadata.deletion_timestamp.is_some();
    let backend = runtime_of(&ctx, &pod).await;
    let leftovers = ctx.take_leftovers(&uid);
    let adopted = match &backend {
        Ok(backend) => adopt(backend, leftovers).await,
        Err(_) => HashMap::new(),
    };
    let mut worker = Worker {
        start_time: pod
            .status
            .as_ref()
            .and_then(|s| s.start_time.clone())
            .unwrap_or_else(rkube_client::time::now),
        shared: Arc::new(Shared::new(carried_over(&pod, &adopted))),
        last_written: pod.status.clone(),
        network: backend.as_ref().ok().and_then(|b| b.network.clone()),
        ctx,
        pod,
    };
    let (stop_tx, stop_rx) = watch::channel(None);
    // A JoinSet so that dropping the worker (the agent stopping) also stops the containers'
    // supervision.
    let mut lifecycle = JoinSet::new();
    if !is_finished(&worker.pod) && !deleting {
        match backend {
            Ok(backend) => {
                lifecycle.spawn(lifecycle_of(
                    worker.ctx.clone(),
                    worker.pod.clone(),
                    backend,
                    adopted,
                    worker.shared.clone(),
                    stop_rx,
                ));
            }
            Err(message) => {
                worker.shared.modify(|c| {
                    c.failure = Some(("UnsupportedRuntime".into(), message.clone()));
                });
                worker
                    .event(EventType::Warning, "UnsupportedRuntime", &message)
                    .await;
            }
        }
    }
    let node_stops = node_stops(worker.ctx.node_stopping.clone());
    tokio::pin!(node_stops);
    if !lifecycle.is_empty() {
        let _ = tokio::time::timeout(FIRST_STATUS_WAIT, worker.shared.changed.notified()).await;
    }
    let mut gone = false;
    loop {
        if !gone && worker.pod.metadata.deletion_timestamp.is_none() {
            worker.write_status().await;
        }
        let stop_deadline = if gone {
            Some(ORPHAN_GRACE)
        } else if worker.pod.metadata.deletion_timestamp.is_some() {
            Some(grace_of(&worker.pod))
        } else {
            None
        };
        if let Some(grace) = stop_deadline {
            stop_tx.send_replace(Some(Instant::now() + grace));
            while let Some(ended) = lifecycle.join_next().await {
                if let Err(error) = ended {
                    tracing::warn!(pod = %uid, %error, "pod lifecycle task failed");
                }
            }
            worker.tear_down(gone).await;
            return;
        }
        tokio::select! {
            () = worker.shared.changed.notified() => {}
            changed = feed.changed() => {
                match changed.ok().and_then(|()| feed.borrow_and_update().clone()) {
                    Some(pod) => worker.pod = pod,
                    None => gone = true,
                }
            }
            () = &mut node_stops => {
                // Containers end without a status write or tear-down: the pod stays as the
                // API knows it, and the next agent start runs it again.
                let grace = grace_of(&worker.pod).min(NODE_SHUTDOWN_GRACE);
                stop_tx.send_replace(Some(Instant::now() + grace));
                while lifecycle.join_next().await.is_some() {}
                return;
            }
        }
    }
}

/// Resolves when the node agent shuts down; never if the agent is dropped instead.
async fn node_stops(mut stopping: watch::Receiver<bool>) {
    if stopping.wait_for(|stopping| *stopping).await.is_err() {
        std::future::pending::<()>().await;
    }
}

struct Worker {
    ctx: Arc<Context>,
    pod: Pod,
    /// The pod network to tear down with the pod, for runtimes that give pods one.
    network: Option<Arc<PodNetwork>>,
    shared: Arc<Shared>,
    start_time: Time,
    last_written: Option<PodStatus>,
}

impl Worker {
    async fn event(&self, kind: EventType, reason: &str, message: &str) {
        record_event(&self.ctx, &self.pod, kind, reason, message).await;
    }

    /// Writes the status through the status subresource when it differs from the last one.
    async fn write_status(&mut self) {
        let containers = self.shared.lock().clone();
        let host_ip = self.ctx.node_ip.to_string();
        let pod_ip = containers.pod_ip.unwrap_or(self.ctx.node_ip).to_string();
        let status = pod_status(&self.pod, &containers, &host_ip, &pod_ip, &self.start_time);
        if self.last_written.as_ref() == Some(&status) {
            return;
        }
        let pods: Api<Pod> = Api::namespaced(
            self.ctx.client.clone(),
            &self.pod.namespace().unwrap_or_else(|| "default".into()),
        );
        let patch = json!({ "status": status });
        match pods
            .patch_status(
                &self.pod.name_any(),
                &PatchParams::default(),
                &Patch::Merge(patch),
            )
            .await
        {
            Ok(_) => self.last_written = Some(status),
            Err(error) => {
                tracing::warn!(pod = %self.pod.name_any(), %error, "writing pod status");
                // Try again shortly even if nothing else changes.
                let shared = self.shared.clone();
                tokio::spawn(async move {
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    shared.changed.notify_one();
                });
            }
        }
    }

    /// Removes the pod's files, then the pod itself unless the API already dropped it.
    async fn tear_down(&self, gone: bool) {
        let uid = self.pod.uid().unwrap_or_default();
        if let Some(network) = &self.network
            && let Err(error) = network.detach(&uid).await
        {
            tracing::warn!(pod = %uid, %error, "removing the pod network");
        }
        for dir in [
            self.ctx.layout.pod_volumes(&uid),
            self.ctx.layout.pod_logs(&uid),
        ] {
            if let Err(error) = tokio::fs::remove_dir_all(&dir).await
                && error.kind() != std::io::ErrorKind::NotFound
            {
                tracing::warn!(dir = %dir.display(), %error, "removing pod files");
            }
        }
        if gone {
            return;
        }
        let pods: Api<Pod> = Api::namespaced(
            self.ctx.client.clone(),
            &self.pod.namespace().unwrap_or_else(|| "default".into()),
        );
        let params = DeleteParams {
            grace_period_seconds: Some(0),
            preconditions: Some(Preconditions {
                uid: Some(uid),
                resource_version: None,
            }),
            ..DeleteParams::default()
        };
        match pods.delete(&self.pod.name_any(), &params).await {
            Ok(_) => {}
            Err(kube::Error::Api(status)) if status.code == 404 || status.code == 409 => {}
            Err(error) => tracing::warn!(pod = %self.pod.name_any(), %error, "deleting the pod"),
        }
    }
}

/// The runtime of the pod's RuntimeClass handler, or why there is none on this node.
async fn runtime_of(ctx: &Context, pod: &Pod) -> Result<Arc<RuntimeBackend>, String> {
    let class = pod.spec.as_ref().and_then(|s| s.runtime_class_name.clone());
    let handler = match class {
        None => DEFAULT_HANDLER.to_string(),
        Some(class) => {
            let classes: Api<RuntimeClass> = Api::all(ctx.client.clone());
            match classes.get_opt(&class).await {
                Ok(Some(rc)) => rc.handler,
                Ok(None) => return Err(format!("runtimeclass {class} not found")),
                Err(error) => return Err(format!("reading runtimeclass {class}: {error}")),
            }
        }
    };
    ctx.runtimes
        .get(&handler)
        .cloned()
        .ok_or_else(|| format!("node {} has no runtime handler {handler}", ctx.node_name))
}

/// The pod's containers an earlier agent left running, by container name, to supervise again
/// as they are; the rest of what it left (ended runs) is deleted.
async fn adopt(backend: &RuntimeBackend, leftovers: Vec<Leftover>) -> HashMap<String, ContainerId> {
    let mut adopted = HashMap::new();
    for Leftover { handler, container } in leftovers {
        if handler != backend.handler() {
            continue;
        }
        let running = matches!(container.state, RuntimeState::Running { .. });
        if running && !adopted.contains_key(&container.container_name) {
            adopted.insert(container.container_name, container.id);
        } else if let Err(error) = backend.runtime.delete(&container.id).await {
            tracing::debug!(id = %container.id, %error, "deleting an ended leftover container");
        }
    }
    adopted
}

/// Records an event about the pod; a failure to record is only logged.
async fn record_event(ctx: &Context, pod: &Pod, kind: EventType, reason: &str, message: &str) {
    if let Err(error) = ctx.recorder.record(pod, kind, reason, message).await {
        tracing::debug!(%error, "recording a pod event");
    }
}

/// Sleeps for `delay` before a retry; false when the pod is stopped meanwhile.
async fn sleep_unless_stopped(stop: &StopSignal, delay: Duration) -> bool {
    let mut stop = stop.clone();
    tokio::select! {
        () = tokio::time::sleep(delay) => true,
        _ = stop.wait_for(Option::is_some) => false,
    }
}

/// The pod's network, retried with backoff; `None` when the pod stops meanwhile.
async fn attach_network(
    ctx: &Context,
    pod: &Pod,
    network: &PodNetwork,
    stop: &StopSignal,
) -> Option<PodAddress> {
    let uid = pod.uid().unwrap_or_default();
    let mut failures = 0u32;
    loop {
        match network.attach(&uid).await {
            Ok(address) => return Some(address),
            Err(error) => {
                let message = format!("Failed to create pod sandbox: {error}");
                let reason = "FailedCreatePodSandBox";
                record_event(ctx, pod, EventType::Warning, reason, &message).await;
                failures += 1;
                if !sleep_unless_stopped(stop, ctx.backoff.delay(failures)).await {
                    return None;
                }
            }
        }
    }
}

/// Volumes, init containers one by one, then all containers together.
async fn lifecycle_of(
    ctx: Arc<Context>,
    pod: Pod,
    backend: Arc<RuntimeBackend>,
    mut adopted: HashMap<String, ContainerId>,
    shared: Arc<Shared>,
    stop: StopSignal,
) {
    let address = match &backend.network {
        Some(network) => match attach_network(&ctx, &pod, network, &stop).await {
            Some(address) => {
                shared.modify(|c| c.pod_ip = Some(address.ip));
                Some(address)
            }
            None => return,
        },
        None => None,
    };
    let pod_ip = address.as_ref().map_or(ctx.node_ip, |a| a.ip);
    let pod_files = match &address {
        Some(address) => match PodFiles::write(&ctx.layout, &pod, address.ip).await {
            Ok(files) => Some(Arc::new(files)),
            Err(error) => {
                tracing::warn!(%error, "writing the pod's hosts and resolv.conf");
                None
            }
        },
        None => None,
    };
    let network_namespace = address.map(|a| a.netns);
    let prepared = loop {
        match crate::volumes::prepare(&ctx.client, ctx.tokens.as_ref(), &ctx.layout, &pod).await {
            Ok(prepared) => break prepared,
            Err(error) => {
                let message = error.to_string();
                record_event(&ctx, &pod, EventType::Warning, "FailedMount", &message).await;
                if !sleep_unless_stopped(&stop, ctx.backoff.initial).await {
                    return;
                }
            }
        }
    };
    let volumes = Arc::new(prepared.dirs);
    // Token files are kept fresh while the containers run; returning drops the set and so
    // stops the refresh with the pod.
    let mut refreshing = JoinSet::new();
    refreshing.spawn(crate::volumes::keep_fresh(
        ctx.tokens.clone(),
        prepared.tokens,
    ));
    let pull_secrets = Arc::new(pull_secrets(&ctx, &pod).await);
    let spec = pod.spec.clone().unwrap_or_default();
    let mut supervisor = |container: Container, kind, index| Supervisor {
        ctx: ctx.clone(),
        pod: pod.clone(),
        adopted: adopted.remove(&container.name),
        container,
        kind,
        index,
        backend: backend.clone(),
        pod_ip,
        network_namespace: network_namespace.clone(),
        pod_files: pod_files.clone(),
        volumes: volumes.clone(),
        pull_secrets: pull_secrets.clone(),
        shared: shared.clone(),
        stop: stop.clone(),
    };
    if !shared.lock().initialized {
        for (index, container) in spec.init_containers.iter().flatten().enumerate() {
            match supervisor(container.clone(), Kind::Init, index).run().await {
                Outcome::Succeeded => {}
                Outcome::Stopped => return,
                Outcome::Failed => {
                    let message = format!("init container {} failed", container.name);
                    shared.modify(|c| c.failure = Some(("Init:Error".into(), message)));
                    return;
                }
            }
        }
        shared.modify(|c| c.initialized = true);
    }
    let policy = spec
        .restart_policy
        .clone()
        .unwrap_or_else(|| "Always".into());
    let mut running = JoinSet::new();
    for (index, container) in spec.containers.iter().enumerate() {
        let ended = shared
            .get(Kind::Main, index)
            .and_then(|s| terminated_of(&s).map(|t| t.exit_code));
        // Finished before an agent restart and not due to run again.
        if ended.is_some_and(|code| !restarts(&policy, code)) {
            continue;
        }
        running.spawn(supervisor(container.clone(), Kind::Main, index).run());
    }
    while running.join_next().await.is_some() {}
}

async fn pull_secrets(ctx: &Context, pod: &Pod) -> Vec<Secret> {
    let namespace = pod.namespace().unwrap_or_else(|| "default".into());
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), &namespace);
    let mut found = Vec::new();
    let refs = pod.spec.as_ref().and_then(|s| s.image_pull_secrets.clone());
    for reference in refs.into_iter().flatten() {
        match secrets.get_opt(&reference.name).await {
            Ok(Some(secret)) => found.push(secret),
            Ok(None) => tracing::warn!(secret = %reference.name, "image pull secret not found"),
            Err(error) => {
                tracing::warn!(secret = %reference.name, %error, "reading image pull secret")
            }
        }
    }
    found
}

/// Container statuses to start from: fresh ones, or, for a pod this node ran before an agent
/// restart, the previous ones with every container that was running counted as restarted
/// (an in-process runtime cannot keep guests across restarts) unless it was `adopted`, still
/// running in its runtime.
fn carried_over(pod: &Pod, adopted: &HashMap<String, ContainerId>) -> Containers {
    let spec = pod.spec.clone().unwrap_or_default();
    let previous = pod.status.clone().unwrap_or_default();
    let initialized_before = previous
        .conditions
        .iter()
        .flatten()
        .any(|c| c.type_ == "Initialized" && c.status == "True");
    let carry = |name: &str, image: Option<&String>, old: Option<&Vec<ContainerStatus>>| {
        let fresh = ContainerStatus {
            name: name.to_string(),
            image: image.cloned().unwrap_or_default(),
            state: Some(waiting("ContainerCreating", None)),
            started: Some(false),
            ..ContainerStatus::default()
        };
        let Some(old) = old.into_iter().flatten().find(|s| s.name == name) else {
            return fresh;
        };
        let was_running = old.state.as_ref().is_some_and(|s| s.running.is_some());
        if was_running && adopted.contains_key(name) {
            return old.clone();
        }
        if was_running {
            let lost = ContainerStateTerminated {
                exit_code: 137,
                reason: Some("ContainerStatusUnknown".into()),
                message: Some("the node agent restarted while the container ran".into()),
                container_id: old.container_id.clone(),
                ..ContainerStateTerminated::default()
            };
            return ContainerStatus {
                restart_count: old.restart_count + 1,
                last_state: Some(ContainerState {
                    terminated: Some(lost),
                    ..ContainerState::default()
                }),
                ..fresh
            };
        }
        ContainerStatus {
            restart_count: old.restart_count,
            last_state: old.last_state.clone(),
            state: if terminated_of(old).is_some() {
                old.state.clone()
            } else {
                fresh.state
            },
            container_id: old.container_id.clone(),
            image_id: old.image_id.clone(),
            ..fresh
        }
    };
    let no_init = spec.init_containers.as_ref().is_none_or(Vec::is_empty);
    Containers {
        init: spec
            .init_containers
            .iter()
            .flatten()
            .map(|c| {
                carry(
                    &c.name,
                    c.image.as_ref(),
                    previous.init_container_statuses.as_ref(),
                )
            })
            .collect(),
        main: spec
            .containers
            .iter()
            .map(|c| {
                carry(
                    &c.name,
                    c.image.as_ref(),
                    previous.container_statuses.as_ref(),
                )
            })
            .collect(),
        initialized: no_init || initialized_before,
        failure: None,
        pod_ip: None,
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::{ContainerStateRunning, PodSpec};

    use super::*;

    #[test]
    fn a_running_container_counts_as_restarted_after_an_agent_restart() {
        let pod = Pod {
            spec: Some(PodSpec {
                containers: vec![Container {
                    name: "app".into(),
                    image: Some("app:1".into()),
                    ..Container::default()
                }],
                ..PodSpec::default()
            }),
            status: Some(PodStatus {
                container_statuses: Some(vec![ContainerStatus {
                    name: "app".into(),
                    restart_count: 2,
                    state: Some(ContainerState {
                        running: Some(ContainerStateRunning::default()),
                        ..ContainerState::default()
                    }),
                    ..ContainerStatus::default()
                }]),
                ..PodStatus::default()
            }),
            ..Pod::default()
        };
        let containers = carried_over(&pod, &HashMap::new());
        assert!(containers.initialized);
        let app = &containers.main[0];
        assert_eq!(app.restart_count, 3);
        let lost = app.last_state.as_ref().and_then(|s| s.terminated.as_ref());
        assert_eq!(lost.map(|t| t.exit_code), Some(137));
        assert!(app.state.as_ref().is_some_and(|s| s.waiting.is_some()));
        // A container its runtime kept running is adopted as it was.
        let adopted = HashMap::from([("app".to_string(), ContainerId("c1".into()))]);
        let kept = carried_over(&pod, &adopted);
        assert_eq!(kept.main[0].restart_count, 2);
        assert!(
            kept.main[0]
                .state
                .as_ref()
                .is_some_and(|s| s.running.is_some())
        );
    }
}
