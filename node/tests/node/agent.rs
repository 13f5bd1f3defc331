//! The node agent end to end: an in-process API server, the real wasm runtime, wat guests.

use crate::common;

use std::collections::BTreeMap;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use common::{Cluster, NODE, ROOT_CA, guests, main_status, phase, waiting_reason, wasm_pod};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{
    ConfigMap, ConfigMapKeySelector, ConfigMapVolumeSource, Container, DownwardAPIVolumeFile,
    DownwardAPIVolumeSource, EnvVar, EnvVarSource, Node, ObjectFieldSelector, Volume, VolumeMount,
};
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, PostParams};
use rkube_runtimes::Runtime;

const SECOND: Duration = Duration::from_secs(1);

#[tokio::test]
async fn node_registers_with_its_runtime_handlers_and_a_lease() {
    let cluster = Cluster::start().await;
    let agent = cluster.agent(cluster.runtime());
    let nodes: Api<Node> = Api::all(cluster.client.clone());
    let leases: Api<Lease> = Api::namespaced(cluster.client.clone(), "kube-node-lease");
    let mut lease = None;
    for _ in 0..250 {
        lease = leases.get_opt(NODE).await.unwrap();
        if lease.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let lease = lease.expect("the node lease appears");
    let spec = lease.spec.unwrap();
    assert_eq!(spec.holder_identity.as_deref(), Some(NODE));
    let first_renew = spec.renew_time.unwrap();

    let node = nodes.get(NODE).await.unwrap();
    let labels = node.labels();
    assert_eq!(
        labels.get("kubernetes.io/hostname").map(String::as_str),
        Some(NODE)
    );
    assert!(labels.contains_key("kubernetes.io/os"));
    assert!(labels.contains_key("kubernetes.io/arch"));
    let status = node.status.unwrap();
    let handlers: Vec<_> = status
        .runtime_handlers
        .unwrap_or_default()
        .into_iter()
        .filter_map(|h| h.name)
        .collect();
    assert_eq!(handlers, vec!["wasmtime".to_string()]);
    let ready = status
        .conditions
        .unwrap_or_default()
        .into_iter()
        .find(|c| c.type_ == "Ready")
        .unwrap();
    assert_eq!(
        (ready.status.as_str(), ready.reason.as_deref()),
        ("True", Some("KubeletReady"))
    );
    let info = status.node_info.unwrap();
    assert_eq!(info.kubelet_version, "v1.33.0-rkube");
    assert_eq!(info.container_runtime_version, "wasmtime://48");
    let capacity = status.capacity.unwrap();
    assert_eq!(capacity.get("pods").map(|q| q.0.as_str()), Some("110"));
    assert!(capacity.contains_key("cpu") && capacity.contains_key("memory"));
    let addresses: Vec<_> = status
        .addresses
        .unwrap_or_default()
        .into_iter()
        .map(|a| a.type_)
        .collect();
    assert_eq!(addresses, vec!["InternalIP", "Hostname"]);

    // The lease is renewed.
    tokio::time::sleep(Duration::from_millis(600)).await;
    let renewed = leases
        .get(NODE)
        .await
        .unwrap()
        .spec
        .unwrap()
        .renew_time
        .unwrap();
    assert!(
        renewed.0 > first_renew.0,
        "{renewed:?} after {first_renew:?}"
    );
    agent.abort();
}

#[tokio::test]
async fn hello_pod_runs_to_success_and_logs() {
    let mut cluster = Cluster::start().await;
    cluster.image("hello:1", &guests::hello());
    let agent = cluster.agent(cluster.runtime());
    let pod = cluster.create(wasm_pod("hello", "hello:1", "Never")).await;
    let done = cluster
        .wait_for("hello", 10 * SECOND, "Succeeded", |p| {
            phase(p) == "Succeeded"
        })
        .await;
    let status = main_status(&done).unwrap();
    let terminated = status.state.as_ref().unwrap().terminated.as_ref().unwrap();
    assert_eq!(terminated.exit_code, 0);
    assert_eq!(terminated.reason.as_deref(), Some("Completed"));
    assert!(terminated.started_at.is_some() && terminated.finished_at.is_some());
    assert!(
        status
            .container_id
            .as_deref()
            .unwrap()
            .starts_with("wasm://")
    );
    assert!(status.image_id.starts_with("sha256:"));
    let pod_status = done.status.as_ref().unwrap();
    assert!(pod_status.pod_ip.is_some() && pod_status.start_time.is_some());
    let ready = pod_status
        .conditions
        .iter()
        .flatten()
        .find(|c| c.type_ == "Ready")
        .unwrap();
    assert_eq!(
        (ready.status.as_str(), ready.reason.as_deref()),
        ("False", Some("PodCompleted"))
    );

    let log = cluster.log(&pod.uid().unwrap(), "main", 0);
    assert!(log.contains(" stdout F hello"), "{log:?}");
    agent.abort();
}

#[tokio::test]
async fn a_crashing_container_restarts_with_backoff() {
    let mut cluster = Cluster::start().await;
    cluster.image("crash:1", &guests::exits(3));
    let agent = cluster.agent(cluster.runtime());
    cluster.create(wasm_pod("crash", "crash:1", "Always")).await;
    let looping = cluster
        .wait_for("crash", 10 * SECOND, "CrashLoopBackOff", |p| {
            waiting_reason(p) == Some("CrashLoopBackOff")
        })
        .await;
    let status = main_status(&looping).unwrap();
    assert!(status.restart_count >= 1);
    let last = status
        .last_state
        .as_ref()
        .unwrap()
        .terminated
        .as_ref()
        .unwrap();
    assert_eq!((last.exit_code, last.reason.as_deref()), (3, Some("Error")));
    assert_eq!(phase(&looping), "Running");

    // Backoff doubles: 0.4 s then 0.8 s, so three restarts take more than a second.
    let started = std::time::Instant::now();
    cluster
        .wait_for("crash", 10 * SECOND, "three restarts", |p| {
            main_status(p).is_some_and(|s| s.restart_count >= 3)
        })
        .await;
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "{:?}",
        started.elapsed()
    );
    agent.abort();
}

