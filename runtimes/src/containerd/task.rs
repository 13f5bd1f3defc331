//! A container's life in containerd: container record + snapshot + task on create, task start,
//! signals, the exit status (OOM kills read from the task's memory cgroup), and removal.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use chrono::{DateTime, SecondsFormat, Utc};
use containerd_client::services::v1::container::Runtime as ContainerRuntimeInfo;
use containerd_client::services::v1::snapshots::{PrepareSnapshotRequest, RemoveSnapshotRequest};
use containerd_client::services::v1::{
    Container, CreateContainerRequest, CreateTaskRequest, DeleteContainerRequest,
    DeleteTaskRequest, GetContainerRequest, GetRequest, KillRequest, StartRequest,
    UpdateContainerRequest, WaitRequest,
};
use containerd_client::types::v1::Status as TaskStatus;
use prost_types::{Any, FieldMask, Timestamp};

use super::connection::{container_error, is_not_found, rpc_error};
use super::image::LocalImage;
use super::spec::{Process, SPEC_TYPE_URL, runtime_spec};
use super::stdio::{OutputPipe, pump_logs};
use super::{
    ContainerdRuntime, LABEL_CONTAINER_NAME, LABEL_LOG_PATH, LABEL_POD_UID, LABEL_STARTED_AT,
    Tracked, pull, unique_suffix,
};
use crate::{
    ContainerId, ContainerSpec, CriLog, ExitReason, ExitStatus, Image, RuntimeError, Signal,
};

const RUNC_SHIM: &str = "io.containerd.runc.v2";
/// How long output may trail the exit before `wait` returns without it (a daemonised child
/// can hold the pipe open for ever).
const LOG_DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

impl ContainerdRuntime {
    pub(super) async fn create_container(
        &self,
        spec: &ContainerSpec,
    ) -> Result<ContainerId, RuntimeError> {
        let Image::Oci(oci) = &spec.image else {
            return Err(RuntimeError::UnsupportedImage {
                handler: super::HANDLER,
                container: spec.container_name.clone(),
            });
        };
        let name = pull::normalised_name(&oci.reference)?;
        let image = LocalImage::load(&self.connection, &name)
            .await?
            .ok_or_else(|| RuntimeError::InvalidImage {
                reference: name.clone(),
                reason: "not pulled".to_string(),
            })?;
        let process = Process::for_container(spec, oci, &image.config.config)?;
        let id = ContainerId(format!(
            "{}-{}",
            id_safe(&spec.container_name),
            unique_suffix()
        ));
        let runtime_spec = runtime_spec(
            &process,
            &spec.mounts,
            spec.limits,
            &self.cgroups_path(&id),
            oci,
        );
        let log = CriLog::open(&spec.log_path)?;
        let labels = HashMap::from([
            (LABEL_POD_UID.to_string(), spec.pod_uid.clone()),
            (
                LABEL_CONTAINER_NAME.to_string(),
                spec.container_name.clone(),
            ),
            (
                LABEL_LOG_PATH.to_string(),
                spec.log_path.display().to_string(),
            ),
        ]);
        let container = Container {
            id: id.0.clone(),
            labels,
            image: name,
            runtime: Some(ContainerRuntimeInfo {
                name: RUNC_SHIM.to_string(),
                options: None,
            }),
            spec: Some(Any {
                type_url: SPEC_TYPE_URL.to_string(),
                value: runtime_spec.to_string().into_bytes(),
            }),
            snapshotter: self.config.snapshotter.clone(),
            snapshot_key: id.0.clone(),
            ..Container::default()
        };
        // The record first: it references the snapshot, so GC never sees it unreferenced.
        self.connection
            .client
            .containers()
            .create(self.connection.request(CreateContainerRequest {
                container: Some(container),
            }))
            .await
            .map_err(rpc_error("container create", &id.0))?;
        match self
            .prepare_task(&id, image.config.top_chain_id(), log)
            .await
        {
            Ok(()) => Ok(id),
            Err(error) => {
                if let Err(cleanup) = self.delete_container(&id).await {
                    tracing::warn!(%id, error = %cleanup, "cleaning up a failed create");
                }
                Err(error)
            }
        }
    }

    /// The rootfs snapshot, the FIFOs and their log pump, and the (not yet started) task.
    async fn prepare_task(
        &self,
        id: &ContainerId,
        parent: Option<String>,
        log: CriLog,
    ) -> Result<(), RuntimeError> {
        let rootfs = self
            .connection
            .client
            .snapshots()
            .prepare(self.connection.request(PrepareSnapshotRequest {
                snapshotter: self.config.snapshotter.clone(),
                key: id.0.clone(),
                parent: parent.unwrap_or_default(),
                labels: HashMap::new(),
            }))
            .await
            .map_err(rpc_error("snapshot prepare", &id.0))?
            .into_inner()
            .mounts;
        let dir = self.fifo_dir(id);
        std::fs::create_dir_all(&dir).map_err(|source| RuntimeError::Stdio {
            id: id.clone(),
            path: dir.clone(),
            source,
        })?;
        let mut stdout = OutputPipe::create(id, dir.join("stdout"))?;
        let mut stderr = OutputPipe::create(id, dir.join("stderr"))?;
        let request = CreateTaskRequest {
            container_id: id.0.clone(),
            rootfs,
            stdout: stdout.path.display().to_string(),
            stderr: stderr.path.display().to_string(),
            ..CreateTaskRequest::default()
        };
        let keepalives = [stdout.take_keepalive(), stderr.take_keepalive()]
            .into_iter()
            .flatten()
            .collect();
        let logs_done = pump_logs(log, stdout, stderr);
        self.remember(
            id,
            Tracked {
                keepalives: Mutex::new(keepalives),
                logs_done,
                started_at: Mutex::new(None),
                exit: Default::default(),
            },
        );
        self.connection
            .client
            .tasks()
            .create(self.connection.request(request))
            .await
            .map_err(rpc_error("task create", &id.0))?;
        Ok(())
    }

