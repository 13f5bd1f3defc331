//! The rkube scheduler: a Kubernetes client that watches unbound pods, filters and scores
//! nodes from an incrementally maintained cache, and binds pods through `pods/binding`.

pub mod algorithm;
pub mod binder;
pub mod cache;
pub mod event_sink;
pub mod fit_error;
pub mod informers;
pub mod node_info;
pub mod plugins;
pub mod pod_info;
pub mod queue;
pub mod resources;
pub mod run;
pub mod state;

pub use run::{SchedulerError, SchedulerOptions, run};
