//! The in-process wasmtime runtime (RuntimeClass handler `wasmtime`): one engine per node, one
//! store per container instance, WASI preview 1 modules and preview 2 components.

mod artifact;
mod engine;
mod host;
mod instance;
#[allow(unsafe_code)]
mod precompiled;
mod schedule;
mod stdio;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use tokio::sync::watch;
use wasmtime::Engine;

use self::artifact::ArtifactCache;
use self::engine::EpochTicker;
use self::instance::{Prepared, Template};
use self::stdio::Stdio;
use crate::{
    ContainerId, ContainerInfo, ContainerSpec, ContainerState, CriLog, ExecSpec, ExitReason,
    ExitStatus, Image, Runtime, RuntimeError, Signal,
};

/// The RuntimeClass handler this runtime serves.
pub const HANDLER: &str = "wasmtime";

/// Node-level settings of the wasm runtime.
#[derive(Clone, Debug)]
pub struct WasmConfig {
    /// Where compiled artifacts are cached across restarts.
    pub cache_dir: PathBuf,
    /// Instances (containers plus running execs) the pooling allocator reserves room for.
    pub max_instances: u32,
    /// Ceiling of one instance's linear memory, whatever its limit says.
    pub max_memory_bytes: u64,
    /// How often running guests are interrupted to yield and to account CPU time.
    pub epoch_tick: Duration,
}

impl WasmConfig {
    pub fn new(cache_dir: impl Into<PathBuf>) -> Self {
        Self {
            cache_dir: cache_dir.into(),
            max_instances: 1000,
            max_memory_bytes: 4 << 30,
            epoch_tick: Duration::from_millis(2),
        }
    }
}

pub struct WasmRuntime {
    engine: Engine,
    cache: ArtifactCache,
    epoch_tick: Duration,
    containers: Mutex<HashMap<ContainerId, Arc<Container>>>,
    id_prefix: String,
    next_id: AtomicU64,
    // Dropped last: stops the epoch thread.
    _ticker: EpochTicker,
}

struct Container {
    pod_uid: String,
    container_name: String,
    digest: String,
    log: CriLog,
    template: Template,
    lifecycle: Mutex<Lifecycle>,
    signals: watch::Sender<Option<Signal>>,
    exit: watch::Sender<Option<ExitStatus>>,
}

enum Lifecycle {
    Created(Box<Prepared>),
    Running { started_at: SystemTime },
    Exited(ExitStatus),
}

impl Lifecycle {
    fn name(&self) -> &'static str {
        match self {
            Lifecycle::Created(_) => "created",
            Lifecycle::Running { .. } => "running",
            Lifecycle::Exited(_) => "exited",
        }
    }
}

impl WasmRuntime {
    pub fn new(config: WasmConfig) -> Result<Self, RuntimeError> {
        let engine = engine::build(&config)?;
        let cache = ArtifactCache::new(&engine, config.cache_dir.clone())?;
        let ticker = EpochTicker::start(engine.clone(), config.epoch_tick)?;
        let boot = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos();
        Ok(Self {
            engine,
            cache,
            epoch_tick: config.epoch_tick,
            containers: Mutex::new(HashMap::new()),
            // Ids stay unique across restarts of the node agent.
            id_prefix: format!("{boot:x}"),
            next_id: AtomicU64::new(0),
            _ticker: ticker,
        })
    }

    /// The on-disk artifact a module of this digest is cached as.
    pub fn cached_artifact_path(&self, digest: &str) -> PathBuf {
        self.cache.path_for(digest)
    }

    fn container(&self, id: &ContainerId) -> Result<Arc<Container>, RuntimeError> {
        self.containers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(id)
            .cloned()
            .ok_or_else(|| RuntimeError::NotFound { id: id.clone() })
    }
}

impl Container {
    fn lifecycle(&self) -> std::sync::MutexGuard<'_, Lifecycle> {
        self.lifecycle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Records the end of the container and wakes its waiters.
    fn exited(&self, status: ExitStatus) {
        if let Err(error) = self.log.finish() {
            tracing::warn!(id = %self.template.id, %error, "flushing the container log");
        }
        *self.lifecycle() = Lifecycle::Exited(status.clone());
        self.exit.send_replace(Some(status));
    }

    /// Ends a container that was never started, as `kill` does; false if it was started.
    fn stop_unstarted(&self, signal: Signal) -> bool {
        let now = SystemTime::now();
        let status = ExitStatus {
            code: signal.exit_code(),
            reason: ExitReason::Error,
            message: Some(format!("stopped by {signal:?} before it started")),
            started_at: now,
            finished_at: now,
        };
        {
            let mut lifecycle = self.lifecycle();
            if !matches!(*lifecycle, Lifecycle::Created(_)) {
                return false;
            }
            *lifecycle = Lifecycle::Exited(status.clone());
        }
        self.exit.send_replace(Some(status));
        true
    }

    /// Signals the container; a `Term` never downgrades an earlier `Kill`.
    fn signal(&self, signal: Signal) {
        self.signals.send_if_modified(|current| {
            let upgrade = *current != Some(Signal::Kill) && *current != Some(signal);
            if upgrade {
                *current = Some(signal);
            }
            upgrade
        });
    }
}

