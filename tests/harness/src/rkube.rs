//! Running the `rkube` binary's API server and driving it with the real kubectl.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use anyhow::{Context, bail};

use crate::{Daemon, free_port};

/// `rkube apiserver` on a loopback port with its own data dir, stopped (SIGKILL) on drop.
pub struct RkubeApiserver {
    /// `None` only between a kill and the restart.
    daemon: Option<Daemon>,
    binary: PathBuf,
    extra: Vec<String>,
    data: tempfile::TempDir,
    pub port: u16,
}

impl RkubeApiserver {
    /// Starts `binary apiserver` with a fresh data dir; `extra` are more flags (e.g. `--etcd`).
    pub fn start(binary: &Path, extra: &[&str]) -> anyhow::Result<RkubeApiserver> {
        let data = tempfile::tempdir()?;
        let port = free_port();
        let extra: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
        let daemon = Self::spawn(binary, data.path(), port, &extra)?;
        Ok(RkubeApiserver {
            daemon: Some(daemon),
            binary: binary.to_path_buf(),
            extra,
            data,
            port,
        })
    }

    fn spawn(binary: &Path, data: &Path, port: u16, extra: &[String]) -> anyhow::Result<Daemon> {
        let kubeconfig = data.join("kubeconfig");
        let _ = std::fs::remove_file(&kubeconfig);
        let mut daemon = Daemon::spawn("rkube-apiserver", |_| {
            let mut cmd = Command::new(binary);
            cmd.arg("apiserver")
                .arg("--data-dir")
                .arg(data)
                .arg("--listen")
                .arg(format!("127.0.0.1:{port}"))
                .args(extra);
            cmd
        })?;
        daemon.wait_until(
            "the kubeconfig to be written",
            Duration::from_secs(20),
            || kubeconfig.exists(),
        )?;
        daemon.wait_for_port(port, Duration::from_secs(20))?;
        Ok(daemon)
    }

    /// Kills the server as a crash would (SIGKILL, no shutdown) and starts it again on the
    /// same data dir and port.
    pub fn crash_and_restart(&mut self) -> anyhow::Result<()> {
        // Dropping the daemon kills it by PID and reaps it before the new one binds.
        self.daemon = None;
        self.daemon = Some(Self::spawn(
            &self.binary,
            self.data.path(),
            self.port,
            &self.extra,
        )?);
        Ok(())
    }

    pub fn kubeconfig(&self) -> PathBuf {
        self.data.path().join("kubeconfig")
    }

    pub fn data_dir(&self) -> &Path {
        self.data.path()
    }

    pub fn daemon(&self) -> Option<&Daemon> {
        self.daemon.as_ref()
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

    /// kubectl on a pseudo-terminal (util-linux `script`), as for `exec -it` typed by a user;
    /// the exit status is kubectl's, and what is written to stdin is typed into the terminal.
    pub fn in_terminal(&self, args: &[&str]) -> Command {
        let kubectl = self.command(args);
        let line = std::iter::once(kubectl.get_program())
            .chain(kubectl.get_args())
            .map(|arg| format!("'{}'", arg.to_string_lossy().replace('\'', r"'\''")))
            .collect::<Vec<_>>()
            .join(" ");
        let mut script = Command::new("script");
        script.args([
            "--quiet",
            "--return",
            "--flush",
            "--command",
            &line,
            "/dev/null",
        ]);
        script
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
