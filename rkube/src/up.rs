//! `rkube up`: a whole cluster in one process. The API server (embedded store or etcd, TLS
//! listener, admin kubeconfig) plus the scheduler, the controller manager and one node agent
//! (wasm, and containerd when it answers), which reach the API through the router in-process
//! instead of a TLS socket.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use k8s_openapi::api::core::v1::Node;
use k8s_openapi::jiff::Timestamp;
use kube::api::Api;
use rkube_apiserver::in_process;
use rkube_apiserver::run::Prepared;
use rkube_node::NodeOptions;
use tokio::sync::watch;
use tokio::task::JoinSet;

pub struct UpOptions {
    pub data_dir: PathBuf,
    pub listen: SocketAddr,
    /// etcd endpoints; empty for the embedded store.
    pub etcd: Vec<String>,
    pub node_name: String,
    /// containerd's socket (the node runs container pods too when it answers), pod network
    /// and plain-HTTP registries.
    pub runtime: crate::backends::RuntimeFlags,
    /// Where the node's kubelet API (logs, exec) listens.
    pub kubelet_listen: SocketAddr,
    /// How long a node may miss heartbeats before it is marked unreachable.
    pub node_monitor_grace: Duration,
}

/// How long the components get to stop (the node agent gives its containers 2 s) before the
/// process exits regardless.
const SHUTDOWN_LIMIT: Duration = Duration::from_secs(10);