#[async_trait]
impl Runtime for WasmRuntime {
    fn handler(&self) -> &str {
        HANDLER
    }

    async fn create(&self, spec: &ContainerSpec) -> Result<ContainerId, RuntimeError> {
        let Image::Wasm(module) = &spec.image else {
            return Err(RuntimeError::UnsupportedImage {
                handler: HANDLER,
                container: spec.container_name.clone(),
            });
        };
        let artifact = self.cache.load(module).await?;
        let log = CriLog::open(&spec.log_path)?;
        let id = ContainerId(format!(
            "{}-{}",
            self.id_prefix,
            self.next_id.fetch_add(1, Ordering::Relaxed)
        ));
        let template = Template {
            id: id.clone(),
            engine: self.engine.clone(),
            artifact,
            env: spec.env.clone(),
            working_dir: spec.working_dir.clone(),
            mounts: spec.mounts.clone(),
            limits: spec.limits,
            epoch_tick: self.epoch_tick,
        };
        let prepared = template.prepare(&spec.args, Stdio::Log(log.clone()))?;
        let container = Container {
            pod_uid: spec.pod_uid.clone(),
            container_name: spec.container_name.clone(),
            digest: module.digest.clone(),
            log,
            template,
            lifecycle: Mutex::new(Lifecycle::Created(Box::new(prepared))),
            signals: watch::channel(None).0,
            exit: watch::channel(None).0,
        };
        self.containers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(id.clone(), Arc::new(container));
        Ok(id)
    }

    async fn start(&self, id: &ContainerId) -> Result<(), RuntimeError> {
        let container = self.container(id)?;
        let prepared = {
            let mut lifecycle = container.lifecycle();
            if !matches!(*lifecycle, Lifecycle::Created(_)) {
                return Err(RuntimeError::InvalidState {
                    id: id.clone(),
                    state: lifecycle.name(),
                    action: "start",
                });
            }
            let started_at = SystemTime::now();
            match std::mem::replace(&mut *lifecycle, Lifecycle::Running { started_at }) {
                Lifecycle::Created(prepared) => prepared,
                // Checked above, under the same lock.
                other => {
                    *lifecycle = other;
                    return Err(RuntimeError::InvalidState {
                        id: id.clone(),
                        state: "changing",
                        action: "start",
                    });
                }
            }
        };
        let signals = container.signals.subscribe();
        tokio::spawn(async move {
            let status = prepared.run(signals).await;
            container.exited(status);
        });
        Ok(())
    }

    async fn kill(&self, id: &ContainerId, signal: Signal) -> Result<(), RuntimeError> {
        let container = self.container(id)?;
        if container.stop_unstarted(signal) {
            return Ok(());
        }
        container.signal(signal);
        // A computing guest notices the signal when it next yields, at its epoch deadline:
        // bring that forward.
        self.engine.increment_epoch();
        Ok(())
    }

    async fn wait(&self, id: &ContainerId) -> Result<ExitStatus, RuntimeError> {
        let mut exit = self.container(id)?.exit.subscribe();
        let status = exit
            .wait_for(Option::is_some)
            .await
            .map_err(|_| RuntimeError::NotFound { id: id.clone() })?;
        status
            .clone()
            .ok_or_else(|| RuntimeError::NotFound { id: id.clone() })
    }

    async fn delete(&self, id: &ContainerId) -> Result<(), RuntimeError> {
        let container = self.container(id)?;
        if !matches!(*container.lifecycle(), Lifecycle::Exited(_)) {
            self.kill(id, Signal::Kill).await?;
            self.wait(id).await?;
        }
        let mut containers = self
            .containers
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        containers.remove(id);
        if !containers.values().any(|c| c.digest == container.digest) {
            self.cache.release(&container.digest);
        }
        Ok(())
    }

    async fn exec(&self, id: &ContainerId, spec: ExecSpec) -> Result<ExitStatus, RuntimeError> {
        let container = self.container(id)?;
        {
            let lifecycle = container.lifecycle();
            if !matches!(*lifecycle, Lifecycle::Running { .. }) {
                return Err(RuntimeError::InvalidState {
                    id: id.clone(),
                    state: lifecycle.name(),
                    action: "exec",
                });
            }
        }
        let command = spec.command.clone();
        // The exec dies with its container: it listens to the same signals.
        let signals = container.signals.subscribe();
        let prepared = container.template.prepare(&command, Stdio::Exec(spec))?;
        Ok(prepared.run(signals).await)
    }

    async fn list(&self) -> Result<Vec<ContainerInfo>, RuntimeError> {
        let containers = self
            .containers
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let mut infos: Vec<ContainerInfo> = containers
            .iter()
            .map(|(id, container)| ContainerInfo {
                id: id.clone(),
                pod_uid: container.pod_uid.clone(),
                container_name: container.container_name.clone(),
                state: match &*container.lifecycle() {
                    Lifecycle::Created(_) => ContainerState::Created,
                    Lifecycle::Running { started_at } => ContainerState::Running {
                        started_at: *started_at,
                    },
                    Lifecycle::Exited(status) => ContainerState::Exited(status.clone()),
                },
            })
            .collect();
        infos.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(infos)
    }
}
