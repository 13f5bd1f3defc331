//! The pod row: READY, kubectl's STATUS reason logic and RESTARTS with the last restart's age.

use serde_json::{Value, json};

use super::time::{since, timestamp_at};
use super::{AGE, Column, NAME, flag, int, list, name, non_empty_or, text};

pub(super) const COLUMNS: &[Column] = &[
    NAME,
    Column::new(
        "Ready",
        "string",
        "The aggregate readiness state of this pod for accepting traffic.",
    ),
    Column::new(
        "Status",
        "string",
        "The aggregate status of the containers in this pod.",
    ),
    Column::new(
        "Restarts",
        "string",
        "The number of times the containers in this pod have been restarted and when the last container in this pod has restarted.",
    ),
    AGE,
    Column::new("IP", "string", "The IP address allocated to the pod.").wide(),
    Column::new("Node", "string", "The node the pod is bound to.").wide(),
    Column::new(
        "Nominated Node",
        "string",
        "The node the scheduler nominated for this pod after preemption.",
    )
    .wide(),
    Column::new(
        "Readiness Gates",
        "string",
        "Readiness gates whose conditions are true, out of all the pod declares.",
    )
    .wide(),
];

/// Keeps the later of two optional instants (absent counts as the zero time).
fn keep_latest(latest: &mut Option<i128>, candidate: Option<i128>) {
    if candidate > *latest {
        *latest = candidate;
    }
}

fn finished_at(status: &Value) -> Option<i128> {
    timestamp_at(status, "/lastState/terminated/finishedAt")
}

fn condition_is_true(pod: &Value, kind: &str) -> bool {
    list(pod, "/status/conditions")
        .iter()
        .find(|c| text(c, "/type") == kind)
        .is_some_and(|c| text(c, "/status") == "True")
}

/// Why a terminated container stopped, when it carries no reason of its own.
fn exit_description(terminated: &Value) -> String {
    match int(terminated, "/signal") {
        0 => format!("ExitCode:{}", int(terminated, "/exitCode")),
        signal => format!("Signal:{signal}"),
    }
}

struct Tally {
    reason: String,
    ready: usize,
    restarts: i64,
    last_restart: Option<i128>,
}

pub(super) fn cells(pod: &Value, now: i64) -> Vec<Value> {
    let init_specs = list(pod, "/spec/initContainers");
    // Sidecars (init containers with restartPolicy Always) count as regular containers.
    let is_sidecar = |container_name: &str| {
        init_specs
            .iter()
            .any(|c| text(c, "/name") == container_name && text(c, "/restartPolicy") == "Always")
    };
    let sidecars = init_specs
        .iter()
        .filter(|c| text(c, "/restartPolicy") == "Always")
        .count();
    let total = list(pod, "/spec/containers").len() + sidecars;

    let phase = text(pod, "/status/phase");
    let mut reason = non_empty_or(text(pod, "/status/reason"), phase).to_string();
    if list(pod, "/status/conditions")
        .iter()
        .any(|c| text(c, "/type") == "PodScheduled" && text(c, "/reason") == "SchedulingGated")
    {
        reason = "SchedulingGated".to_string();
    }
    let mut tally = Tally {
        reason,
        ready: 0,
        restarts: 0,
        last_restart: None,
    };

    let initializing = tally_init_containers(pod, init_specs.len(), &is_sidecar, &mut tally);
    if !initializing || condition_is_true(pod, "Initialized") {
        tally_containers(pod, &mut tally);
    }

    if pod.pointer("/metadata/deletionTimestamp").is_some() {
        if text(pod, "/status/reason") == "NodeLost" {
            tally.reason = "Unknown".to_string();
        } else if phase != "Succeeded" && phase != "Failed" {
            tally.reason = "Terminating".to_string();
        }
    }

    let restarts = match tally.last_restart {
        Some(last) if tally.restarts != 0 => {
            format!("{} ({} ago)", tally.restarts, since(Some(last), now))
        }
        _ => tally.restarts.to_string(),
    };

    let pod_ip = pod
        .pointer("/status/podIPs/0/ip")
        .and_then(Value::as_str)
        .unwrap_or_else(|| text(pod, "/status/podIP"));
    vec![
        name(pod).into(),
        format!("{}/{}", tally.ready, total).into(),
        tally.reason.into(),
        restarts.into(),
        super::time::age(pod, now).into(),
        non_empty_or(pod_ip, "<none>").into(),
        non_empty_or(text(pod, "/spec/nodeName"), "<none>").into(),
        non_empty_or(text(pod, "/status/nominatedNodeName"), "<none>").into(),
        readiness_gates(pod).into(),
    ]
}

