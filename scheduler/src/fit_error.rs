//! The message of a `FailedScheduling` event, in kube-scheduler's words:
//! "0/3 nodes are available: 1 node(s) were unschedulable, 2 Insufficient memory.
//! preemption: 0/3 nodes are available: 3 Preemption is not helpful for scheduling."

use std::collections::HashMap;
use std::fmt;

use crate::plugins::Reason;

/// Why a pod fits no node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FitError {
    /// The pod cannot be considered at all (e.g. its RuntimeClass does not exist).
    Precondition { nodes: usize, message: String },
    /// Every node refused; counts per reason.
    NoFit {
        nodes: usize,
        reasons: HashMap<String, usize>,
    },
}

impl FitError {
    pub fn from_reasons<'a>(nodes: usize, reasons: impl IntoIterator<Item = &'a Reason>) -> Self {
        let mut counts: HashMap<String, usize> = HashMap::new();
        for reason in reasons {
            *counts.entry(reason.to_string()).or_default() += 1;
        }
        FitError::NoFit {
            nodes,
            reasons: counts,
        }
    }
}

impl fmt::Display for FitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FitError::Precondition { nodes, message } => {
                write!(f, "0/{nodes} nodes are available: {message}.")
            }
            FitError::NoFit { nodes, reasons } => {
                write!(f, "0/{nodes} nodes are available")?;
                // kube-scheduler sorts the "<count> <reason>" strings as text.
                let mut parts: Vec<String> = reasons
                    .iter()
                    .map(|(reason, count)| format!("{count} {reason}"))
                    .collect();
                parts.sort();
                if parts.is_empty() {
                    f.write_str(".")?;
                } else {
                    write!(f, ": {}.", parts.join(", "))?;
                }
                // This scheduler does not preempt, so no eviction could make room.
                write!(
                    f,
                    " preemption: 0/{nodes} nodes are available: {nodes} Preemption is not helpful for scheduling."
                )
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_counts_and_sorts_reasons() {
        let taint = Reason::UntoleratedTaint {
            key: "node.kubernetes.io/unreachable".into(),
            value: String::new(),
        };
        let memory = Reason::Insufficient("memory");
        let err = FitError::from_reasons(3, [&memory, &taint, &memory]);
        assert_eq!(
            err.to_string(),
            "0/3 nodes are available: 1 node(s) had untolerated taint \
             {node.kubernetes.io/unreachable: }, 2 Insufficient memory. preemption: 0/3 nodes \
             are available: 3 Preemption is not helpful for scheduling."
        );
    }

    #[test]
    fn no_nodes_and_preconditions() {
        let err = FitError::from_reasons(0, []);
        assert!(
            err.to_string()
                .starts_with("0/0 nodes are available. preemption")
        );
        let err = FitError::Precondition {
            nodes: 2,
            message: "runtimeclass.node.k8s.io \"x\" not found".into(),
        };
        assert_eq!(
            err.to_string(),
            "0/2 nodes are available: runtimeclass.node.k8s.io \"x\" not found."
        );
    }
}
