//! The root CA publisher: every active namespace has a ConfigMap `kube-root-ca.crt` whose
//! `ca.crt` is the cluster CA, so that pods (through their projected service-account volume)
//! can verify the API server. A deleted copy is recreated and an edited one put back.

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use kube::api::{Api, ObjectMeta, PostParams};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Client, ResourceExt};

use crate::context::Context;
use crate::queue::{Key, Next, Queue};

/// The ConfigMap's name, as Kubernetes publishes it.
pub const CONFIG_MAP: &str = "kube-root-ca.crt";
/// Its one key.
pub const CA_KEY: &str = "ca.crt";
const DESCRIPTION_ANNOTATION: &str = "kubernetes.io/description";
const DESCRIPTION: &str = "Contains a CA bundle that can be used to verify the kube-apiserver \
    when using internal endpoints such as the internal service IP or kubernetes.default.svc. \
    No other usage is guaranteed across distributions of Kubernetes clusters.";

#[derive(Debug, thiserror::Error)]
#[error("publishing {CONFIG_MAP} in namespace {namespace}: {source}")]
pub struct RootCaError {
    pub namespace: String,
    #[source]
    pub source: kube::Error,
}

struct Shared {
    client: Client,
    ca_pem: String,
    namespaces: Store<Namespace>,
    config_maps: Store<ConfigMap>,
}

/// Publishes `ca_pem` into every active namespace until a fatal error.
pub async fn run(ctx: Context, ca_pem: String) -> Result<(), RootCaError> {
    let namespaces = ctx.informers.get::<Namespace>();
    let config_maps = ctx.informers.get::<ConfigMap>();
    namespaces.synced().await;
    config_maps.synced().await;
    let shared = Arc::new(Shared {
        client: ctx.client.clone(),
        ca_pem,
        namespaces: namespaces.store().clone(),
        config_maps: config_maps.store().clone(),
    });
    let queue = Queue::new();
    let q = queue.clone();
    namespaces.on_change(move |ns| q.add(Key::new("", &ns.name_any())));
    let q = queue.clone();
    config_maps.on_change(move |cm| {
        if cm.name_any() == CONFIG_MAP {
            q.add(Key::new("", &cm.namespace().unwrap_or_default()));
        }
    });
    queue
        .run("root-ca-cert-publisher", ctx.options.workers, move |key| {
            let shared = Arc::clone(&shared);
            async move { reconcile(&shared, &key.name).await }
        })
        .await;
    Ok(())
}

async fn reconcile(shared: &Shared, namespace: &str) -> Result<Next, RootCaError> {
    let active = shared
        .namespaces
        .get(&ObjectRef::new(namespace))
        .is_some_and(|ns| ns.metadata.deletion_timestamp.is_none());
    if !active {
        return Ok(Next::Done);
    }
    let api: Api<ConfigMap> = Api::namespaced(shared.client.clone(), namespace);
    let current = shared
        .config_maps
        .get(&ObjectRef::new(CONFIG_MAP).within(namespace));
    let result = match current {
        None => match api
            .create(
                &PostParams::default(),
                &published(namespace, &shared.ca_pem),
            )
            .await
        {
            // Created meanwhile: the cache will show it and queue it again.
            Err(kube::Error::Api(s)) if s.code == 409 => Ok(()),
            created => created.map(drop),
        },
        Some(cm) => match corrected(&cm, &shared.ca_pem) {
            None => return Ok(Next::Done),
            // The cached resourceVersion makes a concurrent edit fail with 409, and the
            // reconcile is retried against the newer copy.
            Some(fixed) => api
                .replace(CONFIG_MAP, &PostParams::default(), &fixed)
                .await
                .map(drop),
        },
    };
    match result {
        Ok(()) => Ok(Next::Done),
        // The namespace started terminating, or the ConfigMap went away meanwhile (its
        // deletion queues the namespace again).
        Err(kube::Error::Api(s)) if s.code == 403 || s.code == 404 => Ok(Next::Done),
        Err(source) => Err(RootCaError {
            namespace: namespace.to_string(),
            source,
        }),
    }
}

fn published(namespace: &str, ca_pem: &str) -> ConfigMap {
    ConfigMap {
        metadata: ObjectMeta {
            name: Some(CONFIG_MAP.into()),
            namespace: Some(namespace.into()),
            annotations: Some(BTreeMap::from([(
                DESCRIPTION_ANNOTATION.to_string(),
                DESCRIPTION.to_string(),
            )])),
            ..ObjectMeta::default()
        },
        data: Some(ca_data(ca_pem)),
        ..ConfigMap::default()
    }
}

fn ca_data(ca_pem: &str) -> BTreeMap<String, String> {
    BTreeMap::from([(CA_KEY.to_string(), ca_pem.to_string())])
}

/// `cm` with its data put back to exactly the CA and the description restored; `None` when
/// it is already so. Other metadata (labels, other annotations) is the user's and stays.
fn corrected(cm: &ConfigMap, ca_pem: &str) -> Option<ConfigMap> {
    let data_right = cm.data.as_ref() == Some(&ca_data(ca_pem))
        && cm.binary_data.as_ref().is_none_or(BTreeMap::is_empty);
    let described = cm
        .annotations()
        .get(DESCRIPTION_ANNOTATION)
        .is_some_and(|d| d == DESCRIPTION);
    if data_right && described {
        return None;
    }
    let mut fixed = cm.clone();
    fixed.data = Some(ca_data(ca_pem));
    fixed.binary_data = None;
    fixed
        .annotations_mut()
        .insert(DESCRIPTION_ANNOTATION.into(), DESCRIPTION.into());
    Some(fixed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_changed_config_map_is_corrected() {
        let pem = "-----BEGIN CERTIFICATE-----\nx\n-----END CERTIFICATE-----\n";
        let good = published("ns", pem);
        assert!(corrected(&good, pem).is_none());

        let mut edited = good.clone();
        edited.data = Some(BTreeMap::from([
            (CA_KEY.to_string(), "other".to_string()),
            ("extra".to_string(), "x".to_string()),
        ]));
        edited
            .labels_mut()
            .insert("team".to_string(), "a".to_string());
        let fixed = corrected(&edited, pem).unwrap();
        assert_eq!(fixed.data, Some(ca_data(pem)));
        assert_eq!(fixed.labels().get("team").map(String::as_str), Some("a"));

        let mut undescribed = good;
        undescribed.metadata.annotations = None;
        assert!(corrected(&undescribed, pem).is_some());
    }
}
