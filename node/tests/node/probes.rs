//! Probes end to end: the node agent probing real wasm guests and a test HTTP server, as the
//! API sees it. Periods are the API's minimum of one second.

use crate::common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::Duration;

use common::{Cluster, guests, main_status, wasm_pod};
use k8s_openapi::api::core::v1::{Event, ExecAction, HTTPGetAction, Pod, PodCondition, Probe};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::api::{Api, ListParams};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

const SECOND: Duration = Duration::from_secs(1);

/// An HTTP server on 127.0.0.1 answering every request with the status it currently holds.
async fn health_server(status: u16) -> (u16, Arc<AtomicU16>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let current = Arc::new(AtomicU16::new(status));
    let answers = current.clone();
    tokio::spawn(async move {
        while let Ok((mut tcp, _)) = listener.accept().await {
            let status = answers.load(Ordering::SeqCst);
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") {
                    if tcp.read(&mut byte).await.unwrap_or(0) == 0 {
                        return;
                    }
                    head.push(byte[0]);
                }
                let response = format!("HTTP/1.1 {status} X\r\ncontent-length: 0\r\n\r\n");
                let _ = tcp.write_all(response.as_bytes()).await;
            });
        }
    });
    (port, current)
}

fn every_second(failures: i32) -> Probe {
    Probe {
        period_seconds: Some(1),
        timeout_seconds: Some(1),
        success_threshold: Some(1),
        failure_threshold: Some(failures),
        ..Probe::default()
    }
}

fn http_probe(port: u16, failures: i32) -> Probe {
    Probe {
        http_get: Some(HTTPGetAction {
            host: Some("127.0.0.1".into()),
            path: Some("/ready".into()),
            port: IntOrString::Int(i32::from(port)),
            scheme: Some("HTTP".into()),
            http_headers: None,
        }),
        ..every_second(failures)
    }
}

fn exec_probe(exit_code: u8, failures: i32) -> Probe {
    Probe {
        exec: Some(ExecAction {
            command: Some(vec!["check".into(), exit_code.to_string()]),
        }),
        ..every_second(failures)
    }
}

fn condition<'a>(pod: &'a Pod, type_: &str) -> Option<&'a PodCondition> {
    pod.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == type_)
}

fn ready(pod: &Pod) -> Option<bool> {
    let container = main_status(pod)?.ready;
    let pod_ready = condition(pod, "Ready")?.status == "True";
    let containers_ready = condition(pod, "ContainersReady")?.status == "True";
    // The container and both conditions move together.
    (container == pod_ready && pod_ready == containers_ready).then_some(container)
}

fn restarts(pod: &Pod) -> i32 {
    main_status(pod).map_or(0, |s| s.restart_count)
}

fn started(pod: &Pod) -> bool {
    main_status(pod).and_then(|s| s.started) == Some(true)
}

