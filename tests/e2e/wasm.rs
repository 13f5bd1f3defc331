//! End-to-end: WASI pods from a local OCI registry run on `rkube node` — the whole path a
//! user takes: `rkube push`, `kubectl apply`, the scheduler, the image pull, wasmtime, the CRI
//! log file, pod status as kubectl shows it. The guests are the C examples in
//! `examples/guests/`, applied with the manifests in `examples/`.
//!
//! Each test runs its own cluster (registry, API server, scheduler, node), so none depends on
//! another's pods or on the node surviving.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, ensure};

use crate::RKUBE;
use crate::support::{Cluster, ClusterOptions, eventually, examples};
const NODE: &str = "edge-1";

fn wasm_cluster() -> anyhow::Result<Cluster> {
    Cluster::start(ClusterOptions {
        node: NODE,
        node_flags: Vec::new(),
    })
}

/// What a wasm pod's run left under the node's data dir.
impl Cluster {
    /// The CRI log file of one run of a container, under the node's data dir.
    fn log_path(&self, pod: &str, container: &str, restart: u32) -> anyhow::Result<PathBuf> {
        let uid = self.jsonpath(&["pod", pod], "{.metadata.uid}")?;
        Ok(self
            .node_dir
            .path()
            .join("node/pods")
            .join(uid)
            .join(container)
            .join(format!("{restart}.log")))
    }

    /// The log of a run; empty while the file does not exist yet.
    fn log(&self, pod: &str, container: &str, restart: u32) -> anyhow::Result<String> {
        match std::fs::read_to_string(self.log_path(pod, container, restart)?) {
            Ok(text) => Ok(text),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(String::new()),
            Err(e) => Err(e.into()),
        }
    }

    /// Waits until a run's log holds `line` as a full stdout line.
    fn wait_log_line(
        &self,
        pod: &str,
        container: &str,
        restart: u32,
        line: &str,
    ) -> anyhow::Result<String> {
        let needle = format!(" stdout F {line}\n");
        eventually(
            &format!("{pod}/{container} run {restart} to log {line:?}"),
            Duration::from_secs(30),
            || {
                let log = self.log(pod, container, restart)?;
                Ok(if log.contains(&needle) {
                    Ok(log)
                } else {
                    Err(log)
                })
            },
        )
    }
}

/// The tick numbers a ticker's log holds, in order.
fn ticks(log: &str) -> Vec<u64> {
    log.lines()
        .filter_map(|line| line.split_once(" stdout F tick ")?.1.parse().ok())
        .collect()
}

#[test]
fn a_wat_pod_pulled_from_a_registry_runs_to_completion() -> anyhow::Result<()> {
    let cluster = wasm_cluster()?;
    let image = format!("{}/hello:1", cluster.registry.host());
    let guest = examples().join("guests/hello.wat");
    let pushed = Command::new(RKUBE)
        .arg("push")
        .arg(&guest)
        .arg(&image)
        .output()?;
    ensure!(
        pushed.status.success(),
        "rkube push failed: {}",
        String::from_utf8_lossy(&pushed.stderr)
    );
    cluster.apply_example("hello-wasm.yaml", |y| y)?;
    cluster.wait_phase("hello-wasm", "Succeeded", Duration::from_secs(30))?;
    let listed = cluster.k.run(&["get", "pod", "hello-wasm"])?;
    ensure!(listed.contains("Completed"), "{listed}");
    let described = cluster.describe("hello-wasm");
    for expected in [
        "Successfully assigned default/hello-wasm to edge-1",
        "Pulled",
        "Started",
    ] {
        ensure!(
            described.contains(expected),
            "describe lacks {expected}:\n{described}"
        );
    }
    let exit = cluster.jsonpath(
        &["pod", "hello-wasm"],
        "{.status.containerStatuses[0].state.terminated.exitCode}",
    )?;
    ensure!(exit == "0", "exit code {exit}");
    cluster.wait_log_line("hello-wasm", "hello", 0, "hello from rkube wasm")?;
    Ok(())
}

#[test]
fn hello_completes_and_logs_its_greeting_args_and_env() -> anyhow::Result<()> {
    let cluster = wasm_cluster()?;
    cluster.push_guest("hello")?;
    cluster.apply_example("guest-hello.yaml", |y| y)?;
    cluster.wait_phase("hello", "Succeeded", Duration::from_secs(30))?;
    let listed = cluster.k.run(&["get", "pod", "hello"])?;
    ensure!(listed.contains("Completed"), "{listed}");
    let log = cluster.wait_log_line("hello", "hello", 0, "hello from rkube wasm")?;
    for line in [
        "arg 0: hello",
        "arg 1: from",
        "arg 4: spec",
        "GREETING=hi from the environment",
    ] {
        ensure!(
            log.contains(&format!(" stdout F {line}\n")),
            "no {line:?} in {log}"
        );
    }
    Ok(())
}

