//! One container's life inside a pod: fetch its image, create and start it, wait for it, and
//! restart it as the pod's restartPolicy says, with a crash-loop backoff.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use k8s_openapi::api::core::v1::{
    Container, ContainerState, ContainerStateRunning, ContainerStateTerminated, Pod, Secret,
};
use kube::ResourceExt;
use rkube_client::events::EventType;
use rkube_runtimes::{
    ContainerId, ContainerSpec, ExitStatus, Image, Limits, ModuleSource, Mount, OciImage, RunAs,
    RuntimeError, Signal,
};
use tokio::sync::watch;

use crate::backend::RuntimeBackend;
use crate::context::Context;
use crate::image_source::{FetchedImage, ImageLocation};
use crate::pod_files::PodFiles;
use crate::pod_state::{Kind, Shared, time, waiting};
use crate::probes::{Failed, Probes, Report};
use crate::worker::grace_of;
use rkube_api::quantity;

/// How a container's supervision ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Succeeded,
    Failed,
    /// The pod is being torn down.
    Stopped,
}

/// Set to the kill deadline when the pod stops: `Term` now, `Kill` at the deadline.
pub type StopSignal = watch::Receiver<Option<Instant>>;

pub struct Supervisor {
    pub ctx: Arc<Context>,
    pub pod: Pod,
    pub container: Container,
    pub kind: Kind,
    pub index: usize,
    pub backend: Arc<RuntimeBackend>,
    /// A run an earlier agent started that still goes on: supervised again, not restarted.
    pub adopted: Option<ContainerId>,
    /// The address the container's `status.podIP` env resolves to.
    pub pod_ip: IpAddr,
    /// The pod's network namespace, for runtimes that give pods one.
    pub network_namespace: Option<PathBuf>,
    /// The pod's /etc/hosts and /etc/resolv.conf, with its network namespace.
    pub pod_files: Option<Arc<PodFiles>>,
    pub volumes: Arc<HashMap<String, PathBuf>>,
    pub pull_secrets: Arc<Vec<Secret>>,
    pub shared: Arc<Shared>,
    pub stop: StopSignal,
}

/// Whether a container that ended with `code` runs again under `policy`.
pub fn restarts(policy: &str, code: i32) -> bool {
    match policy {
        "Never" => false,
        "OnFailure" => code != 0,
        _ => true,
    }
}

impl Supervisor {
    fn restart_policy(&self) -> &str {
        let policy = self
            .pod
            .spec
            .as_ref()
            .and_then(|s| s.restart_policy.as_deref())
            .unwrap_or("Always");
        // Init containers never restart after success; Always means OnFailure for them.
        match (self.kind, policy) {
            (Kind::Init, "Always") => "OnFailure",
            (_, policy) => policy,
        }
    }

    fn set_state(&self, state: ContainerState) {
        self.shared.update(self.kind, self.index, |s| {
            s.ready = false;
            s.state = Some(state);
        });
    }

    /// Records an event in the background: events must not delay the container.
    fn event(&self, kind: EventType, reason: &str, message: &str) {
        let recorder = self.ctx.recorder.clone();
        let pod = self.pod.clone();
        let (reason, message) = (reason.to_string(), message.to_string());
        tokio::spawn(async move {
            if let Err(error) = recorder.record(&pod, kind, &reason, &message).await {
                tracing::debug!(%error, "recording a pod event");
            }
        });
    }

    /// Waits `delay` unless the pod stops first; true when it stopped.
    async fn sleep_or_stop(&mut self, delay: std::time::Duration) -> bool {
        tokio::select! {
            () = tokio::time::sleep(delay) => false,
            _ = stopped(&mut self.stop) => true,
        }
    }

    fn stopping(&self) -> bool {
        self.stop.borrow().is_some()
    }

    /// Applies what the probes found to the container's status and events.
    fn on_probe(&self, report: Report) {
        match report {
            Report::Started => self
                .shared
                .update(self.kind, self.index, |s| s.started = Some(true)),
            Report::Ready(ready) => self
                .shared
                .update(self.kind, self.index, |s| s.ready = ready),
            Report::Unhealthy(message) => self.event(EventType::Warning, "Unhealthy", &message),
        }
    }

