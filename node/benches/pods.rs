//! wasm pods through the API, in-process: the API server router on the embedded redb store, the
//! node agent with the real wasmtime runtime and the real OCI image cache (pre-populated from
//! a throwaway registry that is stopped before any pod runs), and optionally the scheduler.
//!
//! `cargo bench -p rkube-node --bench pods` (env: BENCH_PODS, BENCH_INFLIGHT, BENCH_RSS_AT,
//! BENCH_PHASES=latency,latency1,scheduler,rss, BENCH_STORE_DIR). Each phase runs in a child process of its own so
//! that RSS and allocator state do not carry from one phase to the next.

mod support;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::api::node::v1::RuntimeClass;
use kube::api::{Api, PostParams};
use rkube_apiserver::in_process;
use rkube_apiserver::run::{Options, ensure_system_namespaces, open_store};
use rkube_apiserver::server::{ApiServer, router};
use rkube_node::images::{OciImages, push_wasm};
use rkube_node::{ImageSource, LocalImages, NodeOptions};
use rkube_runtimes::Runtime;
use rkube_runtimes::wasm::{WasmConfig, WasmRuntime};
use support::{RunningWatch, bench_pod};

const PHASE_ENV: &str = "RKUBE_PODS_BENCH_PHASE";
const IMAGE_DIR_ENV: &str = "RKUBE_PODS_BENCH_IMAGES";
const IMAGE_REF_ENV: &str = "RKUBE_PODS_BENCH_IMAGE";
const IMAGE_KIND_ENV: &str = "RKUBE_PODS_BENCH_IMAGE_KIND";
const RUNTIME_CLASS: &str = "wasmtime";
const NAMESPACE: &str = "default";
/// Nodes in the scheduler phase: a node admits 110 pods, the batch is 1,000.
const SCHEDULED_NODES: usize = 10;
/// In-flight pods while filling the node for the RSS figures (not timed).
const FILL_INFLIGHT: usize = 64;
const SETTLE: Duration = Duration::from_secs(3);

