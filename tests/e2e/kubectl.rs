//! End-to-end: `rkube apiserver` driven by the real kubectl, pinned to 1.32 and 1.33.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::sync::mpsc;
use std::time::Duration;

use anyhow::{Context, ensure};
use rkube_harness::{Etcd, Kubectl, RkubeApiserver};

use crate::RKUBE;

const APP: &str = r#"apiVersion: v1
kind: Namespace
metadata:
  name: demo
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: settings
  namespace: demo
data:
  greeting: hello
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: demo
  labels: {app: web}
spec:
  replicas: 2
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: web
        image: registry.local/web:1
        ports:
        - containerPort: 80
        env:
        - name: MODE
          value: demo
---
apiVersion: v1
kind: Service
metadata:
  name: web
  namespace: demo
spec:
  selector: {app: web}
  ports:
  - port: 80
---
apiVersion: v1
kind: Pod
metadata:
  name: solo
  namespace: demo
spec:
  containers:
  - name: main
    image: registry.local/tool:1
"#;

fn lines_with<'a>(text: &'a str, needle: &str) -> Vec<&'a str> {
    text.lines().filter(|l| l.contains(needle)).collect()
}

fn header(table: &str) -> Vec<&str> {
    table
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .collect()
}

/// The lines a running `kubectl get -w` prints, as they come.
fn lines_of(child: &mut std::process::Child) -> anyhow::Result<mpsc::Receiver<String>> {
    let stdout = child.stdout.take().context("watch has no stdout")?;
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    Ok(rx)
}

/// Waits until a line containing `needle` arrives.
fn wait_for_line(rx: &mpsc::Receiver<String>, needle: &str) -> anyhow::Result<String> {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let mut seen = Vec::new();
    while let Some(left) = deadline.checked_duration_since(std::time::Instant::now()) {
        match rx.recv_timeout(left) {
            Ok(line) if line.contains(needle) => return Ok(line),
            Ok(line) => seen.push(line),
            Err(_) => break,
        }
    }
    anyhow::bail!("watch never printed {needle:?}; saw {seen:?}")
}

