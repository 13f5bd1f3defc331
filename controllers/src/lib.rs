//! rkube's controller manager: the controllers that drive workloads, namespaces, service
//! endpoints and garbage collection, each a reconcile loop over shared watch caches.

pub mod context;
pub mod deployment;
pub mod discovery;
pub mod endpoints;
pub mod endpointslice;
pub mod expectations;
pub mod gc;
pub mod informer;
pub mod manager;
pub mod namespace;
pub mod ownership;
pub mod pods;
pub mod queue;
pub mod replicaset;
pub mod selector;
pub mod serviceaccount;