/// Walks init container statuses in order; returns whether the pod is still initializing.
fn tally_init_containers(
    pod: &Value,
    init_count: usize,
    is_sidecar: &dyn Fn(&str) -> bool,
    tally: &mut Tally,
) -> bool {
    let mut sidecar_restarts = 0;
    let mut sidecar_last_restart = None;
    let mut initializing = false;
    for (i, status) in list(pod, "/status/initContainerStatuses")
        .iter()
        .enumerate()
    {
        tally.restarts += int(status, "/restartCount");
        keep_latest(&mut tally.last_restart, finished_at(status));
        let sidecar = is_sidecar(text(status, "/name"));
        if sidecar {
            sidecar_restarts += int(status, "/restartCount");
            keep_latest(&mut sidecar_last_restart, finished_at(status));
        }
        let terminated = status.pointer("/state/terminated");
        let waiting_reason = text(status, "/state/waiting/reason");
        if terminated.is_some_and(|t| int(t, "/exitCode") == 0) {
            continue;
        }
        if sidecar && flag(status, "/started") {
            if flag(status, "/ready") {
                tally.ready += 1;
            }
            continue;
        }
        tally.reason = if let Some(terminated) = terminated {
            match text(terminated, "/reason") {
                "" => format!("Init:{}", exit_description(terminated)),
                reason => format!("Init:{reason}"),
            }
        } else if !waiting_reason.is_empty() && waiting_reason != "PodInitializing" {
            format!("Init:{waiting_reason}")
        } else {
            format!("Init:{i}/{init_count}")
        };
        initializing = true;
        break;
    }
    // Once regular containers are considered, only sidecar restarts carry over.
    if !initializing || condition_is_true(pod, "Initialized") {
        tally.restarts = sidecar_restarts;
        tally.last_restart = sidecar_last_restart;
    }
    initializing
}

/// Walks regular container statuses last to first, so the first container's state wins.
fn tally_containers(pod: &Value, tally: &mut Tally) {
    let mut has_running = false;
    for status in list(pod, "/status/containerStatuses").iter().rev() {
        tally.restarts += int(status, "/restartCount");
        keep_latest(&mut tally.last_restart, finished_at(status));
        let waiting_reason = text(status, "/state/waiting/reason");
        let terminated = status.pointer("/state/terminated");
        if !waiting_reason.is_empty() {
            tally.reason = waiting_reason.to_string();
        } else if let Some(terminated) = terminated {
            tally.reason = match text(terminated, "/reason") {
                "" => exit_description(terminated),
                reason => reason.to_string(),
            };
        } else if flag(status, "/ready") && status.pointer("/state/running").is_some() {
            has_running = true;
            tally.ready += 1;
        }
    }
    // A pod whose first container completed but another still runs isn't "Completed".
    if tally.reason == "Completed" && has_running {
        tally.reason = if condition_is_true_any(pod, "Ready") {
            "Running".to_string()
        } else {
            "NotReady".to_string()
        };
    }
}

/// Any condition of `kind` with status True (kubectl's `hasPodReadyCondition` looks at all).
fn condition_is_true_any(pod: &Value, kind: &str) -> bool {
    list(pod, "/status/conditions")
        .iter()
        .any(|c| text(c, "/type") == kind && text(c, "/status") == "True")
}

fn readiness_gates(pod: &Value) -> String {
    let gates = list(pod, "/spec/readinessGates");
    if gates.is_empty() {
        return "<none>".to_string();
    }
    let passing = gates
        .iter()
        .filter(|gate| condition_is_true(pod, text(gate, "/conditionType")))
        .count();
    format!("{passing}/{}", gates.len())
}

