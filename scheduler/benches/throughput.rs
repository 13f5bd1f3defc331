//! Scheduler throughput against the real API server in-process: 1,000 Ready nodes, then
//! 30,000 pods created at once; reports pods bound per second and time-to-bind percentiles
//! (create sent → pod seen bound through a watch), on the embedded redb store and in memory.
//!
//! `cargo bench -p rkube-scheduler` (env: BENCH_PODS, BENCH_NODES, BENCH_STORE=redb|memory).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{
    Container, Node, NodeCondition, NodeStatus, Pod, PodSpec, ResourceRequirements,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use kube::api::{Api, ListParams, PostParams, WatchEvent, WatchParams};
use rkube_apiserver::in_process;
use rkube_apiserver::server::{ApiServer, router};
use rkube_apiserver::store::Store;
use rkube_apiserver::store::memory::MemoryStore;
use rkube_apiserver::store::redb::RedbStore;
use rkube_scheduler::{SchedulerOptions, run};

const CREATORS: usize = 256;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn quantities(pairs: &[(&str, &str)]) -> BTreeMap<String, Quantity> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), Quantity(v.to_string())))
        .collect()
}

fn node(name: String) -> Node {
    let mut node = Node {
        status: Some(NodeStatus {
            allocatable: Some(quantities(&[
                ("cpu", "32"),
                ("memory", "128Gi"),
                ("pods", "110"),
            ])),
            capacity: Some(quantities(&[
                ("cpu", "32"),
                ("memory", "128Gi"),
                ("pods", "110"),
            ])),
            conditions: Some(vec![NodeCondition {
                type_: "Ready".into(),
                status: "True".into(),
                ..NodeCondition::default()
            }]),
            ..NodeStatus::default()
        }),
        ..Node::default()
    };
    node.metadata.name = Some(name);
    node
}

fn pod(name: String) -> Pod {
    let mut pod = Pod {
        spec: Some(PodSpec {
            containers: vec![Container {
                name: "app".into(),
                image: Some("registry.example/app:1".into()),
                resources: Some(ResourceRequirements {
                    requests: Some(quantities(&[("cpu", "100m"), ("memory", "128Mi")])),
                    ..ResourceRequirements::default()
                }),
                ..Container::default()
            }],
            ..PodSpec::default()
        }),
        ..Pod::default()
    };
    pod.metadata.name = Some(name);
    pod
}

struct Figures {
    created_in: Duration,
    bound_in: Duration,
    p50: Duration,
    p99: Duration,
    max: Duration,
}

/// `Burst`: the scheduler runs while the pods are created (the target figure). `Backlog`:
/// the pods exist before the scheduler starts, which measures scheduling and binding alone.
#[derive(Clone, Copy, PartialEq)]
enum Mode {
    Burst,
    Backlog,
}

