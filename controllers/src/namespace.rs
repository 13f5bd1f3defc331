//! The namespace controller: a namespace being deleted is emptied of every namespaced object,
//! then its `kubernetes` finalizer is removed so the API server can delete it.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Namespace, NamespaceCondition, NamespaceStatus};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, PostParams};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Client, ResourceExt};

use crate::context::Context;
use crate::discovery::{Kind, deletable_kinds};
use crate::queue::{Key, Next, Queue};

/// The finalizer the API server puts on every namespace, owned by this controller.
pub const FINALIZER: &str = "kubernetes";

/// How often a namespace still holding objects is looked at again.
const RECHECK: Duration = Duration::from_secs(1);

#[derive(Debug, thiserror::Error)]
pub enum NamespaceError {
    #[error("discovering namespaced kinds: {0}")]
    Discovery(#[source] kube::Error),
    #[error("{action} {kind} in namespace {namespace}: {source}")]
    Content {
        action: &'static str,
        kind: String,
        namespace: String,
        #[source]
        source: kube::Error,
    },
    #[error("updating namespace {namespace}: {source}")]
    Namespace {
        namespace: String,
        #[source]
        source: kube::Error,
    },
}

struct Shared {
    client: Client,
    namespaces: Store<Namespace>,
}

pub async fn run(ctx: Context) -> Result<(), NamespaceError> {
    let informer = ctx.informers.get::<Namespace>();
    informer.synced().await;
    let shared = Arc::new(Shared {
        client: ctx.client.clone(),
        namespaces: informer.store().clone(),
    });
    let queue = Queue::new();
    let q = queue.clone();
    informer.on_change(move |ns| {
        if ns.metadata.deletion_timestamp.is_some() {
            q.add(Key::of(ns));
        }
    });
    queue
        .run("namespace", ctx.options.workers, move |key| {
            let shared = Arc::clone(&shared);
            async move { reconcile(&shared, &key.name).await }
        })
        .await;
    Ok(())
}

async fn reconcile(shared: &Shared, name: &str) -> Result<Next, NamespaceError> {
    let Some(ns) = shared.namespaces.get(&ObjectRef::new(name)) else {
        return Ok(Next::Done);
    };
    if ns.metadata.deletion_timestamp.is_none() {
        return Ok(Next::Done);
    }
    let ns_err = |source| NamespaceError::Namespace {
        namespace: name.to_string(),
        source,
    };
    let api: Api<Namespace> = Api::all(shared.client.clone());
    let kinds = deletable_kinds(&shared.client)
        .await
        .map_err(NamespaceError::Discovery)?;
    let remaining = delete_content(shared, name, &kinds).await?;
    let status = terminating_status(&ns, &remaining);
    let mut current = (*ns).clone();
    if ns.status.as_ref() != Some(&status) {
        current.status = Some(status);
        current = api
            .replace_status(name, &PostParams::default(), &current)
            .await
            .map_err(ns_err)?;
    }
    if !remaining.is_empty() {
        return Ok(Next::After(RECHECK));
    }
    let finalizers = current
        .spec
        .as_ref()
        .and_then(|s| s.finalizers.clone())
        .unwrap_or_default();
    if finalizers.iter().any(|f| f == FINALIZER) {
        let spec = current.spec.get_or_insert_with(Default::default);
        spec.finalizers = Some(finalizers.into_iter().filter(|f| f != FINALIZER).collect());
        match api.replace(name, &PostParams::default(), &current).await {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 404 => {}
            Err(source) => return Err(ns_err(source)),
        }
    }
    Ok(Next::Done)
}

/// Deletes what is left in `namespace`; returns the kinds that still hold objects. Pods go
/// with their grace period; one still present after its deletion time passed (no node
/// agent finished it) is then removed at once.
async fn delete_content(
    shared: &Shared,
    namespace: &str,
    kinds: &[Kind],
) -> Result<Vec<String>, NamespaceError> {
    let now = Timestamp::now();
    let mut remaining = Vec::new();
    for kind in kinds.iter().filter(|k| k.namespaced) {
        let api: Api<DynamicObject> =
            Api::namespaced_with(shared.client.clone(), namespace, &kind.resource);
        let err = |action, source| NamespaceError::Content {
            action,
            kind: kind.resource.kind.clone(),
            namespace: namespace.to_string(),
            source,
        };
        let items = api
            .list(&ListParams::default())
            .await
            .map_err(|e| err("listing", e))?
            .items;
        if items.is_empty() {
            continue;
        }
        remaining.push(kind.resource.plural.clone());
        for obj in items {
            let params = match obj.metadata.deletion_timestamp.as_ref() {
                None => DeleteParams::default(),
                Some(at) if kind.resource.kind == "Pod" && at.0 <= now => DeleteParams {
                    grace_period_seconds: Some(0),
                    ..DeleteParams::default()
                },
                // Already going; finalizers or a grace period hold it.
                Some(_) => continue,
            };
            match api.delete(&obj.name_any(), &params).await {
                Ok(_) => {}
                Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => {}
                Err(source) => return Err(err("deleting", source)),
            }
        }
    }
    Ok(remaining)
}

/// Phase Terminating with the conditions `kubectl describe namespace` shows.
fn terminating_status(ns: &Namespace, remaining: &[String]) -> NamespaceStatus {
    let previous = ns.status.clone().unwrap_or_default();
    let (status, reason, message) = if remaining.is_empty() {
        (
            "False",
            "ContentRemoved",
            "All content successfully removed".to_string(),
        )
    } else {
        (
            "True",
            "SomeResourcesRemain",
            format!("Some resources are remaining: {}", remaining.join(", ")),
        )
    };
    let mut conditions: Vec<NamespaceCondition> = previous
        .conditions
        .unwrap_or_default()
        .into_iter()
        .filter(|c| c.type_ != "NamespaceContentRemaining")
        .collect();
    let unchanged = ns
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|cs| cs.iter().find(|c| c.type_ == "NamespaceContentRemaining"))
        .filter(|c| {
            c.status == status
                && c.reason.as_deref() == Some(reason)
                && c.message.as_deref() == Some(message.as_str())
        });
    conditions.push(match unchanged {
        Some(c) => c.clone(),
        None => NamespaceCondition {
            type_: "NamespaceContentRemaining".into(),
            status: status.into(),
            reason: Some(reason.into()),
            message: Some(message),
            last_transition_time: Some(rkube_client::time::now()),
        },
    });
    NamespaceStatus {
        phase: Some("Terminating".into()),
        conditions: Some(conditions),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terminating_status_names_what_remains_and_is_stable() {
        let ns = Namespace::default();
        let status = terminating_status(&ns, &["pods".to_string()]);
        assert_eq!(status.phase.as_deref(), Some("Terminating"));
        let cond = &status.conditions.as_ref().unwrap()[0];
        assert_eq!(
            cond.message.as_deref(),
            Some("Some resources are remaining: pods")
        );
        let again = Namespace {
            status: Some(status.clone()),
            ..Namespace::default()
        };
        assert_eq!(terminating_status(&again, &["pods".to_string()]), status);
        let done = terminating_status(&again, &[]);
        assert_eq!(
            done.conditions.unwrap()[0].reason.as_deref(),
            Some("ContentRemoved")
        );
    }
}
