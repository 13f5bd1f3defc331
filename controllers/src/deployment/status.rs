//! Deployment status and its Available and Progressing conditions, with the reasons
//! `kubectl rollout status` and `kubectl describe` read.

use k8s_openapi::api::apps::v1::{Deployment, DeploymentCondition, DeploymentStatus, ReplicaSet};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;

pub const PROGRESSING: &str = "Progressing";
pub const AVAILABLE: &str = "Available";
pub const NEW_RS_CREATED: &str = "NewReplicaSetCreated";
pub const FOUND_NEW_RS: &str = "FoundNewReplicaSet";
pub const RS_UPDATED: &str = "ReplicaSetUpdated";
pub const NEW_RS_AVAILABLE: &str = "NewReplicaSetAvailable";
pub const TIMED_OUT: &str = "ProgressDeadlineExceeded";
pub const PAUSED: &str = "DeploymentPaused";
pub const RESUMED: &str = "DeploymentResumed";

/// The Kubernetes default for `spec.progressDeadlineSeconds`.
const DEFAULT_DEADLINE: i32 = 600;

pub fn condition<'a>(status: &'a DeploymentStatus, type_: &str) -> Option<&'a DeploymentCondition> {
    status
        .conditions
        .iter()
        .flatten()
        .find(|c| c.type_ == type_)
}

pub fn new_condition(
    type_: &str,
    status: &str,
    reason: &str,
    message: String,
) -> DeploymentCondition {
    let now = Time(Timestamp::now());
    DeploymentCondition {
        type_: type_.into(),
        status: status.into(),
        reason: Some(reason.into()),
        message: Some(message),
        last_update_time: Some(now.clone()),
        last_transition_time: Some(now),
    }
}

/// Sets a condition like Kubernetes: nothing changes when status and reason are the same,
/// and the transition time is kept when only the reason changes.
pub fn set_condition(status: &mut DeploymentStatus, mut cond: DeploymentCondition) {
    let conditions = status.conditions.get_or_insert_with(Vec::new);
    if let Some(current) = conditions.iter().find(|c| c.type_ == cond.type_) {
        if current.status == cond.status && current.reason == cond.reason {
            return;
        }
        if current.status == cond.status {
            cond.last_transition_time = current.last_transition_time.clone();
        }
    }
    conditions.retain(|c| c.type_ != cond.type_);
    conditions.push(cond);
}

/// `progressDeadlineSeconds`, or `None` when it is disabled (the maximum int32).
pub fn deadline(d: &Deployment) -> Option<i32> {
    let seconds = d
        .spec
        .as_ref()
        .and_then(|s| s.progress_deadline_seconds)
        .unwrap_or(DEFAULT_DEADLINE);
    (seconds != i32::MAX).then_some(seconds)
}

/// Replica counts summed over the Deployment's ReplicaSets; conditions are carried over.
pub fn counts(
    d: &Deployment,
    all: &[&ReplicaSet],
    new: Option<&ReplicaSet>,
    max_unavailable: i32,
) -> DeploymentStatus {
    let of = |rs: &ReplicaSet| rs.status.clone().unwrap_or_default();
    let sum = |f: &dyn Fn(&ReplicaSet) -> i32| all.iter().map(|rs| f(rs)).sum::<i32>();
    let desired = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
    let available = sum(&|rs| of(rs).available_replicas.unwrap_or(0));
    let previous = d.status.clone().unwrap_or_default();
    let mut status = DeploymentStatus {
        observed_generation: d.metadata.generation,
        replicas: Some(sum(&|rs| of(rs).replicas)),
        updated_replicas: Some(new.map(|rs| of(rs).replicas).unwrap_or(0)),
        ready_replicas: Some(sum(&|rs| of(rs).ready_replicas.unwrap_or(0))),
        available_replicas: Some(available),
        unavailable_replicas: Some((desired - available).max(0)),
        collision_count: previous.collision_count,
        conditions: previous.conditions,
        terminating_replicas: None,
    };
    let cond = if available >= desired - max_unavailable {
        new_condition(
            AVAILABLE,
            "True",
            "MinimumReplicasAvailable",
            "Deployment has minimum availability.".into(),
        )
    } else {
        new_condition(
            AVAILABLE,
            "False",
            "MinimumReplicasUnavailable",
            "Deployment does not have minimum availability.".into(),
        )
    };
    set_condition(&mut status, cond);
    status
}

/// Every replica updated and available, no old ones left, and the spec observed.
pub fn is_complete(d: &Deployment, status: &DeploymentStatus) -> bool {
    let desired = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
    status.updated_replicas == Some(desired)
        && status.replicas == Some(desired)
        && status.available_replicas == Some(desired)
        && status.observed_generation >= d.metadata.generation
}

/// More pods updated, ready or available, or fewer old ones, than the last status said.
fn progressed(old: &DeploymentStatus, new: &DeploymentStatus) -> bool {
    let n = |v: Option<i32>| v.unwrap_or(0);
    n(new.updated_replicas) > n(old.updated_replicas)
        || n(new.replicas) - n(new.updated_replicas) < n(old.replicas) - n(old.updated_replicas)
        || n(new.ready_replicas) > n(old.ready_replicas)
        || n(new.available_replicas) > n(old.available_replicas)
}