async fn case(store: Arc<dyn Store>, nodes: usize, pods: usize, mode: Mode) -> Figures {
    let server = ApiServer::new(store).await.expect("api server starts");
    rkube_apiserver::run::ensure_system_namespaces(&server)
        .await
        .expect("system namespaces");
    let client = in_process::client(router(server), in_process::admin());

    let node_api: Api<Node> = Api::all(client.clone());
    futures::stream::iter(0..nodes)
        .map(|i| {
            let api = node_api.clone();
            async move {
                api.create(&PostParams::default(), &node(format!("node-{i:04}")))
                    .await
            }
        })
        .buffer_unordered(64)
        .try_collect::<Vec<_>>()
        .await
        .expect("nodes created");

    let pod_api: Api<Pod> = Api::namespaced(client.clone(), "default");
    let mut scheduler = None;
    if mode == Mode::Burst {
        scheduler = Some(tokio::spawn(run(
            client.clone(),
            SchedulerOptions::default(),
        )));
        // A warm-up pod proves the scheduler's caches are synced before the clock starts.
        pod_api
            .create(&PostParams::default(), &pod("warmup".into()))
            .await
            .expect("warm-up pod created");
        loop {
            let p = pod_api.get("warmup").await.expect("warm-up pod read");
            if p.spec.and_then(|s| s.node_name).is_some() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    let rv = pod_api
        .list(&ListParams::default().limit(1))
        .await
        .expect("list")
        .metadata
        .resource_version
        .unwrap_or_default();
    let watcher = tokio::spawn(watch_bindings(pod_api.clone(), rv, pods));

    let sent: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let start = Instant::now();
    futures::stream::iter(0..pods)
        .map(|i| {
            let api = pod_api.clone();
            let sent = Arc::clone(&sent);
            // Spawned, so that the in-process server work of the creates spreads over the
            // runtime's workers instead of running on the thread that drives this stream.
            tokio::spawn(async move {
                let name = format!("pod-{i:05}");
                sent.lock()
                    .expect("sent times")
                    .insert(name.clone(), Instant::now());
                api.create(&PostParams::default(), &pod(name)).await
            })
        })
        .buffer_unordered(CREATORS)
        .map(|joined| joined.expect("create task"))
        .try_collect::<Vec<_>>()
        .await
        .expect("pods created");
    let created_in = start.elapsed();
    let start = if mode == Mode::Backlog {
        let started = Instant::now();
        scheduler = Some(tokio::spawn(run(
            client.clone(),
            SchedulerOptions::default(),
        )));
        started
    } else {
        start
    };
    let bound = watcher.await.expect("watcher");
    if let Some(scheduler) = scheduler {
        scheduler.abort();
    }
    let sent = sent.lock().expect("sent times");
    let last = bound.values().copied().max().unwrap_or(start);
    let mut latencies: Vec<Duration> = bound
        .iter()
        .map(|(name, at)| match mode {
            Mode::Burst => *at - sent[name],
            Mode::Backlog => *at - start,
        })
        .collect();
    latencies.sort();
    let at = |q: f64| latencies[((latencies.len() as f64 * q) as usize).min(latencies.len() - 1)];
    Figures {
        created_in,
        bound_in: last - start,
        p50: at(0.50),
        p99: at(0.99),
        max: at(1.0),
    }
}

/// When each pod was first seen bound, through a watch from `rv`.
async fn watch_bindings(
    pod_api: Api<Pod>,
    mut rv: String,
    pods: usize,
) -> HashMap<String, Instant> {
    let mut bound: HashMap<String, Instant> = HashMap::new();
    while bound.len() < pods {
        let mut stream = pod_api
            .watch(&WatchParams::default().timeout(290), &rv)
            .await
            .expect("watch")
            .boxed();
        while let Some(event) = stream.next().await {
            let pod = match event.expect("watch event") {
                WatchEvent::Added(p) | WatchEvent::Modified(p) => p,
                WatchEvent::Error(e) => panic!("watch error: {e:?}"),
                _ => continue,
            };
            rv = pod.metadata.resource_version.clone().unwrap_or(rv);
            let name = pod.metadata.name.clone().unwrap_or_default();
            if pod.spec.and_then(|s| s.node_name).is_some() && name != "warmup" {
                bound.entry(name).or_insert_with(Instant::now);
            }
            if bound.len() == pods {
                break;
            }
        }
    }
    bound
}

fn report(label: &str, mode: Mode, pods: usize, nodes: usize, f: &Figures) {
    let bound = pods as f64 / f.bound_in.as_secs_f64();
    match mode {
        Mode::Burst => println!(
            "{label}, burst: {pods} pods on {nodes} nodes: created in {:.2?} ({:.0} creates/s), all bound in {:.2?} => {bound:.0} pods bound/s; time-to-bind p50 {:.1?} p99 {:.1?} max {:.1?}",
            f.created_in,
            pods as f64 / f.created_in.as_secs_f64(),
            f.bound_in,
            f.p50,
            f.p99,
            f.max,
        ),
        Mode::Backlog => println!(
            "{label}, backlog: {pods} pending pods on {nodes} nodes, scheduler started: all bound in {:.2?} => {bound:.0} pods bound/s; bound after p50 {:.1?} p99 {:.1?}",
            f.bound_in, f.p50, f.p99,
        ),
    }
}

fn main() {
    let pods = env_usize("BENCH_PODS", 30_000);
    let nodes = env_usize("BENCH_NODES", 1_000);
    let which = std::env::var("BENCH_STORE").unwrap_or_default();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    runtime.block_on(async {
        for mode in [Mode::Burst, Mode::Backlog] {
            if which.is_empty() || which == "redb" {
                let dir = tempfile::tempdir().expect("temp dir");
                let store = RedbStore::open(&dir.path().join("bench.redb")).expect("redb opens");
                let figures = case(Arc::new(store), nodes, pods, mode).await;
                report("redb (embedded, fsync)", mode, pods, nodes, &figures);
            }
            if which.is_empty() || which == "memory" {
                let figures = case(Arc::new(MemoryStore::new()), nodes, pods, mode).await;
                report("memory", mode, pods, nodes, &figures);
            }
        }
    });
}
