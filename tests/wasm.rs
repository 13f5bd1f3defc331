//! End-to-end: a WASI pod from a local OCI registry runs on `rkube node` — the whole path a
//! user takes: `rkube push`, `kubectl apply`, the scheduler, the image pull,
//! wasmtime, CRI log file, pod status as kubectl shows it.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, ensure};
use rkube_harness::{Daemon, Kubectl, Registry, RkubeApiserver};

const RKUBE: &str = env!("CARGO_BIN_EXE_rkube");

fn rkube(name: &str, args: &[&str]) -> anyhow::Result<Daemon> {
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    Daemon::spawn(name, |_| {
        let mut cmd = Command::new(RKUBE);
        cmd.args(&args);
        cmd
    })
}

#[test]
fn a_wasm_pod_pulled_from_a_registry_runs_to_completion() -> anyhow::Result<()> {
    let registry = Registry::start()?;
    let image = format!("{}/hello:1", registry.host());
    let guest = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/guests/hello.wat");
    let pushed = Command::new(RKUBE)
        .arg("push")
        .arg(&guest)
        .arg(&image)
        .output()?;
    ensure!(
        pushed.status.success(),
        "rkube push failed: {}",
        String::from_utf8_lossy(&pushed.stderr)
    );

    let server = RkubeApiserver::start(Path::new(RKUBE), &[])?;
    let kubeconfig = server.kubeconfig();
    let kubeconfig = kubeconfig
        .to_str()
        .context("kubeconfig path is not UTF-8")?;
    let node_dir = tempfile::tempdir()?;
    let node_data = node_dir.path().to_str().context("temp path is not UTF-8")?;
    let _scheduler = rkube("scheduler", &["scheduler", "--kubeconfig", kubeconfig])?;
    let _node = rkube(
        "node",
        &[
            "node",
            "--kubeconfig",
            kubeconfig,
            "--name",
            "edge-1",
            "--data-dir",
            node_data,
        ],
    )?;

    let k = Kubectl::new("1.33", &server.kubeconfig())?;
    k.run(&[
        "wait",
        "--for=condition=Ready",
        "node/edge-1",
        "--timeout=60s",
    ])?;
    let manifest = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/hello-wasm.yaml"),
    )?
    .replace("127.0.0.1:5000/hello:1", &image);
    let dir = tempfile::tempdir()?;
    let file = dir.path().join("hello.yaml");
    std::fs::write(&file, manifest)?;
    k.run(&[
        "apply",
        "-f",
        file.to_str().context("temp path is not UTF-8")?,
    ])?;

    let mut phase = String::new();
    for _ in 0..120 {
        phase = k.run(&["get", "pod", "hello-wasm", "-o", "jsonpath={.status.phase}"])?;
        if phase == "Succeeded" || phase == "Failed" {
            break;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    let described = k.run(&["describe", "pod", "hello-wasm"])?;
    ensure!(phase == "Succeeded", "pod ended {phase:?}:\n{described}");
    let listed = k.run(&["get", "pod", "hello-wasm"])?;
    ensure!(listed.contains("Completed"), "{listed}");
    for expected in [
        "Successfully assigned default/hello-wasm to edge-1",
        "Pulled",
        "Started",
    ] {
        ensure!(
            described.contains(expected),
            "describe lacks {expected}:\n{described}"
        );
    }
    let exit = k.run(&[
        "get",
        "pod",
        "hello-wasm",
        "-o",
        "jsonpath={.status.containerStatuses[0].state.terminated.exitCode}",
    ])?;
    ensure!(exit == "0", "exit code {exit}");

    // The container's output is in its CRI log file under the node's data dir.
    let logs: Vec<String> = walk(&node_dir.path().join("node/pods"))?
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .map(std::fs::read_to_string)
        .collect::<Result<_, _>>()?;
    ensure!(
        logs.iter()
            .any(|l| l.contains(" stdout F hello from rkube wasm")),
        "no log line in {logs:?}"
    );
    Ok(())
}

fn walk(dir: &Path) -> anyhow::Result<Vec<std::path::PathBuf>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let path = entry?.path();
        if path.is_dir() {
            out.extend(walk(&path)?);
        } else {
            out.push(path);
        }
    }
    Ok(out)
}
