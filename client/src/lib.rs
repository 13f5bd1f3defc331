//! What every rkube component that is a Kubernetes client shares: leader election through a
//! Lease and recording core/v1 Events.

pub mod events;
pub mod leader;
pub mod time;
