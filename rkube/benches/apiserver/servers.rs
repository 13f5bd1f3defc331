//! The systems under test: an in-process API server on its own runtime, the `rkube`
//! binary for idle memory, and etcd's own `check perf` as the raw baseline.

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use rkube_apiserver::pki::ClusterPki;
use rkube_apiserver::run::{self, Options};
use rkube_apiserver::serve;
use rkube_apiserver::server::{self, ApiServer};
use tempfile::TempDir;
use tokio::sync::oneshot;

/// An API server serving TLS on a loopback port from a thread with its own tokio runtime,
/// as it would from its own process; stopped on drop.
pub struct InProcess {
    pub pki: ClusterPki,
    pub addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
    _data: TempDir,
}

impl InProcess {
    /// Starts on the embedded store in a temp dir, or on etcd when `etcd` has endpoints.
    pub fn start(etcd: Vec<String>) -> anyhow::Result<InProcess> {
        let data = tempfile::Builder::new().prefix("rkube-bench-").tempdir()?;
        let options = Options {
            data_dir: data.path().to_path_buf(),
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            etcd,
        };
        let (ready_tx, ready_rx) = mpsc::channel();
        let (stop, stopped) = oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("apiserver".into())
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_multi_thread()
                    .enable_all()
                    .build()
                {
                    Ok(runtime) => runtime,
                    Err(err) => {
                        let _ = ready_tx.send(Err(anyhow!("building the server runtime: {err}")));
                        return;
                    }
                };
                runtime.block_on(async move {
                    if let Err(err) = serve_until(&options, &ready_tx, stopped).await {
                        let _ = ready_tx.send(Err(err));
                    }
                });
            })?;
        let (pki, addr) = ready_rx
            .recv()
            .context("the server thread ended before it was ready")??;
        Ok(InProcess {
            pki,
            addr,
            stop: Some(stop),
            thread: Some(thread),
            _data: data,
        })
    }
}

type Ready = mpsc::Sender<anyhow::Result<(ClusterPki, SocketAddr)>>;

/// The steps of `run::run`, reporting the bound address once serving starts.
async fn serve_until(
    options: &Options,
    ready: &Ready,
    stopped: oneshot::Receiver<()>,
) -> anyhow::Result<()> {
    let pki = ClusterPki::ensure(&options.data_dir, &[])?;
    let store = run::open_store(options).await?;
    let api = ApiServer::new(store).await?;
    run::ensure_system_namespaces(&api).await?;
    let listener = serve::bind(options.listen).await?;
    let acceptor = serve::acceptor(&pki)?;
    let _ = ready.send(Ok((pki, listener.local_addr()?)));
    serve::serve(listener, acceptor, server::router(api), async {
        let _ = stopped.await;
    })
    .await;
    Ok(())
}

impl Drop for InProcess {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Resident memory of a fresh `rkube apiserver` after `idle` without requests, in KiB.
pub fn idle_rss_kib(binary: &Path, idle: Duration) -> anyhow::Result<u64> {
    if !binary.is_file() {
        bail!(
            "the rkube binary is missing at {}; build it with `cargo build --release -p rkube`",
            binary.display()
        );
    }
    let port = rkube_harness::free_port();
    let mut daemon = rkube_harness::Daemon::spawn("apiserver", |dir| {
        let mut command = Command::new(binary);
        command
            .arg("apiserver")
            .arg("--data-dir")
            .arg(dir.join("data"))
            .arg("--listen")
            .arg(format!("127.0.0.1:{port}"))
            .env("RUST_LOG", "warn");
        command
    })?;
    daemon.wait_for_port(port, Duration::from_secs(30))?;
    std::thread::sleep(idle);
    let status = std::fs::read_to_string(format!("/proc/{}/status", daemon.pid()))?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .ok_or_else(|| anyhow!("no VmRSS line in /proc/{}/status", daemon.pid()))
}

/// `etcdctl check perf` against `endpoint`: its verdict lines (the progress bar dropped).
pub fn etcd_check_perf(endpoint: &str) -> anyhow::Result<Vec<String>> {
    let output = Command::new("etcdctl")
        .env("ETCDCTL_API", "3")
        .args(["check", "perf", "--endpoints", endpoint])
        .output()
        .context("running etcdctl (apt-get install etcd-client)")?;
    let text = format!(
        "{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    // The progress bar redraws with `\r` and the first verdict can follow it on its line.
    let verdicts: Vec<String> = text
        .split(['\n', '\r'])
        .filter_map(|line| {
            let start = [line.find("PASS"), line.find("FAIL")]
                .into_iter()
                .flatten()
                .min()?;
            Some(line[start..].trim().to_string())
        })
        .collect();
    if verdicts.is_empty() {
        bail!(
            "etcdctl check perf printed no verdict ({}):\n{text}",
            output.status
        );
    }
    Ok(verdicts)
}
