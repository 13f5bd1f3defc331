//! What every controller receives from the manager.

use std::sync::Arc;

use kube::{Client, Resource};
use rkube_client::events::{EventType, Recorder};

use crate::informer::Informers;
use crate::manager::ManagerOptions;

/// Shared by all controllers of one manager: the API client, the shared informers (one watch
/// per resource type) and the manager's options.
#[derive(Clone)]
pub struct Context {
    pub client: Client,
    pub informers: Informers,
    pub options: Arc<ManagerOptions>,
}

impl Context {
    pub fn new(client: Client, options: ManagerOptions) -> Self {
        Context {
            informers: Informers::new(client.clone()),
            client,
            options: Arc::new(options),
        }
    }

    /// An event recorder reporting as `component` (e.g. `deployment-controller`), the source
    /// `kubectl describe` shows.
    pub fn recorder(&self, component: &str) -> Recorder {
        Recorder::new(self.client.clone(), component)
    }
}

/// Records an event in the background: events are informational, and a reconcile should
/// neither wait for nor fail on them.
pub fn emit<K>(recorder: &Recorder, obj: &K, kind: EventType, reason: &str, message: &str)
where
    K: Resource<DynamicType = ()>,
{
    let recorder = recorder.clone();
    let reference = obj.object_ref(&());
    let (reason, message) = (reason.to_string(), message.to_string());
    tokio::spawn(async move {
        if let Err(err) = recorder
            .record_ref(&reference, kind, &reason, &message)
            .await
        {
            tracing::debug!(error = %err, "recording an event failed");
        }
    });
}
