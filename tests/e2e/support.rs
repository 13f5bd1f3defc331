//! What the node tests share: a cluster of separate `rkube` processes (API server, scheduler,
//! controller manager, one node agent) with a registry, driven by kubectl 1.33.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use rkube_harness::{Daemon, Kubectl, Registry, RkubeApiserver, guest_wasm};
use tempfile::TempDir;

use crate::RKUBE;

/// Where the example manifests point their images; tests point them at their own registry.
const EXAMPLE_REGISTRY: &str = "127.0.0.1:5000/";

/// Short, so crash loops and pull retries show within a test's time.
const CRASH_BACKOFF: &str = "1s";

pub fn rkube(name: &str, args: &[&str]) -> anyhow::Result<Daemon> {
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    Daemon::spawn(name, |_| {
        let mut cmd = Command::new(RKUBE);
        cmd.args(&args);
        cmd
    })
}

pub fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples")
}

/// Polls `check` until it yields a value; on timeout the error names `what` and the last
/// reason `check` gave.
pub fn eventually<T>(
    what: &str,
    timeout: Duration,
    mut check: impl FnMut() -> anyhow::Result<Result<T, String>>,
) -> anyhow::Result<T> {
    let deadline = Instant::now() + timeout;
    loop {
        match check()? {
            Ok(value) => return Ok(value),
            Err(reason) if Instant::now() >= deadline => {
                bail!("timed out after {timeout:?} waiting for {what}: {reason}")
            }
            Err(_) => std::thread::sleep(Duration::from_millis(200)),
        }
    }
}

/// How a test wants its cluster.
pub struct ClusterOptions {
    pub node: &'static str,
    /// Flags for `rkube node` beyond its kubeconfig, name, data dir and backoff.
    pub node_flags: Vec<String>,
}

/// A registry, an API server, the scheduler, the controller manager and one node agent, each
/// a process of its own. Each test runs its own, so none depends on another's pods or on the
/// node surviving.
pub struct Cluster {
    pub registry: Registry,
    pub server: RkubeApiserver,
    _components: Vec<Daemon>,
    /// `None` while the node agent is down.
    pub node: Option<Daemon>,
    pub node_dir: TempDir,
    manifests: TempDir,
    options: ClusterOptions,
    pub k: Kubectl,
}

impl Cluster {
    pub fn start(options: ClusterOptions) -> anyhow::Result<Cluster> {
        let registry = Registry::start()?;
        let server = RkubeApiserver::start(Path::new(RKUBE), &[])?;
        let kubeconfig = server.kubeconfig();
        let kubeconfig_arg = kubeconfig
            .to_str()
            .context("kubeconfig path is not UTF-8")?;
        let components = vec![
            rkube("scheduler", &["scheduler", "--kubeconfig", kubeconfig_arg])?,
            rkube(
                "controller-manager",
                &["controller-manager", "--kubeconfig", kubeconfig_arg],
            )?,
        ];
        let k = Kubectl::new("1.33", &kubeconfig)?;
        let mut cluster = Cluster {
            registry,
            server,
            _components: components,
            node: None,
            node_dir: tempfile::tempdir()?,
            manifests: tempfile::tempdir()?,
            options,
            k,
        };
        cluster.start_node()?;
        Ok(cluster)
    }

    /// Starts the node agent on the cluster's node data dir (again, after a kill) and waits
    /// until its Node is Ready; fails at once, with its log, if the agent exits.
    pub fn start_node(&mut self) -> anyhow::Result<()> {
        let kubeconfig = self.server.kubeconfig();
        let mut args = vec![
            "node",
            "--kubeconfig",
            kubeconfig
                .to_str()
                .context("kubeconfig path is not UTF-8")?,
            "--name",
            self.options.node,
            "--data-dir",
            self.node_dir
                .path()
                .to_str()
                .context("temp path is not UTF-8")?,
            "--crash-backoff-initial",
            CRASH_BACKOFF,
            "--kubelet-listen",
            "0.0.0.0:0",
        ];
        args.extend(self.options.node_flags.iter().map(String::as_str));
        let mut node = rkube("node", &args)?;
        node.wait_until("the Node to be Ready", Duration::from_secs(60), || {
            let ready = r#"jsonpath={.status.conditions[?(@.type=="Ready")].status}"#;
            self.k
                .run(&["get", "node", self.options.node, "-o", ready])
                .is_ok_and(|status| status == "True")
        })?;
        self.node = Some(node);
        Ok(())
    }

