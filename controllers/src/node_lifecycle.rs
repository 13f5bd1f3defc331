//! The node lifecycle controller: a node whose agent stops renewing its Lease (in
//! `kube-node-lease`) and stops posting status for longer than the grace period gets its
//! conditions set Unknown and the `node.kubernetes.io/unreachable` taints; pods on nodes with
//! NoExecute taints are evicted once their tolerations run out.
//!
//! Silence is measured on this controller's clock from when it last saw the lease renew
//! time or the Ready heartbeat change, as Kubernetes does, so clock skew between machines
//! does not matter and a restarted controller gives every node a full grace period.

pub mod plan;

use std::collections::HashMap;
use std::future::ready;
use std::time::Duration;

use futures::{Stream, StreamExt};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, Pod, Taint};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, Time};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DeleteParams, PostParams};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, ResourceExt};
use rkube_client::events::{EventType, Recorder};
use tokio::time::Instant;

use crate::{api_status, owned_pods, record};
use plan::Eviction;

const LEASE_NAMESPACE: &str = "kube-node-lease";

#[derive(Debug, Clone)]
pub struct NodeLifecycleOptions {
    /// How long a node may stay silent before it counts as unreachable.
    pub grace: Duration,
    /// How often nodes and evictions are checked.
    pub eviction_check: Duration,
}

