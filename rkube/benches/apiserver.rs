//! API server benchmark: durable create throughput on the embedded store and on etcd, LIST
//! of 10,000 pods and idle memory, printed against the project's targets in one run.
//!
//! `cargo bench -p rkube --bench apiserver` (cargo builds the release `rkube` binary first,
//! which the idle-memory figure runs). `RKUBE_BENCH=embedded,etcd,list,rss` picks figures,
//! e.g. to profile one.

#[path = "apiserver/client.rs"]
mod client;
#[path = "apiserver/cpu.rs"]
mod cpu;
#[path = "apiserver/disk.rs"]
mod disk;
#[path = "apiserver/load.rs"]
mod load;
#[path = "apiserver/pods.rs"]
mod pods;
#[path = "apiserver/report.rs"]
mod report;
#[path = "apiserver/servers.rs"]
mod servers;

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use hyper::{Method, StatusCode};

use client::Tls;
use load::{Latencies, LoadResult, Plan};
use report::{Report, Verdict};
use servers::InProcess;

const CLIENTS: usize = 64;
const CREATE_OBJECTS: usize = 20_000;
const CREATE_TIME: Duration = Duration::from_secs(10);
const LIST_OBJECTS: usize = 10_000;
const LIST_RUNS: usize = 20;
const IDLE: Duration = Duration::from_secs(5);

const TARGET_CREATES: f64 = 10_000.0;
const TARGET_LIST_MS: f64 = 50.0;
const TARGET_RSS_MIB: f64 = 30.0;

/// The figures `RKUBE_BENCH` selects (all when unset).
fn selected(figure: &str) -> bool {
    std::env::var("RKUBE_BENCH")
        .map(|list| list.split(',').any(|f| f.trim() == figure))
        .unwrap_or(true)
}

fn main() -> anyhow::Result<()> {
    rustls::crypto::ring::default_provider()
        .install_default()
        .map_err(|_| anyhow::anyhow!("a TLS crypto provider was already installed"))?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .thread_name(cpu::CLIENT_THREAD)
        .enable_all()
        .build()?;
    let mut report = Report::default();
    report.note(format!(
        "Machine: {} CPUs, load average at start {}.",
        std::thread::available_parallelism().map_or(0, usize::from),
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    ));
    if selected("rss") {
        idle_rss(&mut report)?;
    }
    if selected("embedded") {
        eprintln!("fdatasync latency of the temp dir's disk...");
        let syncs = disk::fdatasync_latencies(&std::env::temp_dir())?;
        report.row(
            "disk fdatasync p50 / p99 (4 KiB, temp dir)",
            latency(&syncs),
            "",
            Verdict::Reference,
        );
        eprintln!("durable creates, embedded store...");
        let embedded = throughput(&runtime, Vec::new())?;
        creates(&mut report, "embedded redb", &embedded, true);
    }
    if selected("etcd") {
        on_etcd(&runtime, &mut report)?;
    }
    if selected("list") {
        list(&runtime, &mut report)?;
    }
    println!("\n{}", report.plain());
    println!("{}", report.markdown());
    Ok(())
}

fn idle_rss(report: &mut Report) -> anyhow::Result<()> {
    eprintln!("idle RSS of `rkube apiserver` after {IDLE:?}...");
    let binary = Path::new(env!("CARGO_BIN_EXE_rkube"));
    let rss_mib = servers::idle_rss_kib(binary, IDLE)? as f64 / 1024.0;
    report.row(
        "idle RSS, `rkube apiserver`",
        format!("{rss_mib:.1} MiB"),
        "<= 30 MB",
        Verdict::of(rss_mib <= TARGET_RSS_MIB),
    );
    Ok(())
}

fn creates(report: &mut Report, store: &str, result: &LoadResult, has_target: bool) {
    let (target, verdict) = if has_target {
        (">= 10000/s", Verdict::of(result.rate() >= TARGET_CREATES))
    } else {
        ("", Verdict::Reference)
    };
    report.row(
        &format!("creates/s, {store}, {CLIENTS} clients"),
        format!(
            "{:.0}/s ({} pods in {:.2} s)",
            result.rate(),
            result.created,
            result.elapsed.as_secs_f64()
        ),
        target,
        verdict,
    );
    report.row(
        &format!("create latency p50 / p99, {store}"),
        latency(&result.latencies),
        "",
        Verdict::Reference,
    );
    report.row(
        &format!("CPU per create, {store}: rkube / load generator"),
        format!(
            "{:.0} us / {:.0} us",
            result.server_us_per_create(),
            result.client_us_per_create()
        ),
        "",
        Verdict::Reference,
    );
}

