//! A pod's status as its worker tracks it, and the PodStatus written from it.

use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::SystemTime;

use k8s_openapi::api::core::v1::{
    ContainerState, ContainerStateTerminated, ContainerStateWaiting, ContainerStatus, HostIP, Pod,
    PodCondition, PodIP, PodStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use tokio::sync::Notify;

/// Shared between a pod worker and its container supervisors; `changed` wakes the worker to
/// write the status.
pub struct Shared {
    state: Mutex<Containers>,
    pub changed: Notify,
}

/// Which list a container belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Init,
    Main,
}

#[derive(Clone, Debug, Default)]
pub struct Containers {
    pub init: Vec<ContainerStatus>,
    pub main: Vec<ContainerStatus>,
    pub initialized: bool,
    /// A pod-level failure (an unsupported runtime, a failed init container that may not restart).
    pub failure: Option<(String, String)>,
    /// The pod's own address when its runtime gives it a network; else the node's is reported.
    pub pod_ip: Option<std::net::IpAddr>,
}

impl Shared {
    pub fn new(containers: Containers) -> Self {
        Self {
            state: Mutex::new(containers),
            changed: Notify::new(),
        }
    }

    pub fn lock(&self) -> MutexGuard<'_, Containers> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Changes one container's status and wakes the worker.
    pub fn update(&self, kind: Kind, index: usize, change: impl FnOnce(&mut ContainerStatus)) {
        {
            let mut state = self.lock();
            let list = match kind {
                Kind::Init => &mut state.init,
                Kind::Main => &mut state.main,
            };
            if let Some(status) = list.get_mut(index) {
                change(status);
            }
        }
        self.changed.notify_one();
    }

    pub fn modify(&self, change: impl FnOnce(&mut Containers)) {
        change(&mut self.lock());
        self.changed.notify_one();
    }

    pub fn get(&self, kind: Kind, index: usize) -> Option<ContainerStatus> {
        let state = self.lock();
        match kind {
            Kind::Init => state.init.get(index).cloned(),
            Kind::Main => state.main.get(index).cloned(),
        }
    }
}

pub fn time(at: SystemTime) -> Time {
    Time(Timestamp::try_from(at).unwrap_or(Timestamp::UNIX_EPOCH))
}

pub fn waiting(reason: &str, message: Option<String>) -> ContainerState {
    ContainerState {
        waiting: Some(ContainerStateWaiting {
            reason: Some(reason.to_string()),
            message,
        }),
        ..ContainerState::default()
    }
}

pub fn terminated_of(status: &ContainerStatus) -> Option<&ContainerStateTerminated> {
    status.state.as_ref()?.terminated.as_ref()
}

fn is_running(status: &ContainerStatus) -> bool {
    status.state.as_ref().is_some_and(|s| s.running.is_some())
}

/// Started at least once: running, ended, or restarting after an end.
fn has_started(status: &ContainerStatus) -> bool {
    is_running(status) || terminated_of(status).is_some() || status.last_state.is_some()
}

/// The phase and the reason/message that go with it.
fn phase(containers: &Containers) -> (&'static str, Option<(String, String)>) {
    if let Some(failure) = &containers.failure {
        return ("Failed", Some(failure.clone()));
    }
    if !containers.initialized {
        return ("Pending", None);
    }
    let main = &containers.main;
    if !main.is_empty() && main.iter().all(|s| terminated_of(s).is_some()) {
        let all_zero = main
            .iter()
            .all(|s| terminated_of(s).is_some_and(|t| t.exit_code == 0));
        return (if all_zero { "Succeeded" } else { "Failed" }, None);
    }
    if main.iter().all(has_started) {
        ("Running", None)
    } else {
        ("Pending", None)
    }
}

/// Pod conditions with their transition times carried over from `previous` when unchanged.
fn conditions(
    containers: &Containers,
    phase: &str,
    previous: &[PodCondition],
) -> Vec<PodCondition> {
    let completed = matches!(phase, "Succeeded" | "Failed");
    let ready =
        !completed && !containers.main.is_empty() && containers.main.iter().all(|s| s.ready);
    let not_ready_reason = if completed {
        "PodCompleted"
    } else {
        "ContainersNotReady"
    };
    let unready: Vec<&str> = containers
        .main
        .iter()
        .filter(|s| !s.ready)
        .map(|s| s.name.as_str())
        .collect();
    // As the kubelet words it, for a pod that still runs.
    let not_ready_message = (!completed && !unready.is_empty())
        .then(|| format!("containers with unready status: [{}]", unready.join(" ")));
    let now = rkube_client::time::now();
    let build = |type_: &str, ok: bool, reason: &str, message: Option<&String>| {
        let status = if ok { "True" } else { "False" };
        let carried = previous
            .iter()
            .find(|c| c.type_ == type_ && c.status == status)
            .and_then(|c| c.last_transition_time.clone());
        PodCondition {
            type_: type_.into(),
            status: status.into(),
            reason: (!ok).then(|| reason.to_string()),
            message: message.filter(|_| !ok).cloned(),
            last_transition_time: Some(carried.unwrap_or_else(|| now.clone())),
            ..PodCondition::default()
        }
    };
    vec![
        build("PodScheduled", true, "", None),
        build(
            "Initialized",
            containers.initialized,
            "ContainersNotInitialized",
            None,
        ),
        build(
            "ContainersReady",
            ready,
            not_ready_reason,
            not_ready_message.as_ref(),
        ),
        build("Ready", ready, not_ready_reason, not_ready_message.as_ref()),
    ]
}

