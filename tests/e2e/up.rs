//! End-to-end: `rkube up` as a user runs it — one process with the whole cluster, kubectl
//! against its kubeconfig, wasm pods pulled from a registry, then SIGTERM and a second start
//! on the same data dir that resumes the same cluster.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use rkube_harness::{Containerd, Daemon, Kubectl, Registry, free_port, is_root, push_busybox};

use crate::RKUBE;
use crate::support::{PodNetworks, examples};
const NODE: &str = "up-node";
const POLL: Duration = Duration::from_millis(100);

/// A running `rkube up`, its stdout and stderr in files; killed on drop.
struct Up {
    child: Child,
    stdout: PathBuf,
    stderr: PathBuf,
}

impl Up {
    /// Starts `rkube up` and waits for its ready line and the hint after it; returns it with
    /// the time that took.
    fn start(data_dir: &Path, port: u16, logs: &Path, run: &str) -> anyhow::Result<(Up, Duration)> {
        Self::start_with(data_dir, port, logs, run, &[])
    }

    /// `start` with more flags.
    fn start_with(
        data_dir: &Path,
        port: u16,
        logs: &Path,
        run: &str,
        extra: &[&str],
    ) -> anyhow::Result<(Up, Duration)> {
        let stdout = logs.join(format!("up-{run}.stdout"));
        let stderr = logs.join(format!("up-{run}.stderr"));
        let started = Instant::now();
        let mut command = Command::new(RKUBE);
        command
            .arg("up")
            .arg("--data-dir")
            .arg(data_dir)
            .arg("--listen")
            .arg(format!("127.0.0.1:{port}"))
            .arg("--node-name")
            .arg(NODE)
            .args(["--kubelet-listen", "0.0.0.0:0"]);
        if !extra.contains(&"--containerd-socket") {
            // No containerd unless the test brings one: the node runs wasm pods only.
            command
                .arg("--containerd-socket")
                .arg(data_dir.join("no-containerd.sock"));
        }
        let child = command
            .args(extra)
            .stdin(Stdio::null())
            .stdout(File::create(&stdout)?)
            .stderr(File::create(&stderr)?)
            .spawn()
            .context("spawning rkube up")?;
        let mut up = Up {
            child,
            stdout,
            stderr,
        };
        let deadline = started + Duration::from_secs(60);
        loop {
            if let Some(status) = up.child.try_wait()? {
                bail!("rkube up exited ({status}) before ready\n{}", up.logs());
            }
            if up.printed()?.contains("export KUBECONFIG=") {
                return Ok((up, started.elapsed()));
            }
            if Instant::now() > deadline {
                bail!("rkube up not ready in 60 s\n{}", up.logs());
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn printed(&self) -> anyhow::Result<String> {
        Ok(std::fs::read_to_string(&self.stdout)?)
    }

    fn logs(&self) -> String {
        let read = |p: &Path| std::fs::read_to_string(p).unwrap_or_default();
        format!(
            "--- stdout ---\n{}--- stderr ---\n{}",
            read(&self.stdout),
            read(&self.stderr)
        )
    }

    /// Sends SIGTERM and waits for the exit; returns the status and how long it took.
    fn terminate(&mut self) -> anyhow::Result<(ExitStatus, Duration)> {
        let sent = Instant::now();
        let kill = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()?;
        ensure!(kill.success(), "kill -TERM failed");
        loop {
            if let Some(status) = self.child.try_wait()? {
                return Ok((status, sent.elapsed()));
            }
            if sent.elapsed() > Duration::from_secs(20) {
                bail!("rkube up still runs 20 s after SIGTERM\n{}", self.logs());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Up {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn push(guest: &str, image: &str) -> anyhow::Result<()> {
    let path = examples().join("guests").join(guest);
    let pushed = Command::new(RKUBE)
        .arg("push")
        .arg(&path)
        .arg(image)
        .output()?;
    ensure!(
        pushed.status.success(),
        "rkube push {guest} failed: {}",
        String::from_utf8_lossy(&pushed.stderr)
    );
    Ok(())
}

/// Applies an example manifest with its image reference pointed at the test registry.
fn apply_example(k: &Kubectl, dir: &Path, example: &str, image: &str) -> anyhow::Result<()> {
    let manifest = std::fs::read_to_string(examples().join(example))?;
    let name = image.rsplit('/').next().context("image has a repository")?;
    let manifest = manifest.replace(&format!("127.0.0.1:5000/{name}"), image);
    let file = dir.join(example);
    std::fs::write(&file, manifest)?;
    k.run(&[
        "apply",
        "-f",
        file.to_str().context("temp path is not UTF-8")?,
    ])?;
    Ok(())
}

/// Polls `kubectl get` with a jsonpath until it prints `expected`.
fn wait_for(k: &Kubectl, args: &[&str], expected: &str, what: &str) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut last = String::new();
    while Instant::now() < deadline {
        last = k.run(args)?;
        if last == expected {
            return Ok(());
        }
        std::thread::sleep(POLL);
    }
    let pods = k.run(&["get", "pods", "-o", "wide"]).unwrap_or_default();
    bail!("{what}: {args:?} printed {last:?}, not {expected:?}\n{pods}")
}

fn create_config_map(k: &Kubectl, name: &str) -> anyhow::Result<u64> {
    k.run(&["create", "configmap", name])?;
    let rv = k.run(&[
        "get",
        "configmap",
        name,
        "-o",
        "jsonpath={.metadata.resourceVersion}",
    ])?;
    rv.parse()
        .with_context(|| format!("resourceVersion {rv:?} is not a number"))
}

fn sleeper_pods(k: &Kubectl) -> anyhow::Result<String> {
    k.run(&[
        "get",
        "pods",
        "-l",
        "app=sleeper",
        "-o",
        "jsonpath={range .items[*]}{.metadata.uid} {.status.phase}{\"\\n\"}{end}",
    ])
}

#[test]
fn rkube_up_runs_wasm_pods_and_resumes_after_sigterm() -> anyhow::Result<()> {
    let registry = Registry::start()?;
    let hello = format!("{}/hello:1", registry.host());
    let sleeper = format!("{}/sleeper:1", registry.host());
    push("hello.wat", &hello)?;
    push("sleeper.wat", &sleeper)?;

    let data = tempfile::tempdir()?;
    let logs = tempfile::tempdir()?;
    let port = free_port();
    let (mut up, first_ready) = Up::start(data.path(), port, logs.path(), "first")?;
    eprintln!("first start ready in {first_ready:?} (certificates generated)");
    let kubeconfig = data.path().join("kubeconfig");
    let hint = format!("export KUBECONFIG={}", kubeconfig.display());
    ensure!(
        up.printed()?.lines().collect::<Vec<_>>() == ["rkube is ready", hint.as_str()],
        "stdout:\n{}",
        up.printed()?
    );

    let k = Kubectl::new("1.33", &kubeconfig)?;
    let nodes = k.run(&["get", "nodes"])?;
    ensure!(
        nodes
            .lines()
            .any(|l| l.starts_with(NODE) && l.split_whitespace().nth(1) == Some("Ready")),
        "{nodes}"
    );
    let classes = k.run(&[
        "get",
        "runtimeclass",
        "-o",
        "jsonpath={range .items[*]}{.metadata.name}={.handler} {end}",
    ])?;
    ensure!(classes == "runc=runc wasmtime=wasmtime ", "{classes}");

    apply_example(&k, logs.path(), "hello-wasm.yaml", &hello)?;
    wait_for(
        &k,
        &["get", "pod", "hello-wasm", "-o", "jsonpath={.status.phase}"],
        "Succeeded",
        "the hello pod completes",
    )?;
    let logs_out = k.run(&["logs", "hello-wasm"])?;
    ensure!(
        logs_out.contains("hello from rkube wasm"),
        "kubectl logs: {logs_out:?}"
    );
    apply_example(&k, logs.path(), "sleeper-wasm.yaml", &sleeper)?;
    let ready_replicas = [
        "get",
        "deployment",
        "sleeper",
        "-o",
        "jsonpath={.status.readyReplicas}",
    ];
    wait_for(&k, &ready_replicas, "2", "the sleeper replicas run")?;
    let pods_before = sleeper_pods(&k)?;
    ensure!(
        pods_before.lines().count() == 2 && pods_before.lines().all(|l| l.ends_with(" Running")),
        "{pods_before}"
    );
    let rv_before = create_config_map(&k, "before")?;

    let (status, took) = up.terminate()?;
    eprintln!("SIGTERM to exit: {took:?}");
    ensure!(status.success(), "exit {status}\n{}", up.logs());
    ensure!(took < Duration::from_secs(5), "stopping took {took:?}");

    let (mut up, second_ready) = Up::start(data.path(), port, logs.path(), "second")?;
    eprintln!("second start ready in {second_ready:?}");
    let rv_after = create_config_map(&k, "after")?;
    ensure!(
        rv_after > rv_before,
        "resourceVersion {rv_after} after the restart, {rv_before} before"
    );
    k.run(&["get", "configmap", "before"])?;
    let hello_phase = k.run(&["get", "pod", "hello-wasm", "-o", "jsonpath={.status.phase}"])?;
    ensure!(hello_phase == "Succeeded", "hello pod is {hello_phase}");
    // The same pod objects run again: their containers count one restart.
    let restarted = [
        "get",
        "pods",
        "-l",
        "app=sleeper",
        "-o",
        "jsonpath={range .items[*]}{.status.containerStatuses[0].ready}/{.status.containerStatuses[0].restartCount} {end}",
    ];
    wait_for(
        &k,
        &restarted,
        "true/1 true/1 ",
        "the sleeper pods run again",
    )?;
    ensure!(sleeper_pods(&k)? == pods_before, "the sleeper pods changed");

    let (status, _) = up.terminate()?;
    ensure!(status.success(), "exit {status}\n{}", up.logs());
    Ok(())
}

/// Starts `rkube node` joining with the `rkube token create` command line `join`.
fn join_node(join: &[String], name: &str, data: &Path) -> anyhow::Result<Daemon> {
    let join = join.to_vec();
    let (name, data) = (name.to_string(), data.to_path_buf());
    Daemon::spawn(&format!("node-{name}"), move |_| {
        let mut cmd = Command::new(RKUBE);
        cmd.args(&join[1..])
            .args([
                "--name",
                &name,
                "--kubelet-listen",
                "0.0.0.0:0",
                "--data-dir",
            ])
            .arg(&data)
            .env_remove("KUBECONFIG");
        cmd
    })
}

/// Node name → how many sleeper pods run there.
fn sleepers_by_node(k: &Kubectl) -> anyhow::Result<Spread> {
    let out = k.run(&[
        "get",
        "pods",
        "-l",
        "app=sleeper",
        "--field-selector=status.phase=Running",
        "-o",
        "jsonpath={range .items[*]}{.spec.nodeName}{\"\\n\"}{end}",
    ])?;
    let mut counts = Spread::new();
    for node in out.lines() {
        *counts.entry(node.to_string()).or_insert(0) += 1;
    }
    Ok(counts)
}

type Spread = std::collections::BTreeMap<String, usize>;

/// Polls the sleeper pods' placement until `done` accepts it.
fn wait_for_spread(
    k: &Kubectl,
    what: &str,
    done: impl Fn(&Spread) -> bool,
) -> anyhow::Result<Spread> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let spread = sleepers_by_node(k)?;
        if done(&spread) {
            return Ok(spread);
        }
        if Instant::now() >= deadline {
            let pods = k.run(&["get", "pods", "-o", "wide"]).unwrap_or_default();
            bail!("{what}: running sleepers per node {spread:?}\n{pods}");
        }
        std::thread::sleep(POLL);
    }
}

#[test]
fn joined_nodes_share_a_deployment_and_take_over_from_a_dead_one() -> anyhow::Result<()> {
    let registry = Registry::start()?;
    let sleeper = format!("{}/sleeper:1", registry.host());
    push("sleeper.wat", &sleeper)?;
    let data = tempfile::tempdir()?;
    let logs = tempfile::tempdir()?;
    let (_up, _) = Up::start_with(
        data.path(),
        free_port(),
        logs.path(),
        "multi",
        &["--node-monitor-grace-period", "15s"],
    )?;
    let kubeconfig = data.path().join("kubeconfig");
    let k = Kubectl::new("1.33", &kubeconfig)?;
    let token = Command::new(RKUBE)
        .args(["token", "create", "--kubeconfig"])
        .arg(&kubeconfig)
        .output()?;
    ensure!(
        token.status.success(),
        "{}",
        String::from_utf8_lossy(&token.stderr)
    );
    let join: Vec<String> = String::from_utf8(token.stdout)?
        .split_whitespace()
        .map(String::from)
        .collect();
    let (edge_a, edge_b) = (tempfile::tempdir()?, tempfile::tempdir()?);
    let _a = join_node(&join, "edge-a", edge_a.path())?;
    let b = join_node(&join, "edge-b", edge_b.path())?;
    let ready = "jsonpath={range .items[*]}{.metadata.name}={.status.conditions[?(@.type==\"Ready\")].status} {end}";
    wait_for(
        &k,
        &["get", "nodes", "-o", ready],
        "edge-a=True edge-b=True up-node=True ",
        "three Ready nodes",
    )?;

    apply_example(&k, logs.path(), "sleeper-wasm.yaml", &sleeper)?;
    // Six replicas that give up on an unreachable node after 2 s instead of 300.
    k.run(&["patch", "deployment", "sleeper", "-p",
        r#"{"spec":{"replicas":6,"template":{"spec":{"tolerations":[{"key":"node.kubernetes.io/unreachable","operator":"Exists","effect":"NoExecute","tolerationSeconds":2}]}}}}"#])?;
    k.run(&["rollout", "status", "deployment/sleeper", "--timeout=60s"])?;
    let spread = wait_for_spread(&k, "six replicas over the three nodes", |spread| {
        spread.len() == 3 && spread.values().sum::<usize>() == 6
    })?;
    eprintln!("replicas per node: {spread:?}");

    // edge-b's agent dies: its Node turns NotReady (nodes renew their Lease every 10 s, so
    // the grace period is 15 s) and its pods come back on the others.
    drop(b);
    let edge_b_ready = "jsonpath={.status.conditions[?(@.type==\"Ready\")].status}";
    wait_for(
        &k,
        &["get", "node", "edge-b", "-o", edge_b_ready],
        "Unknown",
        "edge-b unreachable",
    )?;
    let nodes = k.run(&["get", "nodes"])?;
    ensure!(
        nodes
            .lines()
            .any(|l| l.starts_with("edge-b") && l.contains("NotReady")),
        "{nodes}"
    );
    wait_for_spread(&k, "the replicas off edge-b", |spread| {
        !spread.contains_key("edge-b") && spread.values().sum::<usize>() == 6
    })?;
    Ok(())
}

/// What the README's quick start does: every manifest in `examples/` applied to `rkube up`,
/// with every example guest built and pushed, and each workload reaching its expected state.
/// As root the node has containerd too and the container example runs; otherwise that one
/// manifest is left out, as a wasm-only node would leave its pod Pending.
#[test]
fn every_example_manifest_runs_on_rkube_up() -> anyhow::Result<()> {
    let registry = Registry::start()?;
    let host = registry.host();
    for guest in ["hello", "ticker", "config-reader", "fail", "busy", "alloc"] {
        let module = rkube_harness::guest_wasm(guest)?;
        let module = module.to_str().context("guest path is not UTF-8")?;
        push(module, &format!("{host}/{guest}:1"))?;
    }
    push("sleeper.wat", &format!("{host}/sleeper:1"))?;

    let data = tempfile::tempdir()?;
    let logs = tempfile::tempdir()?;
    let containerd = if is_root() {
        let containerd = Containerd::start()?;
        tokio::runtime::Runtime::new()?.block_on(push_busybox(&registry, "busybox", "1", None))?;
        Some(containerd)
    } else {
        eprintln!("not root: examples/busybox.yaml is left out (containerd needs root)");
        None
    };
    let _networks = PodNetworks {
        data_dir: data.path().to_path_buf(),
        bridge: "rkube-up0".to_string(),
    };
    let socket = containerd.as_ref().map(Containerd::socket);
    let mut flags = vec!["--pod-bridge", "rkube-up0", "--pod-cidr", "10.203.0.0/24"];
    if let Some(socket) = &socket {
        flags.extend([
            "--containerd-socket",
            socket.to_str().context("socket path")?,
        ]);
    }
    let port = free_port();
    let (_up, _) = Up::start_with(data.path(), port, logs.path(), "examples", &flags)?;
    let k = Kubectl::new("1.33", &data.path().join("kubeconfig"))?;
    let mut applied = 0;
    for entry in std::fs::read_dir(examples())? {
        let path = entry?.path();
        let name = path.file_name().context("a file name")?;
        if path.extension().is_none_or(|e| e != "yaml")
            || (containerd.is_none() && name == "busybox.yaml")
        {
            continue;
        }
        let manifest = std::fs::read_to_string(&path)?.replace("127.0.0.1:5000", &host);
        let file = logs.path().join(name);
        std::fs::write(&file, manifest)?;
        k.run(&[
            "apply",
            "-f",
            file.to_str().context("temp path is not UTF-8")?,
        ])?;
        applied += 1;
    }
    ensure!(applied >= 9, "only {applied} manifests in examples/");

    let phase = |pod: &str| ["get", "pod", pod, "-o", "jsonpath={.status.phase}"].map(String::from);
    for (pod, expected) in [
        ("hello-wasm", "Succeeded"),
        ("hello", "Succeeded"),
        ("ticker", "Running"),
        ("config-reader", "Running"),
        ("busy", "Running"),
    ] {
        let args = phase(pod);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        wait_for(&k, &args, expected, pod)?;
    }
    let ready_replicas = [
        "get",
        "deployment",
        "sleeper",
        "-o",
        "jsonpath={.status.readyReplicas}",
    ];
    wait_for(&k, &ready_replicas, "2", "the sleeper replicas run")?;
    let oom = "jsonpath={.status.containerStatuses[0].lastState.terminated.reason}{.status.containerStatuses[0].state.terminated.reason}";
    let deadline = Instant::now() + Duration::from_secs(60);
    while !k
        .run(&["get", "pod", "alloc", "-o", oom])?
        .starts_with("OOMKilled")
    {
        ensure!(Instant::now() < deadline, "alloc was not OOMKilled");
        std::thread::sleep(POLL);
    }
    let restarts = "jsonpath={.status.containerStatuses[0].restartCount}";
    while k.run(&["get", "pod", "fail", "-o", restarts])? == "0" {
        ensure!(Instant::now() < deadline, "fail never restarted");
        std::thread::sleep(POLL);
    }
    let config = k.run(&["logs", "config-reader"])?;
    ensure!(config.contains("hello from a configMap"), "{config:?}");

    // The token mounted into a pod, read by a fresh instance of its module, authenticates as
    // the pod's service account for as long as the pod exists.
    let token_file = "/var/run/secrets/kubernetes.io/serviceaccount/token";
    let read = k.run(&[
        "exec",
        "config-reader",
        "--",
        "config-reader",
        token_file,
        "exit",
    ])?;
    let token = read
        .strip_prefix(&format!("{token_file}: "))
        .with_context(|| format!("reading the token: {read:?}"))?
        .trim()
        .to_string();
    let api = ApiAs {
        ca: data.path().join("pki/ca.crt"),
        url: format!("https://127.0.0.1:{port}/api/v1/namespaces/default/secrets"),
    };
    let (code, body) = api.get(&token)?;
    ensure!(
        code == 403
            && body.contains(
                r#"User \"system:serviceaccount:default:default\" cannot list resource \"secrets\""#
            ),
        "the pod's token: {code} {body}"
    );
    let created = k.run(&["create", "token", "default", "--duration", "10m"])?;
    let (code, _) = api.get(created.trim())?;
    ensure!(code == 403, "kubectl create token: {code}");
    k.run(&["delete", "pod", "config-reader", "--wait=true"])?;
    let (code, body) = api.get(&token)?;
    ensure!(code == 401, "a deleted pod's token: {code} {body}");
    let succeeded = [
        "get",
        "job",
        "hello-job",
        "-o",
        "jsonpath={.status.succeeded}",
    ];
    wait_for(&k, &succeeded, "3", "the hello Job's three completions")?;
    if containerd.is_some() {
        let ready = r#"jsonpath={.status.conditions[?(@.type=="Ready")].status}"#;
        wait_for(
            &k,
            &["get", "pod", "busybox", "-o", ready],
            "True",
            "busybox Ready",
        )?;
        let ip = k.run(&["get", "pod", "busybox", "-o", "jsonpath={.status.podIP}"])?;
        let page = Command::new("curl")
            .args(["-sS", "--max-time", "5", &format!("http://{ip}:8080/")])
            .output()?;
        let page = String::from_utf8_lossy(&page.stdout);
        ensure!(
            page == "hello from a container\n",
            "busybox served {page:?}"
        );
        let hi = k.run(&["exec", "busybox", "--", "sh", "-c", "echo hi"])?;
        ensure!(hi == "hi\n", "exec into busybox: {hi:?}");
    }
    Ok(())
}

/// An API URL called with a bearer token over the cluster's TLS, as a pod's client would.
struct ApiAs {
    ca: PathBuf,
    url: String,
}

impl ApiAs {
    /// The status code and body of a GET with `token`.
    fn get(&self, token: &str) -> anyhow::Result<(u16, String)> {
        let out = Command::new("curl")
            .arg("-sS")
            .arg("--cacert")
            .arg(&self.ca)
            .args(["-H", &format!("Authorization: Bearer {token}")])
            .args(["-w", "\n%{http_code}", &self.url])
            .output()?;
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        let (body, code) = text.rsplit_once('\n').context("curl printed no status")?;
        Ok((code.trim().parse()?, body.to_string()))
    }
}