fn scenario(version: &str, server_flags: &[&str]) -> anyhow::Result<()> {
    let server = RkubeApiserver::start(Path::new(RKUBE), server_flags)?;
    let k = Kubectl::new(version, &server.kubeconfig())?;
    let dir = tempfile::tempdir()?;
    let manifest = dir.path().join("app.yaml");
    std::fs::write(&manifest, APP)?;
    let file = manifest.to_str().context("temp path is not UTF-8")?;

    let version_out = k.run(&["version"])?;
    ensure!(
        version_out.contains("Server Version: v1.33"),
        "{version_out}"
    );

    let resources = k.run(&["api-resources"])?;
    for expected in [
        "deployments",
        "deploy",
        "runtimeclasses",
        "leases",
        "endpointslices",
    ] {
        ensure!(
            resources.contains(expected),
            "api-resources lacks {expected}:\n{resources}"
        );
    }

    let created = k.run(&["apply", "-f", file])?;
    ensure!(lines_with(&created, " created").len() == 5, "{created}");
    let again = k.run(&["apply", "-f", file])?;
    ensure!(lines_with(&again, " unchanged").len() == 5, "{again}");
    std::fs::write(&manifest, APP.replace("replicas: 2", "replicas: 3"))?;
    let changed = k.run(&["apply", "-f", file])?;
    ensure!(
        changed.contains("deployment.apps/web configured"),
        "{changed}"
    );
    ensure!(lines_with(&changed, " unchanged").len() == 4, "{changed}");
    let server_side = k.run(&["apply", "--server-side", "-f", file])?;
    ensure!(
        lines_with(&server_side, "serverside-applied").len() == 5,
        "{server_side}"
    );

    let deploys = k.run(&["get", "deployments", "-n", "demo"])?;
    ensure!(
        header(&deploys) == ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"],
        "{deploys}"
    );
    ensure!(deploys.contains("0/3"), "{deploys}");
    let pods = k.run(&["get", "pods", "-n", "demo", "-o", "wide"])?;
    ensure!(
        header(&pods)[..5] == ["NAME", "READY", "STATUS", "RESTARTS", "AGE"],
        "{pods}"
    );
    ensure!(pods.contains("solo") && pods.contains("Pending"), "{pods}");
    let services = k.run(&["get", "svc", "-n", "demo"])?;
    ensure!(
        services.contains("ClusterIP") && services.contains("80/TCP"),
        "{services}"
    );
    let everywhere = k.run(&["get", "configmaps", "-A", "--show-labels"])?;
    ensure!(
        everywhere.contains("demo") && everywhere.contains("settings"),
        "{everywhere}"
    );

    let yaml = k.run(&["get", "deployment", "web", "-n", "demo", "-o", "yaml"])?;
    for expected in [
        "resourceVersion:",
        "uid:",
        "creationTimestamp:",
        "replicas: 3",
        "revisionHistoryLimit: 10",
    ] {
        ensure!(yaml.contains(expected), "yaml lacks {expected}:\n{yaml}");
    }
    let described = k.run(&["describe", "deployment", "web", "-n", "demo"])?;
    ensure!(
        described.contains("Name:") && described.contains("registry.local/web:1"),
        "{described}"
    );

    k.run(&["label", "deployment", "web", "-n", "demo", "tier=front"])?;
    k.run(&[
        "annotate",
        "deployment",
        "web",
        "-n",
        "demo",
        "owner=team-a",
    ])?;
    k.run(&[
        "patch",
        "deployment",
        "web",
        "-n",
        "demo",
        "--type",
        "merge",
        "-p",
        r#"{"spec":{"minReadySeconds":5}}"#,
    ])?;
    k.run(&[
        "patch",
        "deployment",
        "web",
        "-n",
        "demo",
        "--type",
        "json",
        "-p",
        r#"[{"op":"replace","path":"/spec/replicas","value":4}]"#,
    ])?;
    k.run(&["patch", "deployment", "web", "-n", "demo", "--type", "strategic", "-p", r#"{"spec":{"template":{"spec":{"containers":[{"name":"web","image":"registry.local/web:2"}]}}}}"#])?;
    k.run(&["scale", "deployment", "web", "-n", "demo", "--replicas=6"])?;
    let fields = k.run(&[
        "get", "deployment", "web", "-n", "demo", "-o",
        "jsonpath={.metadata.labels.tier} {.metadata.annotations.owner} {.spec.minReadySeconds} {.spec.replicas} {.spec.template.spec.containers[0].image} {.spec.template.spec.containers[0].env[0].value}",
    ])?;
    ensure!(
        fields == "front team-a 5 6 registry.local/web:2 demo",
        "{fields}"
    );

    k.run(&[
        "create",
        "configmap",
        "literal",
        "-n",
        "demo",
        "--from-literal=key=value",
    ])?;
    let literal = k.run(&[
        "get",
        "configmap",
        "literal",
        "-n",
        "demo",
        "-o",
        "jsonpath={.data.key}",
    ])?;
    ensure!(literal == "value", "{literal}");

    let mut watch = k.spawn(&["get", "configmaps", "-n", "demo", "-w"])?;
    let lines = lines_of(&mut watch)?;
    wait_for_line(&lines, "settings")?;
    k.run(&[
        "create",
        "configmap",
        "watched",
        "-n",
        "demo",
        "--from-literal=a=b",
    ])?;
    let seen = wait_for_line(&lines, "watched");
    let _ = watch.kill();
    let _ = watch.wait();
    seen?;

    let deleted = k.run(&["delete", "configmap", "watched", "-n", "demo"])?;
    ensure!(deleted.contains("deleted"), "{deleted}");
    let gone = k.fail(&["get", "configmap", "watched", "-n", "demo"])?;
    ensure!(gone.contains("NotFound"), "{gone}");

    let explained = k.run(&["explain", "pod.spec.containers"])?;
    ensure!(
        explained.contains("FIELD: containers") && explained.contains("Container"),
        "{explained}"
    );

    let invalid = k.fail(&["create", "configmap", "Bad_Name", "-n", "demo"])?;
    ensure!(invalid.contains("is invalid"), "{invalid}");
    Ok(())
}

#[test]
fn kubectl_1_33_drives_the_api_server() -> anyhow::Result<()> {
    scenario("1.33", &[])
}

#[test]
fn kubectl_1_32_drives_the_api_server() -> anyhow::Result<()> {
    scenario("1.32", &[])
}

#[test]
fn kubectl_drives_the_api_server_on_etcd() -> anyhow::Result<()> {
    let etcd = Etcd::start()?;
    scenario("1.33", &["--etcd", &etcd.endpoint()])
}

#[test]
fn a_crash_loses_nothing_and_revisions_keep_rising() -> anyhow::Result<()> {
    let mut server = RkubeApiserver::start(Path::new(RKUBE), &[])?;
    let k = Kubectl::new("1.33", &server.kubeconfig())?;
    for i in 0..20 {
        k.run(&[
            "create",
            "configmap",
            &format!("cm-{i}"),
            &format!("--from-literal=i={i}"),
        ])?;
    }
    let before: u64 = k
        .run(&[
            "get",
            "configmap",
            "cm-19",
            "-o",
            "jsonpath={.metadata.resourceVersion}",
        ])?
        .parse()?;
    server.crash_and_restart()?;
    let k = Kubectl::new("1.33", &server.kubeconfig())?;
    let names = k.run(&["get", "configmaps", "-o", "name"])?;
    for i in 0..20 {
        ensure!(
            names.contains(&format!("configmap/cm-{i}\n")),
            "cm-{i} lost:\n{names}"
        );
    }
    k.run(&["create", "configmap", "after"])?;
    let after: u64 = k
        .run(&[
            "get",
            "configmap",
            "after",
            "-o",
            "jsonpath={.metadata.resourceVersion}",
        ])?
        .parse()?;
    ensure!(
        after > before,
        "resourceVersion went from {before} to {after}"
    );
    Ok(())
}