/// kube-apiserver marks rows of finished pods with a `Completed` row condition.
pub(super) fn row_conditions(pod: &Value) -> Option<Value> {
    let (reason, message) = match text(pod, "/status/phase") {
        "Succeeded" => ("Succeeded", "The pod has completed successfully."),
        "Failed" => ("Failed", "The pod failed."),
        _ => return None,
    };
    Some(json!([{
        "type": "Completed",
        "status": "True",
        "reason": reason,
        "message": message,
    }]))
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_700_000_000; // 2023-11-14T22:13:20Z

    fn pod(spec: Value, status: Value) -> Value {
        json!({
            "metadata": {"name": "web", "namespace": "default",
                "creationTimestamp": "2023-11-14T22:08:20Z"},
            "spec": spec,
            "status": status,
        })
    }

    fn one_container() -> Value {
        json!({"containers": [{"name": "app", "image": "nginx"}]})
    }

    fn default_cells(pod: &Value) -> Vec<Value> {
        cells(pod, NOW)[..5].to_vec()
    }

    #[test]
    fn pending_unscheduled() {
        let p = pod(one_container(), json!({"phase": "Pending"}));
        assert_eq!(
            cells(&p, NOW),
            vec![
                json!("web"),
                json!("0/1"),
                json!("Pending"),
                json!("0"),
                json!("5m"),
                json!("<none>"),
                json!("<none>"),
                json!("<none>"),
                json!("<none>")
            ]
        );
    }

    #[test]
    fn running_and_ready_with_wide_cells() {
        let p = pod(
            json!({"containers": [{"name": "a"}, {"name": "b"}], "nodeName": "node-1",
                "readinessGates": [{"conditionType": "example.com/lb"}]}),
            json!({"phase": "Running", "podIP": "10.1.0.7", "podIPs": [{"ip": "10.1.0.7"}],
            "conditions": [{"type": "Ready", "status": "True"},
                           {"type": "example.com/lb", "status": "False"}],
            "containerStatuses": [
                {"name": "a", "ready": true, "restartCount": 0, "state": {"running": {}}},
                {"name": "b", "ready": false, "restartCount": 0, "state": {"running": {}}}
            ]}),
        );
        assert_eq!(
            cells(&p, NOW),
            vec![
                json!("web"),
                json!("1/2"),
                json!("Running"),
                json!("0"),
                json!("5m"),
                json!("10.1.0.7"),
                json!("node-1"),
                json!("<none>"),
                json!("0/1")
            ]
        );
    }

    #[test]
    fn crash_loop_with_restart_age() {
        let p = pod(
            one_container(),
            json!({"phase": "Running", "containerStatuses": [{
                "name": "app", "ready": false, "restartCount": 3,
                "state": {"waiting": {"reason": "CrashLoopBackOff"}},
                "lastState": {"terminated": {"exitCode": 1, "reason": "Error",
                    "finishedAt": "2023-11-14T22:08:20Z"}}
            }]}),
        );
        assert_eq!(
            default_cells(&p),
            [
                json!("web"),
                json!("0/1"),
                json!("CrashLoopBackOff"),
                json!("3 (5m ago)"),
                json!("5m")
            ]
        );
    }

    #[test]
    fn restarts_without_finish_time_show_bare_count() {
        let p = pod(
            one_container(),
            json!({"phase": "Running", "containerStatuses": [{
                "name": "app", "ready": true, "restartCount": 2, "state": {"running": {}}
            }]}),
        );
        assert_eq!(default_cells(&p)[3], json!("2"));
    }

    #[test]
    fn waiting_reasons_surface() {
        for reason in ["ErrImagePull", "ImagePullBackOff", "ContainerCreating"] {
            let p = pod(
                one_container(),
                json!({"phase": "Pending", "containerStatuses": [{
                    "name": "app", "ready": false, "restartCount": 0,
                    "state": {"waiting": {"reason": reason}}
                }]}),
            );
            assert_eq!(default_cells(&p)[2], json!(reason));
        }
    }

    #[test]
    fn completed_and_failed_pods() {
        let done = pod(
            one_container(),
            json!({"phase": "Succeeded", "containerStatuses": [{
                "name": "app", "ready": false, "restartCount": 0,
                "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}
            }]}),
        );
        assert_eq!(
            default_cells(&done)[1..3],
            [json!("0/1"), json!("Completed")]
        );
        assert_eq!(
            row_conditions(&done),
            Some(
                json!([{"type": "Completed", "status": "True", "reason": "Succeeded",
                "message": "The pod has completed successfully."}])
            )
        );
        let killed = pod(
            one_container(),
            json!({"phase": "Failed", "containerStatuses": [{
                "name": "app", "ready": false, "restartCount": 0,
                "state": {"terminated": {"exitCode": 137, "signal": 9}}
            }]}),
        );
        assert_eq!(default_cells(&killed)[2], json!("Signal:9"));
        let exited = pod(
            one_container(),
            json!({"phase": "Failed", "containerStatuses": [{
                "name": "app", "ready": false, "restartCount": 0,
                "state": {"terminated": {"exitCode": 2}}
            }]}),
        );
        assert_eq!(default_cells(&exited)[2], json!("ExitCode:2"));
        assert_eq!(row_conditions(&exited).unwrap()[0]["reason"], "Failed");
        assert_eq!(
            row_conditions(&pod(one_container(), json!({"phase": "Running"}))),
            None
        );
    }

    #[test]
    fn completed_container_next_to_running_one() {
        let status = |ready_condition: &str| {
            json!({"phase": "Running",
            "conditions": [{"type": "Ready", "status": ready_condition}],
            "containerStatuses": [
                {"name": "a", "ready": false, "restartCount": 0,
                 "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}},
                {"name": "b", "ready": true, "restartCount": 0, "state": {"running": {}}}
            ]})
        };
        let spec = json!({"containers": [{"name": "a"}, {"name": "b"}]});
        assert_eq!(
            default_cells(&pod(spec.clone(), status("True")))[1..3],
            [json!("1/2"), json!("Running")]
        );
        assert_eq!(
            default_cells(&pod(spec, status("False")))[2],
            json!("NotReady")
        );
    }

    #[test]
    fn init_container_progress() {
        let spec = json!({"initContainers": [{"name": "i1"}, {"name": "i2"}],
            "containers": [{"name": "app"}]});
        let running_second = pod(
            spec.clone(),
            json!({"phase": "Pending", "initContainerStatuses": [
                {"name": "i1", "restartCount": 0, "state": {"terminated": {"exitCode": 0}}},
                {"name": "i2", "restartCount": 0, "state": {"running": {}}}
            ]}),
        );
        assert_eq!(
            default_cells(&running_second)[1..3],
            [json!("0/1"), json!("Init:1/2")]
        );

        let crashing = pod(
            spec.clone(),
            json!({"phase": "Pending", "initContainerStatuses": [{
                "name": "i1", "restartCount": 4,
                "state": {"waiting": {"reason": "CrashLoopBackOff"}},
                "lastState": {"terminated": {"exitCode": 1, "finishedAt": "2023-11-14T22:12:20Z"}}
            }]}),
        );
        assert_eq!(
            default_cells(&crashing)[2..4],
            [json!("Init:CrashLoopBackOff"), json!("4 (60s ago)")]
        );

        let failed = pod(
            spec,
            json!({"phase": "Pending", "initContainerStatuses": [{
                "name": "i1", "restartCount": 0,
                "state": {"terminated": {"exitCode": 3}}
            }]}),
        );
        assert_eq!(default_cells(&failed)[2], json!("Init:ExitCode:3"));
    }

    #[test]
    fn sidecars_count_as_containers() {
        let spec = json!({"initContainers": [{"name": "proxy", "restartPolicy": "Always"}],
            "containers": [{"name": "app"}]});
        let p = pod(
            spec,
            json!({"phase": "Running",
                "conditions": [{"type": "Initialized", "status": "True"}],
                "initContainerStatuses": [{"name": "proxy", "restartCount": 1, "started": true,
                    "ready": true, "state": {"running": {}}}],
                "containerStatuses": [{"name": "app", "restartCount": 0, "ready": true,
                    "state": {"running": {}}}]}),
        );
        assert_eq!(
            default_cells(&p)[1..4],
            [json!("2/2"), json!("Running"), json!("1")]
        );
    }

    #[test]
    fn terminating_and_node_lost() {
        let mut p = pod(
            one_container(),
            json!({"phase": "Running", "containerStatuses": [{
                "name": "app", "ready": true, "restartCount": 0, "state": {"running": {}}
            }]}),
        );
        p["metadata"]["deletionTimestamp"] = json!("2023-11-14T22:13:00Z");
        assert_eq!(default_cells(&p)[2], json!("Terminating"));
        p["status"]["reason"] = json!("NodeLost");
        assert_eq!(default_cells(&p)[2], json!("Unknown"));
        let mut done = pod(one_container(), json!({"phase": "Succeeded"}));
        done["metadata"]["deletionTimestamp"] = json!("2023-11-14T22:13:00Z");
        assert_eq!(default_cells(&done)[2], json!("Succeeded"));
    }

    #[test]
    fn scheduling_gated_and_status_reason() {
        let gated = pod(
            one_container(),
            json!({"phase": "Pending", "conditions": [
                {"type": "PodScheduled", "status": "False", "reason": "SchedulingGated"}]}),
        );
        assert_eq!(default_cells(&gated)[2], json!("SchedulingGated"));
        let evicted = pod(
            one_container(),
            json!({"phase": "Failed", "reason": "Evicted"}),
        );
        assert_eq!(default_cells(&evicted)[2], json!("Evicted"));
    }
}
