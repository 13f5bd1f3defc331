//! The service account controller: every active namespace has a `default` ServiceAccount.

use std::sync::Arc;

use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
use kube::api::{Api, ObjectMeta, PostParams};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Client, ResourceExt};

use crate::context::Context;
use crate::queue::{Key, Next, Queue};

const DEFAULT: &str = "default";

#[derive(Debug, thiserror::Error)]
#[error("creating the default service account in namespace {namespace}: {source}")]
pub struct ServiceAccountError {
    pub namespace: String,
    #[source]
    pub source: kube::Error,
}

struct Shared {
    client: Client,
    namespaces: Store<Namespace>,
    accounts: Store<ServiceAccount>,
}

pub async fn run(ctx: Context) -> Result<(), ServiceAccountError> {
    let namespaces = ctx.informers.get::<Namespace>();
    let accounts = ctx.informers.get::<ServiceAccount>();
    namespaces.synced().await;
    accounts.synced().await;
    let shared = Arc::new(Shared {
        client: ctx.client.clone(),
        namespaces: namespaces.store().clone(),
        accounts: accounts.store().clone(),
    });
    let queue = Queue::new();
    let q = queue.clone();
    namespaces.on_change(move |ns| q.add(Key::new("", &ns.name_any())));
    let q = queue.clone();
    accounts.on_change(move |sa| {
        if sa.name_any() == DEFAULT {
            q.add(Key::new("", &sa.namespace().unwrap_or_default()));
        }
    });
    queue
        .run("serviceaccount", ctx.options.workers, move |key| {
            let shared = Arc::clone(&shared);
            async move { reconcile(&shared, &key.name).await }
        })
        .await;
    Ok(())
}

async fn reconcile(shared: &Shared, namespace: &str) -> Result<Next, ServiceAccountError> {
    let active = shared
        .namespaces
        .get(&ObjectRef::new(namespace))
        .is_some_and(|ns| ns.metadata.deletion_timestamp.is_none());
    let present = shared
        .accounts
        .get(&ObjectRef::new(DEFAULT).within(namespace))
        .is_some();
    if !active || present {
        return Ok(Next::Done);
    }
    let api: Api<ServiceAccount> = Api::namespaced(shared.client.clone(), namespace);
    let account = ServiceAccount {
        metadata: ObjectMeta {
            name: Some(DEFAULT.into()),
            namespace: Some(namespace.into()),
            ..ObjectMeta::default()
        },
        ..ServiceAccount::default()
    };
    match api.create(&PostParams::default(), &account).await {
        Ok(_) => Ok(Next::Done),
        // Exists already, or the namespace started terminating meanwhile.
        Err(kube::Error::Api(s)) if s.code == 409 || s.code == 403 || s.code == 404 => {
            Ok(Next::Done)
        }
        Err(source) => Err(ServiceAccountError {
            namespace: namespace.to_string(),
            source,
        }),
    }
}
