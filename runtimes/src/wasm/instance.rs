//! One guest instance: its store, how it runs, how it ends.

use std::sync::Arc;
use std::time::{Instant, SystemTime};

use tokio::sync::watch;
use wasmtime::component::ResourceTable;
use wasmtime::{Engine, Store, UpdateDeadline};
use wasmtime_wasi::{FsPerms, I32Exit, WasiCtxBuilder};

use super::artifact::Artifact;
use super::host::{ComponentHost, MemoryCap, ModuleHost};
use super::schedule::CpuShare;
use super::stdio::Stdio;
use crate::{ContainerId, ExitReason, ExitStatus, Limits, Mount, RuntimeError, Signal};

/// Exit code of a trapped guest: what a process gets from `abort()` (128 + SIGABRT).
const TRAP_EXIT_CODE: i32 = 128 + 6;

/// What every instance of one container shares: the main one and each exec.
pub(crate) struct Template {
    pub(crate) id: ContainerId,
    pub(crate) engine: Engine,
    pub(crate) artifact: Arc<Artifact>,
    pub(crate) env: Vec<(String, String)>,
    pub(crate) working_dir: Option<String>,
    pub(crate) mounts: Vec<Mount>,
    pub(crate) limits: Limits,
    pub(crate) epoch_tick: std::time::Duration,
}

/// An instance with its store built, ready to run.
pub(crate) enum Prepared {
    Module(Store<ModuleHost>, Arc<Artifact>),
    Component(Store<ComponentHost>, Arc<Artifact>),
}

impl Template {
    /// Builds a store for a new instance with the given argv and streams.
    pub(crate) fn prepare(&self, args: &[String], stdio: Stdio) -> Result<Prepared, RuntimeError> {
        let mut wasi = WasiCtxBuilder::new();
        wasi.args(args).envs(&self.env);
        if let Some(dir) = &self.working_dir {
            wasi.initial_cwd(dir);
        }
        for mount in &self.mounts {
            let perms = if mount.read_only {
                FsPerms::ReadOnly
            } else {
                FsPerms::ReadWrite
            };
            wasi.preopened_dir(&mount.host_path, &mount.container_path, perms)
                .map_err(|e| RuntimeError::Mount {
                    host_path: mount.host_path.clone(),
                    container_path: mount.container_path.clone(),
                    reason: format!("{e:#}"),
                })?;
        }
        stdio.apply(&mut wasi);
        let memory = MemoryCap::new(self.limits.memory_bytes);
        let share = CpuShare::new(self.limits.cpu_millicores, self.epoch_tick, Instant::now());
        Ok(match &*self.artifact {
            Artifact::Module(_) => {
                let host = ModuleHost {
                    wasi: wasi.build_p1(),
                    memory,
                };
                let mut store = Store::new(&self.engine, host);
                store.limiter(|host| &mut host.memory);
                schedule(&mut store, share);
                Prepared::Module(store, self.artifact.clone())
            }
            Artifact::Component(_) => {
                let host = ComponentHost {
                    wasi: wasi.build(),
                    table: ResourceTable::new(),
                    memory,
                };
                let mut store = Store::new(&self.engine, host);
                store.limiter(|host| &mut host.memory);
                schedule(&mut store, share);
                Prepared::Component(store, self.artifact.clone())
            }
        })
    }
}

/// Interrupts the guest every epoch to yield (and to pause when over its CPU quota), so that
/// other containers on the same executor thread get to run and a signal is seen promptly.
fn schedule<T: 'static>(store: &mut Store<T>, mut share: CpuShare) {
    store.set_epoch_deadline(1);
    store.epoch_deadline_callback(move |_| {
        Ok(match share.on_deadline(Instant::now()) {
            None => UpdateDeadline::Yield(1),
            Some(pause) => UpdateDeadline::YieldCustom(1, Box::pin(tokio::time::sleep(pause))),
        })
    });
}

/// How a run ended, before it is put in Kubernetes terms.
enum Outcome {
    Exited(i32),
    Stopped(Signal),
    OutOfMemory,
    Trapped(String),
    Failed(String),
}

impl Prepared {
    /// Runs the instance to its end. Any signal ends it at once, even while it waits in a host
    /// call: a WASI guest installs no signal handlers, so `Term` has its default action too.
    pub(crate) async fn run(self, mut signals: watch::Receiver<Option<Signal>>) -> ExitStatus {
        let started_at = SystemTime::now();
        let outcome = tokio::select! {
            biased;
            signal = signalled(&mut signals) => Outcome::Stopped(signal),
            outcome = self.execute() => outcome,
        };
        exit_status(outcome, started_at)
    }

    async fn execute(self) -> Outcome {
        match self {
            Prepared::Module(mut store, artifact) => {
                let Artifact::Module(pre) = &*artifact else {
                    return Outcome::Failed("artifact is not a core module".into());
                };
                let result = async {
                    let instance = pre.instantiate_async(&mut store).await?;
                    let start = instance.get_typed_func::<(), ()>(&mut store, "_start")?;
                    start.call_async(&mut store, ()).await
                }
                .await;
                classify(result.map(|()| 0), store.data().memory.exceeded)
            }
            Prepared::Component(mut store, artifact) => {
                let Artifact::Component(pre) = &*artifact else {
                    return Outcome::Failed("artifact is not a component".into());
                };
                let result = async {
                    let command = pre.instantiate_async(&mut store).await?;
                    command.wasi_cli_run().call_run(&mut store).await
                }
                .await;
                let code = result.map(|run| if run.is_ok() { 0 } else { 1 });
                classify(code, store.data().memory.exceeded)
            }
        }
    }
}

async fn signalled(signals: &mut watch::Receiver<Option<Signal>>) -> Signal {
    let signal = match signals.wait_for(Option::is_some).await {
        Ok(signal) => *signal,
        Err(_) => None,
    };
    match signal {
        Some(signal) => signal,
        // The container is gone, so no one can signal this instance any more.
        None => std::future::pending().await,
    }
}

fn classify(result: wasmtime::Result<i32>, memory_exceeded: bool) -> Outcome {
    let error = match result {
        Ok(code) => return Outcome::Exited(code),
        Err(error) => error,
    };
    if let Some(exit) = error.downcast_ref::<I32Exit>() {
        Outcome::Exited(exit.0)
    } else if memory_exceeded {
        Outcome::OutOfMemory
    } else if error.downcast_ref::<wasmtime::Trap>().is_some() {
        Outcome::Trapped(format!("{error:#}"))
    } else {
        Outcome::Failed(format!("{error:#}"))
    }
}

fn exit_status(outcome: Outcome, started_at: SystemTime) -> ExitStatus {
    let (code, reason, message) = match outcome {
        Outcome::Exited(0) => (0, ExitReason::Completed, None),
        Outcome::Exited(code) => (code, ExitReason::Error, None),
        Outcome::Stopped(signal) => (
            signal.exit_code(),
            ExitReason::Error,
            Some(format!("stopped by {signal:?}")),
        ),
        Outcome::OutOfMemory => (
            Signal::Kill.exit_code(),
            ExitReason::OomKilled,
            Some("linear memory limit reached".into()),
        ),
        Outcome::Trapped(message) => (TRAP_EXIT_CODE, ExitReason::Error, Some(message)),
        Outcome::Failed(message) => (1, ExitReason::Error, Some(message)),
    };
    ExitStatus {
        code,
        reason,
        message,
        started_at,
        finished_at: SystemTime::now(),
    }
}
