//! The rkube node agent: registers a Node, renews its Lease and runs the pods bound to it on
//! the configured container runtimes, reporting their status back through the API.
//!
//! Container logs are kept at `<data_dir>/pods/<pod uid>/<container>/<restart count>.log` in
//! the CRI format (see [`paths`]); with [`KubeletOptions`] the agent serves them, and exec into
//! running containers, over the kubelet API.

mod agent;
mod backend;
mod container;
mod context;
mod env;
mod error;
mod host;
pub mod image_source;
pub mod images;
pub mod join;
mod kubelet;
pub mod network;
mod options;
pub mod paths;
mod pod_files;
mod pod_registry;
mod pod_state;
mod probes;
mod registration;
mod volumes;
mod worker;

pub use agent::{run, run_until};
pub use backend::RuntimeBackend;
pub use error::NodeError;
pub use image_source::{FetchedImage, ImageError, ImageLocation, ImageSource, LocalImages};
pub use kubelet::{KubeletError, KubeletOptions};
pub use options::{Backoff, NodeOptions};
pub use registration::{KUBELET_VERSION, RUNTIME_VERSION};