    pub async fn run(mut self) -> Outcome {
        // The kubelet probes regular containers only.
        let probes = match self.kind {
            Kind::Main => Probes::of(&self.container),
            Kind::Init => Probes::default(),
        };
        let mut failures = 0u32;
        loop {
            if self.stopping() {
                return Outcome::Stopped;
            }
            let started_at = Instant::now();
            let run = match self.adopted.take() {
                Some(id) => Ok(id),
                None => {
                    let Some(image) = self.pull().await else {
                        return Outcome::Stopped;
                    };
                    self.start(&image, &probes).await
                }
            };
            let ended = match run {
                Ok(id) => self.wait(&id, &probes).await.map(|s| s.map(|s| (s, id))),
                Err(reason) => Err(reason),
            };
            let (code, terminated) = match ended {
                Ok(Some((status, id))) => (
                    status.code,
                    terminated(&status, &id, &self.backend.id_scheme),
                ),
                Ok(None) => return Outcome::Stopped,
                Err((reason, message)) => {
                    // Could not run at all: wait in place, as the kubelet does.
                    self.event(EventType::Warning, "Failed", &message);
                    self.set_state(waiting(&reason, Some(message)));
                    failures += 1;
                    if self.sleep_or_stop(self.ctx.backoff.delay(failures)).await {
                        return Outcome::Stopped;
                    }
                    continue;
                }
            };
            if !restarts(self.restart_policy(), code) || self.stopping() {
                self.set_state(ContainerState {
                    terminated: Some(terminated),
                    ..ContainerState::default()
                });
                if self.stopping() {
                    return Outcome::Stopped;
                }
                return if code == 0 {
                    Outcome::Succeeded
                } else {
                    Outcome::Failed
                };
            }
            if started_at.elapsed() >= self.ctx.backoff.reset_after {
                failures = 0;
            }
            failures += 1;
            let delay = self.ctx.backoff.delay(failures);
            let message = format!(
                "back-off {delay:?} restarting failed container={} pod={}",
                self.container.name,
                self.pod.name_any()
            );
            self.shared.update(self.kind, self.index, |s| {
                s.ready = false;
                s.started = Some(false);
                s.restart_count += 1;
                s.last_state = Some(ContainerState {
                    terminated: Some(terminated),
                    ..ContainerState::default()
                });
                s.state = Some(waiting("CrashLoopBackOff", Some(message.clone())));
            });
            self.event(EventType::Warning, "BackOff", &message);
            if self.sleep_or_stop(delay).await {
                return Outcome::Stopped;
            }
        }
    }

    /// Fetches the image, retrying with backoff; `None` when the pod stops meanwhile.
    async fn pull(&mut self) -> Option<FetchedImage> {
        let image = self.container.image.clone().unwrap_or_default();
        let policy = self
            .container
            .image_pull_policy
            .clone()
            .unwrap_or_else(|| default_pull_policy(&image).to_string());
        let images = self.backend.images.clone();
        let mut failures = 0u32;
        loop {
            let local = match policy.as_str() {
                "Always" => Ok(None),
                _ => images.local(&image).await,
            };
            let fetched = match local {
                Ok(Some(present)) => {
                    let message = format!("Container image \"{image}\" already present on machine");
                    self.event(EventType::Normal, "Pulled", &message);
                    Ok(present)
                }
                Ok(None) => {
                    self.event(
                        EventType::Normal,
                        "Pulling",
                        &format!("Pulling image \"{image}\""),
                    );
                    let began = Instant::now();
                    let fetched = images.fetch(&image, &policy, &self.pull_secrets).await;
                    if let Ok(fetched) = &fetched {
                        let message = pulled_message(&image, began.elapsed(), fetched.size);
                        self.event(EventType::Normal, "Pulled", &message);
                    }
                    fetched
                }
                Err(error) => Err(error),
            };
            match fetched {
                Ok(fetched) => return Some(fetched),
                Err(error) => {
                    let message = error.to_string();
                    self.event(EventType::Warning, "Failed", &message);
                    self.set_state(waiting("ErrImagePull", Some(message.clone())));
                    failures += 1;
                    // Half the delay shows the pull error, the rest the backoff, as kubectl users
                    // see one and then the other.
                    let half = self.ctx.backoff.delay(failures) / 2;
                    if self.sleep_or_stop(half).await {
                        return None;
                    }
                    let backoff = format!("Back-off pulling image \"{image}\": {message}");
                    self.set_state(waiting("ImagePullBackOff", Some(backoff.clone())));
                    self.event(EventType::Normal, "BackOff", &backoff);
                    if self.sleep_or_stop(half).await {
                        return None;
                    }
                }
            }
        }
    }

