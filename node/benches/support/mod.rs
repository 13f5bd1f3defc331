//! What the pod benchmarks share: the pod they time, and one pod watch that tells each
//! waiting create when its pod is first seen Running.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Container, Pod, PodSpec};
use kube::api::{Api, ListParams, WatchEvent, WatchParams};
use tokio::sync::oneshot;

/// Pods waited for by name, answered from one watch started before any timed create.
#[derive(Clone)]
pub struct RunningWatch {
    waiting: Arc<Mutex<HashMap<String, oneshot::Sender<Instant>>>>,
}

impl RunningWatch {
    pub async fn start(pods: Api<Pod>) -> RunningWatch {
        let mut rv = pods
            .list(&ListParams::default().limit(1))
            .await
            .expect("list")
            .metadata
            .resource_version
            .unwrap_or_default();
        let watch = RunningWatch {
            waiting: Arc::default(),
        };
        let waiting = watch.waiting.clone();
        tokio::spawn(async move {
            loop {
                let params = WatchParams::default().timeout(290);
                let mut stream = pods.watch(&params, &rv).await.expect("watch").boxed();
                while let Some(event) = stream.next().await {
                    let pod = match event.expect("watch event") {
                        WatchEvent::Added(p) | WatchEvent::Modified(p) => p,
                        WatchEvent::Error(e) => panic!("watch error: {e:?}"),
                        _ => continue,
                    };
                    let at = Instant::now();
                    rv = pod.metadata.resource_version.clone().unwrap_or(rv);
                    let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
                    if phase != Some("Running") {
                        continue;
                    }
                    let name = pod.metadata.name.unwrap_or_default();
                    let done = waiting.lock().expect("waiting").remove(&name);
                    if let Some(done) = done {
                        let _ = done.send(at);
                    }
                }
            }
        });
        watch
    }

    /// Resolves to when the watch first sees pod `name` Running; call it before the create.
    pub fn running(&self, name: &str) -> oneshot::Receiver<Instant> {
        let (done, running) = oneshot::channel();
        self.waiting
            .lock()
            .expect("waiting")
            .insert(name.into(), done);
        running
    }
}

/// A one-container pod of `class` running `image`, bound to `node` when given. It mounts no
/// service-account token: the runtime path alone (as `ctr run`, and the wasm figures from
/// before tokens), which no controller manager in these benches would back anyway.
pub fn bench_pod(name: &str, class: &str, image: &str, node: Option<String>) -> Pod {
    let mut pod = Pod {
        spec: Some(PodSpec {
            node_name: node,
            runtime_class_name: Some(class.into()),
            automount_service_account_token: Some(false),
            containers: vec![Container {
                name: "main".into(),
                image: Some(image.into()),
                ..Container::default()
            }],
            ..PodSpec::default()
        }),
        ..Pod::default()
    };
    pod.metadata.name = Some(name.into());
    pod
}