#[test]
fn a_ticker_keeps_running_and_ticking() -> anyhow::Result<()> {
    let cluster = wasm_cluster()?;
    cluster.push_guest("ticker")?;
    cluster.apply_example("guest-ticker.yaml", |y| y)?;
    cluster.wait_running("ticker")?;
    cluster.wait_log_line("ticker", "ticker", 0, "tick 2")?;
    std::thread::sleep(Duration::from_secs(2));
    let listed = cluster.k.run(&["get", "pod", "ticker", "--no-headers"])?;
    let columns: Vec<&str> = listed.split_whitespace().collect();
    ensure!(
        columns.get(1..4) == Some(&["1/1", "Running", "0"][..]),
        "kubectl get pod: {listed}"
    );
    // Half-second ticks: two seconds later, more than two new ones, in order.
    let seen = ticks(&cluster.log("ticker", "ticker", 0)?);
    ensure!(seen.len() >= 5, "ticks {seen:?}");
    ensure!(
        seen.iter().copied().eq(1..=seen.len() as u64),
        "ticks out of order: {seen:?}"
    );

    // kubectl logs --tail and -f through the kubelet API: the stream keeps delivering new
    // ticks after the ones already written.
    let last = cluster.k.run(&["logs", "ticker", "--tail=1"])?;
    ensure!(
        last.lines().count() == 1 && last.starts_with("tick "),
        "{last:?}"
    );
    let mut follow = cluster.k.spawn(&["logs", "-f", "ticker"])?;
    let stdout = follow
        .stdout
        .take()
        .context("kubectl logs -f has no stdout")?;
    let (lines, received) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            if lines.send(line).is_err() {
                break;
            }
        }
    });
    let newest = *seen.last().unwrap_or(&0);
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let mut followed = Vec::new();
    while followed.last().is_none_or(|n| *n <= newest + 2) {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        let line = received
            .recv_timeout(left)
            .map_err(|_| anyhow::anyhow!("kubectl logs -f stalled after {followed:?}"))?;
        followed.extend(
            line.strip_prefix("tick ")
                .and_then(|n| n.parse::<u64>().ok()),
        );
    }
    let _ = follow.kill();
    let _ = follow.wait();
    ensure!(
        followed.iter().copied().eq(1..=followed.len() as u64),
        "followed ticks out of order: {followed:?}"
    );
    Ok(())
}

