//! Node lifecycle decisions: when a silent node's conditions turn Unknown, which taints a
//! node should carry for its readiness, and when a pod on a NoExecute-tainted node goes.

use std::time::Duration;

use k8s_openapi::api::core::v1::{Node, NodeCondition, Pod, Taint};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::{SignedDuration, Timestamp};

use crate::node_fit;

pub const UNREACHABLE: &str = "node.kubernetes.io/unreachable";
pub const NOT_READY: &str = "node.kubernetes.io/not-ready";
const OWN_KEYS: [&str; 2] = [UNREACHABLE, NOT_READY];
const EFFECTS: [&str; 2] = ["NoSchedule", "NoExecute"];

/// The conditions a node agent reports that go Unknown when it falls silent.
const AGENT_CONDITIONS: [&str; 4] = ["Ready", "MemoryPressure", "DiskPressure", "PIDPressure"];

fn ready_status(node: &Node) -> Option<&str> {
    node.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == "Ready")
        .map(|c| c.status.as_str())
}

/// The node's conditions with every agent-reported one Unknown, or None when they already
/// are. A node that never reported gets a Ready condition saying so.
pub fn unknown_conditions(node: &Node, now: Timestamp) -> Option<Vec<NodeCondition>> {
    let mut conditions = node
        .status
        .as_ref()
        .and_then(|s| s.conditions.clone())
        .unwrap_or_default();
    let mut changed = false;
    for condition in conditions
        .iter_mut()
        .filter(|c| AGENT_CONDITIONS.contains(&c.type_.as_str()) && c.status != "Unknown")
    {
        condition.status = "Unknown".into();
        condition.reason = Some("NodeStatusUnknown".into());
        condition.message = Some("Kubelet stopped posting node status.".into());
        condition.last_transition_time = Some(Time(now));
        changed = true;
    }
    if !conditions.iter().any(|c| c.type_ == "Ready") {
        conditions.push(NodeCondition {
            type_: "Ready".into(),
            status: "Unknown".into(),
            reason: Some("NodeStatusNeverUpdated".into()),
            message: Some("Kubelet never posted node status.".into()),
            last_heartbeat_time: node.metadata.creation_timestamp.clone(),
            last_transition_time: Some(Time(now)),
        });
        changed = true;
    }
    changed.then_some(conditions)
}

/// The taint key a node should carry: unreachable while silent, not-ready while it says it
/// is not ready, none otherwise (a node that speaks again is reachable, whatever its
/// conditions still say until it reports them).
pub fn wanted_taint(node: &Node, silent: bool) -> Option<&'static str> {
    if silent {
        Some(UNREACHABLE)
    } else if ready_status(node) == Some("False") {
        Some(NOT_READY)
    } else {
        None
    }
}

/// The node's taints with the lifecycle taints set to `wanted` (NoSchedule and NoExecute),
/// or None when they already are. Kept taints keep their `timeAdded`; new NoExecute taints
/// get `now`.
pub fn retaint(node: &Node, wanted: Option<&str>, now: Timestamp) -> Option<Vec<Taint>> {
    let current = node
        .spec
        .as_ref()
        .and_then(|s| s.taints.clone())
        .unwrap_or_default();
    let is_own = |t: &Taint| OWN_KEYS.contains(&t.key.as_str());
    let mut next: Vec<Taint> = current
        .iter()
        .filter(|t| {
            !is_own(t) || (Some(t.key.as_str()) == wanted && EFFECTS.contains(&t.effect.as_str()))
        })
        .cloned()
        .collect();
    if let Some(key) = wanted {
        for effect in EFFECTS {
            if !next.iter().any(|t| t.key == key && t.effect == effect) {
                next.push(Taint {
                    key: key.into(),
                    effect: effect.into(),
                    time_added: (effect == "NoExecute").then_some(Time(now)),
                    value: None,
                });
            }
        }
    }
    (next != current).then_some(next)
}

/// When a pod on a node with these taints is to be evicted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Eviction {
    Never,
    /// At this time: the taint's time plus the shortest `tolerationSeconds` among the
    /// tolerations the pod relies on. A time in the past means now.
    At(Timestamp),
}

/// `added` gives the time each taint counts from (its `timeAdded`, or when first seen).
pub fn eviction(pod: &Pod, taints: &[Taint], added: impl Fn(&Taint) -> Timestamp) -> Eviction {
    let tolerations = pod
        .spec
        .as_ref()
        .and_then(|s| s.tolerations.clone())
        .unwrap_or_default();
    let mut earliest: Option<Timestamp> = None;
    for taint in taints.iter().filter(|t| t.effect == "NoExecute") {
        let matching: Vec<_> = tolerations
            .iter()
            .filter(|t| node_fit::tolerates(t, taint))
            .collect();
        // An untolerated NoExecute taint evicts at once; a toleration without seconds
        // tolerates it forever.
        let seconds = if matching.is_empty() {
            Some(0)
        } else {
            matching.iter().filter_map(|t| t.toleration_seconds).min()
        };
        if let Some(seconds) = seconds {
            let due = added(taint) + SignedDuration::from_secs(seconds.max(0));
            earliest = Some(earliest.map_or(due, |e| e.min(due)));
        }
    }
    earliest.map_or(Eviction::Never, Eviction::At)
}

