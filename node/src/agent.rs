//! The node agent: registers the Node, keeps its Lease fresh and runs one worker per pod bound
//! to it, fed by a watch of those pods.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError};

use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::api::Api;
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use kube::{Client, ResourceExt};
use rkube_client::events::Recorder;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::backend::RuntimeBackend;
use crate::context::{Context, Leftover};
use crate::error::NodeError;
use crate::host::HostInfo;
use crate::options::NodeOptions;
use crate::paths::Layout;
use crate::pod_registry::PodRegistry;
use crate::registration;
use crate::volumes::KubeTokens;
use crate::worker;

/// Runs the node agent until the pod watch ends (it retries errors, so in practice until the
/// future is dropped, which also stops every pod worker and its containers' supervision).
pub async fn run(client: Client, options: NodeOptions) -> Result<(), NodeError> {
    run_until(client, options, std::future::pending()).await
}

/// Runs the node agent until `shutdown` resolves, then kills every container and returns once
/// they are gone. Pod objects and their files stay, so the next start of the agent runs the
/// same pods again.
pub async fn run_until(
    client: Client,
    options: NodeOptions,
    shutdown: impl Future<Output = ()>,
) -> Result<(), NodeError> {
    let name = options.name.clone();
    if options.backends.is_empty() {
        return Err(NodeError::NoRuntimes { node: name });
    }
    tokio::fs::create_dir_all(&options.data_dir)
        .await
        .map_err(|source| NodeError::DataDir {
            path: options.data_dir.clone(),
            source,
        })?;
    let mut host = HostInfo::detect();
    if let Some(ip) = options.node_ip {
        host.ip = ip;
    }
    let handlers: Vec<String> = options
        .backends
        .iter()
        .map(|b| b.handler().to_string())
        .collect();
    let runtimes: Vec<Arc<dyn rkube_runtimes::Runtime>> =
        options.backends.iter().map(|b| b.runtime.clone()).collect();
    let layout = Layout::new(&options.data_dir);
    let registry = PodRegistry::default();
    let mut background = JoinSet::new();
    let kubelet_port = match &options.kubelet {
        Some(kubelet) => {
            let listening =
                crate::kubelet::bind(kubelet, &name, host.ip, &layout, registry.clone(), runtimes)
                    .await
                    .map_err(|source| NodeError::Kubelet {
                        node: name.clone(),
                        source,
                    })?;
            background.spawn(listening.serve);
            Some(listening.port)
        }
        None => None,
    };
    let node = registration::node_object(&name, &host, &handlers, kubelet_port);
    let node = registration::register(&client, &node)
        .await
        .map_err(|source| NodeError::Register {
            node: name.clone(),
            source,
        })?;

    background.spawn(registration::renew_lease(
        client.clone(),
        node,
        options.lease_renew,
    ));
    background.spawn(registration::refresh_status(
        client.clone(),
        name.clone(),
        options.status_refresh,
    ));

    let (stopping, node_stopping) = watch::channel(false);
    let backends: Vec<Arc<RuntimeBackend>> = options.backends.into_iter().map(Arc::new).collect();
    let ctx = Arc::new(Context {
        client: client.clone(),
        node_name: name.clone(),
        node_ip: host.ip,
        layout,
        leftovers: Mutex::new(leftovers(&backends).await),
        runtimes: backends
            .iter()
            .map(|b| (b.handler().to_string(), b.clone()))
            .collect(),
        backoff: options.backoff,
        recorder: Recorder::new(client.clone(), "kubelet"),
        tokens: Arc::new(KubeTokens::new(client.clone())),
        node_stopping,
    });
    watch_pods(ctx, registry, client, &name, shutdown, stopping).await;
    Ok(())
}

