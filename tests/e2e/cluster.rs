//! End-to-end: `rkube apiserver` + `rkube scheduler` + `rkube controller-manager` as separate
//! processes, simulated nodes, and the real kubectl 1.33 checking what users see. No node
//! agent exists yet, so the test plays the kubelet: it renews node Leases, reports bound pods
//! Running and Ready (Job pods Succeeded) and confirms graceful deletions.

use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, ensure};
use futures::StreamExt;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, ResourceExt};
use rkube_harness::{Daemon, Kubectl, RkubeApiserver};
use serde_json::json;

use crate::RKUBE;

fn component(name: &str, kubeconfig: &Path, extra: &[&str]) -> anyhow::Result<Daemon> {
    Daemon::spawn(name, |_| {
        let mut cmd = Command::new(RKUBE);
        cmd.arg(name)
            .arg("--kubeconfig")
            .arg(kubeconfig)
            .args(extra);
        cmd
    })
}

async fn client(kubeconfig: &Path) -> anyhow::Result<Client> {
    let config = kube::config::Kubeconfig::read_from(kubeconfig)?;
    let config = kube::Config::from_custom_kubeconfig(config, &Default::default()).await?;
    Ok(Client::try_from(config)?)
}

/// A Ready node with the given runtime handlers, as a kubelet would register it.
async fn register_node(
    client: &Client,
    name: &str,
    memory: &str,
    handlers: &[&str],
) -> anyhow::Result<()> {
    let handlers: Vec<_> = handlers
        .iter()
        .map(|h| json!({"name": h, "features": {"recursiveReadOnlyMounts": false}}))
        .collect();
    let node: Node = serde_json::from_value(json!({
        "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name, "kubernetes.io/os": "linux"}},
        "status": {
            "capacity": {"cpu": "4", "memory": memory, "pods": "110"},
            "allocatable": {"cpu": "4", "memory": memory, "pods": "110"},
            "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady",
                            "lastHeartbeatTime": now(), "lastTransitionTime": now()}],
            "runtimeHandlers": handlers,
        },
    }))?;
    Api::<Node>::all(client.clone())
        .create(&PostParams::default(), &node)
        .await?;
    Ok(())
}

fn now() -> String {
    k8s_openapi::jiff::Timestamp::now().to_string()
}

