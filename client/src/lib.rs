//! What every rkube component that is a Kubernetes client shares: leader election through a
//! Lease, recording core/v1 Events and bootstrap tokens for joining nodes.

pub mod bootstrap;
pub mod events;
pub mod leader;
pub mod time;
