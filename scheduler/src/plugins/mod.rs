//! Filters (may a pod run on a node?) and scores (how good is a node for it?). Each filter
//! answers with the kube-scheduler reasons `FailedScheduling` events count per node.

pub mod affinity;
pub mod allocation;
pub mod fit;
pub mod node_state;
pub mod ports;
pub mod runtime;
pub mod spread;
pub mod taints;

use std::fmt;

use crate::node_info::{NodeEntry, NodeSpec};
use crate::pod_info::PodInfo;

/// Why a node cannot take a pod, worded as kube-scheduler words it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reason {
    Unschedulable,
    NotReady,
    AffinityMismatch,
    UntoleratedTaint { key: String, value: String },
    PortsInUse,
    Insufficient(&'static str),
    TooManyPods,
    MissingRuntimeHandler(String),
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::Unschedulable => f.write_str("node(s) were unschedulable"),
            Reason::NotReady => f.write_str("node(s) were not ready"),
            Reason::AffinityMismatch => {
                f.write_str("node(s) didn't match Pod's node affinity/selector")
            }
            Reason::UntoleratedTaint { key, value } => {
                write!(f, "node(s) had untolerated taint {{{key}: {value}}}")
            }
            Reason::PortsInUse => {
                f.write_str("node(s) didn't have free ports for the requested pod ports")
            }
            Reason::Insufficient(resource) => write!(f, "Insufficient {resource}"),
            Reason::TooManyPods => f.write_str("Too many pods"),
            Reason::MissingRuntimeHandler(handler) => {
                write!(f, "node(s) didn't have the runtime handler {handler:?}")
            }
        }
    }
}

/// A pod that has been resolved against cluster state it needs beyond itself.
pub struct Candidate<'a> {
    pub pod: &'a PodInfo,
    /// The handler of the pod's RuntimeClass.
    pub handler: &'a str,
}

/// Runs the filters in order and stops at the first that refuses, as kube-scheduler does, so
/// each node contributes the reasons of one filter.
pub fn filter(candidate: &Candidate<'_>, entry: &NodeEntry) -> Result<(), Vec<Reason>> {
    let Some(node) = entry.spec.as_ref() else {
        return Err(vec![Reason::NotReady]);
    };
    let pod = candidate.pod;
    let single = |r: Result<(), Reason>| r.map_err(|reason| vec![reason]);
    single(node_state::filter(pod, node))?;
    single(affinity::filter(pod, node))?;
    single(taints::filter(pod, node))?;
    single(runtime::filter(candidate.handler, node))?;
    single(ports::filter(pod, &entry.usage))?;
    fit::filter(pod, node, &entry.usage)
}

/// kube-scheduler's default plugin weights.
const WEIGHT_RESOURCES: i64 = 1;
const WEIGHT_BALANCED: i64 = 1;
const WEIGHT_AFFINITY: i64 = 2;
const WEIGHT_TAINTS: i64 = 3;
const WEIGHT_SPREAD: i64 = 2;

/// The highest score a single plugin gives.
pub const MAX_SCORE: i64 = 100;

/// Scores every feasible node; the result is parallel to `nodes`.
pub fn score(pod: &PodInfo, nodes: &[&NodeEntry]) -> Vec<i64> {
    let specs: Vec<&NodeSpec> = nodes.iter().filter_map(|e| e.spec.as_ref()).collect();
    if specs.len() != nodes.len() {
        // Only nodes with a spec pass the filters; nothing to rank otherwise.
        return vec![0; nodes.len()];
    }
    let affinity = normalize(
        &specs
            .iter()
            .map(|n| affinity::preferred_weight(pod, n))
            .collect::<Vec<_>>(),
        false,
    );
    let taints = normalize(
        &specs
            .iter()
            .map(|n| taints::intolerable_preferences(pod, n))
            .collect::<Vec<_>>(),
        true,
    );
    let spread = match pod.footprint.owner.as_deref() {
        Some(owner) => normalize(
            &nodes
                .iter()
                .map(|e| spread::siblings(owner, &e.usage))
                .collect::<Vec<_>>(),
            true,
        ),
        None => vec![MAX_SCORE; nodes.len()],
    };
    nodes
        .iter()
        .zip(&specs)
        .enumerate()
        .map(|(i, (entry, spec))| {
            WEIGHT_RESOURCES * allocation::least_allocated(pod, spec, &entry.usage)
                + WEIGHT_BALANCED * allocation::balanced(pod, spec, &entry.usage)
                + WEIGHT_AFFINITY * affinity[i]
                + WEIGHT_TAINTS * taints[i]
                + WEIGHT_SPREAD * spread[i]
        })
        .collect()
}

/// Scales raw counts to 0..=100 by the largest; `reverse` makes fewer better.
pub fn normalize(raw: &[i64], reverse: bool) -> Vec<i64> {
    let max = raw.iter().copied().max().unwrap_or(0);
    raw.iter()
        .map(|&r| {
            let scaled = if max > 0 { r * MAX_SCORE / max } else { 0 };
            if reverse { MAX_SCORE - scaled } else { scaled }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalize_scales_by_the_largest() {
        assert_eq!(normalize(&[0, 5, 10], false), vec![0, 50, 100]);
        assert_eq!(normalize(&[0, 5, 10], true), vec![100, 50, 0]);
        assert_eq!(normalize(&[0, 0], true), vec![100, 100]);
        assert_eq!(normalize(&[0, 0], false), vec![0, 0]);
    }

    #[test]
    fn reasons_read_like_kube_scheduler() {
        let taint = Reason::UntoleratedTaint {
            key: "node.kubernetes.io/unreachable".into(),
            value: String::new(),
        };
        assert_eq!(
            taint.to_string(),
            "node(s) had untolerated taint {node.kubernetes.io/unreachable: }"
        );
        assert_eq!(
            Reason::Insufficient("memory").to_string(),
            "Insufficient memory"
        );
    }
}
