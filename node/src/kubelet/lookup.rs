//! From the names in a request path to the pod's uid and the container the runtime runs.

use std::sync::Arc;

use k8s_openapi::api::core::v1::Pod;
use rkube_runtimes::{ContainerId, ContainerState, Runtime};

use super::error::ApiError;
use crate::pod_registry::PodRegistry;

/// A container named in a request, known to be in the pod's spec.
pub struct Target {
    pub pod: Arc<Pod>,
    pub uid: String,
    pub container: String,
}

impl Target {
    pub fn find(
        registry: &PodRegistry,
        namespace: &str,
        pod: &str,
        container: &str,
    ) -> Result<Target, ApiError> {
        let found = registry
            .get(namespace, pod)
            .ok_or_else(|| ApiError::NotFound(format!("pod \"{pod}\" not found")))?;
        let uid = found.metadata.uid.clone().unwrap_or_default();
        let spec = found.spec.as_ref();
        let named = spec
            .into_iter()
            .flat_map(|s| {
                s.containers
                    .iter()
                    .chain(s.init_containers.iter().flatten())
            })
            .any(|c| c.name == container);
        if !named {
            return Err(ApiError::NotFound(format!(
                "container \"{container}\" not found in pod \"{pod}\""
            )));
        }
        Ok(Target {
            pod: found,
            uid,
            container: container.to_string(),
        })
    }

    /// Why the container has no log yet, as its status says (`ContainerCreating` by default).
    pub fn waiting_reason(&self) -> String {
        let status = self.pod.status.as_ref();
        let statuses = status.into_iter().flat_map(|s| {
            let main = s.container_statuses.iter().flatten();
            main.chain(s.init_container_statuses.iter().flatten())
        });
        statuses
            .filter(|s| s.name == self.container)
            .find_map(|s| s.state.as_ref()?.waiting.as_ref()?.reason.clone())
            .unwrap_or_else(|| "ContainerCreating".into())
    }

    /// The runtime and id of the container's current run when it is created or running.
    pub async fn live_run(
        &self,
        runtimes: &[Arc<dyn Runtime>],
    ) -> Option<(Arc<dyn Runtime>, ContainerId, bool)> {
        for runtime in runtimes {
            let Ok(containers) = runtime.list().await else {
                continue;
            };
            let live = containers.into_iter().find(|c| {
                c.pod_uid == self.uid
                    && c.container_name == self.container
                    && !matches!(c.state, ContainerState::Exited(_))
            });
            if let Some(info) = live {
                let running = matches!(info.state, ContainerState::Running { .. });
                return Some((runtime.clone(), info.id, running));
            }
        }
        None
    }
}
