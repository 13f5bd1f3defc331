//! The wasmtime runtime end to end, on real guests.

use crate::common;

use std::time::{Duration, Instant};

use common::{Fixture, guests, os_threads, rec, within};
use rkube_runtimes::{
    ContainerSpec, ContainerState, ExecSpec, ExitReason, Image, ModuleSource, Mount, Runtime,
    RuntimeError, Signal,
};
use tokio::io::AsyncReadExt;

const SECOND: Duration = Duration::from_secs(1);

#[tokio::test]
async fn hello_logs_in_cri_format_and_completes() {
    let fx = Fixture::new();
    let rt = &fx.runtime;
    assert_eq!(rt.handler(), "wasmtime");
    let id = rt
        .create(&fx.spec("hello", &guests::hello()))
        .await
        .unwrap();
    rt.start(&id).await.unwrap();
    let status = within(5 * SECOND, "hello", rt.wait(&id)).await.unwrap();
    assert_eq!((status.code, status.reason), (0, ExitReason::Completed));
    assert_eq!(status.reason.as_str(), "Completed");
    assert!(status.started_at <= status.finished_at);
    assert_eq!(
        fx.log("hello"),
        vec![
            rec("stdout", "F", "hello"),
            rec("stdout", "F", "world"),
            rec("stderr", "F", "oops"),
        ]
    );
}

#[tokio::test]
async fn proc_exit_code_is_the_exit_code() {
    let fx = Fixture::new();
    let rt = &fx.runtime;
    let id = rt
        .create(&fx.spec("exit3", &guests::exits(3)))
        .await
        .unwrap();
    rt.start(&id).await.unwrap();
    let status = within(5 * SECOND, "exit", rt.wait(&id)).await.unwrap();
    assert_eq!((status.code, status.reason), (3, ExitReason::Error));
}

#[tokio::test]
async fn a_trap_is_an_error_with_its_message() {
    let fx = Fixture::new();
    let rt = &fx.runtime;
    let id = rt.create(&fx.spec("trap", &guests::traps())).await.unwrap();
    rt.start(&id).await.unwrap();
    let status = within(5 * SECOND, "trap", rt.wait(&id)).await.unwrap();
    assert_eq!((status.code, status.reason), (134, ExitReason::Error));
    let message = status.message.unwrap_or_default();
    assert!(message.contains("unreachable"), "{message}");
}

#[tokio::test]
async fn growing_past_the_memory_limit_is_oom_killed() {
    let fx = Fixture::new();
    let rt = &fx.runtime;
    let mut spec = fx.spec("oom", &guests::allocates());
    spec.limits.memory_bytes = Some(4 << 20);
    let id = rt.create(&spec).await.unwrap();
    rt.start(&id).await.unwrap();
    let status = within(5 * SECOND, "oom", rt.wait(&id)).await.unwrap();
    assert_eq!((status.code, status.reason), (137, ExitReason::OomKilled));
    assert_eq!(status.reason.as_str(), "OOMKilled");
}

#[tokio::test]
async fn kill_stops_a_busy_loop_at_once() {
    let fx = Fixture::new();
    let rt = &fx.runtime;
    let id = rt.create(&fx.spec("busy", &guests::busy())).await.unwrap();
    rt.start(&id).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let listed = rt.list().await.unwrap();
    assert!(
        matches!(listed[0].state, ContainerState::Running { .. }),
        "{listed:?}"
    );
    let killed_at = Instant::now();
    rt.kill(&id, Signal::Kill).await.unwrap();
    let status = within(SECOND, "kill", rt.wait(&id)).await.unwrap();
    assert!(killed_at.elapsed() < Duration::from_millis(200));
    assert_eq!((status.code, status.reason), (137, ExitReason::Error));
}

#[tokio::test]
async fn term_stops_a_computing_guest_at_its_next_epoch() {
    let fx = Fixture::new();
    let rt = &fx.runtime;
    let id = rt.create(&fx.spec("busy", &guests::busy())).await.unwrap();
    rt.start(&id).await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    rt.kill(&id, Signal::Term).await.unwrap();
    let status = within(SECOND, "term", rt.wait(&id)).await.unwrap();
    assert_eq!((status.code, status.reason), (143, ExitReason::Error));
}

/// Starts a guest that sleeps for a minute and waits until it is asleep in the host.
async fn sleeper(fx: &Fixture) -> rkube_runtimes::ContainerId {
    let id = fx
        .runtime
        .create(&fx.spec("sleeper", &guests::sleeps(60_000)))
        .await
        .unwrap();
    fx.runtime.start(&id).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    id
}

