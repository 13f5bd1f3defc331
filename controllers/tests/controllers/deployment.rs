//! Deployments against the real API server with the controller manager and a simulated
//! kubelet: scaling, a rolling update within its bounds, rollback, and garbage collection.

use crate::common;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::watcher;
use kube::{Client, ResourceExt};
use serde_json::json;

use common::{cluster, eventually, kubelet, namespace};

const NS: &str = "apps";

fn deployment(replicas: i32, image: &str) -> Deployment {
    serde_json::from_value(json!({
        "metadata": {"name": "web", "namespace": NS},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": "web"}},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 2, "maxUnavailable": "25%"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "web", "image": image}]}
            }
        }
    }))
    .unwrap()
}

/// The same checks as `kubectl rollout status`: spec observed, every replica updated and
/// available, no old replicas left, and the progress deadline not exceeded.
async fn rolled_out(api: &Api<Deployment>) -> Option<Deployment> {
    let d = api.get("web").await.ok()?;
    let status = d.status.clone()?;
    let replicas = d.spec.as_ref()?.replicas?;
    let progressing = status
        .conditions
        .iter()
        .flatten()
        .find(|c| c.type_ == "Progressing")?;
    assert_ne!(
        progressing.reason.as_deref(),
        Some("ProgressDeadlineExceeded")
    );
    let done = d.metadata.generation <= status.observed_generation
        && status.updated_replicas == Some(replicas)
        && status.replicas == Some(replicas)
        && status.available_replicas == Some(replicas)
        && progressing.reason.as_deref() == Some("NewReplicaSetAvailable")
        && status
            .conditions
            .iter()
            .flatten()
            .any(|c| c.type_ == "Available" && c.status == "True");
    done.then_some(d)
}

async fn replica_sets(client: &Client) -> Vec<ReplicaSet> {
    let api: Api<ReplicaSet> = Api::namespaced(client.clone(), NS);
    api.list(&ListParams::default()).await.unwrap().items
}

async fn pods(client: &Client) -> Vec<Pod> {
    let api: Api<Pod> = Api::namespaced(client.clone(), NS);
    api.list(&ListParams::default()).await.unwrap().items
}