#[tokio::test]
async fn a_config_map_volume_is_read_by_the_guest() {
    let mut cluster = Cluster::start().await;
    cluster.image("reader:1", &guests::reads_file());
    let config_maps: Api<ConfigMap> = Api::namespaced(cluster.client.clone(), "default");
    let mut cm = ConfigMap {
        data: Some(BTreeMap::from([(
            "data.txt".to_string(),
            "from the config map".to_string(),
        )])),
        ..ConfigMap::default()
    };
    cm.metadata.name = Some("settings".into());
    config_maps
        .create(&PostParams::default(), &cm)
        .await
        .unwrap();

    let agent = cluster.agent(cluster.runtime());
    let mut pod = wasm_pod("reader", "reader:1", "Never");
    let spec = pod.spec.as_mut().unwrap();
    spec.volumes = Some(vec![Volume {
        name: "config".into(),
        config_map: Some(ConfigMapVolumeSource {
            name: "settings".into(),
            ..ConfigMapVolumeSource::default()
        }),
        ..Volume::default()
    }]);
    spec.containers[0].volume_mounts = Some(vec![VolumeMount {
        name: "config".into(),
        mount_path: "/etc/config".into(),
        read_only: Some(true),
        ..VolumeMount::default()
    }]);
    let pod = cluster.run_to_success(pod).await;
    let log = cluster.log(&pod.uid().unwrap(), "main", 0);
    assert!(log.contains(" stdout F from the config map"), "{log:?}");
    agent.abort();
}

#[tokio::test]
async fn a_projected_volume_is_a_preopened_directory_of_the_guest() {
    let mut cluster = Cluster::start().await;
    cluster.image("reader:1", &guests::reads_file());

    let agent = cluster.agent(cluster.runtime());
    let mut pod = wasm_pod("projected", "reader:1", "Never");
    let spec = pod.spec.as_mut().unwrap();
    spec.volumes = Some(vec![
        serde_json::from_value(serde_json::json!({
            "name": "api-access",
            "projected": {"defaultMode": 420, "sources": [
                {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "data.txt"}]}},
                {"configMap": {"name": "not-there", "optional": true}},
                {"downwardAPI": {"items": [{"path": "namespace", "fieldRef": {"fieldPath": "metadata.namespace"}}]}}
            ]}
        }))
        .unwrap(),
    ]);
    spec.containers[0].volume_mounts = Some(vec![VolumeMount {
        name: "api-access".into(),
        mount_path: "/var/run/secrets/kubernetes.io/serviceaccount".into(),
        read_only: Some(true),
        ..VolumeMount::default()
    }]);
    let pod = cluster.run_to_success(pod).await;
    let log = cluster.log(&pod.uid().unwrap(), "main", 0);
    assert!(log.contains(&format!(" stdout F {ROOT_CA}")), "{log:?}");
    agent.abort();
}

