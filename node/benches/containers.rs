//! Container pods through rkube beside plain `ctr run --rm` on the same containerd, with wasm
//! pods of the same cluster for contrast. In-process: the API server router on the redb store
//! and the node agent with the wasm and containerd backends (CNI bridge networking per pod),
//! driven through kube-rs; Running is seen through a watch. Needs root; skipped otherwise.
//!
//! `cargo bench -p rkube-node --bench containers` (env: BENCH_CONTAINER_PODS, default 50;
//! RUST_LOG for the node agent's log with timestamps on stderr).

mod support;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::api::node::v1::RuntimeClass;
use kube::api::{Api, DeleteParams, PostParams};
use rkube_apiserver::in_process;
use rkube_apiserver::run::{Options, ensure_system_namespaces, open_store};
use rkube_apiserver::server::{ApiServer, router};
use rkube_harness::{Containerd, Registry, is_root, push_busybox, wasi_module};
use rkube_node::images::{ContainerdImages, OciImages, push_wasm};
use rkube_node::network::{DEFAULT_PLUGIN_DIR, NetworkConfig, PodNetwork};
use rkube_node::{NodeOptions, RuntimeBackend};
use rkube_runtimes::containerd::{ContainerdConfig, ContainerdRuntime, HANDLER};
use rkube_runtimes::wasm::{WasmConfig, WasmRuntime};
use support::{RunningWatch, bench_pod};
use tokio::sync::oneshot;

const NODE: &str = "bench-node";
const NAMESPACE: &str = "default";
/// rkube's containerd namespace: `ctr` runs its containers beside rkube's, on the same images.
const CTR_NAMESPACE: &str = "rkube";
/// A bridge and range of the bench's own, apart from the e2e tests' and `rkube up`'s.
const BRIDGE: &str = "rkube-bench0";
const POD_CIDR: &str = "10.219.0.0/24";
const WASM_CLASS: &str = "wasmtime";
const TARGET_RATIO: f64 = 1.5;
const RUNNING_TIMEOUT: Duration = Duration::from_secs(120);

