//! Events are best effort: a controller keeps going when one cannot be recorded.

use kube::Resource;
use rkube_client::events::{EventType, Recorder};

pub async fn event<K>(recorder: &Recorder, object: &K, kind: EventType, reason: &str, message: &str)
where
    K: Resource<DynamicType = ()>,
{
    if let Err(err) = recorder.record(object, kind, reason, message).await {
        tracing::debug!(error = %err, "recording an event failed");
    }
}
