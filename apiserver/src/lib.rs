//! The rkube API server: Kubernetes REST over a revisioned store, served from a watch cache.

pub mod admission;
pub mod allocate;
pub mod auth;
pub mod body;
pub mod cache;
pub mod discovery;
pub mod error;
pub mod filters;
pub mod handlers;
pub mod in_process;
pub mod kubelet_proxy;
pub mod list;
pub mod managed;
pub mod objects;
pub mod patches;
pub mod pki;
pub mod pod_admission;
pub mod protobuf;
pub mod request;
pub mod run;
pub mod serve;
pub mod server;
pub mod store;
pub mod subresources;
pub mod watch;
pub mod write;
