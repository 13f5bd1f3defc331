//! Rows for the apps/v1 and batch/v1 workload controllers.

use serde_json::Value;

use super::time::{age, between, since, timestamp_at};
use super::{AGE, CONTAINERS, Column, IMAGES, NAME, int, len_at, list, name, text};
use crate::selector::{LabelSelector, format_labels};

const SELECTOR: Column = Column::new(
    "Selector",
    "string",
    "Label query over pods that should match the replica count.",
)
.wide();

/// Container names and images of a pod template, each comma-joined on one line.
fn container_cells(object: &Value, containers_pointer: &str) -> [Value; 2] {
    let containers = list(object, containers_pointer);
    let join = |field: &str| {
        containers
            .iter()
            .map(|c| text(c, field))
            .collect::<Vec<_>>()
            .join(",")
    };
    [join("/name").into(), join("/image").into()]
}

/// `metav1.FormatLabelSelector`: `<none>` when empty, `<error>` when invalid.
fn format_selector(object: &Value, pointer: &str) -> String {
    let selector = object.pointer(pointer).unwrap_or(&Value::Null);
    match LabelSelector::from_label_selector_json(selector) {
        Ok(selector) => match selector.to_string() {
            s if s.is_empty() => "<none>".to_string(),
            s => s,
        },
        Err(_) => "<error>".to_string(),
    }
}

/// Spec replica counts default to 1 when unset, as API defaulting makes them.
fn desired_replicas(object: &Value) -> i64 {
    object
        .pointer("/spec/replicas")
        .and_then(Value::as_i64)
        .unwrap_or(1)
}

pub(super) const DEPLOYMENT_COLUMNS: &[Column] = &[
    NAME,
    Column::new("Ready", "string", "Number of the pod with ready state"),
    Column::new(
        "Up-to-date",
        "string",
        "Total number of non-terminated pods targeted by this deployment that have the desired template spec.",
    ),
    Column::new(
        "Available",
        "string",
        "Total number of available pods (ready for at least minReadySeconds) targeted by this deployment.",
    ),
    AGE,
    CONTAINERS,
    IMAGES,
    SELECTOR,
];

pub(super) fn deployment_cells(deployment: &Value, now: i64) -> Vec<Value> {
    // Deployments print the selector as-is: "" when empty, "<invalid>" when malformed.
    let selector = deployment.pointer("/spec/selector").unwrap_or(&Value::Null);
    let selector = LabelSelector::from_label_selector_json(selector)
        .map(|s| s.to_string())
        .unwrap_or_else(|_| "<invalid>".to_string());
    let [containers, images] = container_cells(deployment, "/spec/template/spec/containers");
    vec![
        name(deployment).into(),
        format!(
            "{}/{}",
            int(deployment, "/status/readyReplicas"),
            desired_replicas(deployment)
        )
        .into(),
        int(deployment, "/status/updatedReplicas").into(),
        int(deployment, "/status/availableReplicas").into(),
        age(deployment, now).into(),
        containers,
        images,
        selector.into(),
    ]
}

pub(super) const REPLICASET_COLUMNS: &[Column] = &[
    NAME,
    Column::new("Desired", "integer", "Number of desired pods."),
    Column::new(
        "Current",
        "integer",
        "The most recently observed number of replicas.",
    ),
    Column::new(
        "Ready",
        "integer",
        "The number of pods targeted by this ReplicaSet with a Ready condition.",
    ),
    AGE,
    CONTAINERS,
    IMAGES,
    SELECTOR,
];

pub(super) fn replicaset_cells(replicaset: &Value, now: i64) -> Vec<Value> {
    let [containers, images] = container_cells(replicaset, "/spec/template/spec/containers");
    vec![
        name(replicaset).into(),
        desired_replicas(replicaset).into(),
        int(replicaset, "/status/replicas").into(),
        int(replicaset, "/status/readyReplicas").into(),
        age(replicaset, now).into(),
        containers,
        images,
        format_selector(replicaset, "/spec/selector").into(),
    ]
}