fn on_etcd(runtime: &tokio::runtime::Runtime, report: &mut Report) -> anyhow::Result<()> {
    eprintln!("durable creates, etcd...");
    let etcd = rkube_harness::Etcd::start()?;
    let result = throughput(runtime, vec![etcd.endpoint()])?;
    creates(report, "etcd", &result, false);
    eprintln!("etcdctl check perf (about 60 s)...");
    let perf = servers::etcd_check_perf(&etcd.endpoint())?;
    report.note(format!(
        "etcd baseline, `ETCDCTL_API=3 etcdctl check perf` (small load) on the same etcd:\n{}",
        perf.iter()
            .map(|l| format!("    {l}\n"))
            .collect::<String>()
    ));
    Ok(())
}

fn list(runtime: &tokio::runtime::Runtime, report: &mut Report) -> anyhow::Result<()> {
    eprintln!("LIST of {LIST_OBJECTS} pods...");
    let list = list_pods(runtime)?;
    let p50 = list.latencies.percentile_ms(50.0);
    let p99 = list.latencies.percentile_ms(99.0);
    report.row(
        "LIST 10k pods p50 / p99 (JSON, full)",
        format!(
            "{p50:.1} ms / {p99:.1} ms ({:.1} MB body)",
            list.body_bytes as f64 / 1e6
        ),
        "<= 50 ms",
        Verdict::of(p99 <= TARGET_LIST_MS),
    );
    let per_list = |time: std::time::Duration| time.as_secs_f64() * 1000.0 / LIST_RUNS as f64;
    report.row(
        "CPU per LIST: rkube / load generator",
        format!(
            "{:.1} ms / {:.1} ms",
            per_list(list.cpu.server),
            per_list(list.cpu.client)
        ),
        "",
        Verdict::Reference,
    );
    Ok(())
}

fn latency(latencies: &Latencies) -> String {
    format!(
        "{:.1} ms / {:.1} ms",
        latencies.percentile_ms(50.0),
        latencies.percentile_ms(99.0)
    )
}

/// Small-pod creates against a fresh server on the given store.
fn throughput(runtime: &tokio::runtime::Runtime, etcd: Vec<String>) -> anyhow::Result<LoadResult> {
    let server = InProcess::start(etcd)?;
    let tls = Tls::new(&server.pki, server.addr)?;
    let plan = Plan {
        clients: CLIENTS,
        max_objects: CREATE_OBJECTS,
        max_time: CREATE_TIME,
        path: "/api/v1/namespaces/default/pods".into(),
    };
    runtime.block_on(load::create(&tls, &plan, pods::small))
}

struct ListResult {
    latencies: Latencies,
    body_bytes: usize,
    cpu: cpu::Cpu,
}

/// Fills a fresh embedded server with realistic pods, checks one full LIST returns them
/// all, then times `LIST_RUNS` more.
fn list_pods(runtime: &tokio::runtime::Runtime) -> anyhow::Result<ListResult> {
    let server = InProcess::start(Vec::new())?;
    let tls = Tls::new(&server.pki, server.addr)?;
    let plan = Plan {
        clients: CLIENTS,
        max_objects: LIST_OBJECTS,
        max_time: Duration::from_secs(600),
        path: "/api/v1/namespaces/default/pods".into(),
    };
    runtime.block_on(async {
        let filled = load::create(&tls, &plan, pods::realistic).await?;
        if filled.created != LIST_OBJECTS {
            bail!("created {} of {LIST_OBJECTS} pods", filled.created);
        }
        let mut connection = tls.connect().await?;
        let (status, body) = connection.send(Method::GET, "/api/v1/pods", None).await?;
        if status != StatusCode::OK {
            bail!("LIST answered {status}: {}", String::from_utf8_lossy(&body));
        }
        let list: serde_json::Value = serde_json::from_slice(&body).context("parsing the LIST")?;
        let items = list["items"].as_array().map_or(0, Vec::len);
        if items != LIST_OBJECTS {
            bail!("LIST returned {items} pods, expected {LIST_OBJECTS}");
        }
        let mut samples = Vec::with_capacity(LIST_RUNS);
        let cpu_before = cpu::Cpu::now()?;
        for _ in 0..LIST_RUNS {
            let sent = Instant::now();
            let (status, _) = connection.send(Method::GET, "/api/v1/pods", None).await?;
            samples.push(sent.elapsed());
            if status != StatusCode::OK {
                bail!("LIST answered {status}");
            }
        }
        Ok(ListResult {
            latencies: Latencies::new(samples),
            body_bytes: body.len(),
            cpu: cpu::Cpu::now()?.since(cpu_before),
        })
    })
}