/// The volume the API server adds to every pod: a token from TokenRequest, bound to the pod.
#[tokio::test]
async fn a_pod_reads_its_own_service_account_token() {
    let mut cluster = Cluster::start().await;
    cluster.image("token-reader:1", &guests::reads_file_named("token"));
    let agent = cluster.agent(cluster.runtime());
    let pod = cluster
        .run_to_success(wasm_pod("token-reader", "token-reader:1", "Never"))
        .await;
    let log = cluster.log(&pod.uid().unwrap(), "main", 0);
    let token = log
        .split(" stdout F ")
        .nth(1)
        .map(str::trim)
        .unwrap_or_default();
    let claims = token
        .split('.')
        .nth(1)
        .unwrap_or_else(|| panic!("not a JWT: {log:?}"));
    let claims: serde_json::Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(claims).expect("base64url")).unwrap();
    assert_eq!(claims["sub"], "system:serviceaccount:default:default");
    assert_eq!(claims["kubernetes.io"]["pod"]["uid"], pod.uid().unwrap());
    agent.abort();
}

#[tokio::test]
async fn a_deleted_pod_is_stopped_and_gone_within_its_grace_period() {
    let mut cluster = Cluster::start().await;
    cluster.image("server:1", &guests::serves());
    let runtime = cluster.runtime();
    let agent = cluster.agent(runtime.clone());
    let mut pod = wasm_pod("server", "server:1", "Always");
    pod.spec.as_mut().unwrap().termination_grace_period_seconds = Some(2);
    let pod = cluster.create(pod).await;
    cluster
        .wait_for("server", 10 * SECOND, "Running", |p| phase(p) == "Running")
        .await;
    let deleted_at = std::time::Instant::now();
    cluster
        .pods()
        .delete("server", &DeleteParams::default())
        .await
        .unwrap();
    // A wasm guest has no SIGTERM handler: Term ends it at once, asleep or not, well within
    // its 2 s grace period.
    let pods = cluster.pods();
    loop {
        if pods.get_opt("server").await.unwrap().is_none() {
            break;
        }
        assert!(deleted_at.elapsed() < 2 * SECOND, "pod still present");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        deleted_at.elapsed() < Duration::from_millis(1500),
        "{:?}",
        deleted_at.elapsed()
    );
    let uid = pod.uid().unwrap();
    let left: Vec<_> = runtime
        .list()
        .await
        .unwrap()
        .into_iter()
        .filter(|c| c.pod_uid == uid)
        .collect();
    assert!(left.is_empty(), "{left:?}");
    assert!(!cluster.data_dir().join("pods").join(&uid).exists());
    agent.abort();
}

#[tokio::test]
async fn an_unknown_image_is_err_image_pull() {
    let cluster = Cluster::start().await;
    let agent = cluster.agent(cluster.runtime());
    cluster
        .create(wasm_pod("missing", "nowhere/none:1", "Always"))
        .await;
    let pod = cluster
        .wait_for("missing", 10 * SECOND, "ErrImagePull", |p| {
            waiting_reason(p) == Some("ErrImagePull")
        })
        .await;
    let message = main_status(&pod)
        .and_then(|s| s.state.as_ref()?.waiting.as_ref()?.message.clone())
        .unwrap_or_default();
    assert!(message.contains("nowhere/none:1"), "{message}");
    assert_eq!(phase(&pod), "Pending");
    cluster
        .wait_for("missing", 10 * SECOND, "ImagePullBackOff", |p| {
            waiting_reason(p) == Some("ImagePullBackOff")
        })
        .await;
    agent.abort();
}

#[tokio::test]
async fn a_pod_for_a_missing_handler_fails() {
    let cluster = Cluster::start().await;
    let agent = cluster.agent(cluster.runtime());
    let mut pod = wasm_pod("runc-pod", "nginx:1", "Always");
    pod.spec.as_mut().unwrap().runtime_class_name = None;
    cluster.create(pod).await;
    let failed = cluster
        .wait_for("runc-pod", 10 * SECOND, "Failed", |p| phase(p) == "Failed")
        .await;
    let status = failed.status.unwrap();
    assert_eq!(status.reason.as_deref(), Some("UnsupportedRuntime"));
    assert!(status.message.unwrap_or_default().contains("runc"));
    agent.abort();
}