fn ready(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// Watches pods and ReplicaSets, recording the worst surge and unavailability seen.
fn watch_bounds(client: &Client) -> Arc<Mutex<(i32, i32)>> {
    let worst = Arc::new(Mutex::new((0, i32::MAX)));
    let rs_api: Api<ReplicaSet> = Api::namespaced(client.clone(), NS);
    let pod_api: Api<Pod> = Api::namespaced(client.clone(), NS);
    let w = Arc::clone(&worst);
    tokio::spawn(async move {
        let mut sizes: BTreeMap<String, i32> = BTreeMap::new();
        let mut events = watcher::watcher(rs_api, watcher::Config::default()).boxed();
        while let Some(Ok(event)) = events.next().await {
            match event {
                watcher::Event::Apply(rs) | watcher::Event::InitApply(rs) => {
                    let n = rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(0);
                    sizes.insert(rs.name_any(), n);
                }
                watcher::Event::Delete(rs) => {
                    sizes.remove(&rs.name_any());
                }
                _ => {}
            }
            let total: i32 = sizes.values().sum();
            let mut w = w.lock().unwrap();
            w.0 = w.0.max(total);
        }
    });
    let w = Arc::clone(&worst);
    tokio::spawn(async move {
        let mut ready_pods: BTreeMap<String, bool> = BTreeMap::new();
        let mut listed = false;
        let mut events = watcher::watcher(pod_api, watcher::Config::default()).boxed();
        while let Some(Ok(event)) = events.next().await {
            match event {
                watcher::Event::InitDone => listed = true,
                watcher::Event::Apply(p) | watcher::Event::InitApply(p) => {
                    let up = ready(&p) && p.metadata.deletion_timestamp.is_none();
                    ready_pods.insert(p.name_any(), up);
                }
                watcher::Event::Delete(p) => {
                    ready_pods.remove(&p.name_any());
                }
                _ => {}
            }
            if !listed {
                continue;
            }
            let count = ready_pods.values().filter(|r| **r).count() as i32;
            let mut w = w.lock().unwrap();
            w.1 = w.1.min(count);
        }
    });
    worst
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deployment_scales_rolls_out_within_bounds_and_rolls_back() {
    let client = cluster().await;
    namespace(&client, NS).await;
    kubelet(&client, Duration::from_millis(30));
    let api: Api<Deployment> = Api::namespaced(client.clone(), NS);
    api.create(&PostParams::default(), &deployment(5, "nginx:1"))
        .await
        .unwrap();
    let first = eventually("5 replicas rolled out", 30, || rolled_out(&api)).await;
    assert_eq!(
        first
            .annotations()
            .get("deployment.kubernetes.io/revision")
            .map(String::as_str),
        Some("1")
    );
    let sets = replica_sets(&client).await;
    assert_eq!(sets.len(), 1);
    let original = sets[0].clone();
    let hash = original.labels().get("pod-template-hash").cloned().unwrap();
    assert_eq!(original.name_any(), format!("web-{hash}"));
    let owned = pods(&client).await;
    assert_eq!(owned.len(), 5);
    for pod in &owned {
        assert!(pod.name_any().starts_with(&format!("web-{hash}-")));
        assert_eq!(pod.labels().get("pod-template-hash"), Some(&hash));
        let owner = &pod.owner_references()[0];
        assert_eq!(
            (owner.controller, owner.block_owner_deletion),
            (Some(true), Some(true))
        );
        assert_eq!(owner.uid, original.uid().unwrap());
    }

    // Scale 5 → 8.
    let scale = json!({"spec": {"replicas": 8}});
    api.patch("web", &PatchParams::default(), &Patch::Merge(scale))
        .await
        .unwrap();
    eventually("8 replicas available", 30, || async {
        let d = rolled_out(&api).await?;
        (d.status?.available_replicas == Some(8)).then_some(())
    })
    .await;
    assert_eq!(pods(&client).await.iter().filter(|p| ready(p)).count(), 8);

    // Roll out a new image: surge ≤ 2, unavailable ≤ 2 (25% of 8 rounded down).
    let worst = watch_bounds(&client);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let update = json!({"spec": {"template": {"spec": {"containers": [{"name": "web", "image": "nginx:2"}]}}}});
    api.patch("web", &PatchParams::default(), &Patch::Strategic(update))
        .await
        .unwrap();
    let second = eventually("rolling update complete", 60, || async {
        let d = rolled_out(&api).await?;
        let image = d.spec.as_ref()?.template.spec.as_ref()?.containers[0]
            .image
            .clone();
        (image.as_deref() == Some("nginx:2")).then_some(d)
    })
    .await;
    let (max_total, min_ready) = *worst.lock().unwrap();
    assert!(
        max_total <= 10,
        "surge bound broken: {max_total} pods wanted"
    );
    assert!(
        min_ready >= 6,
        "availability bound broken: {min_ready} ready"
    );
    assert_eq!(
        second
            .annotations()
            .get("deployment.kubernetes.io/revision")
            .map(String::as_str),
        Some("2")
    );
    let sets = replica_sets(&client).await;
    assert_eq!(sets.len(), 2);
    let old = sets.iter().find(|rs| rs.uid() == original.uid()).unwrap();
    assert_eq!(old.spec.as_ref().unwrap().replicas, Some(0));
    let live: Vec<Pod> = pods(&client).await;
    assert_eq!(live.len(), 8);
    assert!(
        live.iter()
            .all(|p| p.labels().get("pod-template-hash") != Some(&hash))
    );

    // Roll back: the template returns to the first one, whose ReplicaSet is reused.
    let undo = json!({"spec": {"template": {"spec": {"containers": [{"name": "web", "image": "nginx:1"}]}}}});
    api.patch("web", &PatchParams::default(), &Patch::Strategic(undo))
        .await
        .unwrap();
    let third = eventually("rollback complete", 60, || async {
        let d = rolled_out(&api).await?;
        let image = d.spec.as_ref()?.template.spec.as_ref()?.containers[0]
            .image
            .clone();
        (image.as_deref() == Some("nginx:1")).then_some(d)
    })
    .await;
    assert_eq!(
        third
            .annotations()
            .get("deployment.kubernetes.io/revision")
            .map(String::as_str),
        Some("3")
    );
    let sets = replica_sets(&client).await;
    assert_eq!(sets.len(), 2, "no third ReplicaSet");
    let reused = sets.iter().find(|rs| rs.uid() == original.uid()).unwrap();
    assert_eq!(reused.spec.as_ref().unwrap().replicas, Some(8));
    assert_eq!(
        reused
            .annotations()
            .get("deployment.kubernetes.io/revision")
            .map(String::as_str),
        Some("3")
    );
    assert_eq!(
        reused
            .annotations()
            .get("deployment.kubernetes.io/revision-history")
            .map(String::as_str),
        Some("1")
    );
    assert!(
        pods(&client)
            .await
            .iter()
            .all(|p| p.labels().get("pod-template-hash") == Some(&hash))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_deployment_collects_its_replica_sets_and_pods() {
    let client = cluster().await;
    namespace(&client, NS).await;
    kubelet(&client, Duration::from_millis(10));
    let api: Api<Deployment> = Api::namespaced(client.clone(), NS);
    api.create(&PostParams::default(), &deployment(3, "nginx:1"))
        .await
        .unwrap();
    eventually("rolled out", 30, || rolled_out(&api)).await;
    api.delete("web", &DeleteParams::background())
        .await
        .unwrap();
    eventually("replica sets and pods collected", 30, || async {
        (replica_sets(&client).await.is_empty() && pods(&client).await.is_empty()).then_some(())
    })
    .await;

    // Foreground: the Deployment stays until its dependents are gone.
    api.create(&PostParams::default(), &deployment(2, "nginx:1"))
        .await
        .unwrap();
    eventually("rolled out again", 30, || rolled_out(&api)).await;
    api.delete("web", &DeleteParams::foreground())
        .await
        .unwrap();
    eventually("foreground deletion finished", 30, || async {
        let gone = api.get_opt("web").await.unwrap().is_none();
        (gone && replica_sets(&client).await.is_empty() && pods(&client).await.is_empty())
            .then_some(())
    })
    .await;

    // Orphan: dependents stay, without the owner reference.
    api.create(&PostParams::default(), &deployment(2, "nginx:1"))
        .await
        .unwrap();
    eventually("rolled out a third time", 30, || rolled_out(&api)).await;
    api.delete("web", &DeleteParams::orphan()).await.unwrap();
    eventually("orphaned", 30, || async {
        let gone = api.get_opt("web").await.unwrap().is_none();
        let sets = replica_sets(&client).await;
        let orphaned = sets.len() == 1 && sets[0].owner_references().is_empty();
        (gone && orphaned).then_some(())
    })
    .await;
    assert_eq!(pods(&client).await.len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recreate_never_mixes_versions_and_pause_holds_the_rollout() {
    let client = cluster().await;
    namespace(&client, NS).await;
    kubelet(&client, Duration::from_millis(10));
    let api: Api<Deployment> = Api::namespaced(client.clone(), NS);
    let mut d = deployment(3, "nginx:1");
    if let Some(spec) = d.spec.as_mut() {
        spec.strategy = serde_json::from_value(json!({"type": "Recreate"})).unwrap();
    }
    api.create(&PostParams::default(), &d).await.unwrap();
    eventually("rolled out", 30, || rolled_out(&api)).await;

    // Pause, then change the template: nothing rolls.
    let pause = json!({"spec": {"paused": true}});
    api.patch("web", &PatchParams::default(), &Patch::Merge(pause))
        .await
        .unwrap();
    let update = json!({"spec": {"template": {"spec": {"containers": [{"name": "web", "image": "nginx:2"}]}}}});
    api.patch("web", &PatchParams::default(), &Patch::Strategic(update))
        .await
        .unwrap();
    eventually("paused condition", 20, || async {
        let d = api.get("web").await.ok()?;
        let status = d.status?;
        let cond = status
            .conditions?
            .into_iter()
            .find(|c| c.type_ == "Progressing")?;
        let observed = status.observed_generation == d.metadata.generation;
        (observed && cond.reason.as_deref() == Some("DeploymentPaused")).then_some(())
    })
    .await;
    assert_eq!(
        replica_sets(&client).await.len(),
        1,
        "no rollout while paused"
    );

    // Resume: old pods all go before new ones come.
    let versions_seen_together = Arc::new(Mutex::new(false));
    let seen = Arc::clone(&versions_seen_together);
    let pod_api: Api<Pod> = Api::namespaced(client.clone(), NS);
    tokio::spawn(async move {
        let mut live: BTreeMap<String, String> = BTreeMap::new();
        let mut events = watcher::watcher(pod_api, watcher::Config::default()).boxed();
        while let Some(Ok(event)) = events.next().await {
            match event {
                watcher::Event::Apply(p) | watcher::Event::InitApply(p) => {
                    let hash = p
                        .labels()
                        .get("pod-template-hash")
                        .cloned()
                        .unwrap_or_default();
                    live.insert(p.name_any(), hash);
                }
                watcher::Event::Delete(p) => {
                    live.remove(&p.name_any());
                }
                _ => {}
            }
            let mut hashes: Vec<&String> = live.values().collect();
            hashes.sort();
            hashes.dedup();
            if hashes.len() > 1 {
                *seen.lock().unwrap() = true;
            }
        }
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let resume = json!({"spec": {"paused": false}});
    api.patch("web", &PatchParams::default(), &Patch::Merge(resume))
        .await
        .unwrap();
    eventually("recreated", 30, || async {
        let d = rolled_out(&api).await?;
        (d.annotations().get("deployment.kubernetes.io/revision")? == "2").then_some(())
    })
    .await;
    assert!(
        !*versions_seen_together.lock().unwrap(),
        "old and new pods ran together"
    );
    assert_eq!(pods(&client).await.len(), 3);
}