impl Default for NodeLifecycleOptions {
    fn default() -> Self {
        NodeLifecycleOptions {
            grace: Duration::from_secs(50),
            eviction_check: Duration::from_secs(5),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum NodeLifecycleError {
    #[error("the {kind} cache stopped before it was filled")]
    CacheNotReady { kind: &'static str },
    #[error("the {kind} watch ended")]
    WatchEnded { kind: &'static str },
    #[error("marking node {node} unknown: {source}")]
    NodeStatus {
        node: String,
        #[source]
        source: kube::Error,
    },
    #[error("updating the taints of node {node}: {source}")]
    NodeTaints {
        node: String,
        #[source]
        source: kube::Error,
    },
    #[error("evicting pod {pod}: {source}")]
    Evict {
        pod: String,
        #[source]
        source: kube::Error,
    },
}

/// What was last heard from a node, and when (on this controller's clock).
struct Heard {
    signal: (Option<MicroTime>, Option<Time>),
    at: Instant,
}

struct Monitor {
    client: Client,
    recorder: Recorder,
    options: NodeLifecycleOptions,
    nodes: Store<Node>,
    leases: Store<Lease>,
    pods: Store<Pod>,
    heard: HashMap<String, Heard>,
    /// When taints without `timeAdded` were first seen, keyed by node and taint key.
    first_seen: HashMap<(String, String), Timestamp>,
}

/// Runs the node lifecycle controller with the default grace period until a watch ends.
pub async fn run(client: Client) -> Result<(), NodeLifecycleError> {
    run_with(client, NodeLifecycleOptions::default()).await
}

pub async fn run_with(
    client: Client,
    options: NodeLifecycleOptions,
) -> Result<(), NodeLifecycleError> {
    let (nodes, nodes_writer) = reflector::store();
    let (leases, leases_writer) = reflector::store();
    let (pods, pods_writer) = reflector::store();
    let node_feed = watcher(Api::<Node>::all(client.clone()), watcher::Config::default())
        .default_backoff()
        .reflect(nodes_writer);
    let lease_feed = watcher(
        Api::<Lease>::namespaced(client.clone(), LEASE_NAMESPACE),
        watcher::Config::default(),
    )
    .default_backoff()
    .reflect(leases_writer);
    let pod_feed = watcher(Api::<Pod>::all(client.clone()), watcher::Config::default())
        .default_backoff()
        .reflect(pods_writer);
    let mut monitor = Monitor {
        recorder: Recorder::new(client.clone(), "node-controller"),
        client,
        options,
        nodes,
        leases,
        pods,
        heard: HashMap::new(),
        first_seen: HashMap::new(),
    };
    tokio::select! {
        ended = drain(node_feed, "node") => ended,
        ended = drain(lease_feed, "lease") => ended,
        ended = drain(pod_feed, "pod") => ended,
        stopped = monitor.run() => stopped,
    }
}

/// Keeps a reflector fed; watch errors are retried by its backoff.
async fn drain<T>(
    feed: impl Stream<Item = Result<T, watcher::Error>>,
    kind: &'static str,
) -> Result<(), NodeLifecycleError> {
    feed.for_each(|event| {
        if let Err(err) = event {
            tracing::debug!(kind, error = %err, "watch failed");
        }
        ready(())
    })
    .await;
    Err(NodeLifecycleError::WatchEnded { kind })
}

impl Monitor {
    async fn run(&mut self) -> Result<(), NodeLifecycleError> {
        for (store_ready, kind) in [
            (self.nodes.wait_until_ready().await, "node"),
            (self.leases.wait_until_ready().await, "lease"),
            (self.pods.wait_until_ready().await, "pod"),
        ] {
            store_ready.map_err(|_| NodeLifecycleError::CacheNotReady { kind })?;
        }
        let mut ticks = tokio::time::interval(self.options.eviction_check);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            // Failures are retried on the next tick: every check starts from the caches.
            if let Err(err) = self.check_nodes().await {
                tracing::info!(error = %err, "node lifecycle check failed");
            }
            if let Err(err) = self.evict().await {
                tracing::info!(error = %err, "pod eviction failed");
            }
        }
    }

    /// How long the node has been silent, updating what was last heard from it.
    fn silent_for(&mut self, node: &Node) -> Duration {
        let name = node.name_any();
        let lease = self
            .leases
            .get(&ObjectRef::new(&name).within(LEASE_NAMESPACE));
        let renewed = lease.and_then(|l| l.spec.as_ref()?.renew_time.clone());
        let heartbeat = node
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .and_then(|cs| cs.iter().find(|c| c.type_ == "Ready"))
            .and_then(|c| c.last_heartbeat_time.clone());
        let signal = (renewed, heartbeat);
        let now = Instant::now();
        let heard = self.heard.entry(name).or_insert_with(|| Heard {
            signal: signal.clone(),
            at: now,
        });
        if heard.signal != signal {
            heard.signal = signal;
            heard.at = now;
        }
        now.duration_since(heard.at)
    }

    async fn check_nodes(&mut self) -> Result<(), NodeLifecycleError> {
        let nodes = self.nodes.state();
        self.heard
            .retain(|name, _| nodes.iter().any(|n| n.name_any() == *name));
        let api: Api<Node> = Api::all(self.client.clone());
        for node in nodes {
            let silent = plan::is_silent(self.silent_for(&node), self.options.grace);
            let now = Timestamp::now();
            let name = node.name_any();
            let mut node = (*node).clone();
            if silent && let Some(conditions) = plan::unknown_conditions(&node, now) {
                node.status.get_or_insert_with(Default::default).conditions = Some(conditions);
                node = api
                    .replace_status(&name, &PostParams::default(), &node)
                    .await
                    .map_err(|source| NodeLifecycleError::NodeStatus {
                        node: name.clone(),
                        source,
                    })?;
                let message = format!("Node {name} status is now: NodeNotReady");
                record::event(
                    &self.recorder,
                    &node,
                    EventType::Normal,
                    "NodeNotReady",
                    &message,
                )
                .await;
            }
            if let Some(taints) = plan::retaint(&node, plan::wanted_taint(&node, silent), now) {
                node.spec.get_or_insert_with(Default::default).taints = Some(taints);
                api.replace(&name, &PostParams::default(), &node)
                    .await
                    .map_err(|source| NodeLifecycleError::NodeTaints {
                        node: name.clone(),
                        source,
                    })?;
            }
        }
        Ok(())
    }

    /// When a taint counts from: its `timeAdded`, or when this controller first saw it.
    fn taint_time(&mut self, node: &str, taint: &Taint, now: Timestamp) -> Timestamp {
        match &taint.time_added {
            Some(added) => added.0,
            None => *self
                .first_seen
                .entry((node.to_string(), taint.key.clone()))
                .or_insert(now),
        }
    }

    async fn evict(&mut self) -> Result<(), NodeLifecycleError> {
        let now = Timestamp::now();
        let mut tainted: HashMap<String, (Vec<Taint>, bool)> = HashMap::new();
        for node in self.nodes.state() {
            let name = node.name_any();
            let taints: Vec<Taint> = node
                .spec
                .iter()
                .flat_map(|s| s.taints.iter().flatten())
                .filter(|t| t.effect == "NoExecute")
                .cloned()
                .collect();
            if taints.is_empty() {
                continue;
            }
            let unreachable = taints.iter().any(|t| t.key == plan::UNREACHABLE);
            tainted.insert(name, (taints, unreachable));
        }
        self.first_seen
            .retain(|(node, _), _| tainted.contains_key(node));
        for pod in self.pods.state() {
            let Some(node) = pod.spec.as_ref().and_then(|s| s.node_name.clone()) else {
                continue;
            };
            let Some((taints, unreachable)) = tainted.get(&node).cloned() else {
                continue;
            };
            // A pod already going gracefully is only hurried along on an unreachable node.
            let forced = pod.metadata.deletion_grace_period_seconds == Some(0);
            let going = owned_pods::is_terminating(&pod) && !unreachable;
            if owned_pods::is_finished(&pod) || forced || going {
                continue;
            }
            let times: Vec<Timestamp> = taints
                .iter()
                .map(|t| self.taint_time(&node, t, now))
                .collect();
            let added = |taint: &Taint| {
                taints
                    .iter()
                    .position(|t| t == taint)
                    .map_or(now, |i| times[i])
            };
            match plan::eviction(&pod, &taints, added) {
                Eviction::At(due) if due <= now => self.delete(&pod, unreachable).await?,
                Eviction::At(_) | Eviction::Never => {}
            }
        }
        Ok(())
    }

    /// Deletes an evicted pod; on an unreachable node at once, since no agent will confirm.
    async fn delete(&self, pod: &Pod, unreachable: bool) -> Result<(), NodeLifecycleError> {
        let namespace = pod.namespace().unwrap_or_default();
        let key = format!("{namespace}/{}", pod.name_any());
        let message = format!("Marking for deletion Pod {key}");
        record::event(
            &self.recorder,
            pod,
            EventType::Normal,
            "TaintManagerEviction",
            &message,
        )
        .await;
        let params = DeleteParams {
            grace_period_seconds: unreachable.then_some(0),
            ..DeleteParams::default()
        };
        let api: Api<Pod> = Api::namespaced(self.client.clone(), &namespace);
        let deleted = api.delete(&pod.name_any(), &params).await;
        api_status::ok_or_code(deleted, &[404])
            .map_err(|source| NodeLifecycleError::Evict { pod: key, source })
    }
}