pub(super) const DAEMONSET_COLUMNS: &[Column] = &[
    NAME,
    Column::new(
        "Desired",
        "integer",
        "The total number of nodes that should be running the daemon pod.",
    ),
    Column::new(
        "Current",
        "integer",
        "The number of nodes that are running at least one daemon pod and are supposed to.",
    ),
    Column::new(
        "Ready",
        "integer",
        "The number of nodes that should be running the daemon pod and have one or more of the daemon pod running and ready.",
    ),
    Column::new(
        "Up-to-date",
        "integer",
        "The total number of nodes that are running updated daemon pod.",
    ),
    Column::new(
        "Available",
        "integer",
        "The number of nodes that should be running the daemon pod and have one or more of the daemon pod running and available.",
    ),
    Column::new(
        "Node Selector",
        "string",
        "Selector which must match a node's labels for the pod to be scheduled on that node.",
    ),
    AGE,
    CONTAINERS,
    IMAGES,
    SELECTOR,
];

pub(super) fn daemonset_cells(daemonset: &Value, now: i64) -> Vec<Value> {
    let [containers, images] = container_cells(daemonset, "/spec/template/spec/containers");
    let node_selector = daemonset
        .pointer("/spec/template/spec/nodeSelector")
        .and_then(Value::as_object);
    vec![
        name(daemonset).into(),
        int(daemonset, "/status/desiredNumberScheduled").into(),
        int(daemonset, "/status/currentNumberScheduled").into(),
        int(daemonset, "/status/numberReady").into(),
        int(daemonset, "/status/updatedNumberScheduled").into(),
        int(daemonset, "/status/numberAvailable").into(),
        format_labels(node_selector).into(),
        age(daemonset, now).into(),
        containers,
        images,
        format_selector(daemonset, "/spec/selector").into(),
    ]
}

pub(super) const STATEFULSET_COLUMNS: &[Column] = &[
    NAME,
    Column::new("Ready", "string", "Number of the pod with ready state"),
    AGE,
    CONTAINERS,
    IMAGES,
];

pub(super) fn statefulset_cells(statefulset: &Value, now: i64) -> Vec<Value> {
    let [containers, images] = container_cells(statefulset, "/spec/template/spec/containers");
    vec![
        name(statefulset).into(),
        format!(
            "{}/{}",
            int(statefulset, "/status/readyReplicas"),
            desired_replicas(statefulset)
        )
        .into(),
        age(statefulset, now).into(),
        containers,
        images,
    ]
}

pub(super) const JOB_COLUMNS: &[Column] = &[
    NAME,
    Column::new("Status", "string", "Status of the job."),
    Column::new(
        "Completions",
        "string",
        "The number of pods which reached phase Succeeded.",
    ),
    Column::new("Duration", "string", "Time required to complete the job."),
    AGE,
    CONTAINERS,
    IMAGES,
    SELECTOR,
];

/// The status of the first condition of `kind` is True (kubectl stops at the first match).
fn job_condition(job: &Value, kind: &str) -> bool {
    list(job, "/status/conditions")
        .iter()
        .find(|c| text(c, "/type") == kind)
        .is_some_and(|c| text(c, "/status") == "True")
}

fn job_status(job: &Value) -> &'static str {
    if job_condition(job, "Complete") {
        "Complete"
    } else if job_condition(job, "Failed") {
        "Failed"
    } else if job.pointer("/metadata/deletionTimestamp").is_some() {
        "Terminating"
    } else if job_condition(job, "Suspended") {
        "Suspended"
    } else if job_condition(job, "FailureTarget") {
        "FailureTarget"
    } else {
        "Running"
    }
}

pub(super) fn job_cells(job: &Value, now: i64) -> Vec<Value> {
    let succeeded = int(job, "/status/succeeded");
    let completions = match job.pointer("/spec/completions").and_then(Value::as_i64) {
        Some(completions) => format!("{succeeded}/{completions}"),
        None => match int(job, "/spec/parallelism") {
            parallelism if parallelism > 1 => format!("{succeeded}/1 of {parallelism}"),
            _ => format!("{succeeded}/1"),
        },
    };
    let duration = match (
        timestamp_at(job, "/status/startTime"),
        timestamp_at(job, "/status/completionTime"),
    ) {
        (None, _) => String::new(),
        (Some(start), None) => since(Some(start), now),
        (Some(start), Some(end)) => between(start, end),
    };
    let [containers, images] = container_cells(job, "/spec/template/spec/containers");
    vec![
        name(job).into(),
        job_status(job).into(),
        completions.into(),
        duration.into(),
        age(job, now).into(),
        containers,
        images,
        format_selector(job, "/spec/selector").into(),
    ]
}

