//! The containerd runtime (RuntimeClass handler `runc`): containers and tasks through
//! containerd's gRPC API in the `rkube` namespace, runc as the OCI runtime, images pulled
//! client-side, output copied from the task's FIFOs into the CRI log.

mod connection;
mod exec;
mod image;
mod list;
mod pull;
mod spec;
mod stdio;
mod task;

use std::collections::HashMap;
use std::fs::File;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use tokio::sync::{OnceCell, watch};

use self::connection::Connection;
use crate::{
    ContainerId, ContainerInfo, ContainerSpec, ExecSpec, ExitStatus, Runtime, RuntimeError, Signal,
};

pub use self::pull::{PullAuth, PulledImage};

/// The RuntimeClass handler this runtime serves.
pub const HANDLER: &str = "runc";

/// Labels rkube puts on its containers, read back when a restarted node adopts them.
const LABEL_POD_UID: &str = "io.rkube.pod-uid";
const LABEL_CONTAINER_NAME: &str = "io.rkube.container-name";
const LABEL_LOG_PATH: &str = "io.rkube.log-path";
const LABEL_STARTED_AT: &str = "io.rkube.started-at";

/// Node-level settings of the containerd runtime.
#[derive(Clone, Debug)]
pub struct ContainerdConfig {
    /// containerd's gRPC socket.
    pub socket: PathBuf,
    /// Where task FIFOs live, one directory per container.
    pub state_dir: PathBuf,
    /// containerd namespace of rkube's images and containers.
    pub namespace: String,
    pub snapshotter: String,
    /// Parent of each container's cgroup (`<parent>/<container id>`).
    pub cgroup_parent: String,
    /// `host[:port]` registries reached over plain HTTP; loopback ones always are.
    pub insecure_registries: Vec<String>,
}

impl ContainerdConfig {
    pub fn new(socket: impl Into<PathBuf>, state_dir: impl Into<PathBuf>) -> Self {
        Self {
            socket: socket.into(),
            state_dir: state_dir.into(),
            namespace: "rkube".to_string(),
            snapshotter: "overlayfs".to_string(),
            cgroup_parent: "/rkube".to_string(),
            insecure_registries: Vec::new(),
        }
    }
}

pub struct ContainerdRuntime {
    connection: Connection,
    config: ContainerdConfig,
    tracked: Mutex<HashMap<ContainerId, Arc<Tracked>>>,
}

/// What this process knows about a container beyond containerd's records.
struct Tracked {
    /// Keepalive handles of the output FIFOs, dropped once the task has exited.
    keepalives: Mutex<Vec<File>>,
    /// True once the output is in the log.
    logs_done: watch::Receiver<bool>,
    started_at: Mutex<Option<SystemTime>>,
    exit: OnceCell<ExitStatus>,
}

impl Tracked {
    fn release_keepalives(&self) {
        self.keepalives
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
    }

    fn started_at(&self) -> Option<SystemTime> {
        *self
            .started_at
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

impl ContainerdRuntime {
    /// Connects to containerd; fails when its socket does not answer.
    pub async fn connect(config: ContainerdConfig) -> Result<Self, RuntimeError> {
        let connection = Connection::connect(&config.socket, &config.namespace).await?;
        std::fs::create_dir_all(&config.state_dir).map_err(|e| RuntimeError::Containerd {
            operation: "state dir",
            target: config.state_dir.display().to_string(),
            reason: e.to_string(),
        })?;
        Ok(Self {
            connection,
            config,
            tracked: Mutex::new(HashMap::new()),
        })
    }

    /// Pulls an image into containerd (registry over HTTPS unless loopback or insecure).
    pub async fn pull(
        &self,
        reference: &str,
        auth: Option<&PullAuth>,
    ) -> Result<PulledImage, RuntimeError> {
        pull::pull(
            &self.connection,
            &self.config.snapshotter,
            &self.config.insecure_registries,
            reference,
            auth,
        )
        .await
    }

    /// Whether an image of this reference is already in containerd's store.
    pub async fn has_image(&self, reference: &str) -> Result<bool, RuntimeError> {
        Ok(self.local_image(reference).await?.is_some())
    }

    /// The stored image of this reference, as its pull reported it; `None` when not pulled.
    pub async fn local_image(&self, reference: &str) -> Result<Option<PulledImage>, RuntimeError> {
        let name = pull::normalised_name(reference)?;
        Ok(image::LocalImage::load(&self.connection, &name)
            .await?
            .map(|image| image.pulled))
    }

    fn fifo_dir(&self, id: &ContainerId) -> PathBuf {
        self.config.state_dir.join(&id.0)
    }

    fn cgroups_path(&self, id: &ContainerId) -> String {
        format!("{}/{}", self.config.cgroup_parent.trim_end_matches('/'), id)
    }

    fn remember(&self, id: &ContainerId, tracked: Tracked) -> Arc<Tracked> {
        let tracked = Arc::new(tracked);
        self.tracked
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(id.clone(), tracked.clone());
        tracked
    }

    fn forget(&self, id: &ContainerId) {
        self.tracked
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(id);
    }

    /// The container's tracking entry, adopting a container a previous process created.
    async fn tracked(&self, id: &ContainerId) -> Result<Arc<Tracked>, RuntimeError> {
        let known = self
            .tracked
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(id)
            .cloned();
        match known {
            Some(tracked) => Ok(tracked),
            None => {
                let container = self.get_container(id).await?;
                Ok(self.adopt(&container))
            }
        }
    }
}

/// A suffix unique within this process and across its restarts.
fn unique_suffix() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos();
    format!("{nanos:x}{:x}", NEXT.fetch_add(1, Ordering::Relaxed))
}

#[async_trait]
impl Runtime for ContainerdRuntime {
    fn handler(&self) -> &str {
        HANDLER
    }

    async fn create(&self, spec: &ContainerSpec) -> Result<ContainerId, RuntimeError> {
        self.create_container(spec).await
    }

    async fn start(&self, id: &ContainerId) -> Result<(), RuntimeError> {
        self.start_task(id).await
    }

    async fn kill(&self, id: &ContainerId, signal: Signal) -> Result<(), RuntimeError> {
        self.kill_task(id, signal).await
    }

    async fn wait(&self, id: &ContainerId) -> Result<ExitStatus, RuntimeError> {
        let tracked = self.tracked(id).await?;
        tracked
            .exit
            .get_or_try_init(|| self.collect_exit(id, &tracked))
            .await
            .cloned()
    }

    async fn delete(&self, id: &ContainerId) -> Result<(), RuntimeError> {
        self.delete_container(id).await
    }

    async fn exec(&self, id: &ContainerId, spec: ExecSpec) -> Result<ExitStatus, RuntimeError> {
        self.exec_process(id, spec).await
    }

    async fn list(&self) -> Result<Vec<ContainerInfo>, RuntimeError> {
        self.list_containers().await
    }
}
