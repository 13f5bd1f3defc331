//! Startup, liveness and readiness probes of one container, run as the kubelet runs them.
//!
//! A container's supervisor drives [`Probes::watch`] beside each run of the container: it
//! reports when the container counts as started or changes readiness and every probe that
//! fails, and returns once a startup or liveness probe has failed past its threshold, when the
//! container must be killed. Until a startup probe passes, the other two do not run.

mod action;
mod check;
mod http;

use std::convert::Infallible;
use std::net::IpAddr;
use std::ops::ControlFlow;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Container, ContainerPort};
use rkube_runtimes::{ContainerId, Runtime};
use tokio::time::MissedTickBehavior;

use self::action::{Target, Verdict};
use self::check::{Check, Tally};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProbeKind {
    Startup,
    Liveness,
    Readiness,
}

impl ProbeKind {
    /// As event messages name it: `Liveness probe failed: …`.
    fn title(self) -> &'static str {
        match self {
            ProbeKind::Startup => "Startup",
            ProbeKind::Liveness => "Liveness",
            ProbeKind::Readiness => "Readiness",
        }
    }
}

/// What the probes tell the supervisor while the container runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Report {
    /// The startup probe passed: `started` turns true.
    Started,
    /// `ready` changes.
    Ready(bool),
    /// A probe failed or could not run: the message of an `Unhealthy` event.
    Unhealthy(String),
}

/// A startup or liveness probe failed past its threshold: the container is to be killed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Failed {
    pub kind: ProbeKind,
    /// The probe's own grace period, when it sets one.
    pub grace: Option<Duration>,
}

impl Failed {
    /// The `Killing` event's message.
    pub fn message(&self, container: &str, will_restart: bool) -> String {
        let probe = self.kind.title().to_lowercase();
        let restart = if will_restart {
            ", will be restarted"
        } else {
            ""
        };
        format!("Container {container} failed {probe} probe{restart}")
    }
}

/// The probes of one container.
#[derive(Debug, Default)]
pub struct Probes {
    startup: Option<Check>,
    liveness: Option<Check>,
    readiness: Option<Check>,
    ports: Vec<ContainerPort>,
}

impl Probes {
    pub fn of(container: &Container) -> Self {
        Self {
            startup: container.startup_probe.as_ref().map(Check::from_probe),
            liveness: container.liveness_probe.as_ref().map(Check::from_probe),
            readiness: container.readiness_probe.as_ref().map(Check::from_probe),
            ports: container.ports.clone().unwrap_or_default(),
        }
    }

    /// Whether a container counts as started as soon as it runs: it has no startup probe.
    pub fn started_on_start(&self) -> bool {
        self.startup.is_none()
    }

    /// Whether a container is ready as soon as it runs: it has neither a startup nor a
    /// readiness probe.
    pub fn ready_on_start(&self) -> bool {
        self.startup.is_none() && self.readiness.is_none()
    }

    /// Probes the container `id` that started at `started_at` until a startup or liveness
    /// probe fails past its threshold; never returns while it stays healthy.
    pub async fn watch(
        &self,
        runtime: &dyn Runtime,
        id: &ContainerId,
        pod_ip: IpAddr,
        started_at: Instant,
        report: &(dyn Fn(Report) + Send + Sync),
    ) -> Failed {
        let target = Target {
            runtime,
            id,
            pod_ip,
            ports: &self.ports,
        };
        let prober = Prober {
            target: &target,
            started_at,
            report,
        };
        if let Some(check) = &self.startup {
            let passed = prober
                .until(ProbeKind::Startup, check, ControlFlow::Break)
                .await;
            if !passed {
                return Failed {
                    kind: ProbeKind::Startup,
                    grace: check.grace,
                };
            }
            report(Report::Started);
            if self.readiness.is_none() {
                report(Report::Ready(true));
            }
        }
        let liveness = async {
            let Some(check) = &self.liveness else {
                return std::future::pending().await;
            };
            prober
                .until(ProbeKind::Liveness, check, |alive| {
                    if alive {
                        ControlFlow::Continue(())
                    } else {
                        ControlFlow::Break(())
                    }
                })
                .await;
            Failed {
                kind: ProbeKind::Liveness,
                grace: check.grace,
            }
        };
        let readiness = async {
            let Some(check) = &self.readiness else {
                return std::future::pending().await;
            };
            let mut ready = false;
            prober
                .until(ProbeKind::Readiness, check, |now| {
                    if now != ready {
                        ready = now;
                        report(Report::Ready(now));
                    }
                    ControlFlow::<Infallible>::Continue(())
                })
                .await
        };
        tokio::select! {
            failed = liveness => failed,
            never = readiness => match never {},
        }
    }
}

