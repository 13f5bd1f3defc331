//! Shared test harness for the rkube workspace: free ports, supervised daemons, a real etcd, an OCI registry,
//! containerd with a busybox image, the `rkube` API server, pinned kubectl releases and the
//! example wasm guests.

mod busybox;
mod containerd;
mod daemon;
mod etcd;
mod guests;
mod plain_image;
mod registry;
mod rkube;
mod wat_guest;

pub use busybox::push_busybox;
pub use containerd::{Containerd, is_root};
pub use daemon::{Daemon, free_port};
pub use etcd::Etcd;
pub use guests::{guest_wasm, guests_dir};
pub use registry::{REGISTRY_PASSWORD, REGISTRY_USERNAME, Registry};
pub use rkube::{Kubectl, RkubeApiserver};
pub use wat_guest::wasi_module;