/// The full status of `pod` as the node reports it.
pub fn pod_status(
    pod: &Pod,
    containers: &Containers,
    host_ip: &str,
    pod_ip: &str,
    start_time: &Time,
) -> PodStatus {
    let previous = pod.status.as_ref();
    let previous_conditions = previous
        .and_then(|s| s.conditions.clone())
        .unwrap_or_default();
    let (phase, failure) = phase(containers);
    PodStatus {
        phase: Some(phase.to_string()),
        conditions: Some(conditions(containers, phase, &previous_conditions)),
        reason: failure.as_ref().map(|f| f.0.clone()),
        message: failure.map(|f| f.1),
        host_ip: Some(host_ip.to_string()),
        host_ips: Some(vec![HostIP {
            ip: host_ip.to_string(),
        }]),
        pod_ip: Some(pod_ip.to_string()),
        pod_ips: Some(vec![PodIP {
            ip: pod_ip.to_string(),
        }]),
        start_time: Some(start_time.clone()),
        init_container_statuses: (!containers.init.is_empty()).then(|| containers.init.clone()),
        container_statuses: Some(containers.main.clone()),
        qos_class: previous.and_then(|s| s.qos_class.clone()),
        ..PodStatus::default()
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::ContainerStateRunning;

    use super::*;

    fn with_state(state: ContainerState) -> ContainerStatus {
        ContainerStatus {
            name: "c".into(),
            state: Some(state),
            ..ContainerStatus::default()
        }
    }

    fn ended(code: i32) -> ContainerStatus {
        with_state(ContainerState {
            terminated: Some(ContainerStateTerminated {
                exit_code: code,
                ..ContainerStateTerminated::default()
            }),
            ..ContainerState::default()
        })
    }

    #[test]
    fn phase_follows_the_containers() {
        let mut containers = Containers {
            initialized: false,
            main: vec![with_state(waiting("ContainerCreating", None))],
            ..Containers::default()
        };
        assert_eq!(phase(&containers).0, "Pending");
        containers.initialized = true;
        assert_eq!(phase(&containers).0, "Pending");
        containers.main[0] = with_state(ContainerState {
            running: Some(ContainerStateRunning::default()),
            ..ContainerState::default()
        });
        assert_eq!(phase(&containers).0, "Running");
        containers.main.push(ended(0));
        assert_eq!(phase(&containers).0, "Running");
        containers.main[0] = ended(0);
        assert_eq!(phase(&containers).0, "Succeeded");
        containers.main[1] = ended(2);
        assert_eq!(phase(&containers).0, "Failed");
        // Waiting in a crash loop after a first run still counts as Running.
        let mut looping = with_state(waiting("CrashLoopBackOff", None));
        looping.last_state = Some(ContainerState::default());
        containers.main = vec![looping];
        assert_eq!(phase(&containers).0, "Running");
        containers.failure = Some(("UnsupportedRuntime".into(), "no".into()));
        assert_eq!(phase(&containers).0, "Failed");
    }

    #[test]
    fn unchanged_conditions_keep_their_transition_time() {
        let containers = Containers {
            initialized: true,
            ..Containers::default()
        };
        let first = conditions(&containers, "Pending", &[]);
        std::thread::sleep(std::time::Duration::from_millis(1100));
        let second = conditions(&containers, "Pending", &first);
        assert_eq!(first, second);
    }

    #[test]
    fn not_ready_conditions_name_the_unready_containers() {
        let named = |name: &str, ready: bool| ContainerStatus {
            name: name.into(),
            ready,
            ..ContainerStatus::default()
        };
        let mut containers = Containers {
            initialized: true,
            main: vec![
                named("web", true),
                named("db", false),
                named("cache", false),
            ],
            ..Containers::default()
        };
        let messages = |c: &Containers, phase: &str| -> Vec<Option<String>> {
            conditions(c, phase, &[])
                .into_iter()
                .filter(|c| c.type_.ends_with("Ready"))
                .map(|c| c.message)
                .collect()
        };
        let expected = Some("containers with unready status: [db cache]".to_string());
        assert_eq!(
            messages(&containers, "Running"),
            vec![expected.clone(), expected]
        );
        assert_eq!(messages(&containers, "Failed"), vec![None, None]);
        containers.main.iter_mut().for_each(|s| s.ready = true);
        assert_eq!(messages(&containers, "Running"), vec![None, None]);
    }
}
