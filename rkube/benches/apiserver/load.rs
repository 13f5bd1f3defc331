//! Concurrent creates: N clients, each on its own connection, until a count or a deadline.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use bytes::Bytes;
use hyper::{Method, StatusCode};
use tokio::sync::Barrier;

use crate::client::Tls;
use crate::cpu::Cpu;

/// What one load run achieved.
pub struct LoadResult {
    pub created: usize,
    pub elapsed: Duration,
    pub latencies: Latencies,
    /// CPU time the server and the load generator spent during the run.
    pub cpu: Cpu,
}

impl LoadResult {
    pub fn rate(&self) -> f64 {
        self.created as f64 / self.elapsed.as_secs_f64()
    }

    /// Server CPU time per create, in microseconds.
    pub fn server_us_per_create(&self) -> f64 {
        self.cpu.server.as_secs_f64() * 1e6 / self.created as f64
    }

    pub fn client_us_per_create(&self) -> f64 {
        self.cpu.client.as_secs_f64() * 1e6 / self.created as f64
    }
}

/// Sorted request latencies.
pub struct Latencies(Vec<Duration>);

impl Latencies {
    pub fn new(mut samples: Vec<Duration>) -> Latencies {
        samples.sort_unstable();
        Latencies(samples)
    }

    /// The nearest-rank percentile, in milliseconds.
    pub fn percentile_ms(&self, percentile: f64) -> f64 {
        if self.0.is_empty() {
            return f64::NAN;
        }
        let rank = ((percentile / 100.0) * self.0.len() as f64).ceil() as usize;
        let index = rank.clamp(1, self.0.len()) - 1;
        self.0[index].as_secs_f64() * 1000.0
    }
}

/// How much load to apply.
pub struct Plan {
    pub clients: usize,
    pub max_objects: usize,
    pub max_time: Duration,
    /// Where to POST, e.g. `/api/v1/namespaces/default/pods`.
    pub path: String,
}

/// POSTs `body(i)` for i = 0.. from `plan.clients` concurrent connections. Every create must
/// answer 201; anything else aborts the run, so a figure never counts failed requests.
pub async fn create(
    tls: &Tls,
    plan: &Plan,
    body: impl Fn(usize) -> Bytes + Send + Sync + 'static,
) -> anyhow::Result<LoadResult> {
    let body = Arc::new(body);
    let next = Arc::new(AtomicUsize::new(0));
    let start = Arc::new(Barrier::new(plan.clients + 1));
    let path: Arc<str> = plan.path.as_str().into();
    let mut tasks = Vec::with_capacity(plan.clients);
    for _ in 0..plan.clients {
        // Handshakes happen before the clock starts.
        let mut connection = tls.connect().await?;
        let (body, next, start, path) = (
            Arc::clone(&body),
            Arc::clone(&next),
            Arc::clone(&start),
            Arc::clone(&path),
        );
        let max_objects = plan.max_objects;
        let max_time = plan.max_time;
        tasks.push(tokio::spawn(async move {
            start.wait().await;
            let deadline = Instant::now() + max_time;
            let mut latencies = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= max_objects || Instant::now() >= deadline {
                    return Ok::<_, anyhow::Error>(latencies);
                }
                let sent = Instant::now();
                let (status, response) = connection
                    .send(Method::POST, &path, Some(body(i)))
                    .await
                    .with_context(|| format!("create #{i}"))?;
                if status != StatusCode::CREATED {
                    bail!(
                        "create #{i} answered {status}: {}",
                        String::from_utf8_lossy(&response)
                    );
                }
                latencies.push(sent.elapsed());
            }
        }));
    }
    let cpu_before = Cpu::now()?;
    start.wait().await;
    let began = Instant::now();
    let mut samples = Vec::new();
    for task in tasks {
        samples.extend(task.await.context("client task panicked")??);
    }
    let elapsed = began.elapsed();
    Ok(LoadResult {
        created: samples.len(),
        elapsed,
        latencies: Latencies::new(samples),
        cpu: Cpu::now()?.since(cpu_before),
    })
}
