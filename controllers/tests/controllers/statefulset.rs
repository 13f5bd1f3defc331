use crate::common;

use std::sync::{Arc, Mutex};

use futures::StreamExt;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::Pod;
use kube::ResourceExt;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::watcher;
use rkube_controllers::statefulset;
use serde_json::json;

async fn names(pods: &Api<Pod>) -> Vec<String> {
    let listed = pods
        .list(&ListParams::default().labels("app=t"))
        .await
        .unwrap();
    let mut names: Vec<String> = listed.items.iter().map(|p| p.name_any()).collect();
    names.sort();
    names
}

/// Records the names of deleted pods, in order.
fn record_deletions(pods: Api<Pod>) -> Arc<Mutex<Vec<String>>> {
    let deleted = Arc::new(Mutex::new(Vec::new()));
    let sink = deleted.clone();
    tokio::spawn(async move {
        let mut events = watcher(pods, watcher::Config::default()).boxed();
        while let Some(event) = events.next().await {
            if let Ok(watcher::Event::Delete(pod)) = event {
                sink.lock().unwrap().push(pod.name_any());
            }
        }
    });
    deleted
}

#[tokio::test]
async fn statefulset_comes_up_in_order_and_scales_down_in_reverse() {
    let client = common::client().await;
    tokio::spawn(statefulset::run(client.clone()));
    let sets: Api<StatefulSet> = Api::namespaced(client.clone(), "default");
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let deleted = record_deletions(pods.clone());
    let spec: StatefulSet = serde_json::from_value(json!({
        "metadata": {"name": "db"},
        "spec": {"replicas": 3, "serviceName": "db",
                 "selector": {"matchLabels": {"app": "t"}},
                 "template": common::pod_template("Always")}
    }))
    .unwrap();
    sets.create(&PostParams::default(), &spec).await.unwrap();

    for ordinal in 0..3 {
        let name = format!("db-{ordinal}");
        let expected: Vec<String> = (0..=ordinal).map(|i| format!("db-{i}")).collect();
        common::eventually(&name, 10, || async {
            (names(&pods).await == expected).then_some(())
        })
        .await;
        // The next ordinal waits for this one to be Running and Ready.
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        assert_eq!(names(&pods).await, expected, "{name} is not ready yet");
        let pod = pods.get(&name).await.unwrap();
        assert_eq!(pod.labels()["statefulset.kubernetes.io/pod-name"], name);
        assert_eq!(
            pod.labels()["apps.kubernetes.io/pod-index"],
            ordinal.to_string()
        );
        assert!(pod.labels()["controller-revision-hash"].starts_with("db-"));
        common::set_phase(&pods, &name, "Running", true).await;
    }
    let status = common::eventually("three ready replicas", 10, || async {
        let status = sets.get("db").await.unwrap().status?;
        (status.ready_replicas == Some(3)).then_some(status)
    })
    .await;
    assert_eq!(status.replicas, 3);
    assert_eq!(status.current_revision, status.update_revision);
    assert_eq!(status.updated_replicas, Some(3));

    sets.patch(
        "db",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"replicas": 1}})),
    )
    .await
    .unwrap();
    common::eventually("scale down to one", 10, || async {
        (names(&pods).await == ["db-0"]).then_some(())
    })
    .await;
    common::eventually("deletions recorded", 10, || async {
        let seen = deleted.lock().unwrap().clone();
        (seen.len() == 2).then_some(())
    })
    .await;
    assert_eq!(*deleted.lock().unwrap(), ["db-2", "db-1"]);
}

#[tokio::test]
async fn rolling_update_replaces_from_the_highest_ordinal() {
    let client = common::client().await;
    tokio::spawn(statefulset::run(client.clone()));
    let sets: Api<StatefulSet> = Api::namespaced(client.clone(), "default");
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let spec: StatefulSet = serde_json::from_value(json!({
        "metadata": {"name": "db"},
        "spec": {"replicas": 2, "podManagementPolicy": "Parallel",
                 "selector": {"matchLabels": {"app": "t"}},
                 "template": common::pod_template("Always")}
    }))
    .unwrap();
    sets.create(&PostParams::default(), &spec).await.unwrap();
    common::eventually("both pods at once", 10, || async {
        (names(&pods).await == ["db-0", "db-1"]).then_some(())
    })
    .await;
    common::set_phase(&pods, "db-0", "Running", true).await;
    common::set_phase(&pods, "db-1", "Running", true).await;
    let before = common::eventually("ready", 10, || async {
        let status = sets.get("db").await.unwrap().status?;
        (status.ready_replicas == Some(2)).then_some(status)
    })
    .await;

    let deleted = record_deletions(pods.clone());
    let patch = json!({"spec": {"template": {"spec": {"containers": [{"name": "c", "image": "busybox:2"}]}}}});
    sets.patch("db", &PatchParams::default(), &Patch::Strategic(patch))
        .await
        .unwrap();
    for name in ["db-1", "db-0"] {
        let pod = common::eventually(&format!("{name} replaced"), 10, || async {
            let pod = pods.get_opt(name).await.unwrap()?;
            let fresh =
                pod.labels().get("controller-revision-hash") != before.current_revision.as_ref();
            fresh.then_some(pod)
        })
        .await;
        common::set_phase(&pods, &pod.name_any(), "Running", true).await;
    }
    let after = common::eventually("rollout complete", 10, || async {
        let status = sets.get("db").await.unwrap().status?;
        (status.updated_replicas == Some(2)
            && status.current_revision == status.update_revision
            && status.ready_replicas == Some(2))
        .then_some(status)
    })
    .await;
    assert_ne!(after.update_revision, before.update_revision);
    let order = deleted.lock().unwrap().clone();
    assert_eq!(order, ["db-1", "db-0"]);
}
