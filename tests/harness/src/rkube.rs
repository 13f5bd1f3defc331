//! Running the `rkube` binary's API server and driving it with the real kubectl.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use anyhow::{Context, bail};

use crate::{Daemon, free_port};

/// `rkube apiserver` on a loopback port with its own data dir, stopped on drop.
pub struct RkubeApiserver {
    daemon: Daemon,
    pub port: u16,
}

impl RkubeApiserver {
    /// Starts `binary apiserver` with a fresh data dir; `extra` are more flags (e.g. `--etcd`).
    pub fn start(binary: &Path, extra: &[&str]) -> anyhow::Result<RkubeApiserver> {
        let port = free_port();
        let mut daemon = Daemon::spawn("rkube-apiserver", |dir| {
            let mut cmd = Command::new(binary);
            cmd.arg("apiserver")
                .arg("--data-dir")
                .arg(dir.join("data"))
                .arg("--listen")
                .arg(format!("127.0.0.1:{port}"))
                .args(extra);
            cmd
        })?;
        let kubeconfig = daemon.dir().join("data/kubeconfig");
        daemon.wait_until(
            "the kubeconfig to be written",
            Duration::from_secs(20),
            || kubeconfig.exists(),
        )?;
        daemon.wait_for_port(port, Duration::from_secs(20))?;
        Ok(RkubeApiserver { daemon, port })
    }

    pub fn kubeconfig(&self) -> PathBuf {
        self.daemon.dir().join("data/kubeconfig")
    }

    pub fn data_dir(&self) -> PathBuf {
        self.daemon.dir().join("data")
    }

    pub fn daemon(&self) -> &Daemon {
        &self.daemon
    }
}

/// One pinned kubectl release (`kubectl.1.33` …) against one cluster, with its own cache dir
/// so discovery from another server never leaks in.
pub struct Kubectl {
    binary: PathBuf,
    kubeconfig: PathBuf,
    cache: tempfile::TempDir,
}

/// Where Debian's kubectl package keeps its pinned releases.
const KUBECTL_DIR: &str = "/usr/lib/google-cloud-sdk/bin";

impl Kubectl {
    pub fn new(version: &str, kubeconfig: &Path) -> anyhow::Result<Kubectl> {
        let binary = Path::new(KUBECTL_DIR).join(format!("kubectl.{version}"));
        if !binary.exists() {
            bail!(
                "{} is missing: install the kubectl package (see .ci/run)",
                binary.display()
            );
        }
        Ok(Kubectl {
            binary,
            kubeconfig: kubeconfig.to_path_buf(),
            cache: tempfile::tempdir()?,
        })
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(&self.binary);
        cmd.arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .arg("--cache-dir")
            .arg(self.cache.path())
            .arg("--request-timeout=20s")
            .args(args)
            .stdin(Stdio::null());
        cmd
    }

    /// Runs kubectl; returns its output whether or not it succeeded.
    pub fn output(&self, args: &[&str]) -> anyhow::Result<Output> {
        self.command(args)
            .output()
            .with_context(|| format!("running kubectl {}", args.join(" ")))
    }

    /// Runs kubectl and returns stdout, failing with stderr when it exits non-zero.
    pub fn run(&self, args: &[&str]) -> anyhow::Result<String> {
        let out = self.output(args)?;
        if !out.status.success() {
            bail!(
                "kubectl {} failed ({}):\n{}{}",
                args.join(" "),
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Runs kubectl expecting failure; returns stderr.
    pub fn fail(&self, args: &[&str]) -> anyhow::Result<String> {
        let out = self.output(args)?;
        if out.status.success() {
            bail!(
                "kubectl {} succeeded but should have failed:\n{}",
                args.join(" "),
                String::from_utf8_lossy(&out.stdout)
            );
        }
        Ok(String::from_utf8_lossy(&out.stderr).into_owned())
    }

    /// Starts a long-running kubectl (e.g. `get -w`) with stdout piped.
    pub fn spawn(&self, args: &[&str]) -> anyhow::Result<Child> {
        self.command(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .context("spawning kubectl")
    }
}