/// Renews the Lease of each node in `alive` every second, so the node lifecycle controller
/// sees them; a node taken out of `alive` goes silent, as if its machine died.
async fn renew_leases(client: Client, alive: Arc<Mutex<Vec<String>>>) {
    let leases: Api<Lease> = Api::namespaced(client, "kube-node-lease");
    loop {
        let nodes = alive.lock().map(|n| n.clone()).unwrap_or_default();
        for node in &nodes {
            let lease = json!({
                "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                "metadata": {"name": node, "namespace": "kube-node-lease"},
                "spec": {"holderIdentity": node, "leaseDurationSeconds": 40,
                         "renewTime": k8s_openapi::jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()},
            });
            let params = PatchParams::apply("fake-kubelet").force();
            let _ = leases.patch(node, &params, &Patch::Apply(&lease)).await;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// Reports bound pods Running and Ready (Job pods Succeeded) and confirms deletions.
async fn play_kubelet(client: Client) {
    let pods: Api<Pod> = Api::all(client.clone());
    let mut events = watcher(pods, watcher::Config::default())
        .applied_objects()
        .boxed();
    let mut next_ip = 10u32;
    while let Some(Ok(pod)) = events.next().await {
        if pod
            .spec
            .as_ref()
            .and_then(|s| s.node_name.as_ref())
            .is_none()
        {
            continue;
        }
        let api: Api<Pod> = Api::namespaced(client.clone(), &pod.namespace().unwrap_or_default());
        let name = pod.name_any();
        if pod.metadata.deletion_timestamp.is_some() {
            let _ = api
                .delete(&name, &DeleteParams::default().grace_period(0))
                .await;
            continue;
        }
        let phase = pod
            .status
            .as_ref()
            .and_then(|s| s.phase.clone())
            .unwrap_or_default();
        if phase != "Pending" {
            continue;
        }
        let job = pod.labels().contains_key("job-name");
        let (phase, ready) = if job {
            ("Succeeded", "False")
        } else {
            ("Running", "True")
        };
        next_ip += 1;
        let now = now();
        let containers: Vec<_> = pod
            .spec
            .as_ref()
            .map(|s| s.containers.iter().map(|c| c.name.clone()).collect())
            .unwrap_or_else(Vec::new);
        let statuses: Vec<_> = containers
            .iter()
            .map(|c| {
                let state = if job {
                    json!({"terminated": {"exitCode": 0, "reason": "Completed", "startedAt": now, "finishedAt": now}})
                } else {
                    json!({"running": {"startedAt": now}})
                };
                json!({"name": c, "ready": !job, "restartCount": 0, "image": "img", "imageID": "", "state": state})
            })
            .collect();
        let status = json!({"status": {
            "phase": phase, "hostIP": "10.1.0.1", "podIP": format!("10.244.{}.{}", next_ip / 250, next_ip % 250),
            "startTime": now,
            "conditions": [
                {"type": "Initialized", "status": "True", "lastTransitionTime": now},
                {"type": "Ready", "status": ready, "lastTransitionTime": now},
                {"type": "ContainersReady", "status": ready, "lastTransitionTime": now},
                {"type": "PodScheduled", "status": "True", "lastTransitionTime": now},
            ],
            "containerStatuses": statuses,
        }});
        let _ = api
            .patch_status(&name, &PatchParams::default(), &Patch::Merge(&status))
            .await;
    }
}

const JOB: &str = r#"apiVersion: batch/v1
kind: Job
metadata:
  name: crunch
spec:
  completions: 6
  parallelism: 3
  template:
    spec:
      restartPolicy: Never
      containers:
      - name: work
        image: registry.local/crunch:1
"#;

const RUNTIME_CLASS_AND_WASM_POD: &str = r#"apiVersion: node.k8s.io/v1
kind: RuntimeClass
metadata:
  name: wasmtime
handler: wasmtime
---
apiVersion: v1
kind: Pod
metadata:
  name: hello-wasm
spec:
  runtimeClassName: wasmtime
  containers:
  - name: hello
    image: registry.local/hello.wasm:1
"#;

const HUNGRY: &str = r#"apiVersion: v1
kind: Pod
metadata:
  name: hungry
spec:
  containers:
  - name: eat
    image: registry.local/eat:1
    resources:
      requests:
        memory: 64Gi
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workloads_are_scheduled_and_rolled_out_as_kubectl_reports() -> anyhow::Result<()> {
    let server = RkubeApiserver::start(Path::new(RKUBE), &[])?;
    let kubeconfig = server.kubeconfig();
    // A short grace period, so a silent node is noticed within the test.
    let _controllers = component(
        "controller-manager",
        &kubeconfig,
        &["--node-monitor-grace-period=3s"],
    )?;
    let _scheduler = component("scheduler", &kubeconfig, &[])?;
    let client = client(&kubeconfig).await?;
    register_node(&client, "node-a", "8Gi", &["runc"]).await?;
    register_node(&client, "node-b", "8Gi", &["runc"]).await?;
    register_node(&client, "edge-1", "2Gi", &["wasmtime"]).await?;
    let alive = Arc::new(Mutex::new(vec![
        "node-a".to_string(),
        "node-b".to_string(),
        "edge-1".to_string(),
    ]));
    tokio::spawn(renew_leases(client.clone(), Arc::clone(&alive)));
    tokio::spawn(play_kubelet(client.clone()));

    let k = Kubectl::new("1.33", &kubeconfig)?;
    let dir = tempfile::tempdir()?;
    let write = |name: &str, text: &str| -> anyhow::Result<String> {
        let path = dir.path().join(name);
        std::fs::write(&path, text)?;
        Ok(path.to_str().context("temp path is not UTF-8")?.to_string())
    };
    let kubectl = |args: Vec<String>| {
        let k = &k;
        async move {
            let refs: Vec<&str> = args.iter().map(String::as_str).collect();
            tokio::task::block_in_place(|| k.run(&refs))
        }
    };
    let args = |list: &[&str]| list.iter().map(|s| s.to_string()).collect::<Vec<_>>();

    kubectl(args(&[
        "create",
        "deployment",
        "web",
        "--image=registry.local/web:1",
        "--replicas=4",
    ]))
    .await?;
    let status = kubectl(args(&[
        "rollout",
        "status",
        "deployment/web",
        "--timeout=90s",
    ]))
    .await?;
    ensure!(status.contains("successfully rolled out"), "{status}");
    let wide = kubectl(args(&["get", "pods", "-l", "app=web", "-o", "wide"])).await?;
    ensure!(
        wide.lines().filter(|l| l.contains("Running")).count() == 4,
        "{wide}"
    );
    ensure!(
        !wide.contains("edge-1"),
        "a runc pod landed on the wasm-only node:\n{wide}"
    );

    kubectl(args(&[
        "set",
        "image",
        "deployment/web",
        "web=registry.local/web:2",
    ]))
    .await?;
    let status = kubectl(args(&[
        "rollout",
        "status",
        "deployment/web",
        "--timeout=90s",
    ]))
    .await?;
    ensure!(status.contains("successfully rolled out"), "{status}");
    kubectl(args(&["rollout", "undo", "deployment/web"])).await?;
    let status = kubectl(args(&[
        "rollout",
        "status",
        "deployment/web",
        "--timeout=90s",
    ]))
    .await?;
    ensure!(status.contains("successfully rolled out"), "{status}");
    let image = kubectl(args(&[
        "get",
        "deployment",
        "web",
        "-o",
        "jsonpath={.spec.template.spec.containers[0].image}",
    ]))
    .await?;
    ensure!(
        image == "registry.local/web:1",
        "rollback left image {image}"
    );

    let job = write("job.yaml", JOB)?;
    kubectl(args(&["apply", "-f", &job])).await?;
    let waited = kubectl(args(&[
        "wait",
        "--for=condition=complete",
        "job/crunch",
        "--timeout=90s",
    ]))
    .await?;
    ensure!(waited.contains("condition met"), "{waited}");

    let wasm = write("wasm.yaml", RUNTIME_CLASS_AND_WASM_POD)?;
    kubectl(args(&["apply", "-f", &wasm])).await?;
    kubectl(args(&[
        "wait",
        "--for=condition=Ready",
        "pod/hello-wasm",
        "--timeout=60s",
    ]))
    .await?;
    let placed = kubectl(args(&[
        "get",
        "pod",
        "hello-wasm",
        "-o",
        "jsonpath={.spec.nodeName}",
    ]))
    .await?;
    ensure!(placed == "edge-1", "the wasm pod landed on {placed}");
    let described = kubectl(args(&["describe", "pod", "hello-wasm"])).await?;
    ensure!(
        described.contains("Successfully assigned default/hello-wasm to edge-1"),
        "{described}"
    );

    let hungry = write("hungry.yaml", HUNGRY)?;
    kubectl(args(&["apply", "-f", &hungry])).await?;
    let last = until(&k, &["describe", "pod", "hungry"], 60, |out| {
        out.contains("FailedScheduling")
    })
    .await?;
    ensure!(
        last.contains("0/3 nodes are available") && last.contains("Insufficient memory"),
        "{last}"
    );
    let phase = kubectl(args(&[
        "get",
        "pod",
        "hungry",
        "-o",
        "jsonpath={.status.phase}",
    ]))
    .await?;
    ensure!(phase == "Pending", "{phase}");

    // node-b dies: its Lease stops. It must turn NotReady, and the web pods on it (which
    // tolerate an unreachable node for 2 s) must come back on node-a.
    kubectl(args(&["patch", "deployment", "web", "--type", "strategic", "-p",
        r#"{"spec":{"template":{"spec":{"tolerations":[{"key":"node.kubernetes.io/unreachable","operator":"Exists","effect":"NoExecute","tolerationSeconds":2}]}}}}"#])).await?;
    kubectl(args(&[
        "rollout",
        "status",
        "deployment/web",
        "--timeout=90s",
    ]))
    .await?;
    let before = kubectl(args(&["get", "pods", "-l", "app=web", "-o", "wide"])).await?;
    ensure!(
        before.contains("node-b"),
        "no web pod on node-b to lose:\n{before}"
    );
    alive
        .lock()
        .map_err(|_| anyhow::anyhow!("lease list poisoned"))?
        .retain(|n| n != "node-b");
    let node_b_not_ready = |out: &str| {
        out.lines()
            .any(|l| l.starts_with("node-b") && l.contains("NotReady"))
    };
    let nodes = until(&k, &["get", "nodes"], 60, node_b_not_ready).await?;
    ensure!(node_b_not_ready(&nodes), "{nodes}");
    let all_back_on_a = |out: &str| {
        out.lines()
            .filter(|l| l.contains("Running") && l.contains("node-a"))
            .count()
            == 4
            && !out.contains("node-b")
    };
    let web_pods = ["get", "pods", "-l", "app=web", "-o", "wide"];
    let pods = until(&k, &web_pods, 90, all_back_on_a).await?;
    ensure!(
        all_back_on_a(&pods),
        "web pods were not rescheduled off the dead node:\n{pods}"
    );

    kubectl(args(&["delete", "deployment", "web"])).await?;
    let gone = |out: &str| out.trim().is_empty();
    let left = until(
        &k,
        &["get", "pods,replicasets", "-l", "app=web", "-o", "name"],
        60,
        gone,
    )
    .await?;
    ensure!(
        gone(&left),
        "deleting the deployment left its replicasets or pods behind"
    );
    Ok(())
}

/// Runs kubectl every 500 ms until `done` holds for its output (at most `tries` times);
/// returns the last output for the caller's assertion.
async fn until(
    k: &Kubectl,
    command: &[&str],
    tries: usize,
    done: impl Fn(&str) -> bool,
) -> anyhow::Result<String> {
    let mut out = String::new();
    for _ in 0..tries {
        out = tokio::task::block_in_place(|| k.run(command))?;
        if done(&out) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    Ok(out)
}