#[test]
fn config_reader_prints_its_config_map() -> anyhow::Result<()> {
    let cluster = wasm_cluster()?;
    cluster.push_guest("config-reader")?;
    cluster.apply_example("guest-config-reader.yaml", |y| y)?;
    cluster.wait_running("config-reader")?;
    cluster.wait_log_line(
        "config-reader",
        "reader",
        0,
        "/config/greeting: hello from a configMap",
    )?;
    let phase = cluster.jsonpath(&["pod", "config-reader"], "{.status.phase}")?;
    ensure!(phase == "Running", "phase {phase}");

    // kubectl logs goes API server → kubelet API → the CRI log file.
    let logs = cluster.k.run(&["logs", "config-reader"])?;
    ensure!(
        logs == "/config/greeting: hello from a configMap\n",
        "kubectl logs: {logs:?}"
    );
    // kubectl exec runs a fresh instance of the module with the pod's volumes.
    let exec = cluster.k.run(&[
        "exec",
        "config-reader",
        "--",
        "config-reader",
        "/config/greeting",
        "exit",
    ])?;
    ensure!(
        exec == "/config/greeting: hello from a configMap\n",
        "kubectl exec: {exec:?}"
    );
    let out = cluster.k.output(&[
        "exec",
        "config-reader",
        "--",
        "config-reader",
        "/nope",
        "exit",
    ])?;
    ensure!(
        out.status.code() == Some(1),
        "exec of a failing command: {:?} {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}

#[test]
fn a_failing_container_crash_loops_with_backoff() -> anyhow::Result<()> {
    let cluster = wasm_cluster()?;
    cluster.push_guest("fail")?;
    cluster.apply_example("guest-fail.yaml", |y| y)?;
    // 1 s then 2 s of back-off: two restarts within seconds, each as CrashLoopBackOff.
    let listed = eventually(
        "CrashLoopBackOff after two restarts",
        Duration::from_secs(40),
        || {
            let listed = cluster.k.run(&["get", "pod", "fail", "--no-headers"])?;
            let columns: Vec<&str> = listed.split_whitespace().collect();
            let restarts: u32 = columns.get(3).and_then(|r| r.parse().ok()).unwrap_or(0);
            Ok(
                if columns.get(2) == Some(&"CrashLoopBackOff") && restarts >= 2 {
                    Ok(listed)
                } else {
                    Err(listed)
                },
            )
        },
    )
    .with_context(|| cluster.describe("fail"))?;
    let last = cluster.jsonpath(
        &["pod", "fail"],
        "{.status.containerStatuses[0].lastState.terminated.exitCode}",
    )?;
    ensure!(last == "3", "last exit code {last:?}; {listed}");
    let phase = cluster.jsonpath(&["pod", "fail"], "{.status.phase}")?;
    ensure!(
        phase == "Running",
        "a crash-looping pod stays Running, not {phase}"
    );
    let described = cluster.describe("fail");
    for delay in ["back-off 1s restarting", "back-off 2s restarting"] {
        ensure!(
            described.contains(delay),
            "no {delay:?} event:\n{described}"
        );
    }
    cluster.wait_log_line("fail", "fail", 1, "failing with exit code 3")?;
    Ok(())
}

/// User plus system CPU time the process has used.
fn cpu_time(pid: u32) -> anyhow::Result<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the parenthesised command name; utime and stime are the 14th and 15th.
    let rest = stat.rsplit_once(')').context("malformed stat")?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = fields
        .get(11)
        .zip(fields.get(12))
        .and_then(|(u, s)| Some(u.parse::<u64>().ok()? + s.parse::<u64>().ok()?))
        .context("no utime/stime in stat")?;
    let per_second: u64 =
        String::from_utf8(Command::new("getconf").arg("CLK_TCK").output()?.stdout)?
            .trim()
            .parse()?;
    Ok(Duration::from_millis(ticks * 1000 / per_second))
}

#[test]
fn a_busy_guest_held_to_its_cpu_limit_leaves_a_ticker_on_time() -> anyhow::Result<()> {
    let cluster = wasm_cluster()?;
    cluster.push_guest("busy")?;
    cluster.push_guest("ticker")?;
    cluster.apply_example("guest-busy.yaml", |y| y)?;
    cluster.apply_example("guest-ticker.yaml", |y| {
        y.replace("value: \"500\"", "value: \"100\"")
    })?;
    cluster.wait_running("busy")?;
    cluster.wait_running("ticker")?;
    cluster.wait_log_line("busy", "busy", 0, "spinning")?;
    cluster.wait_log_line("ticker", "ticker", 0, "tick 2")?;

    let node_pid = cluster.node.as_ref().context("node is up")?.pid();
    let window = Duration::from_secs(4);
    let before = ticks(&cluster.log("ticker", "ticker", 0)?).len();
    let cpu_before = cpu_time(node_pid)?;
    std::thread::sleep(window);
    let cpu_used = cpu_time(node_pid)? - cpu_before;
    let ticked = ticks(&cluster.log("ticker", "ticker", 0)?).len() - before;
    // 100 ms ticks: 40 in the window on an idle machine; a starved ticker would fall far behind.
    ensure!(ticked >= 30, "ticker ticked {ticked} times in {window:?}");
    // 100m of a busy loop plus the agent's own work (about 0.12 of a core measured), far from
    // the half core or more an unthrottled loop takes even on a loaded machine.
    ensure!(
        cpu_used < window / 4,
        "the node used {cpu_used:?} of CPU in {window:?}"
    );
    let restarts = cluster.jsonpath(
        &["pod", "busy"],
        "{.status.containerStatuses[0].restartCount}",
    )?;
    ensure!(restarts == "0", "busy restarted {restarts} times");
    Ok(())
}

#[test]
fn a_guest_over_its_memory_limit_is_oom_killed() -> anyhow::Result<()> {
    let cluster = wasm_cluster()?;
    cluster.push_guest("alloc")?;
    cluster.apply_example("guest-alloc.yaml", |y| y)?;
    cluster.wait_phase("alloc", "Failed", Duration::from_secs(30))?;
    let reason = cluster.jsonpath(
        &["pod", "alloc"],
        "{.status.containerStatuses[0].state.terminated.reason}",
    )?;
    ensure!(
        reason == "OOMKilled",
        "terminated {reason:?}:\n{}",
        cluster.describe("alloc")
    );
    let exit = cluster.jsonpath(
        &["pod", "alloc"],
        "{.status.containerStatuses[0].state.terminated.exitCode}",
    )?;
    ensure!(exit == "137", "exit code {exit}");
    let log = cluster.wait_log_line("alloc", "alloc", 0, "allocated 16 MiB")?;
    ensure!(
        !log.contains("allocated 33 MiB"),
        "the guest went past its 32Mi limit:\n{log}"
    );
    Ok(())
}

#[test]
fn a_deleted_ticker_is_gone_within_its_grace_period() -> anyhow::Result<()> {
    let cluster = wasm_cluster()?;
    cluster.push_guest("ticker")?;
    cluster.apply_example("guest-ticker.yaml", |y| y)?;
    cluster.wait_running("ticker")?;
    cluster.wait_log_line("ticker", "ticker", 0, "tick 1")?;
    let started = Instant::now();
    // kubectl waits until the pod is gone from the API.
    cluster
        .k
        .run(&["delete", "pod", "ticker", "--timeout=30s"])?;
    let took = started.elapsed();
    // terminationGracePeriodSeconds is 2; the slack covers the watch round trips.
    ensure!(took < Duration::from_secs(5), "delete took {took:?}");
    let gone = cluster.k.fail(&["get", "pod", "ticker"])?;
    ensure!(gone.contains("NotFound"), "{gone}");
    Ok(())
}

#[test]
fn an_image_without_wasm_fails_with_a_clear_reason() -> anyhow::Result<()> {
    let cluster = wasm_cluster()?;
    cluster
        .registry
        .push_plain_image("text", "1", &[("greeting.txt", b"just text\n")])?;
    cluster
        .registry
        .push_plain_image("fake", "1", &[("app.wasm", b"#!/bin/sh\necho hi\n")])?;
    let host = cluster.registry.host();
    let pod = |name: &str| {
        format!(
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\nspec:\n  \
             runtimeClassName: wasmtime\n  containers:\n  - name: app\n    image: {host}/{name}:1\n"
        )
    };
    cluster.apply(
        "runtimeclass.yaml",
        "apiVersion: node.k8s.io/v1\nkind: RuntimeClass\nmetadata:\n  name: wasmtime\nhandler: wasmtime\n",
    )?;
    cluster.apply("text.yaml", &pod("text"))?;
    cluster.apply("fake.yaml", &pod("fake"))?;
    for (name, reason) in [
        ("text", "the layer holds no .wasm file"),
        ("fake", "does not start with the wasm magic number"),
    ] {
        let described = eventually(
            &format!("{name} to fail its pull"),
            Duration::from_secs(30),
            || {
                let described = cluster.describe(name);
                let waiting =
                    described.contains("ErrImagePull") || described.contains("ImagePullBackOff");
                Ok(if waiting && described.contains(reason) {
                    Ok(described)
                } else {
                    Err(described)
                })
            },
        )?;
        ensure!(
            described.contains("Warning  Failed"),
            "no Failed event:\n{described}"
        );
    }
    Ok(())
}

#[test]
fn a_restarted_node_agent_runs_its_pod_again_exactly_once() -> anyhow::Result<()> {
    let mut cluster = wasm_cluster()?;
    cluster.push_guest("ticker")?;
    cluster.apply_example("guest-ticker.yaml", |y| {
        y.replace("value: \"500\"", "value: \"100\"")
    })?;
    cluster.wait_running("ticker")?;
    cluster.wait_log_line("ticker", "ticker", 0, "tick 3")?;

    cluster.kill_node();
    let first_run = cluster.log_path("ticker", "ticker", 0)?;
    let first_size = std::fs::metadata(&first_run)?.len();
    cluster.start_node()?;

    eventually("the ticker running again after one restart", Duration::from_secs(60), || {
        let status = cluster.jsonpath(&["pod", "ticker"],
            "{.status.containerStatuses[0].restartCount} {.status.containerStatuses[0].state.running.startedAt}",
        )?;
        let mut parts = status.split_whitespace();
        let restarts = parts.next().unwrap_or_default();
        let running = parts.next().is_some();
        Ok(if restarts == "1" && running { Ok(()) } else { Err(status) })
    })
    .with_context(|| format!("{}\n{}", cluster.describe("ticker"), cluster.node_log()))?;
    let last = cluster.jsonpath(
        &["pod", "ticker"],
        "{.status.containerStatuses[0].lastState.terminated.reason}",
    )?;
    ensure!(!last.is_empty(), "no lastState after the agent restart");

    cluster.wait_log_line("ticker", "ticker", 1, "tick 5")?;
    std::thread::sleep(Duration::from_secs(1));
    let second = ticks(&cluster.log("ticker", "ticker", 1)?);
    // One writer: the numbers restart once and run on without repeats.
    ensure!(
        second.iter().copied().eq(1..=second.len() as u64),
        "the second run's ticks are not one sequence: {second:?}"
    );
    ensure!(
        std::fs::metadata(&first_run)?.len() == first_size,
        "the first run's log still grows"
    );
    ensure!(
        !cluster.log_path("ticker", "ticker", 2)?.exists(),
        "a third run started"
    );
    let restarts = cluster.jsonpath(
        &["pod", "ticker"],
        "{.status.containerStatuses[0].restartCount}",
    )?;
    ensure!(restarts == "1", "restartCount {restarts}");
    Ok(())
}