    /// Creates and starts one run of the container; on failure the waiting reason and message.
    async fn start(
        &self,
        fetched: &FetchedImage,
        probes: &Probes,
    ) -> Result<ContainerId, (String, String)> {
        let pod_ip = self.pod_ip.to_string();
        let env = crate::env::resolve(&self.ctx.client, &self.pod, &self.container, &pod_ip)
            .await
            .map_err(|e| ("CreateContainerConfigError".to_string(), e.to_string()))?;
        let mut mounts = self
            .mounts()
            .map_err(|m| ("CreateContainerConfigError".to_string(), m))?;
        let image = self.image(fetched);
        if let (Image::Oci(_), Some(files)) = (&image, &self.pod_files) {
            mounts.extend(files.mounts(&mounts));
        }
        let restart = self
            .shared
            .get(self.kind, self.index)
            .map_or(0, |s| s.restart_count);
        let uid = self.pod.uid().unwrap_or_default();
        let log_path = self
            .ctx
            .layout
            .container_log(&uid, &self.container.name, restart);
        let spec = ContainerSpec {
            pod_uid: uid,
            container_name: self.container.name.clone(),
            image,
            args: argv(&self.container),
            env,
            working_dir: self.container.working_dir.clone(),
            mounts,
            limits: limits(&self.container),
            log_path,
        };
        if let Some(dir) = spec.log_path.parent() {
            tokio::fs::create_dir_all(dir).await.map_err(|e| {
                (
                    "CreateContainerError".to_string(),
                    format!("{}: {e}", dir.display()),
                )
            })?;
        }
        let id = self
            .backend
            .runtime
            .create(&spec)
            .await
            .map_err(|e| ("CreateContainerError".to_string(), e.to_string()))?;
        self.event(
            EventType::Normal,
            "Created",
            &format!("Created container {}", self.container.name),
        );
        if let Err(error) = self.backend.runtime.start(&id).await {
            self.delete(&id).await;
            return Err(("RunContainerError".to_string(), error.to_string()));
        }
        let now = SystemTime::now();
        let ready = self.kind == Kind::Main && probes.ready_on_start();
        self.shared.update(self.kind, self.index, |s| {
            s.container_id = Some(format!("{}://{id}", self.backend.id_scheme));
            s.image_id = fetched.digest.clone();
            s.started = Some(probes.started_on_start());
            s.ready = ready;
            s.state = Some(ContainerState {
                running: Some(ContainerStateRunning {
                    started_at: Some(time(now)),
                }),
                ..ContainerState::default()
            });
        });
        self.event(
            EventType::Normal,
            "Started",
            &format!("Started container {}", self.container.name),
        );
        Ok(id)
    }

    /// Waits for the run to end, probing it meanwhile and killing it when a probe says so;
    /// `Ok(None)` when the pod stopped and the container was killed.
    async fn wait(
        &self,
        id: &ContainerId,
        probes: &Probes,
    ) -> Result<Option<ExitStatus>, (String, String)> {
        let runtime = self.backend.runtime.clone();
        let mut stop = self.stop.clone();
        let report = |report| self.on_probe(report);
        let watch = probes.watch(&*runtime, id, self.pod_ip, Instant::now(), &report);
        let ended = tokio::select! {
            status = runtime.wait(id) => Some(status),
            failed = watch => Some(self.kill_unhealthy(id, failed).await),
            deadline = stopped(&mut stop) => {
                let message = format!("Stopping container {}", self.container.name);
                let status = self.terminate(id, deadline, &message).await.ok();
                self.delete(id).await;
                if let Some(status) = status {
                    self.set_state(ContainerState {
                        terminated: Some(terminated(&status, id, &self.backend.id_scheme)),
                        ..ContainerState::default()
                    });
                }
                None
            }
        };
        let Some(status) = ended else {
            return Ok(None);
        };
        self.delete(id).await;
        status
            .map(Some)
            .map_err(|e| ("RunContainerError".to_string(), e.to_string()))
    }

