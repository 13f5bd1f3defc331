//! controllers

mod api_status;
pub mod cronjob;
pub mod daemonset;
pub mod job;
mod node_fit;
pub mod node_lifecycle;
pub mod owned_pods;
mod record;
pub mod statefulset;
