//! The scheduler process: watches in, decisions out, optionally behind leader election.

use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::node::v1::RuntimeClass;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::reflector::{self, Store};
use kube::{Client, Resource};
use rkube_client::events::{EventType, Recorder};
use rkube_client::leader::{self, LeaseConfig};
use tokio::sync::{Semaphore, watch};

use crate::algorithm::Picker;
use crate::binder::{self, Decision};
use crate::event_sink::{EventSink, PendingEvent};
use crate::fit_error::FitError;
use crate::informers;
use crate::plugins::Candidate;
use crate::pod_info::{DEFAULT_RUNTIME_CLASS, PodInfo, PodKey};
use crate::state::Shared;

pub const DEFAULT_SCHEDULER_NAME: &str = "default-scheduler";
const LEASE_NAME: &str = "kube-scheduler";
/// Pods taken from the queue per lock acquisition.
const BATCH: usize = 256;
/// How long the loop sleeps when nothing is due and nothing wakes it.
const IDLE: Duration = Duration::from_secs(60);

#[derive(Debug, Clone)]
pub struct SchedulerOptions {
    /// Act only while holding the `kube-system/kube-scheduler` Lease.
    pub leader_elect: bool,
    /// Pods naming another `schedulerName` are left alone.
    pub scheduler_name: String,
    /// Binding requests in flight at once.
    pub parallel_binds: usize,
}