    /// Kills a container that failed its startup or liveness probe, within the probe's grace
    /// period or else the pod's; the run then ends as any other and restarts per policy.
    async fn kill_unhealthy(
        &self,
        id: &ContainerId,
        failed: Failed,
    ) -> Result<ExitStatus, RuntimeError> {
        let will_restart = self.restart_policy() != "Never";
        let message = failed.message(&self.container.name, will_restart);
        let grace = failed.grace.unwrap_or_else(|| grace_of(&self.pod));
        self.terminate(id, Instant::now() + grace, &message).await
    }

    /// `Term`, then `Kill` at the deadline; returns how the container ended.
    async fn terminate(
        &self,
        id: &ContainerId,
        deadline: Instant,
        message: &str,
    ) -> Result<ExitStatus, RuntimeError> {
        self.event(EventType::Normal, "Killing", message);
        if let Err(error) = self.backend.runtime.kill(id, Signal::Term).await {
            tracing::debug!(%id, %error, "term");
        }
        let grace = deadline.saturating_duration_since(Instant::now());
        if let Ok(ended) = tokio::time::timeout(grace, self.backend.runtime.wait(id)).await {
            return ended;
        }
        if let Err(error) = self.backend.runtime.kill(id, Signal::Kill).await {
            tracing::debug!(%id, %error, "kill");
        }
        self.backend.runtime.wait(id).await
    }

    async fn delete(&self, id: &ContainerId) {
        if let Err(error) = self.backend.runtime.delete(id).await {
            tracing::debug!(%id, %error, "deleting a container");
        }
    }

    /// What the runtime runs: the fetched module, or the stored image with the container's
    /// command, args, user and the pod's network.
    fn image(&self, fetched: &FetchedImage) -> Image {
        match &fetched.location {
            ImageLocation::Module(path) => Image::Wasm(ModuleSource {
                path: path.clone(),
                digest: fetched.digest.clone(),
            }),
            ImageLocation::Store(reference) => Image::Oci(OciImage {
                reference: reference.clone(),
                command: self.container.command.clone(),
                args: self.container.args.clone(),
                user: run_as(&self.pod, &self.container),
                network_namespace: self.network_namespace.clone(),
                hostname: Some(crate::pod_files::hostname(&self.pod)),
            }),
        }
    }

    fn mounts(&self) -> Result<Vec<Mount>, String> {
        let mut mounts = Vec::new();
        for mount in self.container.volume_mounts.iter().flatten() {
            let dir = self
                .volumes
                .get(&mount.name)
                .ok_or_else(|| format!("volume mount {} names no volume", mount.name))?;
            let host_path = match mount.sub_path.as_deref().filter(|p| !p.is_empty()) {
                Some(sub) if sub.split('/').all(|c| !c.is_empty() && c != "..") => dir.join(sub),
                Some(sub) => return Err(format!("invalid subPath {sub}")),
                None => dir.clone(),
            };
            mounts.push(Mount {
                host_path,
                container_path: mount.mount_path.clone(),
                read_only: mount.read_only.unwrap_or(false),
            });
        }
        Ok(mounts)
    }
}