type Ended = (&'static str, anyhow::Result<()>);

/// Runs the cluster until `shutdown` resolves or a component fails. Prints `rkube is ready`
/// and the `export KUBECONFIG=…` hint on stdout once the API serves and the node is Ready.
pub async fn run(options: UpOptions, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
    let started = Instant::now();
    let since = Timestamp::now();
    let data_dir = std::path::absolute(&options.data_dir)
        .with_context(|| format!("resolving {}", options.data_dir.display()))?;
    let api = rkube_apiserver::run::prepare(&rkube_apiserver::run::Options {
        data_dir: data_dir.clone(),
        listen: options.listen,
        etcd: options.etcd.clone(),
    })
    .await
    .context("starting the api server")?;
    let client = in_process::client(api.router.clone(), in_process::admin());
    let node_name = options.node_name.clone();
    let node = node_options(&options, &data_dir, &api.ca_pem).await?;
    announce_join_command(&client, &api).await;
    let kubeconfig = api.kubeconfig.clone();

    let (stop, stopping) = watch::channel(false);
    let mut components =
        spawn_components(api, &client, node, options.node_monitor_grace, &stopping);
    let ready = node_ready(client, node_name, since);
    tokio::pin!(ready, shutdown);
    let mut announced = false;
    let failure = loop {
        tokio::select! {
            () = &mut shutdown => break None,
            result = &mut ready, if !announced => {
                announced = true;
                if let Err(error) = result {
                    break Some(error);
                }
                tracing::info!(elapsed = ?started.elapsed(), "cluster is ready");
                println!("rkube is ready");
                println!("export KUBECONFIG={}", kubeconfig.display());
            }
            Some(ended) = components.join_next() => break Some(unexpected_end(ended)),
        }
    };
    tracing::info!("stopping the cluster");
    stop.send_replace(true);
    if tokio::time::timeout(SHUTDOWN_LIMIT, drain(components))
        .await
        .is_err()
    {
        tracing::warn!(limit = ?SHUTDOWN_LIMIT, "components did not stop in time");
    }
    failure.map_or(Ok(()), Err)
}

/// The API server's listener, the node agent, the scheduler and the controller manager, each
/// a task that ends when `stopping` turns true (or earlier, on failure).
fn spawn_components(
    api: Prepared,
    client: &kube::Client,
    node: NodeOptions,
    node_monitor_grace: Duration,
    stopping: &watch::Receiver<bool>,
) -> JoinSet<Ended> {
    let mut components = JoinSet::new();
    let ca_pem = api.ca_pem.clone();
    let api_stopping = stopping.clone();
    components.spawn(async move {
        api.serve(stopped(api_stopping)).await;
        ("api server", Ok(()))
    });
    components.spawn(stoppable(
        "node agent",
        rkube_node::run_until(client.clone(), node, stopped(stopping.clone())),
    ));
    // One copy of each runs here: leader election would only delay a restart until the
    // previous run's Lease expires.
    let scheduler = rkube_scheduler::SchedulerOptions {
        leader_elect: false,
        ..Default::default()
    };
    components.spawn(unless_stopped(
        stopping.clone(),
        "scheduler",
        rkube_scheduler::run(client.clone(), scheduler),
    ));
    let controllers = rkube_controllers::manager::ManagerOptions {
        leader_elect: false,
        node_monitor_grace,
        root_ca_pem: Some(ca_pem),
        ..Default::default()
    };
    components.spawn(unless_stopped(
        stopping.clone(),
        "controller manager",
        rkube_controllers::manager::run(client.clone(), controllers),
    ));
    components
}

/// Waits for every component to end, logging those that failed on the way out.
async fn drain(mut components: JoinSet<Ended>) {
    while let Some(ended) = components.join_next().await {
        if let Ok((name, Err(error))) = ended {
            tracing::warn!(
                component = name,
                error = format!("{error:#}"),
                "while stopping"
            );
        }
    }
}

/// The node agent: always the wasm runtime; containerd too when its socket answers. Its
/// kubelet API trusts the cluster CA, as a joined node's does.
async fn node_options(
    options: &UpOptions,
    data_dir: &Path,
    ca_pem: &str,
) -> anyhow::Result<NodeOptions> {
    let node_dir = data_dir.join("node");
    let mut backends = vec![crate::backends::backend("wasm", &node_dir, &options.runtime).await?];
    match crate::backends::backend("containerd", &node_dir, &options.runtime).await {
        Ok(containerd) => backends.push(containerd),
        Err(error) => tracing::info!(
            socket = %options.runtime.containerd_socket.display(),
            reason = format!("{error:#}"),
            "no containerd: this node runs wasm pods only"
        ),
    }
    let mut node = NodeOptions::with_backends(options.node_name.clone(), node_dir, backends);
    node.kubelet = Some(rkube_node::KubeletOptions {
        listen: options.kubelet_listen,
        cluster_ca_pem: ca_pem.to_string(),
    });
    Ok(node)
}

/// Makes a bootstrap token valid for a day and logs the command that joins a node with it.
async fn announce_join_command(client: &kube::Client, api: &Prepared) {
    let token = rkube_client::bootstrap::Token::generate();
    let ttl = Some(Duration::from_secs(24 * 3600));
    let created =
        rkube_client::bootstrap::create(client.clone(), &token, ttl, "created by rkube up").await;
    let hash = rkube_client::bootstrap::ca_cert_hash(&api.ca_pem);
    match (created, hash) {
        (Ok(()), Ok(hash)) => tracing::info!(
            "join a node with: rkube node --server https://{} --token {} --ca-cert-hash {hash}",
            api.local,
            token.text()
        ),
        (Err(error), _) => tracing::warn!(%error, "creating a bootstrap token"),
        (_, Err(error)) => tracing::warn!(%error, "hashing the cluster CA for the join command"),
    }
}

/// The machine's host name, the default Node name.
pub fn host_name() -> anyhow::Result<String> {
    Ok(std::fs::read_to_string("/etc/hostname")
        .context("reading the host name from /etc/hostname; pass a node name")?
        .trim()
        .to_string())
}

/// Resolves once the node reports Ready with a heartbeat from this run (a Node left Ready by
/// the previous run does not count), watching rather than polling.
async fn node_ready(client: kube::Client, name: String, since: Timestamp) -> anyhow::Result<()> {
    let nodes: Api<Node> = Api::all(client);
    kube::runtime::wait::await_condition(nodes, &name, move |node: Option<&Node>| {
        ready_since(node, since)
    })
    .await
    .with_context(|| format!("waiting for node {name} to be ready"))?;
    Ok(())
}

/// Ready True with a heartbeat at or after `since` (heartbeats have whole seconds).
fn ready_since(node: Option<&Node>, since: Timestamp) -> bool {
    let ready = node
        .and_then(|n| n.status.as_ref()?.conditions.as_ref())
        .and_then(|conditions| conditions.iter().find(|c| c.type_ == "Ready"));
    ready.is_some_and(|c| {
        c.status == "True"
            && c.last_heartbeat_time
                .as_ref()
                .is_some_and(|t| t.0.as_second() >= since.as_second())
    })
}

/// Resolves once `stop` has been sent (or dropped, which also means the cluster is going).
async fn stopped(mut stopping: watch::Receiver<bool>) {
    let _ = stopping.wait_for(|stop| *stop).await;
}

/// A component that watches the stop signal itself.
async fn stoppable<E>(name: &'static str, run: impl Future<Output = Result<(), E>>) -> Ended
where
    E: Into<anyhow::Error>,
{
    (name, run.await.map_err(Into::into))
}

/// A component that runs until it is dropped: dropped when the cluster stops.
async fn unless_stopped<E>(
    stopping: watch::Receiver<bool>,
    name: &'static str,
    run: impl Future<Output = Result<(), E>>,
) -> Ended
where
    E: Into<anyhow::Error>,
{
    tokio::select! {
        result = run => (name, result.map_err(Into::into)),
        () = stopped(stopping) => (name, Ok(())),
    }
}

/// Why a component that ended before the stop signal takes the cluster down.
fn unexpected_end(ended: Result<Ended, tokio::task::JoinError>) -> anyhow::Error {
    match ended {
        Ok((name, Ok(()))) => anyhow::anyhow!("the {name} stopped unexpectedly"),
        Ok((name, Err(error))) => error.context(format!("the {name} failed")),
        Err(error) => anyhow::anyhow!("a component task failed: {error}"),
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::{NodeCondition, NodeStatus};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    use super::*;

    fn node(status: &str, heartbeat: Timestamp) -> Node {
        Node {
            status: Some(NodeStatus {
                conditions: Some(vec![NodeCondition {
                    type_: "Ready".into(),
                    status: status.into(),
                    last_heartbeat_time: Some(Time(heartbeat)),
                    ..NodeCondition::default()
                }]),
                ..NodeStatus::default()
            }),
            ..Node::default()
        }
    }

    #[test]
    fn ready_counts_only_a_heartbeat_from_this_run() {
        let since: Timestamp = "2025-01-01T10:00:00.700Z".parse().unwrap();
        let same_second: Timestamp = "2025-01-01T10:00:00Z".parse().unwrap();
        let earlier: Timestamp = "2025-01-01T09:59:59Z".parse().unwrap();
        assert!(ready_since(Some(&node("True", same_second)), since));
        assert!(!ready_since(Some(&node("True", earlier)), since));
        assert!(!ready_since(Some(&node("Unknown", same_second)), since));
        assert!(!ready_since(Some(&Node::default()), since));
        assert!(!ready_since(None, since));
    }
}