#[tokio::test]
async fn term_ends_a_sleeping_guest_at_once() {
    let fx = Fixture::new();
    let rt = &fx.runtime;
    let id = sleeper(&fx).await;
    let signalled_at = Instant::now();
    rt.kill(&id, Signal::Term).await.unwrap();
    let status = within(SECOND, "term", rt.wait(&id)).await.unwrap();
    assert!(
        signalled_at.elapsed() < Duration::from_millis(100),
        "{:?}",
        signalled_at.elapsed()
    );
    assert_eq!((status.code, status.reason), (143, ExitReason::Error));
    assert_eq!(status.message.as_deref(), Some("stopped by Term"));
    // A later Kill changes nothing: the guest already ended.
    rt.kill(&id, Signal::Kill).await.unwrap();
    assert_eq!(rt.wait(&id).await.unwrap().code, 143);
}

#[tokio::test]
async fn kill_ends_a_sleeping_guest_at_once() {
    let fx = Fixture::new();
    let rt = &fx.runtime;
    let id = sleeper(&fx).await;
    let signalled_at = Instant::now();
    rt.kill(&id, Signal::Kill).await.unwrap();
    let status = within(SECOND, "kill", rt.wait(&id)).await.unwrap();
    assert!(signalled_at.elapsed() < Duration::from_millis(100));
    assert_eq!((status.code, status.reason), (137, ExitReason::Error));
}

#[tokio::test]
async fn term_ends_an_exec_waiting_on_stdin() {
    let fx = Fixture::new();
    let rt = &fx.runtime;
    let id = rt.create(&fx.spec("tool", &guests::tool())).await.unwrap();
    rt.start(&id).await.unwrap();
    // stdin stays open and empty: the exec blocks reading it.
    let (_input, stdin) = tokio::io::duplex(1024);
    let spec = ExecSpec {
        command: vec!["tool".into(), "cat".into()],
        stdin: Some(Box::new(stdin)),
        stdout: None,
        stderr: None,
        tty: false,
    };
    let exec = rt.exec(&id, spec);
    let term = async {
        tokio::time::sleep(Duration::from_millis(100)).await;
        rt.kill(&id, Signal::Term).await.unwrap();
        Instant::now()
    };
    let (status, signalled_at) = tokio::join!(within(SECOND, "exec", exec), term);
    assert!(signalled_at.elapsed() < Duration::from_millis(100));
    assert_eq!(status.unwrap().code, 143);
    assert_eq!(
        within(SECOND, "term", rt.wait(&id)).await.unwrap().code,
        143
    );
}

fn wasm_module(spec: &ContainerSpec) -> &ModuleSource {
    match &spec.image {
        Image::Wasm(module) => module,
        Image::Oci(image) => panic!("a wasm fixture built an OCI spec: {image:?}"),
    }
}

#[tokio::test]
async fn a_second_runtime_loads_the_cached_artifact_without_compiling() {
    let fx = Fixture::new();
    let spec = fx.spec("heavy", &guests::heavy(800));
    let cached = fx.runtime.cached_artifact_path(&wasm_module(&spec).digest);
    assert!(!cached.exists());

    let compiled_at = Instant::now();
    let first = fx.runtime.create(&spec).await.unwrap();
    let compiling = compiled_at.elapsed();
    assert!(cached.exists(), "{} was written", cached.display());
    assert!(cached.to_string_lossy().ends_with(".cwasm"));

    let again_at = Instant::now();
    fx.runtime.create(&spec).await.unwrap();
    let in_memory = again_at.elapsed();

    // A new runtime on the same cache dir: a node agent restart.
    let restarted = common::runtime_on(fx.dir.path(), 10);
    let loaded_at = Instant::now();
    let id = restarted.create(&spec).await.unwrap();
    let from_disk = loaded_at.elapsed();
    assert!(
        from_disk * 4 < compiling && in_memory * 4 < compiling,
        "compile {compiling:?}, from disk {from_disk:?}, in memory {in_memory:?}"
    );
    restarted.start(&id).await.unwrap();
    let status = within(5 * SECOND, "heavy", restarted.wait(&id))
        .await
        .unwrap();
    assert_eq!(
        (status.code, status.reason),
        (0, ExitReason::Completed),
        "{status:?}"
    );
    fx.runtime.delete(&first).await.unwrap();
}

