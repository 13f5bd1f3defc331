//! How containers end and what a runtime reports about them.

use std::time::SystemTime;

use crate::ContainerId;

/// The two signals the node agent sends: a polite request and the end.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Signal {
    Term,
    Kill,
}

impl Signal {
    /// The exit code a process killed by this signal reports (128 + signal number).
    pub fn exit_code(self) -> i32 {
        match self {
            Signal::Term => 128 + 15,
            Signal::Kill => 128 + 9,
        }
    }
}

/// `containerStatuses[].state.terminated.reason`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExitReason {
    Completed,
    Error,
    OomKilled,
}

impl ExitReason {
    pub fn as_str(self) -> &'static str {
        match self {
            ExitReason::Completed => "Completed",
            ExitReason::Error => "Error",
            ExitReason::OomKilled => "OOMKilled",
        }
    }
}

/// How a container (or an exec) ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExitStatus {
    pub code: i32,
    pub reason: ExitReason,
    /// Why, when the reason alone does not say (a trap message, the signal that killed it).
    pub message: Option<String>,
    pub started_at: SystemTime,
    pub finished_at: SystemTime,
}

/// Where a container is in its lifecycle.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ContainerState {
    Created,
    Running { started_at: SystemTime },
    Exited(ExitStatus),
}

/// One container as `list` reports it.
#[derive(Clone, Debug)]
pub struct ContainerInfo {
    pub id: ContainerId,
    pub pod_uid: String,
    pub container_name: String,
    pub state: ContainerState,
}