/// Whether a node silent for `silent_for` is past its grace period.
pub fn is_silent(silent_for: Duration, grace: Duration) -> bool {
    silent_for > grace
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::{NodeSpec, NodeStatus};
    use serde_json::json;

    use super::*;

    fn at(s: i64) -> Timestamp {
        Timestamp::from_second(1_700_000_000 + s).unwrap()
    }

    fn node(conditions: serde_json::Value, taints: serde_json::Value) -> Node {
        serde_json::from_value(json!({
            "metadata": {"name": "n"},
            "spec": {"taints": taints},
            "status": {"conditions": conditions}
        }))
        .unwrap()
    }

    #[test]
    fn silent_node_conditions_go_unknown_once() {
        let n = node(
            json!([{"type": "Ready", "status": "True"}, {"type": "MemoryPressure", "status": "False"}]),
            json!([]),
        );
        let conditions = unknown_conditions(&n, at(0)).unwrap();
        assert!(conditions.iter().all(|c| c.status == "Unknown"));
        let ready = conditions.iter().find(|c| c.type_ == "Ready").unwrap();
        assert_eq!(ready.reason.as_deref(), Some("NodeStatusUnknown"));
        assert_eq!(
            ready.message.as_deref(),
            Some("Kubelet stopped posting node status.")
        );
        let again = Node {
            status: Some(NodeStatus {
                conditions: Some(conditions),
                ..NodeStatus::default()
            }),
            ..n
        };
        assert_eq!(unknown_conditions(&again, at(1)), None);
        let never = node(json!([]), json!([]));
        let added = unknown_conditions(&never, at(0)).unwrap();
        assert_eq!(added[0].reason.as_deref(), Some("NodeStatusNeverUpdated"));
    }

    #[test]
    fn taints_follow_reachability_and_readiness() {
        let ready = node(json!([{"type": "Ready", "status": "True"}]), json!([]));
        assert_eq!(wanted_taint(&ready, true), Some(UNREACHABLE));
        assert_eq!(wanted_taint(&ready, false), None);
        let not_ready = node(json!([{"type": "Ready", "status": "False"}]), json!([]));
        assert_eq!(wanted_taint(&not_ready, false), Some(NOT_READY));
        let unknown = node(json!([{"type": "Ready", "status": "Unknown"}]), json!([]));
        assert_eq!(wanted_taint(&unknown, false), None);
    }

    #[test]
    fn retaint_adds_and_removes_only_lifecycle_taints() {
        let n = node(
            json!([]),
            json!([{"key": "dedicated", "effect": "NoSchedule"}]),
        );
        let tainted = retaint(&n, Some(UNREACHABLE), at(5)).unwrap();
        assert_eq!(tainted.len(), 3);
        let no_execute = tainted.iter().find(|t| t.effect == "NoExecute").unwrap();
        assert_eq!(no_execute.time_added, Some(Time(at(5))));
        let no_schedule = tainted
            .iter()
            .find(|t| t.key == UNREACHABLE && t.effect == "NoSchedule")
            .unwrap();
        assert_eq!(no_schedule.time_added, None);
        let n2 = Node {
            spec: Some(NodeSpec {
                taints: Some(tainted.clone()),
                ..NodeSpec::default()
            }),
            ..n
        };
        assert_eq!(retaint(&n2, Some(UNREACHABLE), at(9)), None);
        let cleared = retaint(&n2, None, at(9)).unwrap();
        assert_eq!(cleared.len(), 1);
        assert_eq!(cleared[0].key, "dedicated");
        let swapped = retaint(&n2, Some(NOT_READY), at(9)).unwrap();
        assert!(swapped.iter().all(|t| t.key != UNREACHABLE));
        assert_eq!(swapped.iter().filter(|t| t.key == NOT_READY).count(), 2);
    }

    fn pod(tolerations: serde_json::Value) -> Pod {
        serde_json::from_value(json!({"metadata": {"name": "p"},
            "spec": {"containers": [], "tolerations": tolerations}}))
        .unwrap()
    }

    #[test]
    fn eviction_follows_toleration_seconds() {
        let taints = vec![
            Taint {
                key: UNREACHABLE.into(),
                effect: "NoExecute".into(),
                time_added: Some(Time(at(100))),
                value: None,
            },
            Taint {
                key: UNREACHABLE.into(),
                effect: "NoSchedule".into(),
                time_added: None,
                value: None,
            },
        ];
        let added = |t: &Taint| t.time_added.as_ref().map_or(at(0), |t| t.0);
        assert_eq!(
            eviction(&pod(json!([])), &taints, added),
            Eviction::At(at(100))
        );
        let tolerating = pod(json!([{"key": UNREACHABLE, "operator": "Exists",
            "effect": "NoExecute", "tolerationSeconds": 300}]));
        assert_eq!(eviction(&tolerating, &taints, added), Eviction::At(at(400)));
        let forever = pod(json!([{"operator": "Exists"}]));
        assert_eq!(eviction(&forever, &taints, added), Eviction::Never);
        let both = pod(json!([{"operator": "Exists"},
            {"key": UNREACHABLE, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 5}]));
        assert_eq!(eviction(&both, &taints, added), Eviction::At(at(105)));
        assert_eq!(
            eviction(&pod(json!([])), &taints[1..], added),
            Eviction::Never
        );
    }

    #[test]
    fn grace_period_boundary() {
        assert!(!is_silent(Duration::from_secs(50), Duration::from_secs(50)));
        assert!(is_silent(Duration::from_secs(51), Duration::from_secs(50)));
    }
}