pub(super) const CRONJOB_COLUMNS: &[Column] = &[
    NAME,
    Column::new("Schedule", "string", "The schedule in Cron format."),
    Column::new(
        "Timezone",
        "string",
        "The time zone name for the given schedule.",
    ),
    Column::new(
        "Suspend",
        "boolean",
        "Whether subsequent executions are suspended.",
    ),
    Column::new("Active", "integer", "Number of currently running jobs."),
    Column::new(
        "Last Schedule",
        "string",
        "Information when was the last time the job was successfully scheduled.",
    ),
    AGE,
    CONTAINERS,
    IMAGES,
    SELECTOR,
];

pub(super) fn cronjob_cells(cronjob: &Value, now: i64) -> Vec<Value> {
    let last_schedule = match timestamp_at(cronjob, "/status/lastScheduleTime") {
        Some(last) => since(Some(last), now),
        None => "<none>".to_string(),
    };
    let suspend = match cronjob.pointer("/spec/suspend").and_then(Value::as_bool) {
        Some(true) => "True",
        Some(false) => "False",
        None => "<unset>",
    };
    let template = "/spec/jobTemplate/spec/template/spec/containers";
    let [containers, images] = container_cells(cronjob, template);
    vec![
        name(cronjob).into(),
        text(cronjob, "/spec/schedule").into(),
        super::non_empty_or(text(cronjob, "/spec/timeZone"), "<none>").into(),
        suspend.into(),
        len_at(cronjob, "/status/active").into(),
        last_schedule.into(),
        age(cronjob, now).into(),
        containers,
        images,
        format_selector(cronjob, "/spec/jobTemplate/spec/selector").into(),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const NOW: i64 = 1_700_000_000; // 2023-11-14T22:13:20Z
    const TEN_DAYS_AGO: &str = "2023-11-04T22:13:20Z";

    fn template() -> Value {
        json!({"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [
            {"name": "nginx", "image": "nginx:1.25"},
            {"name": "sidecar", "image": "busybox"}
        ]}})
    }

    #[test]
    fn deployment_row() {
        let d = json!({
            "metadata": {"name": "web", "creationTimestamp": TEN_DAYS_AGO},
            "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}}, "template": template()},
            "status": {"readyReplicas": 2, "updatedReplicas": 3, "availableReplicas": 2}
        });
        assert_eq!(
            deployment_cells(&d, NOW),
            vec![
                json!("web"),
                json!("2/3"),
                json!(3),
                json!(2),
                json!("10d"),
                json!("nginx,sidecar"),
                json!("nginx:1.25,busybox"),
                json!("app=web")
            ]
        );
        let fresh = json!({"metadata": {"name": "new"}, "spec": {}});
        assert_eq!(
            deployment_cells(&fresh, NOW)[1..],
            [
                json!("0/1"),
                json!(0),
                json!(0),
                json!("<unknown>"),
                json!(""),
                json!(""),
                json!("")
            ]
        );
    }

    #[test]
    fn replicaset_row() {
        let rs = json!({
            "metadata": {"name": "web-5d4f", "creationTimestamp": TEN_DAYS_AGO},
            "spec": {"replicas": 3, "template": template(), "selector": {
                "matchLabels": {"app": "web", "pod-template-hash": "5d4f"}}},
            "status": {"replicas": 3, "readyReplicas": 1}
        });
        assert_eq!(
            replicaset_cells(&rs, NOW),
            vec![
                json!("web-5d4f"),
                json!(3),
                json!(3),
                json!(1),
                json!("10d"),
                json!("nginx,sidecar"),
                json!("nginx:1.25,busybox"),
                json!("app=web,pod-template-hash=5d4f")
            ]
        );
        let bad =
            json!({"spec": {"selector": {"matchExpressions": [{"key": "a", "operator": "Is"}]}}});
        assert_eq!(replicaset_cells(&bad, NOW)[7], json!("<error>"));
    }

    #[test]
    fn daemonset_row() {
        let ds = json!({
            "metadata": {"name": "agent", "creationTimestamp": TEN_DAYS_AGO},
            "spec": {"selector": {"matchLabels": {"app": "agent"}}, "template": {"spec": {
                "nodeSelector": {"kubernetes.io/os": "linux"},
                "containers": [{"name": "agent", "image": "agent:1"}]}}},
            "status": {"desiredNumberScheduled": 3, "currentNumberScheduled": 3, "numberReady": 2,
                "updatedNumberScheduled": 3, "numberAvailable": 2}
        });
        assert_eq!(
            daemonset_cells(&ds, NOW),
            vec![
                json!("agent"),
                json!(3),
                json!(3),
                json!(2),
                json!(3),
                json!(2),
                json!("kubernetes.io/os=linux"),
                json!("10d"),
                json!("agent"),
                json!("agent:1"),
                json!("app=agent")
            ]
        );
    }

    #[test]
    fn statefulset_row() {
        let sts = json!({
            "metadata": {"name": "db", "creationTimestamp": TEN_DAYS_AGO},
            "spec": {"replicas": 3, "template": template()},
            "status": {"readyReplicas": 3}
        });
        assert_eq!(
            statefulset_cells(&sts, NOW),
            vec![
                json!("db"),
                json!("3/3"),
                json!("10d"),
                json!("nginx,sidecar"),
                json!("nginx:1.25,busybox")
            ]
        );
    }

    #[test]
    fn job_rows() {
        let running = json!({
            "metadata": {"name": "pi", "creationTimestamp": "2023-11-14T22:03:20Z"},
            "spec": {"completions": 3, "parallelism": 1, "template": template(),
                "selector": {"matchLabels": {"batch.kubernetes.io/controller-uid": "abc"}}},
            "status": {"succeeded": 1, "startTime": "2023-11-14T22:03:20Z"}
        });
        assert_eq!(
            job_cells(&running, NOW)[..5],
            [
                json!("pi"),
                json!("Running"),
                json!("1/3"),
                json!("10m"),
                json!("10m")
            ]
        );
        assert_eq!(
            job_cells(&running, NOW)[7],
            json!("batch.kubernetes.io/controller-uid=abc")
        );

        let complete = json!({
            "metadata": {"name": "pi"},
            "spec": {},
            "status": {"succeeded": 1, "startTime": "2023-11-14T22:03:20Z",
                "completionTime": "2023-11-14T22:03:45Z",
                "conditions": [{"type": "Complete", "status": "True"}]}
        });
        assert_eq!(
            job_cells(&complete, NOW)[1..4],
            [json!("Complete"), json!("1/1"), json!("25s")]
        );

        let failed = json!({"spec": {"parallelism": 4}, "status": {"conditions": [
            {"type": "FailureTarget", "status": "True"}, {"type": "Failed", "status": "True"}]}});
        assert_eq!(
            job_cells(&failed, NOW)[1..4],
            [json!("Failed"), json!("0/1 of 4"), json!("")]
        );

        let suspended = json!({"spec": {"suspend": true}, "status": {"conditions": [
            {"type": "Suspended", "status": "True"}]}});
        assert_eq!(job_cells(&suspended, NOW)[1], json!("Suspended"));
        let deleting = json!({"metadata": {"deletionTimestamp": "2023-11-14T22:03:20Z"}});
        assert_eq!(job_cells(&deleting, NOW)[1], json!("Terminating"));
        assert_eq!(job_cells(&deleting, NOW)[7], json!("<none>"));
    }

    #[test]
    fn cronjob_rows() {
        let cj = json!({
            "metadata": {"name": "backup", "creationTimestamp": TEN_DAYS_AGO},
            "spec": {"schedule": "*/5 * * * *", "suspend": false, "jobTemplate": {"spec": {
                "template": {"spec": {"containers": [{"name": "b", "image": "backup:2"}]}}}}},
            "status": {"active": [{"name": "backup-1"}], "lastScheduleTime": "2023-11-14T22:10:00Z"}
        });
        assert_eq!(
            cronjob_cells(&cj, NOW),
            vec![
                json!("backup"),
                json!("*/5 * * * *"),
                json!("<none>"),
                json!("False"),
                json!(1),
                json!("3m20s"),
                json!("10d"),
                json!("b"),
                json!("backup:2"),
                json!("<none>")
            ]
        );
        let fresh = json!({"spec": {"schedule": "@daily", "timeZone": "Europe/Paris"}});
        assert_eq!(
            cronjob_cells(&fresh, NOW)[2..6],
            [
                json!("Europe/Paris"),
                json!("<unset>"),
                json!(0),
                json!("<none>")
            ]
        );
    }
}
