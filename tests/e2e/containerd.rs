//! End-to-end: ordinary OCI container pods (containerd + runc, busybox from a local registry)
//! beside wasm pods on one `rkube node --runtime wasm,containerd`, driven with kubectl: status,
//! logs, exec, pod networking across a Deployment, OOM kills, deletion, an agent restart and a
//! failed pull. Needs root (containerd, runc, network namespaces); skipped otherwise.

use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, ensure};
use rkube_harness::{Containerd, is_root, push_busybox};

use crate::support::{Cluster, ClusterOptions, PodNetworks, eventually};
const NODE: &str = "mixed-1";
const NAMESPACE: &str = "rkube";

fn skip() -> bool {
    if is_root() {
        return false;
    }
    eprintln!("skipped: containerd pods need root (containerd, runc, network namespaces)");
    true
}

/// A wasm + containerd node: the shared cluster, its own containerd with busybox in the
/// registry, and its own pod bridge and range, since tests run side by side.
struct Mixed {
    cluster: Cluster,
    containerd: Containerd,
    busybox: String,
    /// Last, so the node agent is gone before its networks are removed.
    _networks: PodNetworks,
}

impl Mixed {
    fn start(bridge: &str, pod_cidr: &str) -> anyhow::Result<Mixed> {
        let containerd = Containerd::start()?;
        let socket = containerd.socket();
        let node_flags = [
            "--runtime",
            "wasm,containerd",
            "--containerd-socket",
            socket.to_str().context("socket path")?,
            "--pod-cidr",
            pod_cidr,
            "--pod-bridge",
            bridge,
        ];
        let cluster = Cluster::start(ClusterOptions {
            node: NODE,
            node_flags: node_flags.iter().map(|f| f.to_string()).collect(),
        })?;
        let busybox = tokio::runtime::Runtime::new()?.block_on(push_busybox(
            &cluster.registry,
            "busybox",
            "1",
            None,
        ))?;
        let node_dir = cluster.node_dir.path().to_path_buf();
        Ok(Mixed {
            cluster,
            containerd,
            busybox,
            _networks: PodNetworks {
                data_dir: node_dir,
                bridge: bridge.to_string(),
            },
        })
    }

    fn containers(&self) -> anyhow::Result<String> {
        self.containerd.ctr(NAMESPACE, &["containers", "ls", "-q"])
    }
}

impl std::ops::Deref for Mixed {
    type Target = Cluster;

    fn deref(&self) -> &Cluster {
        &self.cluster
    }
}

impl std::ops::DerefMut for Mixed {
    fn deref_mut(&mut self) -> &mut Cluster {
        &mut self.cluster
    }
}

fn busybox_pod(name: &str, image: &str, script: &str, extra: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\nspec:\n  \
         terminationGracePeriodSeconds: 1\n  containers:\n  - name: main\n    image: {image}\n    \
         command: [\"sh\", \"-c\", {script:?}]\n{extra}"
    )
}

/// The pid of a container's task, as `ctr task ls` shows it.
fn task_pid(ctr_tasks: &str, container_id: &str) -> Option<String> {
    ctr_tasks
        .lines()
        .find(|line| line.starts_with(container_id))
        .and_then(|line| line.split_whitespace().nth(1))
        .map(String::from)
}