fn main() {
    if !is_root() {
        println!("skipped: container pods need root (containerd, runc, network namespaces)");
        return;
    }
    if std::env::var_os("RUST_LOG").is_some() {
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_writer(std::io::stderr)
            .init();
    }
    let pods = std::env::var("BENCH_CONTAINER_PODS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(50usize)
        .max(1);
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime")
        .block_on(bench(pods));
    // The bridge is host-wide; the pods' namespaces went with the pods.
    let _ = Command::new("ip").args(["link", "delete", BRIDGE]).status();
}

async fn bench(pods: usize) {
    let containerd = Containerd::start().expect("containerd: apt-get install containerd runc");
    let registry = Registry::start().expect("registry: apt-get install docker-registry");
    let work = tempfile::tempdir().expect("temp dir");
    let busybox = push_busybox(&registry, "bench/busybox", "1", None)
        .await
        .expect("busybox pushed");
    let wasm_image = push_idle_wasm(&registry, work.path()).await;
    let (cluster, stop) = Cluster::start(&containerd.socket(), work.path()).await;

    // Not timed: the image pulled and unpacked, the module compiled, ctr's first run.
    let warm = cluster
        .run_and_delete("warm-ctr", busybox_pod(&busybox))
        .await;
    println!("warm-up container pod (pulls and unpacks busybox): {warm:.1?}");
    let warm = cluster
        .run_and_delete("warm-wasm", wasm_pod(&wasm_image))
        .await;
    println!("warm-up wasm pod (pulls and compiles the module): {warm:.1?}");
    ctr_run(&containerd, &busybox, "warm-ctr").await;

    let mut rkube = Vec::new();
    for i in 0..pods {
        let pod = busybox_pod(&busybox);
        rkube.push(cluster.run_and_delete(&format!("ctr-{i:03}"), pod).await);
    }
    let rkube = Series::new(rkube);
    let mut raw = Vec::new();
    for i in 0..pods {
        raw.push(ctr_run(&containerd, &busybox, &format!("bench-{i:03}")).await);
    }
    let raw = Series::new(raw);
    let mut wasm = Vec::new();
    for i in 0..pods {
        let pod = wasm_pod(&wasm_image);
        wasm.push(cluster.run_and_delete(&format!("wasm-{i:03}"), pod).await);
    }
    let wasm = Series::new(wasm);
    let _ = stop.send(());
    cluster.stopped().await;

    print_table(
        pods,
        &busybox,
        &[
            ("container pod create -> Running (rkube)", &rkube),
            ("`ctr run --rm <image> <id> true` (raw)", &raw),
            ("wasm pod create -> Running (rkube)", &wasm),
        ],
    );
    let ratio = |q| rkube.at(q).as_secs_f64() / raw.at(q).as_secs_f64();
    let (p50, p99) = (ratio(0.50), ratio(0.99));
    let verdict = if p50 <= TARGET_RATIO && p99 <= TARGET_RATIO {
        "met"
    } else {
        "MISSED"
    };
    println!(
        "rkube / ctr: p50 {p50:.2}x, p99 {p99:.2}x (target <= {TARGET_RATIO}x: {verdict}); \
         wasm / ctr p50 {:.3}x",
        wasm.at(0.5).as_secs_f64() / raw.at(0.5).as_secs_f64()
    );
}

async fn push_idle_wasm(registry: &Registry, work: &Path) -> String {
    let idle = wasi_module(
        "",
        "(loop $idle (call $sleep (i64.const 3600000000000)) (br $idle))",
    );
    let module = work.join("idle.wasm");
    std::fs::write(&module, wat::parse_str(idle).expect("valid wat")).expect("write module");
    let image = format!("{}/bench/idle:v1", registry.host());
    push_wasm(&module, &image, &[], None).await.expect("push");
    image
}

/// One `ctr run --rm <image> <id> true`, timed as the whole command.
async fn ctr_run(containerd: &Containerd, image: &str, id: &str) -> Duration {
    let mut command = Command::new("ctr");
    command.arg("--address").arg(containerd.socket()).args([
        "--namespace",
        CTR_NAMESPACE,
        "run",
        "--rm",
        image,
        id,
        "true",
    ]);
    tokio::task::spawn_blocking(move || {
        let started = Instant::now();
        let output = command.output().expect("ctr runs");
        assert!(
            output.status.success(),
            "ctr run: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        started.elapsed()
    })
    .await
    .expect("ctr task")
}

struct Cluster {
    pods: Api<Pod>,
    running: RunningWatch,
    agent: tokio::task::JoinHandle<()>,
}

impl Cluster {
    /// The API server on redb with the `runc` and `wasmtime` RuntimeClasses (as `rkube up`
    /// makes them), and one node agent serving both, built as `rkube node --runtime
    /// wasm,containerd` builds its backends. Returns the sender that stops the agent.
    async fn start(socket: &Path, work: &Path) -> (Cluster, oneshot::Sender<()>) {
        std::fs::create_dir_all(work.join("store")).expect("store dir");
        let options = Options {
            data_dir: work.join("store"),
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            etcd: vec![],
        };
        let store = open_store(&options).await.expect("redb store");
        let server = ApiServer::new(store).await.expect("api server");
        ensure_system_namespaces(&server).await.expect("namespaces");
        let client = in_process::client(router(server), in_process::admin());
        for handler in [WASM_CLASS, HANDLER] {
            let mut class = RuntimeClass {
                handler: handler.into(),
                ..RuntimeClass::default()
            };
            class.metadata.name = Some(handler.into());
            Api::<RuntimeClass>::all(client.clone())
                .create(&PostParams::default(), &class)
                .await
                .expect("runtime class");
        }
        let node_dir = work.join("node");
        let backends = vec![
            wasm_backend(&node_dir),
            containerd_backend(socket, &node_dir).await,
        ];
        let (stop, stopped) = oneshot::channel::<()>();
        let options = NodeOptions::with_backends(NODE, &node_dir, backends);
        let agent = tokio::spawn({
            let client = client.clone();
            async move {
                let shutdown = async {
                    let _ = stopped.await;
                };
                if let Err(error) = rkube_node::run_until(client, options, shutdown).await {
                    panic!("node agent failed: {error}");
                }
            }
        });
        let nodes: Api<Node> = Api::all(client.clone());
        while nodes.get_opt(NODE).await.expect("node read").is_none() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let pods: Api<Pod> = Api::namespaced(client, NAMESPACE);
        let cluster = Cluster {
            running: RunningWatch::start(pods.clone()).await,
            pods,
            agent,
        };
        (cluster, stop)
    }

    async fn stopped(self) {
        self.agent.await.expect("node agent stopped");
    }

    /// Creates the pod, times it from just before the create call to the watch event that
    /// shows it Running, then (not timed) deletes it and waits until it is gone.
    async fn run_and_delete(&self, name: &str, mut pod: Pod) -> Duration {
        pod.metadata.name = Some(name.into());
        let running = self.running.running(name);
        let sent = Instant::now();
        self.pods
            .create(&PostParams::default(), &pod)
            .await
            .expect("pod created");
        let at = tokio::time::timeout(RUNNING_TIMEOUT, running)
            .await
            .unwrap_or_else(|_| panic!("pod {name} not Running within {RUNNING_TIMEOUT:?}"))
            .expect("watch alive");
        self.pods
            .delete(name, &DeleteParams::default())
            .await
            .expect("pod deleted");
        let deadline = Instant::now() + RUNNING_TIMEOUT;
        while self.pods.get_opt(name).await.expect("pod read").is_some() {
            assert!(Instant::now() < deadline, "pod {name} not gone");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        at - sent
    }
}

fn wasm_backend(node_dir: &Path) -> RuntimeBackend {
    let wasm = WasmRuntime::new(WasmConfig::new(node_dir.join("compiled"))).expect("wasm runtime");
    let images = OciImages::new(node_dir.join("images"), vec![]);
    RuntimeBackend::new(Arc::new(wasm), Arc::new(images))
}

async fn containerd_backend(socket: &Path, node_dir: &Path) -> RuntimeBackend {
    let layout = rkube_node::paths::Layout::new(node_dir);
    let config = ContainerdConfig::new(socket, layout.runtime_state(HANDLER));
    let runtime = Arc::new(
        ContainerdRuntime::connect(config)
            .await
            .expect("containerd connection"),
    );
    let network = PodNetwork::new(NetworkConfig {
        plugin_dir: PathBuf::from(DEFAULT_PLUGIN_DIR),
        state_dir: node_dir.join("cni"),
        pod_cidr: POD_CIDR.into(),
        bridge: BRIDGE.into(),
    })
    .expect("pod network: apt-get install containernetworking-plugins");
    RuntimeBackend {
        images: Arc::new(ContainerdImages::new(runtime.clone())),
        runtime,
        network: Some(Arc::new(network)),
        id_scheme: "containerd".into(),
    }
}

fn busybox_pod(image: &str) -> Pod {
    let mut pod = pod(HANDLER, image);
    if let Some(spec) = pod.spec.as_mut() {
        spec.containers[0].command = Some(vec!["sleep".into(), "3600".into()]);
        // `sleep` as PID 1 ignores SIGTERM: no grace period to sit out on delete.
        spec.termination_grace_period_seconds = Some(0);
    }
    pod
}

fn wasm_pod(image: &str) -> Pod {
    pod(WASM_CLASS, image)
}

fn pod(class: &str, image: &str) -> Pod {
    bench_pod("", class, image, Some(NODE.into()))
}

/// Latencies of one series, sorted, with the load average when it ended.
struct Series {
    latencies: Vec<Duration>,
    load: String,
}

impl Series {
    fn new(mut latencies: Vec<Duration>) -> Series {
        latencies.sort();
        let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
        let load = load
            .split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ");
        Series { latencies, load }
    }

    fn at(&self, q: f64) -> Duration {
        let n = self.latencies.len();
        self.latencies[((n as f64 * q) as usize).min(n - 1)]
    }

    fn mean(&self) -> Duration {
        self.latencies.iter().sum::<Duration>() / self.latencies.len() as u32
    }
}

fn print_table(pods: usize, image: &str, rows: &[(&str, &Series)]) {
    let ms = |d: Duration| format!("{:.1} ms", d.as_secs_f64() * 1000.0);
    println!("{pods} each, one in flight, image {image}");
    println!(
        "| {:<42} | {:>9} | {:>9} | {:>9} | {:<14} |",
        "figure", "p50", "p99", "mean", "load average"
    );
    println!(
        "|{:-<44}|{:->11}|{:->11}|{:->11}|{:-<16}|",
        "", "", "", "", ""
    );
    for (figure, series) in rows {
        println!(
            "| {figure:<42} | {:>9} | {:>9} | {:>9} | {:<14} |",
            ms(series.at(0.50)),
            ms(series.at(0.99)),
            ms(series.mean()),
            series.load
        );
    }
}
