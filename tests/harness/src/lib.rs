//! Shared test harness for the rkube workspace: free ports, supervised daemons, a real etcd.

mod daemon;
mod etcd;

pub use daemon::{Daemon, free_port};
pub use etcd::Etcd;
