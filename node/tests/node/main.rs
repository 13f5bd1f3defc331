//! The node agent against an in-process API server and the real wasm runtime, one test
//! binary for the agent, its kubelet API and its probes.

mod common;

mod agent;
mod kubelet;
mod probes;
