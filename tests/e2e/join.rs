//! End-to-end: a node joins with a bootstrap token, as a user joins an edge box —
//! `rkube token create` prints the command, `rkube node --server --token --ca-cert-hash`
//! discovers the CA, gets a node client certificate through a CSR and registers its Node.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use rkube_harness::{Daemon, Kubectl, RkubeApiserver};

use crate::RKUBE;

/// `rkube token create` against the server; returns the printed join command's words.
fn join_command(kubeconfig: &Path, ttl: &str) -> anyhow::Result<Vec<String>> {
    let out = Command::new(RKUBE)
        .args(["token", "create", "--ttl", ttl, "--kubeconfig"])
        .arg(kubeconfig)
        .output()?;
    ensure!(
        out.status.success(),
        "rkube token create failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line = String::from_utf8(out.stdout)?;
    let words: Vec<String> = line.split_whitespace().map(String::from).collect();
    ensure!(
        words.starts_with(&["rkube".into(), "node".into()]),
        "unexpected join command {line:?}"
    );
    Ok(words)
}

fn flag<'a>(words: &'a [String], name: &str) -> anyhow::Result<&'a str> {
    let at = words
        .iter()
        .position(|w| w == name)
        .with_context(|| format!("{name} missing from {words:?}"))?;
    words
        .get(at + 1)
        .map(String::as_str)
        .with_context(|| format!("{name} has no value"))
}

/// Runs `rkube node` with the join flags to completion (it must fail) and returns stderr.
fn failed_join(server: &str, token: &str, hash: &str) -> anyhow::Result<String> {
    let data = tempfile::tempdir()?;
    let mut child = Command::new(RKUBE)
        .args([
            "node", "--name", "intruder", "--server", server, "--token", token,
        ])
        .args(["--ca-cert-hash", hash, "--data-dir"])
        .arg(data.path())
        .env_remove("KUBECONFIG")
        .stderr(std::process::Stdio::piped())
        .spawn()?;
    let started = Instant::now();
    while child.try_wait()?.is_none() {
        if started.elapsed() > Duration::from_secs(20) {
            child.kill()?;
            bail!("rkube node kept running with a bad join");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let out = child.wait_with_output()?;
    ensure!(!out.status.success(), "a bad join exited successfully");
    Ok(String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn a_node_joins_with_a_bootstrap_token() -> anyhow::Result<()> {
    let server = RkubeApiserver::start(Path::new(RKUBE), &[])?;
    let kubeconfig = server.kubeconfig();
    let k = Kubectl::new("1.33", &kubeconfig)?;
    let words = join_command(&kubeconfig, "1h")?;
    let (url, token, hash) = (
        flag(&words, "--server")?,
        flag(&words, "--token")?,
        flag(&words, "--ca-cert-hash")?,
    );

    let node_dir = tempfile::tempdir()?;
    let (url_s, token_s, hash_s) = (url.to_string(), token.to_string(), hash.to_string());
    let node_data = node_dir.path().to_path_buf();
    let mut node = Daemon::spawn("node", move |_| {
        let mut cmd = Command::new(RKUBE);
        cmd.args([
            "node",
            "--name",
            "edge-join",
            "--server",
            &url_s,
            "--token",
            &token_s,
        ])
        .args(["--ca-cert-hash", &hash_s, "--kubelet-listen", "0.0.0.0:0"])
        .arg("--data-dir")
        .arg(&node_data)
        .env_remove("KUBECONFIG");
        cmd
    })?;
    node.wait_until("the node to register", Duration::from_secs(30), || {
        k.run(&["get", "node", "edge-join", "-o", "name"]).is_ok()
    })?;

    // The node authenticated with the issued certificate: the CSR is approved and issued,
    // requested by the token's user, and the node's kubeconfig holds a client certificate.
    let csrs = k.run(&["get", "csr"])?;
    ensure!(csrs.contains("Approved,Issued"), "csr state: {csrs}");
    let token_id = token.split('.').next().unwrap_or_default();
    ensure!(
        csrs.contains(&format!("system:bootstrap:{token_id}")),
        "csr requestor: {csrs}"
    );
    let node_kubeconfig = std::fs::read_to_string(node_dir.path().join("node/kubeconfig"))?;
    ensure!(node_kubeconfig.contains("client-certificate-data"));
    ensure!(
        !node_kubeconfig.contains(token),
        "the token must not be kept"
    );

    // Wrong secret, wrong CA hash, an expired token: all refused with a clear message.
    let wrong_secret = format!("{token_id}.0000000000000000");
    let refused = failed_join(url, &wrong_secret, hash)?;
    ensure!(refused.contains("Unauthorized"), "wrong secret: {refused}");
    let other_hash = format!("sha256:{}", "0".repeat(64));
    let mismatch = failed_join(url, token, &other_hash)?;
    ensure!(
        mismatch.contains("--ca-cert-hash"),
        "wrong hash: {mismatch}"
    );
    let expired = join_command(&kubeconfig, "1s")?;
    std::thread::sleep(Duration::from_secs(2));
    let late = failed_join(url, flag(&expired, "--token")?, hash)?;
    ensure!(late.contains("Unauthorized"), "expired token: {late}");

    // A bootstrap token is no general credential.
    let token_config = node_dir.path().join("token.kubeconfig");
    std::fs::write(
        &token_config,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: {url}\n    insecure-skip-tls-verify: true\nusers:\n- name: t\n  user:\n    token: {token}\ncontexts:\n- name: c\n  context:\n    cluster: c\n    user: t\ncurrent-context: c\n"
        ),
    )?;
    let as_token = Kubectl::new("1.33", &token_config)?;
    let err = as_token.fail(&["get", "secrets", "-n", "kube-system"])?;
    ensure!(
        err.contains("forbidden"),
        "a bootstrap token listed secrets: {err}"
    );
    Ok(())
}
