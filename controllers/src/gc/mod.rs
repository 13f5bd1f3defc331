//! The garbage collector: deletes objects whose owners are all gone, and carries out
//! foreground (`foregroundDeletion`) and orphaning (`orphan`) deletions of owners.

mod graph;

use std::collections::HashSet;
use std::sync::{Arc, Mutex, PoisonError};

use futures::StreamExt;
use futures::stream::select_all;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{
    Api, DeleteParams, DynamicObject, Patch, PatchParams, Preconditions, PropagationPolicy,
};
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use kube::{Client, ResourceExt};
use serde_json::json;

use crate::context::Context;
use crate::discovery::{Kind, deletable_kinds};
use crate::queue::{Key, Next, Queue};

pub use graph::{Action, FOREGROUND, Graph, Node, ORPHAN};

#[derive(Debug, thiserror::Error)]
pub enum GcError {
    #[error("discovering served kinds: {0}")]
    Discovery(#[source] kube::Error),
    #[error("{action} {kind} {name}: {source}")]
    Write {
        action: &'static str,
        kind: String,
        name: String,
        #[source]
        source: kube::Error,
    },
    #[error("looking up owner {kind} {name}: {source}")]
    Owner {
        kind: String,
        name: String,
        #[source]
        source: kube::Error,
    },
    #[error("the watches of the garbage collector ended")]
    WatchesEnded,
}

struct Shared {
    client: Client,
    kinds: Vec<Kind>,
    graph: Mutex<Graph>,
}

impl Shared {
    fn graph(&self) -> std::sync::MutexGuard<'_, Graph> {
        self.graph.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn api(&self, kind: usize, namespace: Option<&str>) -> Option<Api<DynamicObject>> {
        let k = self.kinds.get(kind)?;
        Some(match namespace.filter(|_| k.namespaced) {
            Some(ns) => Api::namespaced_with(self.client.clone(), ns, &k.resource),
            None => Api::all_with(self.client.clone(), &k.resource),
        })
    }
}

pub async fn run(ctx: Context) -> Result<(), GcError> {
    // Events are never owned and expire on their own: not worth a watch.
    let kinds = deletable_kinds(&ctx.client)
        .await
        .map_err(GcError::Discovery)?
        .into_iter()
        .filter(|k| k.resource.plural != "events")
        .collect();
    let shared = Arc::new(Shared {
        client: ctx.client.clone(),
        kinds,
        graph: Mutex::new(Graph::default()),
    });
    let queue = Queue::new();
    let watches = shared.kinds.iter().enumerate().map(|(i, kind)| {
        let api: Api<DynamicObject> = Api::all_with(ctx.client.clone(), &kind.resource);
        watcher::watcher(api, watcher::Config::default())
            .default_backoff()
            .map(move |event| (i, event))
            .boxed()
    });
    let mut events = select_all(watches);
    let observe = {
        let (shared, queue) = (Arc::clone(&shared), queue.clone());
        async move {
            // Uids seen during a (re)list of each kind, to drop what vanished meanwhile.
            let mut listing: Vec<HashSet<String>> = vec![HashSet::new(); shared.kinds.len()];
            while let Some((kind, event)) = events.next().await {
                let event = match event {
                    Ok(event) => event,
                    Err(err) => {
                        tracing::warn!(error = %err, "garbage collector watch failed; retrying");
                        continue;
                    }
                };
                let mut touched = Vec::new();
                {
                    let mut graph = shared.graph();
                    match event {
                        Event::Apply(obj) | Event::InitApply(obj) => {
                            if let Some(uid) = obj.uid() {
                                listing[kind].insert(uid.clone());
                                touched.extend(graph.upsert(&uid, node(kind, &obj)));
                                touched.push(uid);
                            }
                        }
                        Event::Delete(obj) => {
                            if let Some(uid) = obj.uid() {
                                touched.extend(graph.remove(&uid));
                            }
                        }
                        Event::Init => listing[kind].clear(),
                        Event::InitDone => {
                            for uid in graph.uids_of_kind(kind) {
                                if !listing[kind].contains(&uid) {
                                    touched.extend(graph.remove(&uid));
                                }
                            }
                            listing[kind].clear();
                        }
                    }
                }
                touched
                    .into_iter()
                    .for_each(|uid| queue.add(Key::new("", &uid)));
            }
        }
    };
    let workers = queue.run("garbage-collector", ctx.options.workers, move |key| {
        let shared = Arc::clone(&shared);
        async move { process(&shared, &key.name).await }
    });
    tokio::select! {
        () = observe => Err(GcError::WatchesEnded),
        () = workers => Ok(()),
    }
}

fn node(kind: usize, obj: &DynamicObject) -> Node {
    Node {
        kind,
        namespace: obj.namespace(),
        name: obj.name_any(),
        resource_version: obj.resource_version().unwrap_or_default(),
        owners: obj.owner_references().to_vec(),
        finalizers: obj.finalizers().to_vec(),
        deleting: obj.metadata.deletion_timestamp.is_some(),
    }
}

async fn process(shared: &Shared, uid: &str) -> Result<Next, GcError> {
    let (action, node) = {
        let graph = shared.graph();
        (graph.decide(uid), graph.get(uid).cloned())
    };
    let Some(node) = node else {
        return Ok(Next::Done);
    };
    match action {
        Action::Nothing => {}
        Action::DeleteIfOwnersGone { owners } => {
            for owner in &owners {
                if owner_exists(shared, &node, owner).await? {
                    return Ok(Next::Done);
                }
            }
            delete(shared, &node, uid, PropagationPolicy::Background).await?;
        }
        Action::DeleteDependents { dependents } => {
            for (dependent, has_own) in dependents {
                let Some(dep) = shared.graph().get(&dependent).cloned() else {
                    continue;
                };
                let policy = if has_own {
                    PropagationPolicy::Foreground
                } else {
                    PropagationPolicy::Background
                };
                delete(shared, &dep, &dependent, policy).await?;
            }
        }
        Action::Orphan { owner, dependents } => {
            for dependent in dependents {
                let Some(dep) = shared.graph().get(&dependent).cloned() else {
                    continue;
                };
                let owners: Vec<OwnerReference> = dep
                    .owners
                    .iter()
                    .filter(|o| o.uid != owner)
                    .cloned()
                    .collect();
                let patch = json!({"metadata": {
                    "resourceVersion": dep.resource_version,
                    "ownerReferences": owners,
                }});
                write_patch(shared, &dep, "orphaning", patch).await?;
            }
        }
        Action::RemoveFinalizer(finalizer) => {
            let rest: Vec<&String> = node.finalizers.iter().filter(|f| *f != finalizer).collect();
            let patch = json!({"metadata": {
                "resourceVersion": node.resource_version,
                "finalizers": rest,
            }});
            write_patch(shared, &node, "removing the finalizer of", patch).await?;
        }
    }
    Ok(Next::Done)
}

/// Asks the API (not the cache, which may lag) whether `owner` of `node` exists with its uid.
async fn owner_exists(
    shared: &Shared,
    node: &Node,
    owner: &OwnerReference,
) -> Result<bool, GcError> {
    let group_version = owner.api_version.as_str();
    let kind = shared
        .kinds
        .iter()
        .position(|k| k.resource.api_version == group_version && k.resource.kind == owner.kind);
    let Some(kind) = kind else {
        // An owner of a kind we cannot look up is presumed alive: never delete on a guess.
        return Ok(true);
    };
    let Some(api) = shared.api(kind, node.namespace.as_deref()) else {
        return Ok(true);
    };
    match api.get_opt(&owner.name).await {
        Ok(found) => Ok(found.is_some_and(|o| o.uid().as_deref() == Some(owner.uid.as_str()))),
        Err(source) => Err(GcError::Owner {
            kind: owner.kind.clone(),
            name: owner.name.clone(),
            source,
        }),
    }
}

async fn delete(
    shared: &Shared,
    node: &Node,
    uid: &str,
    policy: PropagationPolicy,
) -> Result<(), GcError> {
    let Some(api) = shared.api(node.kind, node.namespace.as_deref()) else {
        return Ok(());
    };
    let params = DeleteParams {
        propagation_policy: Some(policy),
        preconditions: Some(Preconditions {
            uid: Some(uid.to_string()),
            resource_version: None,
        }),
        ..DeleteParams::default()
    };
    match api.delete(&node.name, &params).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => Ok(()),
        Err(source) => Err(write_error(shared, node, "deleting", source)),
    }
}

async fn write_patch(
    shared: &Shared,
    node: &Node,
    action: &'static str,
    patch: serde_json::Value,
) -> Result<(), GcError> {
    let Some(api) = shared.api(node.kind, node.namespace.as_deref()) else {
        return Ok(());
    };
    match api
        .patch(&node.name, &PatchParams::default(), &Patch::Merge(patch))
        .await
    {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
        Err(source) => Err(write_error(shared, node, action, source)),
    }
}

fn write_error(shared: &Shared, node: &Node, action: &'static str, source: kube::Error) -> GcError {
    let kind = shared
        .kinds
        .get(node.kind)
        .map(|k| k.resource.kind.clone())
        .unwrap_or_default();
    GcError::Write {
        action,
        kind,
        name: node.name.clone(),
        source,
    }
}