/// Resolves once the stop signal carries a deadline; pending forever if the worker is gone
/// without stopping (it then aborts the task).
async fn stopped(stop: &mut StopSignal) -> Instant {
    loop {
        if let Some(deadline) = *stop.borrow_and_update() {
            return deadline;
        }
        if stop.changed().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

fn terminated(status: &ExitStatus, id: &ContainerId, scheme: &str) -> ContainerStateTerminated {
    ContainerStateTerminated {
        container_id: Some(format!("{scheme}://{id}")),
        exit_code: status.code,
        reason: Some(status.reason.as_str().to_string()),
        message: status.message.clone(),
        started_at: Some(time(status.started_at)),
        finished_at: Some(time(status.finished_at)),
        ..ContainerStateTerminated::default()
    }
}

/// kubelet's words for a finished pull.
fn pulled_message(image: &str, took: Duration, size: Option<u64>) -> String {
    let took = Duration::from_millis(u64::try_from(took.as_millis()).unwrap_or(u64::MAX));
    let mut message =
        format!("Successfully pulled image \"{image}\" in {took:?} ({took:?} including waiting).");
    if let Some(size) = size {
        message.push_str(&format!(" Image size: {size} bytes."));
    }
    message
}

/// `runAsUser`/`runAsGroup` of the container, else of the pod.
fn run_as(pod: &Pod, container: &Container) -> Option<RunAs> {
    let own = container.security_context.as_ref();
    let pod_level = pod.spec.as_ref().and_then(|s| s.security_context.as_ref());
    let uid = own
        .and_then(|c| c.run_as_user)
        .or_else(|| pod_level.and_then(|p| p.run_as_user))?;
    let gid = own
        .and_then(|c| c.run_as_group)
        .or_else(|| pod_level.and_then(|p| p.run_as_group));
    Some(RunAs {
        uid: u32::try_from(uid).ok()?,
        gid: gid.and_then(|g| u32::try_from(g).ok()),
    })
}

/// `:latest` (or no tag) pulls always, anything else if not present, as Kubernetes defaults.
fn default_pull_policy(image: &str) -> &'static str {
    let last = image.rsplit('/').next().unwrap_or(image);
    if image.contains('@') {
        return "IfNotPresent";
    }
    match last.split_once(':') {
        Some((_, "latest")) | None => "Always",
        Some(_) => "IfNotPresent",
    }
}

/// argv: `command` then `args`; without a command the container's name stands in for argv[0].
fn argv(container: &Container) -> Vec<String> {
    let mut argv = container
        .command
        .clone()
        .filter(|c| !c.is_empty())
        .unwrap_or_else(|| vec![container.name.clone()]);
    argv.extend(container.args.iter().flatten().cloned());
    argv
}

fn limits(container: &Container) -> Limits {
    let limits = container.resources.as_ref().and_then(|r| r.limits.as_ref());
    let get = |key: &str| limits.and_then(|l| l.get(key)).map(|q| q.0.as_str());
    Limits {
        memory_bytes: get("memory")
            .and_then(quantity::parse_units)
            .and_then(|b| u64::try_from(b).ok()),
        cpu_millicores: get("cpu")
            .and_then(quantity::parse_milli)
            .and_then(|m| u32::try_from(m).ok()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restart_policies() {
        assert!(restarts("Always", 0));
        assert!(restarts("OnFailure", 1));
        assert!(!restarts("OnFailure", 0));
        assert!(!restarts("Never", 1));
    }

    #[test]
    fn pull_policy_defaults() {
        assert_eq!(default_pull_policy("reg/app"), "Always");
        assert_eq!(default_pull_policy("reg/app:latest"), "Always");
        assert_eq!(default_pull_policy("reg:5000/app:1.0"), "IfNotPresent");
        assert_eq!(default_pull_policy("reg/app@sha256:ab"), "IfNotPresent");
    }

    #[test]
    fn pulled_events_use_kubelet_wording() {
        let message = pulled_message("busybox:1", Duration::from_micros(1_234_567), Some(42));
        assert_eq!(
            message,
            "Successfully pulled image \"busybox:1\" in 1.234s (1.234s including waiting). \
             Image size: 42 bytes."
        );
    }

    #[test]
    fn run_as_prefers_the_container_over_the_pod() {
        use k8s_openapi::api::core::v1::{PodSecurityContext, PodSpec, SecurityContext};
        let pod = Pod {
            spec: Some(PodSpec {
                security_context: Some(PodSecurityContext {
                    run_as_user: Some(1000),
                    run_as_group: Some(3000),
                    ..PodSecurityContext::default()
                }),
                ..PodSpec::default()
            }),
            ..Pod::default()
        };
        let mut container = Container::default();
        assert_eq!(
            run_as(&pod, &container),
            Some(RunAs {
                uid: 1000,
                gid: Some(3000)
            })
        );
        container.security_context = Some(SecurityContext {
            run_as_user: Some(5),
            ..SecurityContext::default()
        });
        assert_eq!(
            run_as(&pod, &container),
            Some(RunAs {
                uid: 5,
                gid: Some(3000)
            })
        );
        assert_eq!(run_as(&Pod::default(), &Container::default()), None);
    }

    #[test]
    fn argv_is_command_then_args() {
        let container = Container {
            name: "c".into(),
            command: Some(vec!["app.wasm".into()]),
            args: Some(vec!["-v".into()]),
            ..Container::default()
        };
        assert_eq!(argv(&container), vec!["app.wasm", "-v"]);
        let bare = Container {
            name: "c".into(),
            ..Container::default()
        };
        assert_eq!(argv(&bare), vec!["c"]);
    }
}