    pub(super) async fn start_task(&self, id: &ContainerId) -> Result<(), RuntimeError> {
        let tracked = self.tracked(id).await?;
        // Taken before the call: a quick process can exit before the call returns, and its
        // start must not come after its exit.
        let now = SystemTime::now();
        self.connection
            .client
            .tasks()
            .start(self.connection.request(StartRequest {
                container_id: id.0.clone(),
                exec_id: String::new(),
            }))
            .await
            .map_err(container_error("task start", id))?;
        *tracked
            .started_at
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(now);
        // Recorded on the container so that a restarted node reports the same start time.
        let label = DateTime::<Utc>::from(now).to_rfc3339_opts(SecondsFormat::Nanos, true);
        let update = self
            .connection
            .client
            .containers()
            .update(self.connection.request(UpdateContainerRequest {
                container: Some(Container {
                    id: id.0.clone(),
                    labels: HashMap::from([(LABEL_STARTED_AT.to_string(), label)]),
                    ..Container::default()
                }),
                update_mask: Some(FieldMask {
                    paths: vec![format!("labels.{LABEL_STARTED_AT}")],
                }),
            }))
            .await;
        if let Err(status) = update {
            tracing::warn!(%id, error = %status.message(), "recording the start time");
        }
        Ok(())
    }

    pub(super) async fn kill_task(
        &self,
        id: &ContainerId,
        signal: Signal,
    ) -> Result<(), RuntimeError> {
        self.tracked(id).await?;
        let number = match signal {
            Signal::Term => 15,
            Signal::Kill => 9,
        };
        let killed = self
            .connection
            .client
            .tasks()
            .kill(self.connection.request(KillRequest {
                container_id: id.0.clone(),
                exec_id: String::new(),
                signal: number,
                all: signal == Signal::Kill,
            }))
            .await;
        match killed {
            Ok(_) => Ok(()),
            // Already exited (or never had a task): nothing left to signal.
            Err(status) if is_not_found(&status) => Ok(()),
            Err(status) => Err(rpc_error("task kill", &id.0)(status)),
        }
    }

    /// Waits for the task to exit, then for its output to reach the log.
    pub(super) async fn collect_exit(
        &self,
        id: &ContainerId,
        tracked: &Tracked,
    ) -> Result<ExitStatus, RuntimeError> {
        let response = self
            .connection
            .client
            .tasks()
            .wait(self.connection.request(WaitRequest {
                container_id: id.0.clone(),
                exec_id: String::new(),
            }))
            .await
            .map_err(container_error("task wait", id))?
            .into_inner();
        let oom = self.oom_killed(id);
        tracked.release_keepalives();
        let mut logs_done = tracked.logs_done.clone();
        if tokio::time::timeout(LOG_DRAIN_TIMEOUT, logs_done.wait_for(|done| *done))
            .await
            .is_err()
        {
            tracing::warn!(%id, "container output still open after exit");
        }
        let finished_at = response
            .exited_at
            .as_ref()
            .and_then(system_time)
            .unwrap_or_else(SystemTime::now);
        Ok(exit_status(
            response.exit_status,
            oom,
            tracked.started_at().unwrap_or(finished_at),
            finished_at,
        ))
    }

    /// Whether the kernel's OOM killer ended a process of the task's memory cgroup.
    fn oom_killed(&self, id: &ContainerId) -> bool {
        let path = self.cgroups_path(id);
        let path = path.trim_start_matches('/');
        let candidates = [
            format!("/sys/fs/cgroup/{path}/memory.events"),
            format!("/sys/fs/cgroup/memory/{path}/memory.oom_control"),
        ];
        candidates.iter().any(|file| {
            std::fs::read_to_string(file).is_ok_and(|text| {
                text.lines().any(|line| {
                    line.strip_prefix("oom_kill ")
                        .and_then(|n| n.trim().parse::<u64>().ok())
                        .is_some_and(|n| n > 0)
                })
            })
        })
    }