#[tokio::test]
async fn after_an_agent_restart_the_pod_runs_again_once() {
    let mut cluster = Cluster::start().await;
    cluster.image("server:1", &guests::serves());
    let first = cluster.agent(cluster.runtime());
    let pod = cluster
        .create(wasm_pod("server", "server:1", "Always"))
        .await;
    cluster
        .wait_for("server", 10 * SECOND, "Running", |p| {
            main_status(p).is_some_and(|s| s.ready)
        })
        .await;
    first.abort();
    let _ = first.await;

    let runtime = cluster.runtime();
    let second = cluster.agent(runtime.clone());
    let again = cluster
        .wait_for("server", 10 * SECOND, "Running again", |p| {
            main_status(p).is_some_and(|s| s.ready && s.restart_count == 1)
        })
        .await;
    assert_eq!(phase(&again), "Running");
    let status = main_status(&again).unwrap();
    let lost = status
        .last_state
        .as_ref()
        .unwrap()
        .terminated
        .as_ref()
        .unwrap();
    assert_eq!(lost.reason.as_deref(), Some("ContainerStatusUnknown"));
    // Give a duplicate worker time to show up, then count instances.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let uid = pod.uid().unwrap();
    let instances = runtime
        .list()
        .await
        .unwrap()
        .into_iter()
        .filter(|c| c.pod_uid == uid)
        .count();
    assert_eq!(instances, 1);
    assert_eq!(
        main_status(&cluster.pods().get("server").await.unwrap()).map(|s| s.restart_count),
        Some(1)
    );
    assert!(cluster.log(&uid, "main", 1).contains(" stdout F up"));
    second.abort();
}

#[tokio::test]
async fn a_node_shutdown_kills_containers_and_keeps_the_pods() {
    let mut cluster = Cluster::start().await;
    cluster.image("server:1", &guests::serves());
    let runtime = cluster.runtime();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let agent = cluster.agent_until(runtime.clone(), async {
        let _ = stopped.await;
    });
    let pod = cluster
        .create(wasm_pod("server", "server:1", "Always"))
        .await;
    cluster
        .wait_for("server", 10 * SECOND, "Running", |p| {
            main_status(p).is_some_and(|s| s.ready)
        })
        .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let running = cluster.pods().get("server").await.unwrap();
    let _ = stop.send(());
    tokio::time::timeout(5 * SECOND, agent)
        .await
        .expect("the agent stops within its shutdown grace")
        .unwrap();
    assert!(runtime.list().await.unwrap().is_empty());
    // The pod is left as the API knew it, files included, for the next start to run again.
    let kept = cluster.pods().get("server").await.unwrap();
    assert_eq!(kept.uid(), pod.uid());
    assert_eq!(kept.status, running.status);
    assert!(
        cluster
            .log(&pod.uid().unwrap(), "main", 0)
            .contains(" stdout F up")
    );

    let _again = cluster.agent(cluster.runtime());
    cluster
        .wait_for("server", 10 * SECOND, "Running again", |p| {
            main_status(p).is_some_and(|s| s.ready && s.restart_count == 1)
        })
        .await;
}

#[tokio::test]
async fn init_containers_run_first_and_a_downward_api_volume_is_read() {
    let mut cluster = Cluster::start().await;
    cluster.image("hello:1", &guests::hello());
    cluster.image("reader:1", &guests::reads_file());
    let agent = cluster.agent(cluster.runtime());
    let mut pod = wasm_pod("downward", "reader:1", "Never");
    pod.metadata.labels = Some(BTreeMap::from([("app".to_string(), "web".to_string())]));
    let spec = pod.spec.as_mut().unwrap();
    spec.init_containers = Some(vec![Container {
        name: "setup".into(),
        image: Some("hello:1".into()),
        ..Container::default()
    }]);
    spec.volumes = Some(vec![Volume {
        name: "info".into(),
        downward_api: Some(DownwardAPIVolumeSource {
            items: Some(vec![DownwardAPIVolumeFile {
                path: "data.txt".into(),
                field_ref: Some(ObjectFieldSelector {
                    field_path: "metadata.labels".into(),
                    ..ObjectFieldSelector::default()
                }),
                ..DownwardAPIVolumeFile::default()
            }]),
            ..DownwardAPIVolumeSource::default()
        }),
        ..Volume::default()
    }]);
    spec.containers[0].volume_mounts = Some(vec![VolumeMount {
        name: "info".into(),
        mount_path: "/etc/podinfo".into(),
        ..VolumeMount::default()
    }]);
    let pod = cluster.run_to_success(pod).await;
    let status = pod.status.clone().unwrap();
    let init = &status.init_container_statuses.unwrap()[0];
    let init_end = init.state.as_ref().unwrap().terminated.as_ref().unwrap();
    assert_eq!(init_end.reason.as_deref(), Some("Completed"));
    let main_end = status.container_statuses.unwrap()[0]
        .state
        .clone()
        .unwrap()
        .terminated
        .unwrap();
    // The init container ended before the container started.
    assert!(init_end.finished_at.as_ref().unwrap().0 <= main_end.started_at.unwrap().0);
    let uid = pod.uid().unwrap();
    assert!(cluster.log(&uid, "setup", 0).contains(" stdout F hello"));
    let log = cluster.log(&uid, "main", 0);
    assert!(log.contains(" stdout F app=\"web\""), "{log:?}");
    agent.abort();
}

