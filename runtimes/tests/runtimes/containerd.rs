//! The containerd runtime end to end: Debian's containerd and runc, a busybox image built here
//! and pushed to a local registry. Needs root; skipped (with a message) otherwise.

use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime};

use rkube_harness::{
    Containerd, REGISTRY_PASSWORD, REGISTRY_USERNAME, Registry, is_root, push_busybox,
};
use rkube_runtimes::containerd::{ContainerdConfig, ContainerdRuntime, PullAuth};
use rkube_runtimes::{
    ContainerId, ContainerSpec, ContainerState, ExecSpec, ExitReason, Image, Limits, ModuleSource,
    OciImage, Runtime, RuntimeError, Signal,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const SECOND: Duration = Duration::from_secs(1);

struct Fixture {
    containerd: Containerd,
    _registry: Registry,
    runtime: ContainerdRuntime,
    image: String,
    dir: PathBuf,
}

/// containerd, a registry holding busybox, a runtime that has pulled it; `None` when not root.
async fn fixture() -> Option<Fixture> {
    if !is_root() {
        eprintln!("skipped: the containerd runtime tests need root (containerd and runc)");
        return None;
    }
    let containerd = Containerd::start().expect("containerd starts");
    let registry = Registry::start().expect("registry starts");
    let image = push_busybox(&registry, "busybox", "1", None)
        .await
        .expect("push busybox");
    let runtime = connect(&containerd).await;
    runtime.pull(&image, None).await.expect("pull busybox");
    let dir = containerd.scratch("logs").expect("scratch dir");
    Some(Fixture {
        containerd,
        _registry: registry,
        runtime,
        image,
        dir,
    })
}

async fn connect(containerd: &Containerd) -> ContainerdRuntime {
    let state = containerd.scratch("state").expect("state dir");
    ContainerdRuntime::connect(ContainerdConfig::new(containerd.socket(), state))
        .await
        .expect("connect to containerd")
}

impl Fixture {
    fn spec(&self, name: &str, command: &[&str]) -> ContainerSpec {
        ContainerSpec {
            pod_uid: "pod-1".into(),
            container_name: name.into(),
            image: Image::Oci(OciImage {
                reference: self.image.clone(),
                command: Some(command.iter().map(|s| s.to_string()).collect()),
                args: None,
                user: None,
                network_namespace: None,
                hostname: None,
            }),
            args: vec![],
            env: vec![("GREETING".into(), "hello".into())],
            working_dir: None,
            mounts: vec![],
            limits: Limits::default(),
            log_path: self.dir.join(format!("{name}.log")),
        }
    }

    async fn run(&self, spec: &ContainerSpec) -> ContainerId {
        let id = self.runtime.create(spec).await.expect("create");
        self.runtime.start(&id).await.expect("start");
        id
    }

    /// The log's records as (stream, tag, text).
    fn log(&self, name: &str) -> Vec<(String, String, String)> {
        let text =
            std::fs::read_to_string(self.dir.join(format!("{name}.log"))).unwrap_or_default();
        text.lines()
            .map(|line| {
                let mut parts = line.splitn(4, ' ');
                let stamp = parts.next().unwrap_or_default();
                assert!(
                    stamp.ends_with('Z') && stamp.len() == 30,
                    "bad stamp in {line:?}"
                );
                let mut next = || parts.next().unwrap_or_default().to_string();
                (next(), next(), next())
            })
            .collect()
    }
}

fn rec(stream: &str, text: &str) -> (String, String, String) {
    (stream.into(), "F".into(), text.into())
}

async fn within<T>(limit: Duration, what: &str, fut: impl Future<Output = T>) -> T {
    tokio::time::timeout(limit, fut)
        .await
        .unwrap_or_else(|_| panic!("{what} took longer than {limit:?}"))
}

#[tokio::test]
async fn both_streams_reach_the_cri_log_and_exit_zero_completes() {
    let Some(fx) = fixture().await else { return };
    assert_eq!(fx.runtime.handler(), "runc");
    assert!(fx.runtime.has_image(&fx.image).await.unwrap());
    let spec = fx.spec(
        "hello",
        &["sh", "-c", "echo hi; echo $GREETING; echo err >&2"],
    );
    let begun = Instant::now();
    let id = fx.run(&spec).await;
    let status = within(10 * SECOND, "hello", fx.runtime.wait(&id))
        .await
        .unwrap();
    let elapsed = begun.elapsed();
    assert_eq!((status.code, status.reason), (0, ExitReason::Completed));
    assert!(status.started_at <= status.finished_at);
    let mut log = fx.log("hello");
    log.sort();
    assert_eq!(
        log,
        vec![
            rec("stderr", "err"),
            rec("stdout", "hello"),
            rec("stdout", "hi")
        ]
    );
    fx.runtime.delete(&id).await.unwrap();

    let ctr = Instant::now();
    fx.containerd
        .ctr(
            "rkube",
            &["run", "--rm", &fx.image, "ctr-run", "sh", "-c", "true"],
        )
        .expect("ctr run");
    eprintln!(
        "create+start+wait: {elapsed:?}; ctr run --rm of the same image: {:?}",
        ctr.elapsed()
    );
}

#[tokio::test]
async fn a_failing_command_reports_its_exit_code() {
    let Some(fx) = fixture().await else { return };
    let id = fx.run(&fx.spec("fails", &["sh", "-c", "exit 3"])).await;
    let status = within(10 * SECOND, "exit 3", fx.runtime.wait(&id))
        .await
        .unwrap();
    assert_eq!((status.code, status.reason), (3, ExitReason::Error));
    // A second wait answers the same.
    assert_eq!(fx.runtime.wait(&id).await.unwrap().code, 3);
    fx.runtime.delete(&id).await.unwrap();
}

#[tokio::test]
async fn term_stops_a_process_that_handles_it_and_kill_one_that_does_not() {
    let Some(fx) = fixture().await else { return };
    let polite = fx
        .run(&fx.spec(
            "polite",
            &["sh", "-c", "trap 'exit 143' TERM; sleep 100 & wait"],
        ))
        .await;
    // As PID 1, plain `sleep` gets no default signal handling: TERM does nothing.
    let stubborn = fx.run(&fx.spec("stubborn", &["sleep", "100"])).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let begun = Instant::now();
    fx.runtime.kill(&polite, Signal::Term).await.unwrap();
    let status = within(5 * SECOND, "term", fx.runtime.wait(&polite))
        .await
        .unwrap();
    assert_eq!((status.code, status.reason), (143, ExitReason::Error));
    assert!(begun.elapsed() < 3 * SECOND, "{:?}", begun.elapsed());

    fx.runtime.kill(&stubborn, Signal::Term).await.unwrap();
    let ignored =
        tokio::time::timeout(Duration::from_millis(500), fx.runtime.wait(&stubborn)).await;
    assert!(ignored.is_err(), "sleep as PID 1 ignores TERM");
    fx.runtime.kill(&stubborn, Signal::Kill).await.unwrap();
    let status = within(5 * SECOND, "kill", fx.runtime.wait(&stubborn))
        .await
        .unwrap();
    assert_eq!(status.code, 137);
    assert_eq!(status.message.as_deref(), Some("killed by signal 9"));
    for id in [polite, stubborn] {
        fx.runtime.delete(&id).await.unwrap();
    }
}

#[tokio::test]
async fn exceeding_the_memory_limit_is_oom_killed() {
    let Some(fx) = fixture().await else { return };
    let mut spec = fx.spec(
        "hog",
        &[
            "sh",
            "-c",
            "x=$(head -c 64000000 /dev/zero | tr '\\0' a); echo ${#x}",
        ],
    );
    spec.limits.memory_bytes = Some(16 << 20);
    let id = fx.run(&spec).await;
    let status = within(30 * SECOND, "hog", fx.runtime.wait(&id))
        .await
        .unwrap();
    assert_eq!((status.code, status.reason), (137, ExitReason::OomKilled));
    assert_eq!(status.reason.as_str(), "OOMKilled");
    fx.runtime.delete(&id).await.unwrap();
}

#[tokio::test]
async fn exec_captures_output_feeds_input_and_reports_the_code() {
    let Some(fx) = fixture().await else { return };
    let id = fx.run(&fx.spec("sleeper", &["sleep", "100"])).await;

    let (out_writer, mut out_reader) = tokio::io::duplex(64 * 1024);
    let (err_writer, mut err_reader) = tokio::io::duplex(64 * 1024);
    let status = within(
        10 * SECOND,
        "exec",
        fx.runtime.exec(
            &id,
            ExecSpec {
                command: vec![
                    "sh".into(),
                    "-c".into(),
                    "echo hi $GREETING; echo err >&2; exit 2".into(),
                ],
                stdin: None,
                stdout: Some(Box::new(out_writer)),
                stderr: Some(Box::new(err_writer)),
                tty: false,
            },
        ),
    )
    .await
    .unwrap();
    assert_eq!((status.code, status.reason), (2, ExitReason::Error));
    let mut out = String::new();
    out_reader.read_to_string(&mut out).await.unwrap();
    let mut err = String::new();
    err_reader.read_to_string(&mut err).await.unwrap();
    assert_eq!((out.as_str(), err.as_str()), ("hi hello\n", "err\n"));

    let (mut stdin_writer, stdin_reader) = tokio::io::duplex(1024);
    stdin_writer.write_all(b"ping\n").await.unwrap();
    drop(stdin_writer);
    let (out_writer, mut out_reader) = tokio::io::duplex(64 * 1024);
    let status = within(
        10 * SECOND,
        "exec cat",
        fx.runtime.exec(
            &id,
            ExecSpec {
                command: vec!["cat".into()],
                stdin: Some(Box::new(stdin_reader)),
                stdout: Some(Box::new(out_writer)),
                stderr: None,
                tty: false,
            },
        ),
    )
    .await
    .unwrap();
    assert_eq!(status.code, 0);
    let mut out = String::new();
    out_reader.read_to_string(&mut out).await.unwrap();
    assert_eq!(out, "ping\n");

    let (out_writer, mut out_reader) = tokio::io::duplex(64 * 1024);
    let status = within(
        10 * SECOND,
        "exec tty",
        fx.runtime.exec(
            &id,
            ExecSpec {
                command: vec![
                    "sh".into(),
                    "-c".into(),
                    "test -t 1 && echo terminal".into(),
                ],
                stdin: None,
                stdout: Some(Box::new(out_writer)),
                stderr: None,
                tty: true,
            },
        ),
    )
    .await
    .unwrap();
    assert_eq!(status.code, 0);
    let mut out = String::new();
    out_reader.read_to_string(&mut out).await.unwrap();
    assert_eq!(out, "terminal\r\n");

    fx.runtime.delete(&id).await.unwrap();
    let created = fx.run(&fx.spec("done", &["true"])).await;
    fx.runtime.wait(&created).await.unwrap();
    let err = fx
        .runtime
        .exec(
            &created,
            ExecSpec {
                command: vec!["true".into()],
                stdin: None,
                stdout: None,
                stderr: None,
                tty: false,
            },
        )
        .await
        .unwrap_err();
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
    fx.runtime.delete(&created).await.unwrap();
}

#[tokio::test]
async fn a_fresh_runtime_adopts_running_containers_and_delete_removes_everything() {
    let Some(fx) = fixture().await else { return };
    let spec = fx.spec("long", &["sh", "-c", "echo before; sleep 100"]);
    // A node process that creates the container and goes away.
    let first = connect(&fx.containerd).await;
    let id = first.create(&spec).await.unwrap();
    first.start(&id).await.unwrap();
    let started = SystemTime::now();
    drop(first);
    let fresh = connect(&fx.containerd).await;
    let listed = fresh.list().await.unwrap();
    let info = listed
        .iter()
        .find(|info| info.id == id)
        .unwrap_or_else(|| panic!("{id} not in {listed:?}"));
    assert_eq!(
        (info.pod_uid.as_str(), info.container_name.as_str()),
        ("pod-1", "long")
    );
    let ContainerState::Running { started_at } = info.state else {
        panic!("not running: {:?}", info.state)
    };
    let skew = started.duration_since(started_at).unwrap_or_default();
    assert!(skew < 5 * SECOND, "started {skew:?} before");

    let snapshots = || {
        fx.containerd
            .ctr("rkube", &["snapshots", "ls"])
            .expect("ctr snapshots ls")
    };
    assert!(snapshots().contains(&id.0));
    fresh.kill(&id, Signal::Kill).await.unwrap();
    let status = within(5 * SECOND, "kill", fresh.wait(&id)).await.unwrap();
    assert_eq!(status.code, 137);
    fresh.delete(&id).await.unwrap();

    assert!(fresh.list().await.unwrap().iter().all(|info| info.id != id));
    let containers = fx
        .containerd
        .ctr("rkube", &["containers", "ls", "-q"])
        .unwrap();
    assert!(!containers.contains(&id.0), "{containers}");
    assert!(!snapshots().contains(&id.0));
    assert!(matches!(
        fresh.wait(&id).await,
        Err(RuntimeError::NotFound { .. })
    ));
    assert!(fx.log("long").contains(&rec("stdout", "before")));
}

#[tokio::test]
async fn images_are_pulled_with_credentials_and_must_be_pulled_first() {
    let Some(fx) = fixture().await else { return };
    let private = Registry::start_with_login().expect("registry with login");
    let login = (REGISTRY_USERNAME, REGISTRY_PASSWORD);
    let image = push_busybox(&private, "private", "2", Some(login))
        .await
        .unwrap();
    let anonymous = fx.runtime.pull(&image, None).await.unwrap_err();
    assert!(
        matches!(anonymous, RuntimeError::ImagePull { .. }),
        "{anonymous}"
    );
    assert!(!fx.runtime.has_image(&image).await.unwrap());
    let auth = PullAuth {
        username: REGISTRY_USERNAME.into(),
        password: REGISTRY_PASSWORD.into(),
    };
    let pulled = fx.runtime.pull(&image, Some(&auth)).await.unwrap();
    assert_eq!(pulled.name, image);
    assert!(pulled.digest.starts_with("sha256:"), "{pulled:?}");
    // Pulling again finds everything in place.
    assert_eq!(fx.runtime.pull(&image, Some(&auth)).await.unwrap(), pulled);

    let mut spec = fx.spec("absent", &["true"]);
    spec.image = Image::Oci(OciImage {
        reference: format!("{}/never-pushed:1", private.host()),
        command: None,
        args: None,
        user: None,
        network_namespace: None,
        hostname: None,
    });
    let err = fx.runtime.create(&spec).await.unwrap_err();
    assert!(matches!(err, RuntimeError::InvalidImage { .. }), "{err}");
    spec.image = Image::Wasm(ModuleSource {
        path: fx.dir.join("x.wasm"),
        digest: "sha256:00".into(),
    });
    let err = fx.runtime.create(&spec).await.unwrap_err();
    assert!(
        matches!(err, RuntimeError::UnsupportedImage { .. }),
        "{err}"
    );
}