#[test]
fn container_and_wasm_pods_share_a_node() -> anyhow::Result<()> {
    if skip() {
        return Ok(());
    }
    let mut cluster = Mixed::start("rkube-e2e0", "10.201.0.0/24")?;
    let handlers = cluster.jsonpath(&["node", NODE], "{.status.runtimeHandlers[*].name}")?;
    ensure!(
        handlers.contains("wasmtime") && handlers.contains("runc"),
        "handlers: {handlers}"
    );

    let busybox = cluster.busybox.clone();
    cluster.apply(
        "busybox.yaml",
        &busybox_pod(
            "busybox",
            &busybox,
            "echo started; while true; do sleep 1; done",
            "",
        ),
    )?;
    let ticker = cluster.push_guest("ticker")?;
    cluster.apply(
        "ticker.yaml",
        &format!(
            "apiVersion: node.k8s.io/v1\nkind: RuntimeClass\nmetadata:\n  name: wasmtime\nhandler: wasmtime\n---\n\
             apiVersion: v1\nkind: Pod\nmetadata:\n  name: ticker\nspec:\n  runtimeClassName: wasmtime\n  \
             terminationGracePeriodSeconds: 1\n  containers:\n  - name: ticker\n    image: {ticker}\n    \
             env:\n    - name: TICK_MS\n      value: \"200\"\n"
        ),
    )?;
    cluster.wait_running("busybox")?;
    cluster.wait_running("ticker")?;

    let id = cluster.jsonpath(
        &["pod", "busybox"],
        "{.status.containerStatuses[0].containerID}",
    )?;
    ensure!(id.starts_with("containerd://"), "containerID {id}");
    let pod_ip = cluster.jsonpath(&["pod", "busybox"], "{.status.podIP}")?;
    ensure!(pod_ip.starts_with("10.201.0."), "podIP {pod_ip}");
    let described = cluster.describe("busybox");
    ensure!(
        described.contains("Successfully pulled image") && described.contains("Image size:"),
        "{described}"
    );

    // Logs and exec through the kubelet API.
    let logs = eventually("busybox logs", Duration::from_secs(20), || {
        let logs = cluster.k.run(&["logs", "busybox"])?;
        Ok(if logs.contains("started") {
            Ok(logs)
        } else {
            Err(logs)
        })
    })?;
    ensure!(logs == "started\n", "logs: {logs:?}");
    let hi = cluster
        .k
        .run(&["exec", "busybox", "--", "sh", "-c", "echo hi"])?;
    ensure!(hi == "hi\n", "exec: {hi:?}");
    // The pod's name is its host name, and /etc/hosts names it at its IP.
    let named = cluster.k.run(&[
        "exec",
        "busybox",
        "--",
        "cat",
        "/proc/sys/kernel/hostname",
        "/etc/hosts",
    ])?;
    ensure!(
        named.starts_with("busybox\n") && named.contains(&format!("{pod_ip}\tbusybox\n")),
        "hostname and /etc/hosts: {named:?}"
    );
    let mut child = cluster
        .k
        .command(&["exec", "-i", "busybox", "--", "cat"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()?;
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().context("exec stdin")?;
        stdin.write_all(b"from stdin\n")?;
    }
    let out = child.wait_with_output()?;
    ensure!(
        String::from_utf8_lossy(&out.stdout) == "from stdin\n",
        "exec -i: {out:?}"
    );

    // exec -it: a shell on a terminal, typed into; its exit status becomes kubectl's.
    let mut child = cluster
        .k
        .in_terminal(&["exec", "-it", "busybox", "--", "sh"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()?;
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().context("exec -it stdin")?;
        stdin.write_all(b"tty\necho $((6*7))\nexit 4\n")?;
    }
    let out = child.wait_with_output()?;
    let typed = String::from_utf8_lossy(&out.stdout);
    ensure!(
        out.status.code() == Some(4) && typed.contains("/dev/pts/") && typed.contains("42\r\n"),
        "exec -it: {out:?}"
    );

    // An agent restart adopts the running task: same pid, same restart count.
    let short = id.trim_start_matches("containerd://").to_string();
    let tasks = cluster.containerd.ctr(NAMESPACE, &["tasks", "ls"])?;
    let pid = task_pid(&tasks, &short).context(format!("no task {short}: {tasks}"))?;
    cluster.node = None;
    cluster.start_node()?;
    std::thread::sleep(Duration::from_secs(2));
    cluster.wait_running("busybox")?;
    let tasks = cluster.containerd.ctr(NAMESPACE, &["tasks", "ls"])?;
    ensure!(
        task_pid(&tasks, &short).as_deref() == Some(pid.as_str()),
        "task after restart: {tasks} (was pid {pid})"
    );
    let restarts = cluster.jsonpath(
        &["pod", "busybox"],
        "{.status.containerStatuses[0].restartCount}",
    )?;
    ensure!(
        restarts == "0",
        "restartCount after agent restart: {restarts}"
    );
    let again = cluster.k.run(&["exec", "busybox", "--", "echo", "still"])?;
    ensure!(again == "still\n", "exec after restart: {again:?}");

    // A container over its memory limit is OOMKilled.
    cluster.apply(
        "hog.yaml",
        &busybox_pod(
            "hog",
            &busybox,
            "x=aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa; while true; do x=$x$x; done",
            "    resources:\n      limits:\n        memory: 16Mi\n  restartPolicy: Never\n",
        ),
    )?;
    eventually("hog OOMKilled", Duration::from_secs(60), || {
        let reason = cluster.jsonpath(
            &["pod", "hog"],
            "{.status.containerStatuses[0].state.terminated.reason}",
        )?;
        Ok(if reason == "OOMKilled" {
            Ok(())
        } else {
            Err(reason)
        })
    })
    .with_context(|| cluster.describe("hog"))?;

    // A nonexistent image: ErrImagePull with the registry's words.
    let missing = format!("{}/missing:1", cluster.registry.host());
    cluster.apply(
        "missing.yaml",
        &busybox_pod("missing", &missing, "true", ""),
    )?;
    eventually("ErrImagePull", Duration::from_secs(30), || {
        let described = cluster.describe("missing");
        Ok(
            if described.contains("ErrImagePull") || described.contains("ImagePullBackOff") {
                Ok(described)
            } else {
                Err(described)
            },
        )
    })
    .and_then(|described| {
        ensure!(
            described.to_lowercase().contains("manifest unknown")
                || described.to_lowercase().contains("not found"),
            "the registry's message is missing: {described}"
        );
        Ok(())
    })?;

    // Deleting removes the container and its snapshot, and the pod's network.
    cluster
        .k
        .run(&["delete", "pod", "busybox", "--wait=true"])?;
    eventually("busybox container gone", Duration::from_secs(30), || {
        let listed = cluster.containers()?;
        let snapshots = cluster.containerd.ctr(NAMESPACE, &["snapshots", "ls"])?;
        Ok(if !listed.contains(&short) && !snapshots.contains(&short) {
            Ok(())
        } else {
            Err(format!("{listed}\n{snapshots}"))
        })
    })?;
    let records = cluster.node_dir.path().join("node/cni/pods");
    eventually("pod network removed", Duration::from_secs(10), || {
        let left = std::fs::read_dir(&records)?.count();
        // The hog and the pending pod have networks; busybox's is gone.
        Ok(if left <= 2 {
            Ok(())
        } else {
            Err(format!("{left} records"))
        })
    })?;
    let ticks = cluster.k.run(&["logs", "ticker", "--tail=1"])?;
    ensure!(ticks.starts_with("tick"), "ticker logs: {ticks:?}");
    Ok(())
}

#[test]
fn deployment_replicas_answer_on_their_pod_ips() -> anyhow::Result<()> {
    if skip() {
        return Ok(());
    }
    let cluster = Mixed::start("rkube-e2e1", "10.202.0.0/24")?;
    let busybox = cluster.busybox.clone();
    let script = "mkdir -p /www && echo hello from httpd > /www/index.html && \
                  exec busybox httpd -f -p 8080 -h /www";
    cluster.apply(
        "web.yaml",
        &format!(
            "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  replicas: 3\n  \
             selector:\n    matchLabels: {{app: web}}\n  template:\n    metadata:\n      labels: {{app: web}}\n    \
             spec:\n      terminationGracePeriodSeconds: 1\n      containers:\n      - name: httpd\n        \
             image: {busybox}\n        command: [\"sh\", \"-c\", {script:?}]\n"
        ),
    )?;
    cluster.apply(
        "client.yaml",
        &busybox_pod("client", &busybox, "while true; do sleep 1; done", ""),
    )?;
    cluster.wait_running("client")?;
    let ips = eventually("3 web pod IPs", Duration::from_secs(90), || {
        let ips = cluster.jsonpath(
            &[
                "pods",
                "-l",
                "app=web",
                "--field-selector=status.phase=Running",
            ],
            "{.items[*].status.podIP}",
        )?;
        let ips: Vec<String> = ips.split_whitespace().map(String::from).collect();
        Ok(if ips.len() == 3 {
            Ok(ips)
        } else {
            Err(format!("{ips:?}"))
        })
    })
    .with_context(|| cluster.node_log())?;
    for ip in &ips {
        let url = format!("http://{ip}:8080/");
        let body = eventually(&format!("GET {url}"), Duration::from_secs(20), || {
            Ok(
                match cluster
                    .k
                    .run(&["exec", "client", "--", "busybox", "wget", "-qO-", &url])
                {
                    Ok(body) => Ok(body),
                    Err(error) => Err(format!("{error:#}")),
                },
            )
        })?;
        ensure!(body == "hello from httpd\n", "{url}: {body:?}");
    }
    Ok(())
}