    /// SIGKILLs the node agent (and so every guest it runs in-process) and reaps it.
    pub fn kill_node(&mut self) {
        self.node = None;
    }

    pub fn node_log(&self) -> String {
        self.node.as_ref().map(Daemon::log_tail).unwrap_or_default()
    }

    /// Builds `examples/guests/<guest>.c` and pushes it as `<registry>/<guest>:1`.
    pub fn push_guest(&self, guest: &str) -> anyhow::Result<String> {
        let module = guest_wasm(guest)?;
        let image = format!("{}/{guest}:1", self.registry.host());
        let pushed = Command::new(RKUBE)
            .arg("push")
            .arg(&module)
            .arg(&image)
            .output()?;
        ensure!(
            pushed.status.success(),
            "rkube push {guest} failed: {}",
            String::from_utf8_lossy(&pushed.stderr)
        );
        Ok(image)
    }

    /// Applies `examples/<file>` with its images in this cluster's registry, after `edit`.
    pub fn apply_example(
        &self,
        file: &str,
        edit: impl FnOnce(String) -> String,
    ) -> anyhow::Result<()> {
        let text = std::fs::read_to_string(examples().join(file))
            .with_context(|| format!("reading examples/{file}"))?;
        let registry = format!("{}/", self.registry.host());
        self.apply(file, &edit(text.replace(EXAMPLE_REGISTRY, &registry)))
    }

    pub fn apply(&self, name: &str, yaml: &str) -> anyhow::Result<()> {
        let path = self.manifests.path().join(name);
        std::fs::write(&path, yaml)?;
        self.k.run(&[
            "apply",
            "-f",
            path.to_str().context("temp path is not UTF-8")?,
        ])?;
        Ok(())
    }

    /// `kubectl get <kind_name…> -o jsonpath=<path>`.
    pub fn jsonpath(&self, kind_name: &[&str], path: &str) -> anyhow::Result<String> {
        let mut args = vec!["get"];
        args.extend_from_slice(kind_name);
        let output = format!("jsonpath={path}");
        args.extend_from_slice(&["-o", &output]);
        self.k.run(&args)
    }

    pub fn describe(&self, pod: &str) -> String {
        self.k
            .run(&["describe", "pod", pod])
            .unwrap_or_else(|e| format!("{e:#}"))
    }

    /// Waits for `.status.phase` to be `phase`; the error shows `kubectl describe`.
    pub fn wait_phase(&self, pod: &str, phase: &str, timeout: Duration) -> anyhow::Result<()> {
        eventually(&format!("pod {pod} {phase}"), timeout, || {
            let now = self.jsonpath(&["pod", pod], "{.status.phase}")?;
            Ok(if now == phase { Ok(()) } else { Err(now) })
        })
        .with_context(|| format!("{}\n{}", self.describe(pod), self.node_log()))
    }

    /// Waits until the pod's first container is running.
    pub fn wait_running(&self, pod: &str) -> anyhow::Result<()> {
        eventually(&format!("{pod} running"), Duration::from_secs(90), || {
            let running = self.jsonpath(
                &["pod", pod],
                "{.status.containerStatuses[0].state.running.startedAt}",
            )?;
            Ok(if running.is_empty() {
                Err("not running".to_string())
            } else {
                Ok(())
            })
        })
        .with_context(|| format!("{}\n{}", self.describe(pod), self.node_log()))
    }
}

/// Removes, when dropped, the pod network namespaces and the bridge that a node agent with
/// `--data-dir data_dir` made: they are host-wide and outlive a killed agent.
pub struct PodNetworks {
    pub data_dir: PathBuf,
    pub bridge: String,
}

impl Drop for PodNetworks {
    fn drop(&mut self) {
        let records = self.data_dir.join("node/cni/pods");
        for entry in std::fs::read_dir(records).into_iter().flatten().flatten() {
            if let Some(uid) = entry
                .file_name()
                .to_str()
                .and_then(|n| n.strip_suffix(".json"))
            {
                let netns = format!("rkube-{uid}");
                let _ = Command::new("ip")
                    .args(["netns", "delete", &netns])
                    .status();
            }
        }
        let _ = Command::new("ip")
            .args(["link", "delete", &self.bridge])
            .status();
    }
}