/// Dispatches every pod of this node to its worker, one worker per pod uid, until `shutdown`;
/// then tells the workers to stop their containers and waits for them.
async fn watch_pods(
    ctx: Arc<Context>,
    registry: PodRegistry,
    client: Client,
    node: &str,
    shutdown: impl Future<Output = ()>,
    stopping: watch::Sender<bool>,
) {
    tokio::pin!(shutdown);
    let pods: Api<Pod> = Api::all(client);
    let config = watcher::Config::default().fields(&format!("spec.nodeName={node}"));
    let mut events = watcher::watcher(pods, config).default_backoff().boxed();
    let mut feeds: HashMap<String, watch::Sender<Option<Pod>>> = HashMap::new();
    let mut workers: JoinSet<String> = JoinSet::new();
    let mut listed: HashSet<String> = HashSet::new();
    loop {
        tokio::select! {
            event = events.next() => {
                let Some(event) = event else { return };
                match event {
                    Ok(Event::Init) => listed.clear(),
                    Ok(Event::InitApply(pod)) => {
                        listed.insert(pod.uid().unwrap_or_default());
                        registry.upsert(&pod);
                        dispatch(&ctx, &mut feeds, &mut workers, pod);
                    }
                    Ok(Event::InitDone) => {
                        tokio::spawn(remove_orphans(ctx.clone(), listed.clone()));
                        // Pods deleted while the watch was down.
                        feeds.retain(|uid, feed| {
                            let keep = listed.contains(uid);
                            if !keep {
                                registry.remove_uid(uid);
                                feed.send_replace(None);
                            }
                            keep
                        });
                    }
                    Ok(Event::Apply(pod)) => {
                        registry.upsert(&pod);
                        dispatch(&ctx, &mut feeds, &mut workers, pod);
                    }
                    Ok(Event::Delete(pod)) => {
                        let uid = pod.uid().unwrap_or_default();
                        registry.remove_uid(&uid);
                        if let Some(feed) = feeds.remove(&uid) {
                            feed.send_replace(None);
                        }
                    }
                    Err(error) => tracing::warn!(%error, "watching pods"),
                }
            }
            Some(done) = workers.join_next() => {
                if let Ok(uid) = done {
                    registry.remove_uid(&uid);
                    feeds.remove(&uid);
                }
            }
            () = &mut shutdown => {
                tracing::info!(%node, pods = feeds.len(), "node agent stopping its containers");
                stopping.send_replace(true);
                while workers.join_next().await.is_some() {}
                return;
            }
        }
    }
}

/// What the runtimes still hold from an earlier agent, by pod uid.
async fn leftovers(backends: &[Arc<RuntimeBackend>]) -> HashMap<String, Vec<Leftover>> {
    let mut by_pod: HashMap<String, Vec<Leftover>> = HashMap::new();
    for backend in backends {
        match backend.runtime.list().await {
            Ok(containers) => {
                for container in containers {
                    by_pod
                        .entry(container.pod_uid.clone())
                        .or_default()
                        .push(Leftover {
                            handler: backend.handler().to_string(),
                            container,
                        });
                }
            }
            Err(error) => {
                tracing::warn!(handler = backend.handler(), %error, "listing leftover containers")
            }
        }
    }
    by_pod
}

/// Deletes the containers and pod networks of pods that no longer exist (deleted while the agent
/// was down): everything left over that the first listing of this node's pods did not name.
async fn remove_orphans(ctx: Arc<Context>, listed: HashSet<String>) {
    let orphans: Vec<(String, Vec<Leftover>)> = {
        let mut leftovers = ctx.leftovers.lock().unwrap_or_else(PoisonError::into_inner);
        let gone: Vec<String> = leftovers
            .keys()
            .filter(|uid| !listed.contains(*uid))
            .cloned()
            .collect();
        gone.into_iter()
            .filter_map(|uid| leftovers.remove_entry(&uid))
            .collect()
    };
    for (uid, leftovers) in &orphans {
        for Leftover { handler, container } in leftovers {
            let Some(backend) = ctx.runtimes.get(handler) else {
                continue;
            };
            if let Err(error) = backend.runtime.delete(&container.id).await {
                tracing::warn!(pod = %uid, id = %container.id, %error, "deleting an orphan");
            }
        }
    }
    for backend in ctx.runtimes.values() {
        let Some(network) = &backend.network else {
            continue;
        };
        let attached = match network.attached().await {
            Ok(attached) => attached,
            Err(error) => {
                tracing::warn!(%error, "listing pod networks");
                continue;
            }
        };
        for uid in attached.iter().filter(|uid| !listed.contains(*uid)) {
            if let Err(error) = network.detach(uid).await {
                tracing::warn!(pod = %uid, %error, "removing an orphaned pod network");
            }
        }
    }
}

fn dispatch(
    ctx: &Arc<Context>,
    feeds: &mut HashMap<String, watch::Sender<Option<Pod>>>,
    workers: &mut JoinSet<String>,
    pod: Pod,
) {
    let Some(uid) = pod.uid() else {
        return;
    };
    if let Some(feed) = feeds.get(&uid) {
        feed.send_replace(Some(pod));
        return;
    }
    let (feed, receiver) = watch::channel(Some(pod));
    feeds.insert(uid.clone(), feed);
    let ctx = ctx.clone();
    workers.spawn(async move {
        worker::run(ctx, receiver).await;
        uid
    });
}
