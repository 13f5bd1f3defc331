//! `kubectl exec`: an extra process in a running task, with the container's environment,
//! user and confinement, its stdio on FIFOs copied to and from the caller.

use std::time::{Duration, SystemTime};

use containerd_client::services::v1::{
    CloseIoRequest, DeleteProcessRequest, ExecProcessRequest, GetRequest, StartRequest, WaitRequest,
};
use containerd_client::types::v1::Status as TaskStatus;
use prost_types::Any;
use serde_json::Value;
use tokio::io::AsyncWrite;

use super::connection::{container_error, rpc_error};
use super::spec::{PROCESS_TYPE_URL, SPEC_TYPE_URL};
use super::stdio::{OutputPipe, copy_in, copy_out, create_input};
use super::task::system_time;
use super::{ContainerdRuntime, unique_suffix};
use crate::{ContainerId, ExecSpec, ExitReason, ExitStatus, RuntimeError};

/// How long exec output may trail the process's exit.
const OUTPUT_DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

impl ContainerdRuntime {
    pub(super) async fn exec_process(
        &self,
        id: &ContainerId,
        spec: ExecSpec,
    ) -> Result<ExitStatus, RuntimeError> {
        self.require_running(id).await?;
        let process = self.exec_process_spec(id, &spec).await?;
        let exec_id = format!("exec-{}", unique_suffix());
        let dir = self.fifo_dir(id);
        let path = |stream: &str| dir.join(format!("{exec_id}-{stream}"));

        let mut stdin = match spec.stdin {
            Some(reader) => Some((reader, create_input(id, path("stdin"))?)),
            None => None,
        };
        // The shim wants both output paths unless a terminal merges them; a stream nobody
        // reads is drained into nothing.
        let sink = || -> Box<dyn AsyncWrite + Send + Sync + Unpin> { Box::new(tokio::io::sink()) };
        let mut stdout = Some((
            spec.stdout.unwrap_or_else(sink),
            OutputPipe::create(id, path("stdout"))?,
        ));
        let mut stderr = if spec.tty {
            None
        } else {
            Some((
                spec.stderr.unwrap_or_else(sink),
                OutputPipe::create(id, path("stderr"))?,
            ))
        };
        let path_text = |present: bool, stream: &str| {
            if present {
                path(stream).display().to_string()
            } else {
                String::new()
            }
        };
        let request = ExecProcessRequest {
            container_id: id.0.clone(),
            exec_id: exec_id.clone(),
            stdin: path_text(stdin.is_some(), "stdin"),
            stdout: path_text(stdout.is_some(), "stdout"),
            stderr: path_text(stderr.is_some(), "stderr"),
            terminal: spec.tty,
            spec: Some(Any {
                type_url: PROCESS_TYPE_URL.to_string(),
                value: process.to_string().into_bytes(),
            }),
        };
        let tasks = || self.connection.client.tasks();
        let result = async {
            tasks()
                .exec(self.connection.request(request))
                .await
                .map_err(rpc_error("exec", &exec_id))?;
            let mut keepalives = Vec::new();
            let mut copies = Vec::new();
            for (writer, mut pipe) in [stdout.take(), stderr.take()].into_iter().flatten() {
                keepalives.extend(pipe.take_keepalive());
                copies.push(tokio::spawn(copy_out(pipe, writer)));
            }
            tasks()
                .start(self.connection.request(StartRequest {
                    container_id: id.0.clone(),
                    exec_id: exec_id.clone(),
                }))
                .await
                .map_err(rpc_error("exec start", &exec_id))?;
            let started_at = SystemTime::now();
            let feeding = stdin.take().map(|(reader, mut sender)| {
                let connection_tasks = tasks();
                let close = self.connection.request(CloseIoRequest {
                    container_id: id.0.clone(),
                    exec_id: exec_id.clone(),
                    stdin: true,
                });
                tokio::spawn(async move {
                    copy_in(reader, &mut sender).await;
                    let mut connection_tasks = connection_tasks;
                    if let Err(status) = connection_tasks.close_io(close).await {
                        tracing::debug!(error = %status.message(), "closing exec stdin");
                    }
                    // Held until the shim has been told: closing first could drop unread input.
                    drop(sender);
                })
            });
            let exited = tasks()
                .wait(self.connection.request(WaitRequest {
                    container_id: id.0.clone(),
                    exec_id: exec_id.clone(),
                }))
                .await
                .map_err(rpc_error("exec wait", &exec_id))?
                .into_inner();
            drop(keepalives);
            let drained = futures::future::join_all(copies);
            if tokio::time::timeout(OUTPUT_DRAIN_TIMEOUT, drained)
                .await
                .is_err()
            {
                tracing::warn!(%id, exec_id, "exec output still open after exit");
            }
            if let Some(feeding) = feeding {
                feeding.abort();
            }
            let finished_at = exited
                .exited_at
                .as_ref()
                .and_then(system_time)
                .unwrap_or_else(SystemTime::now);
            let code = i32::try_from(exited.exit_status).unwrap_or(i32::MAX);
            Ok(ExitStatus {
                code,
                reason: if code == 0 {
                    ExitReason::Completed
                } else {
                    ExitReason::Error
                },
                message: None,
                started_at,
                finished_at,
            })
        }
        .await;
        let deleted = tasks()
            .delete_process(self.connection.request(DeleteProcessRequest {
                container_id: id.0.clone(),
                exec_id: exec_id.clone(),
            }))
            .await;
        if let Err(status) = deleted
            && result.is_ok()
        {
            tracing::warn!(%id, exec_id, error = %status.message(), "deleting an exec process");
        }
        for stream in ["stdin", "stdout", "stderr"] {
            let _ = std::fs::remove_file(path(stream));
        }
        result
    }

    async fn require_running(&self, id: &ContainerId) -> Result<(), RuntimeError> {
        let process = self
            .connection
            .client
            .tasks()
            .get(self.connection.request(GetRequest {
                container_id: id.0.clone(),
                exec_id: String::new(),
            }))
            .await
            .map_err(container_error("task get", id))?
            .into_inner()
            .process;
        let status = process.map(|p| p.status).unwrap_or_default();
        if status == i32::from(TaskStatus::Running) {
            return Ok(());
        }
        let state = if status == i32::from(TaskStatus::Stopped) {
            "exited"
        } else {
            "created"
        };
        Err(RuntimeError::InvalidState {
            id: id.clone(),
            state,
            action: "exec",
        })
    }

    /// The container's own process spec with the exec's argv and terminal.
    async fn exec_process_spec(
        &self,
        id: &ContainerId,
        spec: &ExecSpec,
    ) -> Result<Value, RuntimeError> {
        let container = self.get_container(id).await?;
        let invalid = |reason: String| RuntimeError::Containerd {
            operation: "exec spec",
            target: id.0.clone(),
            reason,
        };
        let runtime_spec = container
            .spec
            .filter(|any| any.type_url == SPEC_TYPE_URL)
            .ok_or_else(|| invalid("the container has no runtime spec".into()))?;
        let mut runtime_spec: Value = serde_json::from_slice(&runtime_spec.value)
            .map_err(|e| invalid(format!("runtime spec: {e}")))?;
        if spec.command.is_empty() {
            return Err(invalid("empty command".into()));
        }
        let mut process = runtime_spec["process"].take();
        if !process.is_object() {
            return Err(invalid("runtime spec without a process".into()));
        }
        process["args"] = Value::from(spec.command.clone());
        process["terminal"] = Value::Bool(spec.tty);
        Ok(process)
    }
}
