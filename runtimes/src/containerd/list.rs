//! rkube's containers in containerd, and adopting those an earlier node process created: their
//! start time comes from a label, their output FIFOs are read again into the same log.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use chrono::DateTime;
use containerd_client::services::v1::{Container, GetRequest, ListContainersRequest};
use containerd_client::types::v1::Status as TaskStatus;
use tokio::sync::watch;

use super::connection::{is_not_found, rpc_error};
use super::stdio::{OutputPipe, pump_logs};
use super::{
    ContainerdRuntime, LABEL_CONTAINER_NAME, LABEL_LOG_PATH, LABEL_POD_UID, LABEL_STARTED_AT,
    Tracked,
};
use crate::{ContainerId, ContainerInfo, ContainerState, CriLog, Runtime, RuntimeError};

impl ContainerdRuntime {
    pub(super) async fn list_containers(&self) -> Result<Vec<ContainerInfo>, RuntimeError> {
        let containers = self
            .connection
            .client
            .containers()
            .list(self.connection.request(ListContainersRequest {
                filters: vec![format!("labels.\"{LABEL_POD_UID}\"")],
            }))
            .await
            .map_err(rpc_error("container list", &self.config.namespace))?
            .into_inner()
            .containers;
        let mut infos = Vec::with_capacity(containers.len());
        for container in containers {
            let id = ContainerId(container.id.clone());
            let tracked = self.tracked_or_adopt(&container);
            let state = self.state(&id, &tracked, &container).await?;
            let label = |key: &str| container.labels.get(key).cloned().unwrap_or_default();
            infos.push(ContainerInfo {
                id,
                pod_uid: label(LABEL_POD_UID),
                container_name: label(LABEL_CONTAINER_NAME),
                state,
            });
        }
        infos.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(infos)
    }

    async fn state(
        &self,
        id: &ContainerId,
        tracked: &Tracked,
        container: &Container,
    ) -> Result<ContainerState, RuntimeError> {
        let task = self
            .connection
            .client
            .tasks()
            .get(self.connection.request(GetRequest {
                container_id: id.0.clone(),
                exec_id: String::new(),
            }))
            .await;
        let status = match task {
            Ok(response) => response.into_inner().process.map(|p| p.status),
            // A container whose task is gone can only be deleted; it never ran for us.
            Err(status) if is_not_found(&status) => None,
            Err(status) => return Err(rpc_error("task get", &id.0)(status)),
        };
        let running = [TaskStatus::Running, TaskStatus::Paused, TaskStatus::Pausing];
        Ok(match status {
            Some(s) if s == i32::from(TaskStatus::Stopped) => {
                ContainerState::Exited(self.wait(id).await?)
            }
            Some(s) if running.iter().any(|r| i32::from(*r) == s) => ContainerState::Running {
                started_at: tracked
                    .started_at()
                    .or_else(|| label_time(container))
                    .unwrap_or_else(SystemTime::now),
            },
            _ => ContainerState::Created,
        })
    }

    fn tracked_or_adopt(&self, container: &Container) -> Arc<Tracked> {
        let id = ContainerId(container.id.clone());
        let known = self
            .tracked
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(&id)
            .cloned();
        known.unwrap_or_else(|| self.adopt(container))
    }

    /// Tracks a container created by an earlier process, reading its output into its log.
    pub(super) fn adopt(&self, container: &Container) -> Arc<Tracked> {
        let id = ContainerId(container.id.clone());
        let logs_done = match self.reattach_logs(&id, container) {
            Ok(done) => done,
            Err(error) => {
                tracing::warn!(%id, %error, "container output is not logged after adoption");
                watch::channel(true).1
            }
        };
        self.remember(
            &id,
            Tracked {
                keepalives: Mutex::new(Vec::new()),
                logs_done,
                started_at: Mutex::new(label_time(container)),
                exit: Default::default(),
            },
        )
    }

    fn reattach_logs(
        &self,
        id: &ContainerId,
        container: &Container,
    ) -> Result<watch::Receiver<bool>, RuntimeError> {
        let log_path = container
            .labels
            .get(LABEL_LOG_PATH)
            .map(PathBuf::from)
            .ok_or_else(|| RuntimeError::Containerd {
                operation: "adopt",
                target: id.0.clone(),
                reason: format!("no {LABEL_LOG_PATH} label"),
            })?;
        let dir = self.fifo_dir(id);
        let stdout = OutputPipe::reopen(id, dir.join("stdout"))?;
        let stderr = OutputPipe::reopen(id, dir.join("stderr"))?;
        Ok(pump_logs(CriLog::open(&log_path)?, stdout, stderr))
    }
}

fn label_time(container: &Container) -> Option<SystemTime> {
    let text = container.labels.get(LABEL_STARTED_AT)?;
    DateTime::parse_from_rfc3339(text)
        .ok()
        .map(SystemTime::from)
}
