//! What the node agent hands a runtime: a narrow, read-only description of one container.

use std::fmt;
use std::path::PathBuf;

use tokio::io::{AsyncRead, AsyncWrite};

/// A runtime-assigned container id.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ContainerId(pub String);

impl fmt::Display for ContainerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One container to create.
#[derive(Clone, Debug)]
pub struct ContainerSpec {
    pub pod_uid: String,
    pub container_name: String,
    pub image: Image,
    /// argv of a wasm guest, argv[0] included; an OCI container takes its argv from
    /// [`OciImage`] and the image config instead.
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
    pub working_dir: Option<String>,
    pub mounts: Vec<Mount>,
    pub limits: Limits,
    /// stdout and stderr go here in the CRI log format.
    pub log_path: PathBuf,
}

/// What a container runs; each runtime accepts one kind.
#[derive(Clone, Debug)]
pub enum Image {
    /// A wasm module the node fetched (the `wasmtime` runtime).
    Wasm(ModuleSource),
    /// An OCI image already pulled into the runtime's image store (the `runc` runtime).
    Oci(OciImage),
}

/// An OCI image with the container's overrides of the process it describes.
#[derive(Clone, Debug)]
pub struct OciImage {
    /// The name the image was pulled as, e.g. `registry.example/app:1`.
    pub reference: String,
    /// The container's `command`: replaces the image's entrypoint when set.
    pub command: Option<Vec<String>>,
    /// The container's `args`: replaces the image's cmd when set.
    pub args: Option<Vec<String>>,
    /// `securityContext.runAsUser`/`runAsGroup`; unset means the image's user.
    pub user: Option<RunAs>,
    /// The pod's network namespace (a bind-mounted netns file) the container joins, so that the
    /// containers of one pod share its address; unset gives the container a fresh one.
    pub network_namespace: Option<PathBuf>,
    /// The container's host name (its UTS namespace): the pod's, as Kubernetes sets it.
    pub hostname: Option<String>,
}

/// A numeric user (and group) to run the container process as.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RunAs {
    pub uid: u32,
    /// Unset: the group the image's user names, else 0.
    pub gid: Option<u32>,
}

/// An already-fetched module: images are pulled elsewhere.
#[derive(Clone, Debug)]
pub struct ModuleSource {
    /// The `.wasm` file (core module or component).
    pub path: PathBuf,
    /// Content digest of that file (e.g. `sha256:…`); keys the compiled-artifact cache.
    pub digest: String,
}

/// A host directory made visible to the container.
#[derive(Clone, Debug)]
pub struct Mount {
    pub host_path: PathBuf,
    pub container_path: String,
    pub read_only: bool,
}

/// `resources.limits` of the container; `None` means unlimited.
#[derive(Clone, Copy, Debug, Default)]
pub struct Limits {
    pub memory_bytes: Option<u64>,
    pub cpu_millicores: Option<u32>,
}

/// A command to run inside a running container (`kubectl exec`).
pub struct ExecSpec {
    pub command: Vec<String>,
    pub stdin: Option<Box<dyn AsyncRead + Send + Sync + Unpin>>,
    pub stdout: Option<Box<dyn AsyncWrite + Send + Sync + Unpin>>,
    /// Ignored with `tty`: a terminal has one output stream.
    pub stderr: Option<Box<dyn AsyncWrite + Send + Sync + Unpin>>,
    pub tty: bool,
}

impl fmt::Debug for ExecSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ExecSpec")
            .field("command", &self.command)
            .field("stdin", &self.stdin.is_some())
            .field("stdout", &self.stdout.is_some())
            .field("stderr", &self.stderr.is_some())
            .field("tty", &self.tty)
            .finish()
    }
}