    pub(super) async fn delete_container(&self, id: &ContainerId) -> Result<(), RuntimeError> {
        let tracked = self.tracked(id).await?;
        let tasks = || self.connection.client.tasks();
        let task = tasks()
            .get(self.connection.request(GetRequest {
                container_id: id.0.clone(),
                exec_id: String::new(),
            }))
            .await;
        match task {
            Ok(response) => {
                let stopped = response
                    .into_inner()
                    .process
                    .is_some_and(|p| p.status == i32::from(TaskStatus::Stopped));
                if !stopped {
                    self.kill_task(id, Signal::Kill).await?;
                    tasks()
                        .wait(self.connection.request(WaitRequest {
                            container_id: id.0.clone(),
                            exec_id: String::new(),
                        }))
                        .await
                        .map_err(container_error("task wait", id))?;
                }
                let deleted = tasks()
                    .delete(self.connection.request(DeleteTaskRequest {
                        container_id: id.0.clone(),
                    }))
                    .await;
                match deleted {
                    Ok(_) => {}
                    Err(status) if is_not_found(&status) => {}
                    Err(status) => return Err(rpc_error("task delete", &id.0)(status)),
                }
            }
            Err(status) if is_not_found(&status) => {}
            Err(status) => return Err(rpc_error("task get", &id.0)(status)),
        }
        tracked.release_keepalives();
        let removed = self
            .connection
            .client
            .containers()
            .delete(
                self.connection
                    .request(DeleteContainerRequest { id: id.0.clone() }),
            )
            .await;
        match removed {
            Ok(_) => {}
            Err(status) if is_not_found(&status) => {}
            Err(status) => return Err(rpc_error("container delete", &id.0)(status)),
        }
        let snapshot = self
            .connection
            .client
            .snapshots()
            .remove(self.connection.request(RemoveSnapshotRequest {
                snapshotter: self.config.snapshotter.clone(),
                key: id.0.clone(),
            }))
            .await;
        match snapshot {
            Ok(_) => {}
            Err(status) if is_not_found(&status) => {}
            Err(status) => return Err(rpc_error("snapshot remove", &id.0)(status)),
        }
        let dir = self.fifo_dir(id);
        if let Err(error) = std::fs::remove_dir_all(&dir)
            && error.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!(%id, %error, "removing the FIFO directory");
        }
        self.forget(id);
        Ok(())
    }

    pub(super) async fn get_container(&self, id: &ContainerId) -> Result<Container, RuntimeError> {
        self.connection
            .client
            .containers()
            .get(
                self.connection
                    .request(GetContainerRequest { id: id.0.clone() }),
            )
            .await
            .map_err(container_error("container get", id))?
            .into_inner()
            .container
            .ok_or_else(|| RuntimeError::NotFound { id: id.clone() })
    }
}

/// How a task ended, as Kubernetes reports it.
fn exit_status(
    code: u32,
    oom: bool,
    started_at: SystemTime,
    finished_at: SystemTime,
) -> ExitStatus {
    let code = i32::try_from(code).unwrap_or(i32::MAX);
    let reason = match (oom, code) {
        (true, _) => ExitReason::OomKilled,
        (false, 0) => ExitReason::Completed,
        (false, _) => ExitReason::Error,
    };
    let message = match code {
        129..=159 if !oom => Some(format!("killed by signal {}", code - 128)),
        _ => None,
    };
    ExitStatus {
        code,
        reason,
        message,
        started_at,
        finished_at,
    }
}

pub(super) fn system_time(stamp: &Timestamp) -> Option<SystemTime> {
    let seconds = u64::try_from(stamp.seconds).ok()?;
    let nanos = u32::try_from(stamp.nanos).ok()?;
    // containerd reports a zero time for processes that have not exited.
    (seconds > 0).then(|| SystemTime::UNIX_EPOCH + Duration::new(seconds, nanos))
}

/// A container name reduced to what containerd ids allow, kept short.
fn id_safe(name: &str) -> String {
    let cleaned: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .take(24)
        .collect();
    let trimmed = cleaned.trim_matches('-');
    if trimmed.is_empty() {
        "c".to_string()
    } else {
        trimmed.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_map_to_reasons() {
        let now = SystemTime::now();
        assert_eq!(
            exit_status(0, false, now, now).reason,
            ExitReason::Completed
        );
        let error = exit_status(3, false, now, now);
        assert_eq!(
            (error.code, error.reason, error.message),
            (3, ExitReason::Error, None)
        );
        let killed = exit_status(143, false, now, now);
        assert_eq!(killed.message.as_deref(), Some("killed by signal 15"));
        assert_eq!(
            exit_status(137, true, now, now).reason,
            ExitReason::OomKilled
        );
    }

    #[test]
    fn ids_keep_only_safe_characters() {
        assert_eq!(id_safe("Web_Server.1"), "web-server-1");
        assert_eq!(id_safe("__"), "c");
        assert_eq!(id_safe(&"x".repeat(40)).len(), 24);
    }

    #[test]
    fn zero_timestamps_are_no_time() {
        assert_eq!(system_time(&Timestamp::default()), None);
        let stamp = Timestamp {
            seconds: 10,
            nanos: 5,
        };
        assert_eq!(
            system_time(&stamp),
            Some(SystemTime::UNIX_EPOCH + Duration::new(10, 5))
        );
    }
}
