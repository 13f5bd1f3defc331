//! The ReplicaSet controller's decisions on cached state: which pods to create or delete,
//! and the status to report.

use std::cmp::Ordering;

use k8s_openapi::api::apps::v1::{ReplicaSet, ReplicaSetStatus};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::jiff::Timestamp;

use crate::owned_pods;

/// Pods to add, or the pods to remove (best to remove first).
#[derive(Debug, PartialEq, Eq)]
pub enum Scale {
    Create(usize),
    Delete(Vec<String>),
    Steady,
}

/// Compares active `pods` to the wanted count.
pub fn scale(wanted: i32, pods: &[&Pod]) -> Scale {
    let wanted = usize::try_from(wanted).unwrap_or(0);
    match pods.len().cmp(&wanted) {
        Ordering::Less => Scale::Create(wanted - pods.len()),
        Ordering::Equal => Scale::Steady,
        Ordering::Greater => {
            let mut ranked = pods.to_vec();
            ranked.sort_by(|a, b| deletion_rank(a, b));
            Scale::Delete(
                ranked[..pods.len() - wanted]
                    .iter()
                    .filter_map(|p| p.metadata.name.clone())
                    .collect(),
            )
        }
    }
}

/// Orders pods so that the cheapest to lose come first, like Kubernetes' ActivePods sort:
/// unscheduled before scheduled, pending before running, not ready before ready, ready for
/// less time before longer, more restarts before fewer, newer before older.
fn deletion_rank(a: &Pod, b: &Pod) -> Ordering {
    let scheduled = |p: &Pod| {
        p.spec
            .as_ref()
            .and_then(|s| s.node_name.as_deref())
            .is_some_and(|n| !n.is_empty())
    };
    let phase = |p: &Pod| match p.status.as_ref().and_then(|s| s.phase.as_deref()) {
        Some("Pending") => 0,
        Some("Running") => 2,
        _ => 1,
    };
    let restarts = |p: &Pod| -> i32 {
        p.status
            .as_ref()
            .and_then(|s| s.container_statuses.as_ref())
            .map(|cs| cs.iter().map(|c| c.restart_count).sum())
            .unwrap_or(0)
    };
    let ready_since = |p: &Pod| owned_pods::ready_since(p).flatten();
    let created = |p: &Pod| p.metadata.creation_timestamp.as_ref().map(|t| t.0);
    scheduled(a)
        .cmp(&scheduled(b))
        .then(phase(a).cmp(&phase(b)))
        .then(owned_pods::is_ready(a).cmp(&owned_pods::is_ready(b)))
        // Both ready: the more recently ready goes first.
        .then_with(|| ready_since(b).cmp(&ready_since(a)))
        .then(restarts(b).cmp(&restarts(a)))
        .then_with(|| created(b).cmp(&created(a)))
}

/// The status for `rs` given its active pods, keeping conditions the controller set.
pub fn status(rs: &ReplicaSet, active: &[&Pod], now: Timestamp) -> ReplicaSetStatus {
    let min_ready = rs
        .spec
        .as_ref()
        .and_then(|s| s.min_ready_seconds)
        .unwrap_or(0);
    let template_labels = rs
        .spec
        .as_ref()
        .and_then(|s| s.template.as_ref())
        .and_then(|t| t.metadata.as_ref())
        .and_then(|m| m.labels.clone())
        .unwrap_or_default();
    let count = |f: &dyn Fn(&Pod) -> bool| active.iter().filter(|p| f(p)).count() as i32;
    let fully_labeled = count(&|p| {
        let labels = p.metadata.labels.as_ref();
        template_labels
            .iter()
            .all(|(k, v)| labels.and_then(|l| l.get(k)) == Some(v))
    });
    let previous = rs.status.clone().unwrap_or_default();
    ReplicaSetStatus {
        replicas: active.len() as i32,
        fully_labeled_replicas: Some(fully_labeled),
        ready_replicas: Some(count(&owned_pods::is_ready)),
        available_replicas: Some(count(&|p| owned_pods::is_available(p, min_ready, now))),
        observed_generation: rs.metadata.generation,
        conditions: previous.conditions,
        terminating_replicas: previous.terminating_replicas,
    }
}

/// The shortest wait until a ready pod passes minReadySeconds, to recount then.
pub fn next_availability(rs: &ReplicaSet, active: &[&Pod], now: Timestamp) -> Option<i64> {
    let min_ready = rs.spec.as_ref()?.min_ready_seconds.unwrap_or(0);
    active
        .iter()
        .filter_map(|p| owned_pods::seconds_to_available(p, min_ready, now))
        .min()
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::apps::v1::ReplicaSetSpec;
    use k8s_openapi::api::core::v1::{PodCondition, PodSpec, PodStatus};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    use super::*;

    fn pod(name: &str, node: Option<&str>, phase: &str, ready_at: Option<i64>) -> Pod {
        let mut p = Pod::default();
        p.metadata.name = Some(name.into());
        p.metadata.creation_timestamp = Some(Time(Timestamp::from_second(100).unwrap()));
        p.spec = Some(PodSpec {
            node_name: node.map(String::from),
            ..PodSpec::default()
        });
        p.status = Some(PodStatus {
            phase: Some(phase.into()),
            conditions: ready_at.map(|at| {
                vec![PodCondition {
                    type_: "Ready".into(),
                    status: "True".into(),
                    last_transition_time: Some(Time(Timestamp::from_second(at).unwrap())),
                    ..PodCondition::default()
                }]
            }),
            ..PodStatus::default()
        });
        p
    }

    #[test]
    fn scales_up_by_the_missing_count() {
        let a = pod("a", None, "Pending", None);
        assert_eq!(scale(3, &[&a]), Scale::Create(2));
        assert_eq!(scale(1, &[&a]), Scale::Steady);
        assert_eq!(scale(-1, &[]), Scale::Steady);
    }

    #[test]
    fn deletes_unscheduled_then_pending_then_not_ready_then_newest_ready() {
        let ready_old = pod("ready-old", Some("n"), "Running", Some(10));
        let ready_new = pod("ready-new", Some("n"), "Running", Some(50));
        let not_ready = pod("not-ready", Some("n"), "Running", None);
        let pending = pod("pending", Some("n"), "Pending", None);
        let unscheduled = pod("unscheduled", None, "Pending", None);
        let all = [&ready_old, &ready_new, &not_ready, &pending, &unscheduled];
        let Scale::Delete(names) = scale(1, &all) else {
            panic!("expected deletions");
        };
        assert_eq!(
            names,
            ["unscheduled", "pending", "not-ready", "ready-new"].map(String::from)
        );
    }

    #[test]
    fn status_counts_ready_and_available_after_min_ready_seconds() {
        let mut rs = ReplicaSet::default();
        rs.metadata.generation = Some(4);
        rs.spec = Some(ReplicaSetSpec {
            min_ready_seconds: Some(30),
            ..ReplicaSetSpec::default()
        });
        let long = pod("long", Some("n"), "Running", Some(0));
        let recent = pod("recent", Some("n"), "Running", Some(90));
        let starting = pod("starting", Some("n"), "Pending", None);
        let active = [&long, &recent, &starting];
        let now = Timestamp::from_second(100).unwrap();
        let status = status(&rs, &active, now);
        assert_eq!(status.replicas, 3);
        assert_eq!(status.ready_replicas, Some(2));
        assert_eq!(status.available_replicas, Some(1));
        assert_eq!(status.fully_labeled_replicas, Some(3));
        assert_eq!(status.observed_generation, Some(4));
        assert_eq!(next_availability(&rs, &active, now), Some(20));
    }
}
