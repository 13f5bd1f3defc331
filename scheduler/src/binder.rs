//! Writing a decision: `POST pods/{name}/binding`, then the `Scheduled` event. A failed
//! binding undoes the assumption and sends the pod back to the queue with a backoff.

use std::sync::Arc;
use std::time::Instant;

use k8s_openapi::api::core::v1::{Binding, ObjectReference, Pod};
use kube::api::{Api, ObjectMeta, PostParams};
use kube::{Client, Resource};
use rkube_client::events::EventType;

use crate::event_sink::{EventSink, PendingEvent};
use crate::pod_info::PodKey;
use crate::state::Shared;

pub struct Decision {
    pub key: PodKey,
    pub pod: Arc<Pod>,
    pub node: String,
}

pub async fn bind(client: Client, shared: Arc<Shared>, events: EventSink, decision: Decision) {
    let Decision { key, pod, node } = decision;
    let namespace = pod.metadata.namespace.clone().unwrap_or_default();
    let name = pod.metadata.name.clone().unwrap_or_default();
    let binding = Binding {
        metadata: ObjectMeta {
            name: Some(name.clone()),
            namespace: Some(namespace.clone()),
            uid: pod.metadata.uid.clone(),
            ..ObjectMeta::default()
        },
        target: ObjectReference {
            api_version: Some("v1".into()),
            kind: Some("Node".into()),
            name: Some(node.clone()),
            ..ObjectReference::default()
        },
    };
    let api: Api<Pod> = Api::namespaced(client, &namespace);
    let result = api
        .create_subresource::<_, serde_json::Value>(
            "binding",
            &name,
            &PostParams::default(),
            &binding,
        )
        .await;
    match result {
        Ok(_) => {
            shared.lock().queue.remove(&key);
            events.send(PendingEvent {
                object: pod.object_ref(&()),
                kind: EventType::Normal,
                reason: "Scheduled",
                message: format!("Successfully assigned {namespace}/{name} to {node}"),
            });
        }
        Err(err) => {
            let gone = matches!(&err, kube::Error::Api(s) if s.code == 404 || s.code == 409);
            let mut state = shared.lock();
            state.cache.forget(&key);
            if gone {
                // Deleted, or already bound: the watches report what became of it.
                state.queue.remove(&key);
            } else {
                tracing::warn!(pod = %key, node = %node, error = %err, "binding failed");
                state.queue.requeue(&key, false, Instant::now());
            }
            drop(state);
            shared.wake.notify_one();
        }
    }
}
