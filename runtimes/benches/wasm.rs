//! create+start latency of a cached module and RSS per idle container.
//! `cargo bench -p rkube-runtimes --bench wasm`

#[path = "../tests/runtimes/common/mod.rs"]
#[allow(dead_code)] // the bench uses a few of the tests' helpers
mod common;

use std::time::{Duration, Instant};

use common::{Fixture, guests};
use rkube_runtimes::wasm::WasmRuntime;
use rkube_runtimes::{ContainerId, ContainerSpec, Runtime};

const CONTAINERS: usize = 1000;

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    runtime.block_on(bench());
}

async fn bench() {
    let fx = Fixture::new();
    let rt = common::runtime_on(fx.dir.path(), CONTAINERS as u32 + 10);
    let spec = fx.spec("sleeper", &guests::sleeps(3_600_000));
    // Warm the cache: compile once, as a pulled image would be before its first pod.
    let warm = rt.create(&spec).await.expect("create");
    rt.delete(&warm).await.expect("delete");

    let baseline = rss_kib();
    let mut ids = Vec::with_capacity(CONTAINERS);
    let mut latencies = Vec::with_capacity(CONTAINERS);
    let mut rss_at_100 = 0;
    for i in 0..CONTAINERS {
        let mut spec = spec.clone();
        spec.container_name = format!("c{i}");
        latencies.push(create_and_start(&rt, &spec, &mut ids).await);
        if i + 1 == 100 {
            tokio::time::sleep(Duration::from_millis(200)).await;
            rss_at_100 = rss_kib();
        }
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss_at_1000 = rss_kib();

    latencies.sort();
    let pct = |p: usize| latencies[(latencies.len() * p / 100).min(latencies.len() - 1)];
    println!(
        "create+start of a cached module, {CONTAINERS} containers: p50 {:?}, p99 {:?}, max {:?}",
        pct(50),
        pct(99),
        latencies[latencies.len() - 1]
    );
    println!(
        "RSS: baseline {baseline} KiB, 100 sleeping {rss_at_100} KiB ({} KiB each), \
         1000 sleeping {rss_at_1000} KiB ({} KiB each)",
        (rss_at_100 - baseline) / 100,
        (rss_at_1000 - baseline) / CONTAINERS as u64,
    );
    for id in &ids {
        rt.delete(id).await.expect("delete");
    }
}

async fn create_and_start(
    rt: &WasmRuntime,
    spec: &ContainerSpec,
    ids: &mut Vec<ContainerId>,
) -> Duration {
    let started = Instant::now();
    let id = rt.create(spec).await.expect("create");
    rt.start(&id).await.expect("start");
    let elapsed = started.elapsed();
    ids.push(id);
    elapsed
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}