/// Updates Progressing for a rollout that is not paused; returns how long until the
/// deadline would pass, when it is still running.
pub fn track_progress(
    d: &Deployment,
    new_rs_name: Option<&str>,
    status: &mut DeploymentStatus,
    now: Timestamp,
) -> Option<i64> {
    let Some(deadline) = deadline(d) else {
        if let Some(conditions) = status.conditions.as_mut() {
            conditions.retain(|c| c.type_ != PROGRESSING);
        }
        return None;
    };
    let current = condition(status, PROGRESSING).cloned();
    let done = status.replicas == status.updated_replicas
        && current
            .as_ref()
            .is_some_and(|c| c.reason.as_deref() == Some(NEW_RS_AVAILABLE));
    if done {
        return None;
    }
    let rs = new_rs_name.unwrap_or_default();
    let old = d.status.clone().unwrap_or_default();
    if is_complete(d, status) {
        let message = format!("ReplicaSet \"{rs}\" has successfully progressed.");
        set_condition(
            status,
            new_condition(PROGRESSING, "True", NEW_RS_AVAILABLE, message),
        );
        return None;
    }
    if progressed(&old, status) {
        let message = format!("ReplicaSet \"{rs}\" is progressing.");
        let mut cond = new_condition(PROGRESSING, "True", RS_UPDATED, message);
        // Progress renews lastUpdateTime even when the reason stays the same.
        if let Some(current) = current.as_ref().filter(|c| c.status == "True") {
            cond.last_transition_time = current.last_transition_time.clone();
        }
        if let Some(conditions) = status.conditions.as_mut() {
            conditions.retain(|c| c.type_ != PROGRESSING);
        }
        set_condition(status, cond);
        return Some(i64::from(deadline));
    }
    let current = current?;
    if current.reason.as_deref() == Some(TIMED_OUT) {
        return None;
    }
    let since = current.last_update_time.as_ref().map_or(now, |t| t.0);
    let left = since.as_second() + i64::from(deadline) - now.as_second();
    if left < 0 {
        let message = format!("ReplicaSet \"{rs}\" has timed out progressing.");
        set_condition(
            status,
            new_condition(PROGRESSING, "False", TIMED_OUT, message),
        );
        return None;
    }
    Some(left + 1)
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::apps::v1::{DeploymentSpec, ReplicaSetStatus};

    use super::*;

    fn deployment(replicas: i32, deadline: Option<i32>) -> Deployment {
        let mut d = Deployment::default();
        d.metadata.generation = Some(2);
        d.spec = Some(DeploymentSpec {
            replicas: Some(replicas),
            progress_deadline_seconds: deadline,
            ..DeploymentSpec::default()
        });
        d
    }

    fn rs(replicas: i32, ready: i32, available: i32) -> ReplicaSet {
        ReplicaSet {
            status: Some(ReplicaSetStatus {
                replicas,
                ready_replicas: Some(ready),
                available_replicas: Some(available),
                ..ReplicaSetStatus::default()
            }),
            ..ReplicaSet::default()
        }
    }

    #[test]
    fn counts_sum_replica_sets_and_set_available() {
        let d = deployment(4, None);
        let old = rs(2, 2, 2);
        let new = rs(3, 1, 1);
        let status = counts(&d, &[&old, &new], Some(&new), 1);
        assert_eq!(status.replicas, Some(5));
        assert_eq!(status.updated_replicas, Some(3));
        assert_eq!(status.available_replicas, Some(3));
        assert_eq!(status.unavailable_replicas, Some(1));
        assert_eq!(status.observed_generation, Some(2));
        let available = condition(&status, AVAILABLE).unwrap();
        assert_eq!(available.status, "True");
        let short = counts(&d, &[&old, &new], Some(&new), 0);
        assert_eq!(
            condition(&short, AVAILABLE).unwrap().reason.as_deref(),
            Some("MinimumReplicasUnavailable")
        );
    }

    #[test]
    fn progressing_reports_progress_completion_and_timeouts() {
        let d = deployment(2, Some(30));
        let now = Timestamp::now();
        let new = rs(2, 1, 1);
        let mut status = counts(&d, &[&new], Some(&new), 0);
        assert_eq!(
            track_progress(&d, Some("web-1"), &mut status, now),
            Some(30)
        );
        let cond = condition(&status, PROGRESSING).unwrap().clone();
        assert_eq!(cond.reason.as_deref(), Some(RS_UPDATED));

        // Stuck since long ago: the deadline passes.
        let mut stuck = d.clone();
        let mut old_cond = cond.clone();
        let past = Time(Timestamp::from_second(now.as_second() - 100).unwrap());
        old_cond.last_update_time = Some(past);
        let mut previous = status.clone();
        previous.conditions = Some(vec![old_cond]);
        stuck.status = Some(previous.clone());
        let mut again = previous;
        assert_eq!(track_progress(&stuck, Some("web-1"), &mut again, now), None);
        let timed_out = condition(&again, PROGRESSING).unwrap();
        assert_eq!(
            (timed_out.status.as_str(), timed_out.reason.as_deref()),
            ("False", Some(TIMED_OUT))
        );

        let done = rs(2, 2, 2);
        let mut complete = counts(&d, &[&done], Some(&done), 0);
        assert_eq!(track_progress(&d, Some("web-1"), &mut complete, now), None);
        let cond = condition(&complete, PROGRESSING).unwrap();
        assert_eq!(cond.reason.as_deref(), Some(NEW_RS_AVAILABLE));
        assert_eq!(
            cond.message.as_deref(),
            Some("ReplicaSet \"web-1\" has successfully progressed.")
        );
    }
}
