//! Pod facts the workload controllers share: activity, readiness and availability.

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::jiff::Timestamp;

/// A pod that counts towards replicas: not finished and not being deleted.
pub fn is_active(pod: &Pod) -> bool {
    let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
    pod.metadata.deletion_timestamp.is_none() && !matches!(phase, Some("Succeeded" | "Failed"))
}

/// When the pod's Ready condition turned true, if it is true.
pub fn ready_since(pod: &Pod) -> Option<Option<Timestamp>> {
    pod.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == "Ready" && c.status == "True")
        .map(|c| c.last_transition_time.as_ref().map(|t| t.0))
}

pub fn is_ready(pod: &Pod) -> bool {
    ready_since(pod).is_some()
}

/// Ready for at least `min_ready_seconds` at `now`.
pub fn is_available(pod: &Pod, min_ready_seconds: i32, now: Timestamp) -> bool {
    match ready_since(pod) {
        None => false,
        Some(_) if min_ready_seconds <= 0 => true,
        Some(None) => false,
        Some(Some(since)) => now.as_second() - since.as_second() >= i64::from(min_ready_seconds),
    }
}

/// Seconds until a ready pod becomes available, when it is ready but not yet available.
pub fn seconds_to_available(pod: &Pod, min_ready_seconds: i32, now: Timestamp) -> Option<i64> {
    let since = ready_since(pod)??;
    let left = i64::from(min_ready_seconds) - (now.as_second() - since.as_second());
    (left > 0).then_some(left)
}
