//! Container runtimes behind one small async trait, the layer between rkube's node agent and
//! whatever executes a container (in-process wasmtime, or containerd with runc).
//!
//! The node agent owns the lifecycle: it calls `create`, `start`, `wait`, `kill` and `delete`
//! in that order and keeps what it needs to recover with `list`.

pub mod containerd;
mod cri_log;
mod error;
mod spec;
mod status;
pub mod wasm;

use async_trait::async_trait;

pub use cri_log::{CriLog, LogStream};
pub use error::RuntimeError;
pub use spec::{
    ContainerId, ContainerSpec, ExecSpec, Image, Limits, ModuleSource, Mount, OciImage, RunAs,
};
pub use status::{ContainerInfo, ContainerState, ExitReason, ExitStatus, Signal};

/// One container runtime, named by its RuntimeClass handler.
#[async_trait]
pub trait Runtime: Send + Sync {
    /// The RuntimeClass handler this runtime serves, e.g. `wasmtime`.
    fn handler(&self) -> &str;

    /// Prepares a container (module loaded, log file open, mounts checked) without running it.
    async fn create(&self, spec: &ContainerSpec) -> Result<ContainerId, RuntimeError>;

    /// Starts a created container; returns once it is running.
    async fn start(&self, id: &ContainerId) -> Result<(), RuntimeError>;

    /// Signals a running container: `Term` runs its handler if it has one (a wasm guest has
    /// none, so it ends at once with 143), `Kill` ends it at once with 137.
    async fn kill(&self, id: &ContainerId, signal: Signal) -> Result<(), RuntimeError>;

    /// Waits until the container has exited and returns how it ended.
    async fn wait(&self, id: &ContainerId) -> Result<ExitStatus, RuntimeError>;

    /// Removes a container, killing it first if it still runs.
    async fn delete(&self, id: &ContainerId) -> Result<(), RuntimeError>;

    /// Runs a command inside a running container and waits for it to end.
    async fn exec(&self, id: &ContainerId, spec: ExecSpec) -> Result<ExitStatus, RuntimeError>;

    /// The containers this runtime knows, for the node agent to recover its view.
    async fn list(&self) -> Result<Vec<ContainerInfo>, RuntimeError>;
}
