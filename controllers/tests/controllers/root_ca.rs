//! The root CA publisher against the real API server: `kube-root-ca.crt` appears in every
//! namespace, comes back when deleted and is put back when edited.

use crate::common;

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, DeleteParams, PostParams};
use rkube_controllers::manager::ManagerOptions;
use rkube_controllers::root_ca::{CA_KEY, CONFIG_MAP};

use common::{cluster_with, eventually, namespace};

const PEM: &str = "-----BEGIN CERTIFICATE-----\nMIIBtest\n-----END CERTIFICATE-----\n";

fn ca_of(cm: &ConfigMap) -> Option<&str> {
    cm.data.as_ref()?.get(CA_KEY).map(String::as_str)
}

async fn published(api: &Api<ConfigMap>, what: &str) -> ConfigMap {
    eventually(what, 20, || async {
        let cm = api.get_opt(CONFIG_MAP).await.unwrap()?;
        let exact = cm.data.as_ref().is_some_and(|d| d.len() == 1) && ca_of(&cm) == Some(PEM);
        exact.then_some(cm)
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_namespace_gets_the_root_ca_and_keeps_it() {
    let client = cluster_with(ManagerOptions {
        leader_elect: false,
        root_ca_pem: Some(PEM.into()),
        ..ManagerOptions::default()
    })
    .await;
    let system: Api<ConfigMap> = Api::namespaced(client.clone(), "kube-system");
    published(&system, "kube-root-ca.crt in kube-system").await;
    namespace(&client, "team-a").await;
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), "team-a");
    let first = published(&api, "kube-root-ca.crt in a new namespace").await;

    api.delete(CONFIG_MAP, &DeleteParams::default())
        .await
        .unwrap();
    let recreated = published(&api, "kube-root-ca.crt recreated").await;
    assert_ne!(recreated.metadata.uid, first.metadata.uid);

    let mut edited = recreated.clone();
    edited.data = Some(BTreeMap::from([
        (CA_KEY.to_string(), "not a ca".to_string()),
        ("extra".to_string(), "x".to_string()),
    ]));
    api.replace(CONFIG_MAP, &PostParams::default(), &edited)
        .await
        .unwrap();
    let fixed = published(&api, "kube-root-ca.crt put back").await;
    assert_eq!(fixed.metadata.uid, recreated.metadata.uid);
}
