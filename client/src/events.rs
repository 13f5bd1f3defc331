//! Recording core/v1 Events about objects, as `kubectl describe` shows them. A repeated
//! event (same object, reason and message) bumps the count of the existing one.

use k8s_openapi::api::core::v1::{Event, EventSource, ObjectReference};
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::{Client, Resource, ResourceExt};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    Normal,
    Warning,
}

impl EventType {
    fn as_str(self) -> &'static str {
        match self {
            EventType::Normal => "Normal",
            EventType::Warning => "Warning",
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("recording event {reason} for {object}: {source}")]
pub struct EventError {
    pub reason: String,
    pub object: String,
    #[source]
    pub source: kube::Error,
}

/// Records events on behalf of one component (e.g. `default-scheduler`).
#[derive(Clone)]
pub struct Recorder {
    client: Client,
    component: String,
}

impl Recorder {
    pub fn new(client: Client, component: impl Into<String>) -> Self {
        Recorder {
            client,
            component: component.into(),
        }
    }

    /// Records an event about `object`.
    pub async fn record<K>(
        &self,
        object: &K,
        kind: EventType,
        reason: &str,
        message: &str,
    ) -> Result<(), EventError>
    where
        K: Resource<DynamicType = ()>,
    {
        let reference = object.object_ref(&());
        self.record_ref(&reference, kind, reason, message).await
    }

    pub async fn record_ref(
        &self,
        reference: &ObjectReference,
        kind: EventType,
        reason: &str,
        message: &str,
    ) -> Result<(), EventError> {
        let namespace = reference
            .namespace
            .clone()
            .unwrap_or_else(|| "default".to_string());
        let object_name = reference.name.clone().unwrap_or_default();
        let err = |source| EventError {
            reason: reason.to_string(),
            object: object_name.clone(),
            source,
        };
        let events: Api<Event> = Api::namespaced(self.client.clone(), &namespace);
        // A stable name per (object, reason, message) lets repeats update one event.
        let digest = fnv(&format!("{reason}\0{message}\0{}", self.component));
        let uid_part = reference.uid.as_deref().unwrap_or_default();
        let name = format!("{object_name}.{:x}{}", digest, short(uid_part));
        let now = crate::time::now();
        let mut event = Event {
            involved_object: reference.clone(),
            reason: Some(reason.to_string()),
            message: Some(message.to_string()),
            type_: Some(kind.as_str().to_string()),
            count: Some(1),
            first_timestamp: Some(now.clone()),
            last_timestamp: Some(now.clone()),
            source: Some(EventSource {
                component: Some(self.component.clone()),
                host: None,
            }),
            reporting_component: Some(self.component.clone()),
            reporting_instance: Some(self.component.clone()),
            ..Event::default()
        };
        event.metadata.name = Some(name.clone());
        event.metadata.namespace = Some(namespace);
        // Create first: most events are new, so the common case is one request.
        match events.create(&PostParams::default(), &event).await {
            Ok(_) => {}
            Err(kube::Error::Api(status)) if status.code == 409 => {
                // A repeat: bump the count of the one already recorded (best effort).
                if let Some(existing) = events.get_opt(&name).await.map_err(err)? {
                    let count = existing.count.unwrap_or(1) + 1;
                    let patch = serde_json::json!({"count": count, "lastTimestamp": now});
                    events
                        .patch(
                            &existing.name_any(),
                            &PatchParams::default(),
                            &Patch::Merge(patch),
                        )
                        .await
                        .map_err(err)?;
                }
            }
            Err(e) => return Err(err(e)),
        }
        Ok(())
    }
}

fn short(uid: &str) -> String {
    uid.chars()
        .filter(char::is_ascii_alphanumeric)
        .take(8)
        .collect()
}

/// FNV-1a: a stable, dependency-free hash for event names.
fn fnv(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use k8s_openapi::api::core::v1::ConfigMap;
    use kube::api::ListParams;
    use rkube_apiserver::in_process;
    use rkube_apiserver::server::{ApiServer, router};
    use rkube_apiserver::store::memory::MemoryStore;

    use super::*;

    #[tokio::test]
    async fn repeats_bump_the_count_of_one_event() {
        let server = ApiServer::new(Arc::new(MemoryStore::new())).await.unwrap();
        rkube_apiserver::run::ensure_system_namespaces(&server)
            .await
            .unwrap();
        let client = in_process::client(router(server), in_process::admin());
        let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
        let mut cm = ConfigMap::default();
        cm.metadata.name = Some("subject".into());
        let cm = cms.create(&PostParams::default(), &cm).await.unwrap();
        let recorder = Recorder::new(client.clone(), "test-controller");
        for _ in 0..2 {
            recorder
                .record(&cm, EventType::Warning, "Broken", "it broke")
                .await
                .unwrap();
        }
        recorder
            .record(&cm, EventType::Normal, "Fixed", "it works")
            .await
            .unwrap();
        let events: Api<Event> = Api::namespaced(client, "default");
        let mut listed = events.list(&ListParams::default()).await.unwrap().items;
        listed.sort_by_key(|e| e.reason.clone());
        let summary: Vec<(Option<String>, Option<i32>, Option<String>)> = listed
            .iter()
            .map(|e| (e.reason.clone(), e.count, e.involved_object.name.clone()))
            .collect();
        assert_eq!(
            summary,
            vec![
                (Some("Broken".into()), Some(2), Some("subject".into())),
                (Some("Fixed".into()), Some(1), Some("subject".into())),
            ]
        );
    }
}