/// What the probes of one run of the container share.
struct Prober<'a> {
    target: &'a Target<'a>,
    started_at: Instant,
    report: &'a (dyn Fn(Report) + Send + Sync),
}

impl Prober<'_> {
    /// Runs `check` every period after its initial delay, handing each result that reached
    /// its threshold to `settle` until that breaks.
    async fn until<T>(
        &self,
        kind: ProbeKind,
        check: &Check,
        mut settle: impl FnMut(bool) -> ControlFlow<T>,
    ) -> T {
        tokio::time::sleep_until((self.started_at + check.initial_delay).into()).await;
        let mut ticks = tokio::time::interval(check.period);
        ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut tally = Tally::default();
        let title = kind.title();
        loop {
            ticks.tick().await;
            let success = match action::attempt(&check.action, self.target, check.timeout).await {
                Ok(Verdict::Success) => true,
                Ok(Verdict::Failure(message)) => {
                    (self.report)(Report::Unhealthy(format!(
                        "{title} probe failed: {message}"
                    )));
                    false
                }
                // As the kubelet: an attempt that could not run leaves the state as it was.
                Err(error) => {
                    (self.report)(Report::Unhealthy(format!("{title} probe errored: {error}")));
                    continue;
                }
            };
            if let Some(result) = tally.observe(success, check)
                && let ControlFlow::Break(done) = settle(result)
            {
                return done;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::sync::atomic::{AtomicI32, AtomicU32, Ordering};
    use std::sync::{Arc, Mutex};

    use async_trait::async_trait;
    use k8s_openapi::api::core::v1::{ExecAction, GRPCAction, Probe};
    use rkube_runtimes::{
        ContainerInfo, ContainerSpec, ExecSpec, ExitReason, ExitStatus, RuntimeError, Signal,
    };
    use tokio::io::AsyncWriteExt;

    use super::*;

    const MS: Duration = Duration::from_millis(1);

    /// TEST FAKE: a runtime that only runs execs. `["name"]` exits with the code set for
    /// `name` (printing `name says no` when that is not 0); `["hang"]` never ends.
    #[derive(Default)]
    struct ExecRuntime {
        codes: HashMap<&'static str, AtomicI32>,
        calls: HashMap<&'static str, AtomicU32>,
    }

    impl ExecRuntime {
        fn with(names: &[(&'static str, i32)]) -> Arc<Self> {
            Arc::new(Self {
                codes: names
                    .iter()
                    .map(|(n, c)| (*n, AtomicI32::new(*c)))
                    .collect(),
                calls: names.iter().map(|(n, _)| (*n, AtomicU32::new(0))).collect(),
            })
        }

        fn set(&self, name: &str, code: i32) {
            self.codes[name].store(code, Ordering::SeqCst);
        }

        fn calls(&self, name: &str) -> u32 {
            self.calls[name].load(Ordering::SeqCst)
        }
    }

    #[async_trait]
    impl Runtime for ExecRuntime {
        fn handler(&self) -> &str {
            "fake"
        }
        async fn create(&self, _: &ContainerSpec) -> Result<ContainerId, RuntimeError> {
            unreachable!("probes only exec")
        }
        async fn start(&self, _: &ContainerId) -> Result<(), RuntimeError> {
            unreachable!("probes only exec")
        }
        async fn kill(&self, _: &ContainerId, _: Signal) -> Result<(), RuntimeError> {
            unreachable!("probes only exec")
        }
        async fn wait(&self, _: &ContainerId) -> Result<ExitStatus, RuntimeError> {
            unreachable!("probes only exec")
        }
        async fn delete(&self, _: &ContainerId) -> Result<(), RuntimeError> {
            unreachable!("probes only exec")
        }
        async fn list(&self) -> Result<Vec<ContainerInfo>, RuntimeError> {
            unreachable!("probes only exec")
        }
        async fn exec(&self, _: &ContainerId, spec: ExecSpec) -> Result<ExitStatus, RuntimeError> {
            let name = spec.command[0].as_str();
            if name == "hang" {
                std::future::pending::<()>().await;
            }
            self.calls[name].fetch_add(1, Ordering::SeqCst);
            let code = self.codes[name].load(Ordering::SeqCst);
            if code != 0
                && let Some(mut out) = spec.stdout
            {
                out.write_all(format!("{name} says no").as_bytes())
                    .await
                    .unwrap();
            }
            let now = std::time::SystemTime::now();
            Ok(ExitStatus {
                code,
                reason: ExitReason::Completed,
                message: None,
                started_at: now,
                finished_at: now,
            })
        }
    }

    fn exec_check(name: &str, period_ms: u32, failures: u32) -> Check {
        Check {
            period: period_ms * MS,
            timeout: 100 * MS,
            failure_threshold: failures,
            ..Check::from_probe(&Probe {
                exec: Some(ExecAction {
                    command: Some(vec![name.into()]),
                }),
                ..Probe::default()
            })
        }
    }

    /// Runs `watch` for at most `limit`, collecting its reports.
    async fn watch_for(
        probes: &Probes,
        runtime: &ExecRuntime,
        limit: Duration,
        reports: &Mutex<Vec<Report>>,
    ) -> Option<Failed> {
        let report = |r| reports.lock().unwrap().push(r);
        let id = ContainerId("c".into());
        let watch = probes.watch(runtime, &id, [127, 0, 0, 1].into(), Instant::now(), &report);
        tokio::time::timeout(limit, watch).await.ok()
    }

    fn readiness_changes(reports: &Mutex<Vec<Report>>) -> Vec<bool> {
        let reports = reports.lock().unwrap();
        reports
            .iter()
            .filter_map(|r| match r {
                Report::Ready(ready) => Some(*ready),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn without_probes_a_running_container_is_started_and_ready() {
        let plain = Probes::default();
        assert!(plain.started_on_start() && plain.ready_on_start());
        let ready = Probes {
            readiness: Some(exec_check("ready", 10, 1)),
            ..Probes::default()
        };
        assert!(ready.started_on_start() && !ready.ready_on_start());
        let startup = Probes {
            startup: Some(exec_check("startup", 10, 1)),
            ..Probes::default()
        };
        assert!(!startup.started_on_start() && !startup.ready_on_start());
    }

    #[tokio::test]
    async fn readiness_follows_the_probe_both_ways() {
        let runtime = ExecRuntime::with(&[("ready", 0)]);
        let probes = Probes {
            readiness: Some(exec_check("ready", 20, 2)),
            ..Probes::default()
        };
        let reports = Mutex::new(Vec::new());
        let flips = async {
            tokio::time::sleep(100 * MS).await;
            runtime.set("ready", 1);
            tokio::time::sleep(150 * MS).await;
            runtime.set("ready", 0);
        };
        let (failed, ()) = tokio::join!(watch_for(&probes, &runtime, 400 * MS, &reports), flips);
        assert_eq!(failed, None, "readiness never kills");
        assert_eq!(readiness_changes(&reports), vec![true, false, true]);
        let reports = reports.lock().unwrap();
        assert!(reports.contains(&Report::Unhealthy(
            "Readiness probe failed: ready says no".into()
        )));
    }

    #[tokio::test]
    async fn liveness_fails_after_its_threshold_of_failures() {
        let runtime = ExecRuntime::with(&[("live", 0)]);
        let mut check = exec_check("live", 20, 3);
        check.grace = Some(Duration::from_secs(7));
        let probes = Probes {
            liveness: Some(check),
            ..Probes::default()
        };
        let reports = Mutex::new(Vec::new());
        assert_eq!(
            watch_for(&probes, &runtime, 150 * MS, &reports).await,
            None,
            "a passing liveness probe keeps the container"
        );
        assert!(runtime.calls("live") >= 3);
        runtime.set("live", 1);
        let failed = watch_for(&probes, &runtime, SECOND, &reports).await;
        assert_eq!(
            failed,
            Some(Failed {
                kind: ProbeKind::Liveness,
                grace: Some(Duration::from_secs(7)),
            })
        );
        let unhealthy = reports
            .lock()
            .unwrap()
            .iter()
            .filter(
                |r| matches!(r, Report::Unhealthy(m) if m == "Liveness probe failed: live says no"),
            )
            .count();
        assert_eq!(unhealthy, 3);
        assert_eq!(
            failed.map(|f| f.message("app", true)).as_deref(),
            Some("Container app failed liveness probe, will be restarted")
        );
    }

    const SECOND: Duration = Duration::from_secs(1);

    #[tokio::test]
    async fn the_startup_probe_holds_back_liveness_and_readiness() {
        let runtime = ExecRuntime::with(&[("startup", 1), ("live", 1)]);
        let probes = Probes {
            startup: Some(exec_check("startup", 20, 1000)),
            liveness: Some(exec_check("live", 20, 1)),
            ..Probes::default()
        };
        let reports = Mutex::new(Vec::new());
        let starts = async {
            tokio::time::sleep(150 * MS).await;
            assert!(runtime.calls("startup") >= 3);
            assert_eq!(runtime.calls("live"), 0, "liveness waits for startup");
            runtime.set("startup", 0);
        };
        let (failed, ()) = tokio::join!(watch_for(&probes, &runtime, SECOND, &reports), starts);
        assert_eq!(failed.map(|f| f.kind), Some(ProbeKind::Liveness));
        let reports = reports.lock().unwrap();
        let started = reports.iter().position(|r| *r == Report::Started);
        let ready = reports.iter().position(|r| *r == Report::Ready(true));
        // Without a readiness probe the container is ready once started.
        assert!(started.is_some() && ready > started, "{reports:?}");
    }

    #[tokio::test]
    async fn a_startup_probe_failing_past_its_threshold_fails_the_container() {
        let runtime = ExecRuntime::with(&[("startup", 1), ("ready", 0)]);
        let probes = Probes {
            startup: Some(exec_check("startup", 10, 2)),
            readiness: Some(exec_check("ready", 10, 1)),
            ..Probes::default()
        };
        let reports = Mutex::new(Vec::new());
        let failed = watch_for(&probes, &runtime, SECOND, &reports).await;
        assert_eq!(
            failed,
            Some(Failed {
                kind: ProbeKind::Startup,
                grace: None
            })
        );
        assert_eq!(runtime.calls("startup"), 2);
        assert_eq!(runtime.calls("ready"), 0);
        assert!(!reports.lock().unwrap().contains(&Report::Started));
    }

    #[tokio::test]
    async fn probes_wait_for_their_initial_delay() {
        let runtime = ExecRuntime::with(&[("ready", 0)]);
        let mut check = exec_check("ready", 20, 1);
        check.initial_delay = 150 * MS;
        let probes = Probes {
            readiness: Some(check),
            ..Probes::default()
        };
        let reports = Mutex::new(Vec::new());
        watch_for(&probes, &runtime, 100 * MS, &reports).await;
        assert_eq!(runtime.calls("ready"), 0);
        assert!(readiness_changes(&reports).is_empty());
        watch_for(&probes, &runtime, 250 * MS, &reports).await;
        assert_eq!(readiness_changes(&reports), vec![true]);
    }

    #[tokio::test]
    async fn a_hanging_exec_times_out_as_a_failure() {
        let runtime = ExecRuntime::with(&[]);
        let mut check = exec_check("hang", 20, 2);
        check.timeout = 30 * MS;
        let probes = Probes {
            liveness: Some(check),
            ..Probes::default()
        };
        let reports = Mutex::new(Vec::new());
        let failed = watch_for(&probes, &runtime, SECOND, &reports).await;
        assert_eq!(failed.map(|f| f.kind), Some(ProbeKind::Liveness));
        assert!(reports.lock().unwrap().contains(&Report::Unhealthy(
            "Liveness probe failed: command \"hang\" timed out".into()
        )));
    }

    #[tokio::test]
    async fn a_probe_that_cannot_run_neither_passes_nor_fails() {
        let runtime = ExecRuntime::with(&[]);
        let grpc = Check {
            period: 20 * MS,
            failure_threshold: 1,
            ..Check::from_probe(&Probe {
                grpc: Some(GRPCAction {
                    port: 9000,
                    service: None,
                }),
                ..Probe::default()
            })
        };
        let probes = Probes {
            liveness: Some(grpc.clone()),
            readiness: Some(grpc),
            ..Probes::default()
        };
        let reports = Mutex::new(Vec::new());
        assert_eq!(watch_for(&probes, &runtime, 100 * MS, &reports).await, None);
        let reports = reports.lock().unwrap();
        assert!(!reports.iter().any(|r| matches!(r, Report::Ready(_))));
        assert!(reports.contains(&Report::Unhealthy(
            "Liveness probe errored: gRPC probes are not supported by this node".into()
        )));
    }
}