#[tokio::test]
async fn a_non_wasm_file_is_an_invalid_module() {
    let fx = Fixture::new();
    let mut spec = fx.spec("hello", &guests::hello());
    spec.image = Image::Wasm(fx.raw_module("text", b"#!/bin/sh\necho hi\n"));
    let err = fx.runtime.create(&spec).await.unwrap_err();
    assert!(
        matches!(&err, RuntimeError::InvalidModule { reason, .. } if reason.contains("magic")),
        "{err}"
    );

    spec.image = Image::Wasm(fx.module("reactor", &guests::reactor()));
    let err = fx.runtime.create(&spec).await.unwrap_err();
    assert!(
        matches!(&err, RuntimeError::InvalidModule { reason, .. } if reason.contains("_start")),
        "{err}"
    );

    let mut broken = wat::parse_str(guests::hello()).unwrap();
    broken.truncate(broken.len() / 2);
    spec.image = Image::Wasm(fx.raw_module("broken", &broken));
    let err = fx.runtime.create(&spec).await.unwrap_err();
    assert!(matches!(err, RuntimeError::InvalidModule { .. }), "{err}");
    assert!(fx.runtime.list().await.unwrap().is_empty());
}

#[tokio::test]
async fn args_and_env_reach_the_guest() {
    let fx = Fixture::new();
    let rt = &fx.runtime;
    let mut spec = fx.spec("tool", &guests::tool());
    spec.args = vec!["tool".into(), "--flag".into(), "value".into()];
    spec.env = vec![("GREETING".into(), "hi there".into())];
    let id = rt.create(&spec).await.unwrap();
    rt.start(&id).await.unwrap();
    let status = within(5 * SECOND, "tool", rt.wait(&id)).await.unwrap();
    assert_eq!(status.code, 3, "argc");
    let log = fx.log("tool");
    assert_eq!(log[0], rec("stdout", "F", "tool\0--flag\0value\0"));
    assert_eq!(log[1], rec("stdout", "F", "GREETING=hi there\0"));
}

#[tokio::test]
async fn exec_runs_a_new_instance_of_the_module() {
    let fx = Fixture::new();
    let rt = &fx.runtime;
    let mut spec = fx.spec("tool", &guests::tool());
    spec.env = vec![("MODE".into(), "serve".into())];
    let id = rt.create(&spec).await.unwrap();

    let exec = |command: &[&str]| ExecSpec {
        command: command.iter().map(|s| s.to_string()).collect(),
        stdin: None,
        stdout: None,
        stderr: None,
        tty: false,
    };
    let err = rt.exec(&id, exec(&["tool", "x"])).await.unwrap_err();
    assert!(matches!(err, RuntimeError::InvalidState { .. }), "{err}");

    rt.start(&id).await.unwrap();
    let (stdout, mut output) = tokio::io::duplex(64 * 1024);
    let spec = ExecSpec {
        stdout: Some(Box::new(stdout)),
        ..exec(&["tool", "status", "now"])
    };
    let status = within(5 * SECOND, "exec", rt.exec(&id, spec))
        .await
        .unwrap();
    assert_eq!(status.code, 3);
    let mut seen = String::new();
    output.read_to_string(&mut seen).await.unwrap();
    assert_eq!(seen, "tool\0status\0now\0\nMODE=serve\0\n");

    // stdin is streamed in; with a tty stderr shares stdout.
    let (mut input, stdin) = tokio::io::duplex(1024);
    tokio::io::AsyncWriteExt::write_all(&mut input, b"ping\npong\n")
        .await
        .unwrap();
    drop(input);
    let (stdout, mut output) = tokio::io::duplex(64 * 1024);
    let spec = ExecSpec {
        stdin: Some(Box::new(stdin)),
        stdout: Some(Box::new(stdout)),
        tty: true,
        ..exec(&["tool", "cat"])
    };
    let status = within(5 * SECOND, "exec", rt.exec(&id, spec))
        .await
        .unwrap();
    assert_eq!(status.code, 2);
    let mut seen = String::new();
    output.read_to_string(&mut seen).await.unwrap();
    assert!(seen.ends_with("ping\npong\n"), "{seen:?}");
    // The container itself still runs, and logged only its own output.
    assert!(matches!(
        rt.list().await.unwrap()[0].state,
        ContainerState::Running { .. }
    ));
    assert_eq!(fx.log("tool")[0], rec("stdout", "F", "tool\0"));
    rt.delete(&id).await.unwrap();
    let err = rt.wait(&id).await.unwrap_err();
    assert!(matches!(err, RuntimeError::NotFound { .. }), "{err}");
}

