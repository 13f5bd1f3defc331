//! End-to-end tests: the `rkube` binary, the real kubectl, etcd, containerd and a registry,
//! each started by the test itself. One test binary, so the workspace links it once.

mod cluster;
mod containerd;
mod join;
mod kubectl;
mod security;
mod support;
mod up;
mod wasm;

/// The `rkube` binary cargo built for these tests.
const RKUBE: &str = env!("CARGO_BIN_EXE_rkube");
