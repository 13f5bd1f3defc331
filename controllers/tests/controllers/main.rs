//! The controllers against a real in-process API server, one test binary for every
//! controller so that the workspace links one executable instead of eight.

mod common;

mod cronjob;
mod daemonset;
mod deployment;
mod job;
mod namespace;
mod node_lifecycle;
mod root_ca;
mod services;
mod statefulset;
