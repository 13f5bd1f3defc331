//! Shared test harness for the rkube workspace: free ports, supervised daemons, a real etcd, an OCI registry,
//! containerd with a busybox image, the `rkube` API server and pinned kubectl releases.

mod busybox;
mod containerd;
mod daemon;
mod etcd;
mod registry;
mod rkube;

pub use busybox::push_busybox;
pub use containerd::{Containerd, is_root};
pub use daemon::{Daemon, free_port};
pub use etcd::Etcd;
pub use registry::{REGISTRY_PASSWORD, REGISTRY_USERNAME, Registry};
pub use rkube::{Kubectl, RkubeApiserver};
