//! End-to-end security defaults over TLS (curl, the real kubectl): no credentials get 401 beyond
//! health and version; a user who got a client certificate through a CSR that an admin
//! approved (`kubectl certificate approve`) holds only what RBAC grants — `view` may read but
//! not create.

use std::path::Path;

use anyhow::{Context, ensure};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use rkube_harness::{Kubectl, RkubeApiserver};

use crate::RKUBE;

/// A kubeconfig for the server on `port`; `user` is the YAML of the user entry.
fn kubeconfig(dir: &Path, name: &str, port: u16, ca: &str, user: &str) -> anyhow::Result<Kubectl> {
    let file = dir.join(format!("{name}.kubeconfig"));
    std::fs::write(
        &file,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: https://127.0.0.1:{port}\n    certificate-authority-data: {ca}\nusers:\n- name: u\n  user: {user}\ncontexts:\n- name: c\n  context:\n    cluster: c\n    user: u\n    namespace: default\ncurrent-context: c\n"
        ),
    )?;
    Kubectl::new("1.33", &file)
}

#[test]
fn credentials_decide_what_kubectl_may_do() -> anyhow::Result<()> {
    let server = RkubeApiserver::start(Path::new(RKUBE), &[])?;
    let admin = Kubectl::new("1.33", &server.kubeconfig())?;
    let dir = tempfile::tempdir()?;
    let ca = STANDARD.encode(std::fs::read(server.data_dir().join("pki/ca.crt"))?);

    // Anonymous: health and version answer, everything else is 401 with a Status.
    let ca_file = server.data_dir().join("pki/ca.crt");
    let anonymous = |path: &str| -> anyhow::Result<String> {
        let out = std::process::Command::new("curl")
            .args(["-s", "-w", " %{http_code}", "--cacert"])
            .arg(&ca_file)
            .arg(format!("https://127.0.0.1:{}{path}", server.port))
            .output()?;
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    };
    for open in ["/healthz", "/livez", "/readyz", "/version"] {
        let answer = anonymous(open)?;
        ensure!(answer.ends_with(" 200"), "{open}: {answer}");
    }
    for closed in [
        "/api",
        "/apis",
        "/api/v1/namespaces/default/pods",
        "/openapi/v3",
    ] {
        let answer = anonymous(closed)?;
        ensure!(
            answer.ends_with(" 401") && answer.contains(r#""reason":"Unauthorized""#),
            "{closed}: {answer}"
        );
    }

    // jane asks for a client certificate; the admin approves it and the API server signs it.
    let key = rcgen::KeyPair::generate()?;
    let mut params = rcgen::CertificateParams::default();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "jane");
    params
        .distinguished_name
        .push(rcgen::DnType::OrganizationName, "developers");
    let request = STANDARD.encode(params.serialize_request(&key)?.pem()?);
    let csr = dir.path().join("csr.yaml");
    std::fs::write(
        &csr,
        format!(
            "apiVersion: certificates.k8s.io/v1\nkind: CertificateSigningRequest\nmetadata:\n  name: jane\nspec:\n  request: {request}\n  signerName: kubernetes.io/kube-apiserver-client\n  usages: [client auth]\n"
        ),
    )?;
    admin.run(&[
        "apply",
        "-f",
        csr.to_str().context("temp path is not UTF-8")?,
    ])?;
    let pending = admin.run(&["get", "csr", "jane"])?;
    ensure!(pending.contains("Pending"), "{pending}");
    admin.run(&["certificate", "approve", "jane"])?;
    let issued = admin.run(&["get", "csr", "jane"])?;
    ensure!(issued.contains("Approved,Issued"), "{issued}");
    let cert = admin.run(&["get", "csr", "jane", "-o", "jsonpath={.status.certificate}"])?;
    let user = format!(
        "{{client-certificate-data: {cert}, client-key-data: {}}}",
        STANDARD.encode(key.serialize_pem())
    );
    let jane = kubeconfig(dir.path(), "jane", server.port, &ca, &user)?;

    // Authenticated but granted nothing yet.
    let err = jane.fail(&["get", "pods"])?;
    ensure!(
        err.contains(
            r#"User "jane" cannot list resource "pods" in API group "" in the namespace "default""#
        ),
        "{err}"
    );
    // view in default: read, but neither create nor read secrets, nor other namespaces.
    admin.run(&[
        "create",
        "rolebinding",
        "jane-view",
        "--clusterrole=view",
        "--user=jane",
    ])?;
    admin.run(&["create", "configmap", "shared", "--from-literal=k=v"])?;
    let mut can_read = false;
    for _ in 0..50 {
        if jane.run(&["get", "configmap", "shared"]).is_ok() {
            can_read = true;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    ensure!(can_read, "the view binding never took effect");
    jane.run(&["get", "pods"])?;
    for denied in [
        &["create", "configmap", "mine"][..],
        &["get", "secrets"],
        &["get", "pods", "-n", "kube-system"],
        &["delete", "configmap", "shared"],
    ] {
        let err = jane.fail(denied)?;
        ensure!(err.contains("forbidden"), "{denied:?}: {err}");
    }
    Ok(())
}
