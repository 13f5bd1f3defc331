//! The runtime backends driven directly: wasmtime in-process and containerd over its socket,
//! one test binary for both.

mod common;

mod containerd;
mod wasm;
mod wasm_scheduling;
