//! The controller manager: leader election, then every controller running concurrently.
//!
//! Adding a controller: a module exposing
//!
//! ```text
//! pub async fn run(ctx: Context) -> Result<(), SomeError>
//! ```
//!
//! where `SomeError: std::error::Error + Send + Sync + 'static`, and one `start(...)` line in
//! [`controllers`]. `run` should only return on a fatal error: it watches through
//! `ctx.informers` (shared caches, one watch per type), queues keys on changes and reconciles
//! them with a [`crate::queue::Queue`].

use std::error::Error as StdError;
use std::time::Duration;

use futures::future::BoxFuture;
use futures::stream::{FuturesUnordered, StreamExt};
use kube::Client;
use rkube_client::leader::{self, LeaseConfig};

use crate::context::Context;
use crate::node_lifecycle::NodeLifecycleOptions;
use crate::{
    cronjob, daemonset, deployment, endpoints, endpointslice, gc, job, namespace, node_lifecycle,
    replicaset, root_ca, serviceaccount, statefulset,
};

/// kube-controller-manager's settings that the controllers use.
#[derive(Debug, Clone)]
pub struct ManagerOptions {
    /// Take the `kube-controller-manager` lease in kube-system before acting.
    pub leader_elect: bool,
    /// How long a node may miss heartbeats (Lease renewals) before it is marked unreachable;
    /// its pods are then evicted after their toleration seconds (300 by default).
    pub node_monitor_grace: Duration,
    /// Reconcile loops per controller.
    pub workers: usize,
    /// The cluster CA (PEM) that the root CA publisher puts into every namespace as
    /// `kube-root-ca.crt`; without it that controller does not run.
    pub root_ca_pem: Option<String>,
}

impl Default for ManagerOptions {
    fn default() -> Self {
        ManagerOptions {
            leader_elect: true,
            node_monitor_grace: Duration::from_secs(50),
            workers: 4,
            root_ca_pem: None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ManagerError {
    #[error("controller {name} stopped: {source}")]
    Controller {
        name: &'static str,
        #[source]
        source: Box<dyn StdError + Send + Sync>,
    },
    #[error("controller {name} returned")]
    Returned { name: &'static str },
    #[error("lost leadership of lease kube-controller-manager")]
    LostLeadership,
}

type Running = BoxFuture<'static, ManagerError>;

fn start<E>(
    name: &'static str,
    controller: impl Future<Output = Result<(), E>> + Send + 'static,
) -> Running
where
    E: StdError + Send + Sync + 'static,
{
    Box::pin(async move {
        match controller.await {
            Ok(()) => ManagerError::Returned { name },
            Err(err) => ManagerError::Controller {
                name,
                source: Box::new(err),
            },
        }
    })
}

/// Every controller this manager runs.
fn controllers(ctx: &Context) -> Vec<Running> {
    let mut running = vec![
        start("replicaset", replicaset::run(ctx.clone())),
        start("deployment", deployment::run(ctx.clone())),
        start("garbage-collector", gc::run(ctx.clone())),
        start("namespace", namespace::run(ctx.clone())),
        start("serviceaccount", serviceaccount::run(ctx.clone())),
        start("endpoints", endpoints::run(ctx.clone())),
        start("endpointslice", endpointslice::run(ctx.clone())),
        start("job", job::run(ctx.client.clone())),
        start("cronjob", cronjob::run(ctx.client.clone())),
        start("daemonset", daemonset::run(ctx.client.clone())),
        start("statefulset", statefulset::run(ctx.client.clone())),
        start(
            "node-lifecycle",
            node_lifecycle::run_with(
                ctx.client.clone(),
                NodeLifecycleOptions {
                    grace: ctx.options.node_monitor_grace,
                    ..NodeLifecycleOptions::default()
                },
            ),
        ),
    ];
    if let Some(ca_pem) = &ctx.options.root_ca_pem {
        running.push(start(
            "root-ca-cert-publisher",
            root_ca::run(ctx.clone(), ca_pem.clone()),
        ));
    }
    running
}

/// Runs the controllers until one fails or leadership is lost; both end the manager, as
/// kube-controller-manager exits so that a fresh process starts from clean caches.
pub async fn run(client: Client, options: ManagerOptions) -> Result<(), ManagerError> {
    let mut leading = if options.leader_elect {
        let config = LeaseConfig::new("kube-controller-manager", &leader::identity());
        Some(leader::lead(client.clone(), config).await)
    } else {
        None
    };
    let ctx = Context::new(client, options);
    let mut running: FuturesUnordered<Running> = controllers(&ctx).into_iter().collect();
    let lost = async {
        match leading.as_mut() {
            Some(rx) => {
                // An error means the renewing task ended, which it only does after losing.
                while rx.changed().await.is_ok() && *rx.borrow() {}
            }
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        Some(err) = running.next() => Err(err),
        () = lost => Err(ManagerError::LostLeadership),
    }
}