impl Default for SchedulerOptions {
    fn default() -> Self {
        SchedulerOptions {
            leader_elect: false,
            scheduler_name: DEFAULT_SCHEDULER_NAME.into(),
            parallel_binds: 512,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SchedulerError {
    #[error("lost the leader lease {namespace}/{name}")]
    LostLeadership { namespace: String, name: String },
    #[error("the {watch} watch ended")]
    WatchEnded { watch: &'static str },
}

/// Runs the scheduler until leadership is lost or a watch ends (neither happens in normal
/// operation: watches restart on their own).
pub async fn run(client: Client, options: SchedulerOptions) -> Result<(), SchedulerError> {
    if !options.leader_elect {
        return schedule(client, options).await;
    }
    let config = LeaseConfig::new(LEASE_NAME, &leader::identity());
    let (namespace, name) = (config.namespace.clone(), config.name.clone());
    let mut leading = leader::lead(client.clone(), config).await;
    tokio::select! {
        result = schedule(client, options) => result,
        // Like kube-scheduler: stop at once, another replica takes over.
        _ = leading.wait_for(|leads| !*leads) => {
            Err(SchedulerError::LostLeadership { namespace, name })
        }
    }
}

async fn schedule(client: Client, options: SchedulerOptions) -> Result<(), SchedulerError> {
    let shared = Shared::new(&options.scheduler_name);
    let (nodes, node_writer) = reflector::store();
    let (classes, class_writer) = reflector::store();
    let (synced_tx, synced) = watch::channel(false);
    let recorder = Recorder::new(client.clone(), options.scheduler_name.clone());
    let (events, event_writer) = EventSink::start(recorder);
    let looping = Loop {
        client: client.clone(),
        shared: Arc::clone(&shared),
        classes,
        events,
        binds: Arc::new(Semaphore::new(options.parallel_binds.max(1))),
    };
    tokio::select! {
        _ = informers::pending_pods(client.clone(), Arc::clone(&shared)) => {
            Err(SchedulerError::WatchEnded { watch: "pending pods" })
        }
        _ = informers::bound_pods(client.clone(), Arc::clone(&shared), synced_tx) => {
            Err(SchedulerError::WatchEnded { watch: "bound pods" })
        }
        _ = informers::nodes(client.clone(), Arc::clone(&shared), node_writer) => {
            Err(SchedulerError::WatchEnded { watch: "nodes" })
        }
        _ = informers::runtime_classes(client.clone(), Arc::clone(&shared), class_writer) => {
            Err(SchedulerError::WatchEnded { watch: "runtime classes" })
        }
        _ = event_writer => Err(SchedulerError::WatchEnded { watch: "events" }),
        _ = looping.run(nodes, synced) => Ok(()),
    }
}

struct Loop {
    client: Client,
    shared: Arc<Shared>,
    classes: Store<RuntimeClass>,
    events: EventSink,
    binds: Arc<Semaphore>,
}

impl Loop {
    async fn run(
        self,
        nodes: Store<k8s_openapi::api::core::v1::Node>,
        mut synced: watch::Receiver<bool>,
    ) {
        // Decide nothing before nodes, classes and bound pods are known.
        let ready = async {
            let _ = nodes.wait_until_ready().await;
            let _ = self.classes.wait_until_ready().await;
            let _ = synced.wait_for(|s| *s).await;
        };
        ready.await;
        tracing::info!("scheduler caches synced");
        let mut picker = Picker::default();
        loop {
            let batch = self.shared.lock().queue.pop(BATCH, Instant::now());
            if batch.is_empty() {
                let wakeup = self.shared.lock().queue.next_wakeup();
                let sleep = wakeup.map_or(IDLE, |at| at.saturating_duration_since(Instant::now()));
                tokio::select! {
                    _ = self.shared.wake.notified() => {}
                    _ = tokio::time::sleep(sleep) => {}
                }
                continue;
            }
            for (key, pod) in batch {
                self.schedule_one(&mut picker, key, pod).await;
            }
        }
    }

    async fn schedule_one(&self, picker: &mut Picker, key: PodKey, pod: Arc<Pod>) {
        let info = PodInfo::of(&pod);
        let handler = informers::handler_of(&self.classes, &info.runtime_class).or_else(|| {
            // A cluster without RuntimeClass objects still runs pods that name none.
            (info.runtime_class == DEFAULT_RUNTIME_CLASS).then(|| DEFAULT_RUNTIME_CLASS.into())
        });
        let decision = {
            let mut state = self.shared.lock();
            let result = match &handler {
                Some(handler) => picker.pick(
                    &state.cache,
                    &Candidate {
                        pod: &info,
                        handler,
                    },
                ),
                None => Err(FitError::Precondition {
                    nodes: state.cache.node_count(),
                    message: format!(
                        "runtimeclass.node.k8s.io {:?} not found",
                        info.runtime_class
                    ),
                }),
            };
            match result {
                Ok(node) => {
                    state
                        .cache
                        .assume(key.clone(), &node, info.footprint.clone());
                    Ok(node)
                }
                Err(err) => {
                    state.queue.requeue(&key, true, Instant::now());
                    Err(err)
                }
            }
        };
        match decision {
            Ok(node) => {
                // Waiting for a permit is the backpressure that bounds requests in flight.
                let Ok(permit) = Arc::clone(&self.binds).acquire_owned().await else {
                    return;
                };
                let task = binder::bind(
                    self.client.clone(),
                    Arc::clone(&self.shared),
                    self.events.clone(),
                    Decision { key, pod, node },
                );
                tokio::spawn(async move {
                    task.await;
                    drop(permit);
                });
            }
            Err(err) => {
                let message = err.to_string();
                tracing::debug!(pod = %key, reason = %message, "pod is unschedulable");
                self.events.send(PendingEvent {
                    object: pod.object_ref(&()),
                    kind: EventType::Warning,
                    reason: "FailedScheduling",
                    message: message.clone(),
                });
                tokio::spawn(mark_unschedulable(self.client.clone(), pod, message));
            }
        }
    }
}

/// Sets `PodScheduled=False` with the reason, as `kubectl describe pod` shows it.
async fn mark_unschedulable(client: Client, pod: Arc<Pod>, message: String) {
    let namespace = pod.metadata.namespace.clone().unwrap_or_default();
    let name = pod.metadata.name.clone().unwrap_or_default();
    let api: Api<Pod> = Api::namespaced(client, &namespace);
    let patch = serde_json::json!({"status": {"conditions": [{
        "type": "PodScheduled",
        "status": "False",
        "reason": "Unschedulable",
        "message": message,
        "lastTransitionTime": rkube_client::time::now(),
    }]}});
    if let Err(err) = api
        .patch_status(&name, &PatchParams::default(), &Patch::Strategic(patch))
        .await
    {
        tracing::debug!(pod = %name, error = %err, "recording the unschedulable condition failed");
    }
}
