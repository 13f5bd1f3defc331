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

async fn case(store: Arc<dyn Store>, nodes: usize, pods: usize) -> Figures {
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

    let scheduler = tokio::spawn(run(client.clone(), SchedulerOptions::default()));
    let pod_api: Api<Pod> = Api::namespaced(client.clone(), "default");
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

    let rv = pod_api
        .list_metadata(&ListParams::default().limit(1))
        .await
        .expect("list")
        .metadata
        .resource_version
        .unwrap_or_default();
    let sent: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let watcher = {
        let pod_api = pod_api.clone();
        let sent = Arc::clone(&sent);
        tokio::spawn(async move {
            let mut bound: HashMap<String, Instant> = HashMap::new();
            let mut rv = rv;
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
            let sent = sent.lock().expect("sent times");
            bound
                .into_iter()
                .map(|(name, at)| (sent[&name], at))
                .collect::<Vec<_>>()
        })
    };

    let start = Instant::now();
    futures::stream::iter(0..pods)
        .map(|i| {
            let api = pod_api.clone();
            let sent = Arc::clone(&sent);
            async move {
                let name = format!("pod-{i:05}");
                sent.lock()
                    .expect("sent times")
                    .insert(name.clone(), Instant::now());
                api.create(&PostParams::default(), &pod(name)).await
            }
        })
        .buffer_unordered(CREATORS)
        .try_collect::<Vec<_>>()
        .await
        .expect("pods created");
    let created_in = start.elapsed();
    let times = watcher.await.expect("watcher");
    let last = times.iter().map(|(_, b)| *b).max().unwrap_or(start);
    let mut latencies: Vec<Duration> = times.iter().map(|(s, b)| *b - *s).collect();
    latencies.sort();
    let at = |q: f64| latencies[((latencies.len() as f64 * q) as usize).min(latencies.len() - 1)];
    scheduler.abort();
    Figures {
        created_in,
        bound_in: last - start,
        p50: at(0.50),
        p99: at(0.99),
        max: at(1.0),
    }
}

fn report(label: &str, pods: usize, nodes: usize, f: &Figures) {
    println!(
        "{label}: {pods} pods on {nodes} nodes: created in {:.2?} ({:.0} creates/s), all bound in {:.2?} => {:.0} pods bound/s; time-to-bind p50 {:.1?} p99 {:.1?} max {:.1?}",
        f.created_in,
        pods as f64 / f.created_in.as_secs_f64(),
        f.bound_in,
        pods as f64 / f.bound_in.as_secs_f64(),
        f.p50,
        f.p99,
        f.max,
    );
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
        if which.is_empty() || which == "redb" {
            let dir = tempfile::tempdir().expect("temp dir");
            let store = RedbStore::open(&dir.path().join("bench.redb")).expect("redb opens");
            let figures = case(Arc::new(store), nodes, pods).await;
            report("redb (embedded, fsync)", pods, nodes, &figures);
        }
        if which.is_empty() || which == "memory" {
            let figures = case(Arc::new(MemoryStore::new()), nodes, pods).await;
            report("memory", pods, nodes, &figures);
        }
    });
}
