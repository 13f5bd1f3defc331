//! Reconcile steps the DaemonSet and StatefulSet controllers share: reading their object
//! live, deleting pods with an event each, and looking again once pods may be available.

use std::fmt::Debug;
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::Resource;
use kube::api::{Api, DeleteParams};
use kube::runtime::controller::Action;
use rkube_client::events::{EventType, Recorder};
use serde::de::DeserializeOwned;

use crate::{api_status, record};

/// A pod its owner could not delete.
#[derive(Debug, thiserror::Error)]
#[error("deleting pod {pod}: {source}")]
pub struct DeletePodError {
    pub pod: String,
    #[source]
    pub source: kube::Error,
}

/// The object as the API server has it now, or `None` when it is gone or being deleted:
/// either way there is nothing to reconcile.
pub async fn live<K>(api: &Api<K>, name: &str) -> Result<Option<K>, kube::Error>
where
    K: Resource + Clone + DeserializeOwned + Debug,
{
    Ok(api
        .get_opt(name)
        .await?
        .filter(|object| object.meta().deletion_timestamp.is_none()))
}

/// Deletes the pods in `names` (one already gone counts as deleted), recording
/// `SuccessfulDelete` with `message(pod)` on `owner` for each.
pub async fn delete_pods<K>(
    pods: &Api<Pod>,
    recorder: &Recorder,
    owner: &K,
    names: &[String],
    message: impl Fn(&str) -> String,
) -> Result<(), DeletePodError>
where
    K: Resource<DynamicType = ()>,
{
    for name in names {
        let deleted = pods.delete(name, &DeleteParams::default()).await;
        api_status::ok_or_code(deleted, &[404]).map_err(|source| DeletePodError {
            pod: name.clone(),
            source,
        })?;
        let text = message(name);
        record::event(
            recorder,
            owner,
            EventType::Normal,
            "SuccessfulDelete",
            &text,
        )
        .await;
    }
    Ok(())
}

/// When to reconcile again: pods become available `minReadySeconds` after they turn ready,
/// which is a matter of time, not of an event.
pub fn requeue_for_availability(min_ready_seconds: Option<i32>) -> Action {
    match min_ready_seconds.unwrap_or(0) {
        secs if secs > 0 => Action::requeue(Duration::from_secs(u64::try_from(secs).unwrap_or(1))),
        _ => Action::await_change(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requeues_only_when_availability_waits_on_time() {
        assert_eq!(
            requeue_for_availability(Some(10)),
            Action::requeue(Duration::from_secs(10))
        );
        assert_eq!(requeue_for_availability(Some(0)), Action::await_change());
        assert_eq!(requeue_for_availability(Some(-5)), Action::await_change());
        assert_eq!(requeue_for_availability(None), Action::await_change());
    }
}
