//! The watches that feed the scheduler: unbound pods (the queue), bound pods (node totals),
//! nodes and RuntimeClasses (reflector stores). Each relist reconciles what went missing.

use std::collections::HashSet;
use std::sync::Arc;

use futures::{Stream, StreamExt};
use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::api::node::v1::RuntimeClass;
use kube::runtime::WatchStreamExt;
use kube::runtime::reflector::{self, Store};
use kube::runtime::watcher::{self, Event};
use kube::{Api, Client, ResourceExt};
use tokio::sync::watch;

use crate::pod_info::key_of;
use crate::state::Shared;

/// Unbound pods that are not finished.
const PENDING_PODS: &str = "spec.nodeName=,status.phase!=Succeeded,status.phase!=Failed";
/// Bound pods that still hold their node's resources.
const BOUND_PODS: &str = "spec.nodeName!=,status.phase!=Succeeded,status.phase!=Failed";

/// Applies one watch's events with relist bookkeeping: objects listed between `Init` and
/// `InitDone` are the complete set; `listed` is told what it was.
async fn follow<K, S>(
    what: &'static str,
    stream: S,
    mut apply: impl FnMut(K),
    mut delete: impl FnMut(K),
    mut listed: impl FnMut(&HashSet<String>),
    key: impl Fn(&K) -> String,
) where
    S: Stream<Item = Result<Event<K>, watcher::Error>>,
{
    let mut seen: HashSet<String> = HashSet::new();
    let mut stream = std::pin::pin!(stream);
    while let Some(event) = stream.next().await {
        match event {
            Ok(Event::Apply(obj)) => apply(obj),
            Ok(Event::Delete(obj)) => delete(obj),
            Ok(Event::Init) => seen.clear(),
            Ok(Event::InitApply(obj)) => {
                seen.insert(key(&obj));
                apply(obj);
            }
            Ok(Event::InitDone) => {
                listed(&seen);
                seen.clear();
            }
            Err(err) => tracing::warn!(watch = what, error = %err, "watch failed, retrying"),
        }
    }
}

pub async fn pending_pods(client: Client, shared: Arc<Shared>) {
    let api: Api<Pod> = Api::all(client);
    let stream = watcher(api, PENDING_PODS);
    follow(
        "pending pods",
        stream,
        |pod| shared.pending_pod(pod),
        |pod| shared.pending_pod_gone(&pod),
        |listed| shared.pending_pods_listed(listed),
        key_of,
    )
    .await;
}

/// `synced` turns true after the first complete list, so that no decision is made before
/// the scheduler knows what nodes already carry.
pub async fn bound_pods(client: Client, shared: Arc<Shared>, synced: watch::Sender<bool>) {
    let api: Api<Pod> = Api::all(client);
    let stream = watcher(api, BOUND_PODS);
    follow(
        "bound pods",
        stream,
        |pod| shared.bound_pod(&pod),
        |pod| shared.bound_pod_gone(&pod),
        |listed| {
            shared.bound_pods_listed(listed);
            synced.send_replace(true);
        },
        key_of,
    )
    .await;
}

pub async fn nodes(client: Client, shared: Arc<Shared>, writer: reflector::store::Writer<Node>) {
    let api: Api<Node> = Api::all(client);
    let stream = reflector::reflector(writer, watcher(api, ""));
    follow(
        "nodes",
        stream,
        |node| shared.node(&node),
        |node| shared.node_gone(&node.name_any()),
        |listed| shared.nodes_listed(listed),
        |node| node.name_any(),
    )
    .await;
}

pub async fn runtime_classes(
    client: Client,
    shared: Arc<Shared>,
    writer: reflector::store::Writer<RuntimeClass>,
) {
    let api: Api<RuntimeClass> = Api::all(client);
    let stream = reflector::reflector(writer, watcher(api, ""));
    follow(
        "runtime classes",
        stream,
        |_| shared.runtime_classes_changed(),
        |_| shared.runtime_classes_changed(),
        |_| shared.runtime_classes_changed(),
        |class| class.name_any(),
    )
    .await;
}

/// The handler of RuntimeClass `class`; `None` when no such class exists.
pub fn handler_of(classes: &Store<RuntimeClass>, class: &str) -> Option<String> {
    classes
        .get(&reflector::ObjectRef::new(class))
        .map(|c| c.handler.clone())
}

fn watcher<K>(api: Api<K>, fields: &str) -> impl Stream<Item = Result<Event<K>, watcher::Error>>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug + Send + 'static,
{
    // A streaming list (one watch with sendInitialEvents) instead of paged lists: pages read
    // while the cluster changes fall back to the store's history and cost O(all objects)
    // each, which made the initial list of a 30k-pod backlog quadratic.
    let mut config = watcher::Config::default().streaming_lists();
    if !fields.is_empty() {
        config = config.fields(fields);
    }
    watcher::watcher(api, config).default_backoff()
}