#[tokio::test]
async fn mounts_are_preopened_with_their_access_mode() {
    let fx = Fixture::new();
    let rt = &fx.runtime;
    let data = tempfile::tempdir().unwrap();
    std::fs::write(data.path().join("data.txt"), "from the host\n").unwrap();
    let mount = |read_only| Mount {
        host_path: data.path().to_path_buf(),
        container_path: "/data".into(),
        read_only,
    };

    let mut reader = fx.spec("reader", &guests::reads_file());
    reader.mounts = vec![mount(true)];
    let id = rt.create(&reader).await.unwrap();
    rt.start(&id).await.unwrap();
    assert_eq!(
        within(5 * SECOND, "read", rt.wait(&id)).await.unwrap().code,
        0
    );
    assert_eq!(fx.log("reader"), vec![rec("stdout", "F", "from the host")]);

    let mut writer = fx.spec("ro-writer", &guests::writes_file());
    writer.mounts = vec![mount(true)];
    let id = rt.create(&writer).await.unwrap();
    rt.start(&id).await.unwrap();
    let status = within(5 * SECOND, "write", rt.wait(&id)).await.unwrap();
    assert_ne!(status.code, 0, "writing to a read-only mount fails");
    assert!(!data.path().join("out.txt").exists());

    writer.mounts = vec![mount(false)];
    writer.log_path = fx.log_path("rw-writer");
    let id = rt.create(&writer).await.unwrap();
    rt.start(&id).await.unwrap();
    assert_eq!(
        within(5 * SECOND, "write", rt.wait(&id))
            .await
            .unwrap()
            .code,
        0
    );
    assert_eq!(
        std::fs::read_to_string(data.path().join("out.txt")).unwrap(),
        "out.txt"
    );

    writer.mounts = vec![Mount {
        host_path: data.path().join("missing"),
        ..mount(false)
    }];
    let err = rt.create(&writer).await.unwrap_err();
    assert!(matches!(err, RuntimeError::Mount { .. }), "{err}");
}

#[tokio::test]
async fn components_run_as_preview2_commands() {
    let fx = Fixture::new();
    let rt = &fx.runtime;
    for (name, ok, code) in [("ok", true, 0), ("err", false, 1)] {
        let id = rt
            .create(&fx.spec(name, &guests::component(ok)))
            .await
            .unwrap();
        rt.start(&id).await.unwrap();
        let status = within(5 * SECOND, name, rt.wait(&id)).await.unwrap();
        assert_eq!(status.code, code, "{name}: {status:?}");
    }
}

#[tokio::test]
async fn kill_before_start_and_lifecycle_errors() {
    let fx = Fixture::new();
    let rt = &fx.runtime;
    let id = rt
        .create(&fx.spec("hello", &guests::hello()))
        .await
        .unwrap();
    assert_eq!(rt.list().await.unwrap()[0].state, ContainerState::Created);
    rt.kill(&id, Signal::Term).await.unwrap();
    assert_eq!(rt.wait(&id).await.unwrap().code, 143);
    let err = rt.start(&id).await.unwrap_err();
    assert!(
        matches!(
            err,
            RuntimeError::InvalidState {
                state: "exited",
                ..
            }
        ),
        "{err}"
    );
    rt.delete(&id).await.unwrap();
    let err = rt.start(&id).await.unwrap_err();
    assert!(matches!(err, RuntimeError::NotFound { .. }), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_sleepers_hold_no_threads() {
    let fx = Fixture::new();
    let rt = &fx.runtime;
    let spec = fx.spec("sleeper", &guests::sleeps(3_600_000));
    // Warm up: the first create compiles on a blocking thread.
    let first = rt.create(&spec).await.unwrap();
    rt.delete(&first).await.unwrap();
    let before = os_threads();
    let mut ids = Vec::new();
    for _ in 0..100 {
        let id = rt.create(&spec).await.unwrap();
        rt.start(&id).await.unwrap();
        ids.push(id);
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let running = rt
        .list()
        .await
        .unwrap()
        .iter()
        .filter(|c| matches!(c.state, ContainerState::Running { .. }))
        .count();
    assert_eq!(running, 100);
    let during = os_threads();
    assert!(
        during <= before + 4,
        "{before} threads before, {during} with 100 sleepers"
    );
    for id in &ids {
        rt.delete(id).await.unwrap();
    }
}
