//! rkube's controller manager: the controllers that drive workloads, jobs, namespaces,
//! service endpoints, node health and garbage collection, each a reconcile loop over watch
//! caches.

mod api_status;
pub mod context;
pub mod cronjob;
pub mod daemonset;
pub mod deployment;
pub mod discovery;
pub mod endpoints;
pub mod endpointslice;
pub mod expectations;
pub mod gc;
pub mod informer;
pub mod job;
pub mod manager;
pub mod namespace;
mod node_fit;
pub mod node_lifecycle;
pub mod owned_pods;
pub mod ownership;
pub mod queue;
mod record;
pub mod replicaset;
pub mod root_ca;
pub mod serviceaccount;
pub mod statefulset;
mod workload;