/// Waits for an event of the pod with this reason and message.
async fn wait_for_event(cluster: &Cluster, pod: &str, reason: &str, message: &str) {
    let events: Api<Event> = Api::namespaced(cluster.client.clone(), "default");
    let deadline = std::time::Instant::now() + 5 * SECOND;
    loop {
        let seen = events.list(&ListParams::default()).await.unwrap();
        let found = seen.items.iter().any(|e| {
            e.involved_object.name.as_deref() == Some(pod)
                && e.reason.as_deref() == Some(reason)
                && e.message.as_deref() == Some(message)
        });
        if found {
            return;
        }
        let all: Vec<_> = seen.items.iter().map(|e| (&e.reason, &e.message)).collect();
        assert!(
            std::time::Instant::now() < deadline,
            "no {reason} event {message:?} among {all:#?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn readiness_flips_the_ready_conditions_and_back() {
    let mut cluster = Cluster::start().await;
    cluster.image("server:1", &guests::serves());
    let (port, status) = health_server(200).await;
    let agent = cluster.agent(cluster.runtime());
    let mut pod = wasm_pod("web", "server:1", "Always");
    pod.spec.as_mut().unwrap().containers[0].readiness_probe = Some(http_probe(port, 1));
    cluster.create(pod).await;

    cluster
        .wait_for("web", 10 * SECOND, "ready", |p| ready(p) == Some(true))
        .await;
    status.store(503, Ordering::SeqCst);
    let unready = cluster
        .wait_for("web", 5 * SECOND, "not ready", |p| ready(p) == Some(false))
        .await;
    let reason = condition(&unready, "Ready").and_then(|c| c.reason.as_deref());
    assert_eq!(reason, Some("ContainersNotReady"));
    wait_for_event(
        &cluster,
        "web",
        "Unhealthy",
        "Readiness probe failed: HTTP probe failed with statuscode: 503",
    )
    .await;
    status.store(200, Ordering::SeqCst);
    let back = cluster
        .wait_for("web", 5 * SECOND, "ready again", |p| ready(p) == Some(true))
        .await;
    // Readiness never restarts anything.
    assert_eq!(restarts(&back), 0);
    agent.abort();
}

#[tokio::test]
async fn a_failing_liveness_exec_restarts_the_container() {
    let mut cluster = Cluster::start().await;
    cluster.image("checks:1", &guests::checks());
    let agent = cluster.agent(cluster.runtime());
    let mut pod = wasm_pod("sick", "checks:1", "Always");
    let container = &mut pod.spec.as_mut().unwrap().containers[0];
    container.liveness_probe = Some(exec_probe(1, 2));
    container.readiness_probe = Some(exec_probe(0, 1));
    cluster.create(pod).await;

    // Ready through the passing exec while liveness counts its first failure.
    cluster
        .wait_for("sick", 10 * SECOND, "ready", |p| ready(p) == Some(true))
        .await;
    let restarted = cluster
        .wait_for("sick", 10 * SECOND, "restarted", |p| restarts(p) >= 1)
        .await;
    let last = main_status(&restarted)
        .and_then(|s| s.last_state.as_ref()?.terminated.clone())
        .unwrap();
    // Term ends a wasm guest at once.
    assert_eq!(
        (last.exit_code, last.reason.as_deref()),
        (143, Some("Error"))
    );
    wait_for_event(
        &cluster,
        "sick",
        "Unhealthy",
        "Liveness probe failed: command \"check 1\" exited with code 1",
    )
    .await;
    wait_for_event(
        &cluster,
        "sick",
        "Killing",
        "Container main failed liveness probe, will be restarted",
    )
    .await;
    agent.abort();
}

#[tokio::test]
async fn the_startup_probe_holds_liveness_back_until_it_passes() {
    let mut cluster = Cluster::start().await;
    cluster.image("checks:1", &guests::checks());
    let (port, status) = health_server(500).await;
    let agent = cluster.agent(cluster.runtime());
    let mut pod = wasm_pod("slow", "checks:1", "Always");
    let container = &mut pod.spec.as_mut().unwrap().containers[0];
    container.startup_probe = Some(http_probe(port, 60));
    // Would kill the container within two seconds if it ran.
    container.liveness_probe = Some(exec_probe(1, 2));
    cluster.create(pod).await;

    cluster
        .wait_for("slow", 10 * SECOND, "running", |p| {
            common::phase(p) == "Running"
        })
        .await;
    tokio::time::sleep(3 * SECOND).await;
    let waiting = cluster.pods().get("slow").await.unwrap();
    assert_eq!(restarts(&waiting), 0, "liveness ran before startup passed");
    assert!(!started(&waiting));
    assert_eq!(ready(&waiting), Some(false));

    status.store(200, Ordering::SeqCst);
    // Started, and without a readiness probe ready with it, until liveness strikes.
    cluster
        .wait_for("slow", 5 * SECOND, "started", |p| {
            started(p) && ready(p) == Some(true)
        })
        .await;
    cluster
        .wait_for("slow", 10 * SECOND, "restarted by liveness", |p| {
            restarts(p) >= 1
        })
        .await;
    agent.abort();
}
