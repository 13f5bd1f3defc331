//! The kube-rs client over the in-process router: list, watch, resuming a watch, conflicts.

use std::time::Duration;

use futures::{Stream, StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, DeleteParams, ListParams, PostParams, WatchEvent, WatchParams};

use crate::support::TestApi;

fn cm(name: &str) -> ConfigMap {
    let mut cm = ConfigMap::default();
    cm.metadata.name = Some(name.into());
    cm.data = Some([("k".to_string(), "v".to_string())].into());
    cm
}

/// The event's kind and object name, and the resourceVersion it carries.
fn describe(event: WatchEvent<ConfigMap>) -> (String, String, String) {
    let (kind, obj) = match event {
        WatchEvent::Added(o) => ("ADDED", o),
        WatchEvent::Modified(o) => ("MODIFIED", o),
        WatchEvent::Deleted(o) => ("DELETED", o),
        other => panic!("unexpected event {other:?}"),
    };
    (
        kind.to_string(),
        obj.metadata.name.unwrap_or_default(),
        obj.metadata.resource_version.unwrap_or_default(),
    )
}

async fn next(
    events: &mut (impl Stream<Item = kube::Result<WatchEvent<ConfigMap>>> + Unpin),
) -> (String, String, String) {
    let event = tokio::time::timeout(Duration::from_secs(5), events.try_next())
        .await
        .expect("a watch event in time")
        .unwrap()
        .expect("the watch to go on");
    describe(event)
}

on_both_stores!(kube_client_lists_watches_and_resumes);

async fn kube_client_lists_watches_and_resumes(api: TestApi) {
    let cms: Api<ConfigMap> = Api::namespaced(api.client(), "default");
    let pp = PostParams::default();
    for name in ["a", "b", "c"] {
        cms.create(&pp, &cm(name)).await.unwrap();
    }
    let list = cms.list(&ListParams::default()).await.unwrap();
    let names: Vec<_> = list
        .items
        .iter()
        .map(|c| c.metadata.name.clone().unwrap())
        .collect();
    assert_eq!(names, ["a", "b", "c"]);
    let list_rv = list.metadata.resource_version.unwrap();

    let wp = WatchParams::default().timeout(10);
    let mut events = cms.watch(&wp, &list_rv).await.unwrap().boxed();

    cms.create(&pp, &cm("d")).await.unwrap();
    let mut a = cms.get("a").await.unwrap();
    a.data = Some([("k".to_string(), "changed".to_string())].into());
    let a2 = cms.replace("a", &pp, &a).await.unwrap();
    assert_eq!(next(&mut events).await.0, "ADDED");
    let (kind, name, last_rv) = next(&mut events).await;
    assert_eq!((kind.as_str(), name.as_str()), ("MODIFIED", "a"));
    assert_eq!(Some(&last_rv), a2.metadata.resource_version.as_ref());
    drop(events);

    // Changes while nobody watches arrive when the watch resumes from the last seen rv.
    cms.create(&pp, &cm("e")).await.unwrap();
    cms.delete("b", &DeleteParams::default()).await.unwrap();
    let mut resumed = cms.watch(&wp, &last_rv).await.unwrap().boxed();
    let (kind, name, _) = next(&mut resumed).await;
    assert_eq!((kind.as_str(), name.as_str()), ("ADDED", "e"));
    let (kind, name, _) = next(&mut resumed).await;
    assert_eq!((kind.as_str(), name.as_str()), ("DELETED", "b"));

    // `a` still holds the resourceVersion before its replace.
    let err = cms.replace("a", &pp, &a).await.unwrap_err();
    match err {
        kube::Error::Api(status) => {
            assert_eq!(status.code, 409);
            assert_eq!(status.reason, "Conflict");
        }
        other => panic!("expected a 409, got {other:?}"),
    }
}
