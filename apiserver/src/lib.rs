//! The rkube API server: Kubernetes REST over a revisioned store.

pub mod store;