/// Sleeps an hour at a time on the monotonic clock, forever: an idle container.
const IDLE_GUEST: &str = r#"(module
  (import "wasi_snapshot_preview1" "poll_oneoff"
    (func $poll_oneoff (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (func (export "_start")
    ;; One clock subscription at 0: userdata, tag 0 (clock), monotonic, 1 h, no flags.
    (i64.store (i32.const 0) (i64.const 0))
    (i32.store8 (i32.const 8) (i32.const 0))
    (i32.store (i32.const 16) (i32.const 1))
    (i64.store (i32.const 24) (i64.const 3600000000000))
    (i64.store (i32.const 32) (i64.const 0))
    (i32.store16 (i32.const 40) (i32.const 0))
    (loop $idle
      (drop (call $poll_oneoff (i32.const 0) (i32.const 64) (i32.const 1) (i32.const 128)))
      (br $idle))))"#;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let (before, after) = raise_nofile_limit();
    match std::env::var(PHASE_ENV) {
        Ok(phase) => tokio_runtime().block_on(child(&phase)),
        Err(_) => parent(before, after),
    }
}

fn tokio_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// Each container holds its log file open: 10,000 pods need more than the usual 1,024 fds.
fn raise_nofile_limit() -> (u64, u64) {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let limit = getrlimit(Resource::Nofile);
    let before = limit.current.unwrap_or(u64::MAX);
    let raised = rustix::process::Rlimit {
        current: limit.maximum,
        maximum: limit.maximum,
    };
    if let Err(error) = setrlimit(Resource::Nofile, raised) {
        eprintln!("raising RLIMIT_NOFILE: {error}");
    }
    let after = getrlimit(Resource::Nofile).current.unwrap_or(u64::MAX);
    (before, after)
}

// ---------------------------------------------------------------------------------------------
// The parent: prepares the image cache once, runs each phase as a child, prints the table.

fn parent(nofile_before: u64, nofile_after: u64) {
    let work = tempfile::tempdir().expect("temp dir");
    let (image, kind) = tokio_runtime().block_on(prepare_image(work.path()));
    let source = match kind.as_str() {
        "oci" => {
            "real OCI image cache, pre-pulled from a local docker-registry that was then stopped"
        }
        _ => "LocalImages (no docker-registry installed)",
    };
    let phases = std::env::var("BENCH_PHASES").unwrap_or_else(|_| "latency,scheduler,rss".into());
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!(
        "wasm pods through the API (in-process, redb store in a temp dir); image: {source}; \
         RLIMIT_NOFILE {nofile_before} -> {nofile_after}; load average {}",
        load.split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    );
    let mut rows = Vec::new();
    for phase in phases.split(',').filter(|p| !p.is_empty()) {
        let output = std::process::Command::new(std::env::current_exe().expect("own path"))
            .env(PHASE_ENV, phase)
            .env(IMAGE_DIR_ENV, work.path())
            .env(IMAGE_REF_ENV, &image)
            .env(IMAGE_KIND_ENV, &kind)
            .stderr(std::process::Stdio::inherit())
            .output()
            .expect("phase runs");
        let text = String::from_utf8_lossy(&output.stdout);
        for line in text.lines() {
            match line.strip_prefix("ROW|") {
                Some(row) => rows.push(row.split('|').map(str::to_string).collect::<Vec<_>>()),
                None => println!("  [{phase}] {line}"),
            }
        }
        if !output.status.success() {
            panic!("phase {phase} failed: {}", output.status);
        }
    }
    let widths: Vec<usize> = (0..4)
        .map(|i| {
            rows.iter()
                .map(|r| r.get(i).map_or(0, |c| c.chars().count()))
                .max()
                .unwrap_or(0)
                .max(["figure", "measured", "target", "verdict"][i].len())
        })
        .collect();
    let print_row = |cells: &[&str]| {
        let padded: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        println!("| {} |", padded.join(" | "));
    };
    print_row(&["figure", "measured", "target", "verdict"]);
    let rule: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
    println!("|-{}-|", rule.join("-|-"));
    for row in &rows {
        let cells: Vec<&str> = row.iter().map(String::as_str).collect();
        print_row(&cells);
    }
}

/// Pushes the idle guest to a throwaway registry and pulls it once into the node's image
/// cache; the registry is stopped before any pod runs, so every fetch is served by the cache.
/// Without docker-registry the image is a local file (`LocalImages`).
async fn prepare_image(work: &Path) -> (String, String) {
    let module = work.join("idle.wasm");
    std::fs::write(&module, wat::parse_str(IDLE_GUEST).expect("valid wat")).expect("write");
    let registry = match rkube_harness::Registry::start() {
        Ok(registry) => registry,
        Err(error) => {
            eprintln!("no registry ({error:#}); using LocalImages");
            return ("bench/idle:v1".into(), "local".into());
        }
    };
    let image = format!("{}/bench/idle:v1", registry.host());
    push_wasm(&module, &image, &[], None).await.expect("push");
    OciImages::new(work.join("images"), vec![])
        .fetch(&image, "IfNotPresent", &[], None)
        .await
        .expect("pull into the cache");
    drop(registry);
    (image, "oci".into())
}

// ---------------------------------------------------------------------------------------------
// A child: one phase on a fresh cluster.

async fn child(phase: &str) {
    let pods = env_usize("BENCH_PODS", 1000);
    let inflight = env_usize("BENCH_INFLIGHT", 16);
    match phase {
        "latency" => {
            let cluster = Cluster::start(1, pods + 64).await;
            let figures = cluster.batch(pods, inflight, true, 0).await;
            figures.rows("pre-bound", inflight, pods);
        }
        "latency1" => {
            let cluster = Cluster::start(1, pods + 64).await;
            let figures = cluster.batch(pods, 1, true, 0).await;
            figures.rows("pre-bound", 1, pods);
        }
        "scheduler" => {
            let cluster = Cluster::start(SCHEDULED_NODES, pods + 64).await;
            let figures = cluster.batch(pods, inflight, false, 0).await;
            figures.rows("scheduled", inflight, pods);
        }
        "rss" => rss().await,
        other => panic!("unknown phase {other}"),
    }
}

async fn rss() {
    // The wasm engine reserves about 5 GiB of address space per instance (1.25 memory slots
    // of 4 GiB) in one mapping; the largest free range is about 56 TiB here.
    let steps: Vec<usize> = std::env::var("BENCH_RSS_AT")
        .unwrap_or_else(|_| "100,1000,10000".into())
        .split(',')
        .filter_map(|s| s.parse().ok())
        .collect();
    let most = steps.iter().copied().max().unwrap_or(0);
    let cluster = Cluster::start(1, most + 64).await;
    tokio::time::sleep(SETTLE).await;
    let (rss0, fds0) = (rss_kib(), open_fds());
    println!("baseline (API server, agent, one warm-up pod): RSS {rss0} KiB, {fds0} fds");
    let mut created = 0;
    for n in steps {
        let started = Instant::now();
        cluster
            .batch(n - created, FILL_INFLIGHT, true, created)
            .await;
        created = n;
        tokio::time::sleep(SETTLE).await;
        let (rss, fds) = (rss_kib(), open_fds());
        let per_pod = (rss.saturating_sub(rss0)) as f64 / n as f64;
        println!(
            "{n} idle pods (filled in {:.1?}): RSS {rss} KiB, {fds} fds ({:.2} per pod)",
            started.elapsed(),
            (fds - fds0) as f64 / n as f64
        );
        row(
            &format!("RSS per idle wasm pod, {n} pods"),
            &format!(
                "{per_pod:.0} KiB ({} MiB over baseline; {:.2} fds per pod)",
                (rss - rss0) / 1024,
                (fds - fds0) as f64 / n as f64
            ),
            "<= 512 KiB",
            per_pod <= 512.0,
        );
    }
}

fn row(figure: &str, measured: &str, target: &str, met: bool) {
    let verdict = if target.is_empty() {
        "-"
    } else if met {
        "met"
    } else {
        "MISSED"
    };
    println!("ROW|{figure}|{measured}|{target}|{verdict}");
}

struct Cluster {
    pods: Api<Pod>,
    image: String,
    running: RunningWatch,
    _dirs: (tempfile::TempDir, tempfile::TempDir),
}

impl Cluster {
    /// An API server on redb, the RuntimeClass, `nodes` agents sharing one wasm runtime (and
    /// the scheduler when there are several), one warm-up pod Running (the module compiled).
    async fn start(nodes: usize, max_instances: usize) -> Cluster {
        let dir = tempfile::tempdir().expect("temp dir");
        // BENCH_STORE_DIR=/dev/shm takes the disk's fsync out of the figures.
        let store_dir = match std::env::var("BENCH_STORE_DIR") {
            Ok(parent) => tempfile::tempdir_in(parent).expect("store dir"),
            Err(_) => tempfile::tempdir_in(dir.path()).expect("store dir"),
        };
        let options = Options {
            data_dir: store_dir.path().to_path_buf(),
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            etcd: vec![],
        };
        let store = open_store(&options).await.expect("redb store");
        let server = ApiServer::new(store).await.expect("api server");
        ensure_system_namespaces(&server).await.expect("namespaces");
        let client = in_process::client(router(server), in_process::admin());
        let mut class = RuntimeClass {
            handler: RUNTIME_CLASS.into(),
            ..RuntimeClass::default()
        };
        class.metadata.name = Some(RUNTIME_CLASS.into());
        Api::<RuntimeClass>::all(client.clone())
            .create(&PostParams::default(), &class)
            .await
            .expect("runtime class");

        let image = std::env::var(IMAGE_REF_ENV).expect("image reference");
        let images = image_source(&image);
        let mut config = WasmConfig::new(dir.path().join("wasm-cache"));
        config.max_instances = u32::try_from(max_instances).expect("fits");
        config.max_memory_bytes = 1 << 20;
        let runtime: Arc<dyn Runtime> = Arc::new(WasmRuntime::new(config).expect("wasm runtime"));
        for i in 0..nodes {
            let options = NodeOptions::new(
                node_name(i),
                dir.path().join(node_name(i)),
                vec![runtime.clone()],
                images.clone(),
            );
            let client = client.clone();
            tokio::spawn(async move {
                if let Err(error) = rkube_node::run(client, options).await {
                    panic!("node agent failed: {error}");
                }
            });
        }
        let node_api: Api<Node> = Api::all(client.clone());
        for i in 0..nodes {
            while node_api
                .get_opt(&node_name(i))
                .await
                .expect("node read")
                .is_none()
            {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        if nodes > 1 {
            tokio::spawn(rkube_scheduler::run(
                client.clone(),
                rkube_scheduler::SchedulerOptions::default(),
            ));
        }
        let pods: Api<Pod> = Api::namespaced(client.clone(), NAMESPACE);
        let cluster = Cluster {
            running: RunningWatch::start(pods.clone()).await,
            pods,
            image,
            _dirs: (dir, store_dir),
        };
        let warm = cluster.run_pod("warmup".into(), nodes == 1).await;
        println!("warm-up pod (compiles the module): {warm:.1?}");
        cluster
    }

    /// Creates a pod and waits for the watch to see it Running: the time from just before
    /// the create call to the event's arrival.
    async fn run_pod(&self, name: String, bound: bool) -> Duration {
        let running = self.running.running(&name);
        let pod = idle_pod(&name, &self.image, bound.then(|| node_name(0)));
        let sent = Instant::now();
        self.pods
            .create(&PostParams::default(), &pod)
            .await
            .expect("pod created");
        let at = tokio::time::timeout(Duration::from_secs(120), running)
            .await
            .unwrap_or_else(|_| panic!("pod {name} not Running within 2 minutes"))
            .expect("watch alive");
        at - sent
    }

    /// `count` pods with at most `inflight` between create and Running at a time.
    async fn batch(&self, count: usize, inflight: usize, bound: bool, first: usize) -> Figures {
        let started = Instant::now();
        let mut latencies: Vec<Duration> = futures::stream::iter(first..first + count)
            .map(|i| self.run_pod(format!("idle-{i:05}"), bound))
            .buffer_unordered(inflight.max(1))
            .collect()
            .await;
        let took = started.elapsed();
        latencies.sort();
        Figures { latencies, took }
    }
}

fn image_source(image: &str) -> Arc<dyn ImageSource> {
    let dir = PathBuf::from(std::env::var(IMAGE_DIR_ENV).expect("image dir"));
    if std::env::var(IMAGE_KIND_ENV).as_deref() == Ok("oci") {
        return Arc::new(OciImages::new(dir.join("images"), vec![]));
    }
    let mut local = LocalImages::new();
    local.insert(image, dir.join("idle.wasm"));
    Arc::new(local)
}

fn node_name(i: usize) -> String {
    format!("bench-node-{i}")
}

fn idle_pod(name: &str, image: &str, node: Option<String>) -> Pod {
    bench_pod(name, RUNTIME_CLASS, image, node)
}

struct Figures {
    latencies: Vec<Duration>,
    took: Duration,
}

impl Figures {
    fn at(&self, q: f64) -> Duration {
        let n = self.latencies.len();
        self.latencies[((n as f64 * q) as usize).min(n - 1)]
    }

    fn rows(&self, how: &str, inflight: usize, pods: usize) {
        let (p50, p99) = (self.at(0.50), self.at(0.99));
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        row(
            &format!("create -> Running p50 / p99, {how}, {inflight} in flight"),
            &format!(
                "{:.1} ms / {:.1} ms (max {:.1} ms)",
                ms(p50),
                ms(p99),
                ms(self.at(1.0))
            ),
            "<= 5 ms / <= 20 ms",
            p50 <= Duration::from_millis(5) && p99 <= Duration::from_millis(20),
        );
        row(
            &format!("pods Running/s, {how}, {inflight} in flight"),
            &format!(
                "{:.0}/s ({pods} pods in {:.2?})",
                pods as f64 / self.took.as_secs_f64(),
                self.took
            ),
            "",
            true,
        );
    }
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count())
}