#[tokio::test]
async fn a_failing_init_container_fails_a_never_restarting_pod() {
    let mut cluster = Cluster::start().await;
    cluster.image("fail:1", &guests::exits(1));
    cluster.image("hello:1", &guests::hello());
    let agent = cluster.agent(cluster.runtime());
    let mut pod = wasm_pod("bad-init", "hello:1", "Never");
    pod.spec.as_mut().unwrap().init_containers = Some(vec![Container {
        name: "setup".into(),
        image: Some("fail:1".into()),
        ..Container::default()
    }]);
    let pod = cluster.create(pod).await;
    let failed = cluster
        .wait_for("bad-init", 10 * SECOND, "Failed", |p| phase(p) == "Failed")
        .await;
    assert!(waiting_reason(&failed).is_some(), "the container never ran");
    assert!(cluster.log(&pod.uid().unwrap(), "main", 0).is_empty());
    agent.abort();
}

#[tokio::test]
async fn env_comes_from_values_config_maps_and_pod_fields() {
    let mut cluster = Cluster::start().await;
    cluster.image("env:1", &guests::prints_env());
    let config_maps: Api<ConfigMap> = Api::namespaced(cluster.client.clone(), "default");
    let mut cm = ConfigMap {
        data: Some(BTreeMap::from([("greeting".to_string(), "hi".to_string())])),
        ..ConfigMap::default()
    };
    cm.metadata.name = Some("words".into());
    config_maps
        .create(&PostParams::default(), &cm)
        .await
        .unwrap();
    let agent = cluster.agent(cluster.runtime());
    let mut pod = wasm_pod("env", "env:1", "Never");
    pod.spec.as_mut().unwrap().containers[0].env = Some(vec![
        EnvVar {
            name: "LITERAL".into(),
            value: Some("plain".into()),
            ..EnvVar::default()
        },
        EnvVar {
            name: "GREETING".into(),
            value_from: Some(EnvVarSource {
                config_map_key_ref: Some(ConfigMapKeySelector {
                    name: "words".into(),
                    key: "greeting".into(),
                    ..ConfigMapKeySelector::default()
                }),
                ..EnvVarSource::default()
            }),
            ..EnvVar::default()
        },
        EnvVar {
            name: "POD_NAME".into(),
            value_from: Some(EnvVarSource {
                field_ref: Some(ObjectFieldSelector {
                    field_path: "metadata.name".into(),
                    ..ObjectFieldSelector::default()
                }),
                ..EnvVarSource::default()
            }),
            ..EnvVar::default()
        },
    ]);
    let pod = cluster.create(pod).await;
    cluster
        .wait_for("env", 10 * SECOND, "Succeeded", |p| phase(p) == "Succeeded")
        .await;
    let log = cluster.log(&pod.uid().unwrap(), "main", 0);
    for entry in ["LITERAL=plain", "GREETING=hi", "POD_NAME=env"] {
        assert!(log.contains(entry), "{entry} in {log:?}");
    }
    agent.abort();
}

#[tokio::test]
async fn pods_of_other_nodes_are_left_alone() {
    let mut cluster = Cluster::start().await;
    cluster.image("hello:1", &guests::hello());
    let agent = cluster.agent(cluster.runtime());
    let mut elsewhere = wasm_pod("elsewhere", "hello:1", "Never");
    elsewhere.spec.as_mut().unwrap().node_name = Some("node-2".into());
    cluster.create(elsewhere).await;
    cluster.create(wasm_pod("here", "hello:1", "Never")).await;
    cluster
        .wait_for("here", 10 * SECOND, "Succeeded", |p| {
            phase(p) == "Succeeded"
        })
        .await;
    let other = cluster.pods().get("elsewhere").await.unwrap();
    let untouched = other.status.unwrap_or_default();
    assert!(untouched.container_statuses.is_none() && untouched.start_time.is_none());
    agent.abort();
}
