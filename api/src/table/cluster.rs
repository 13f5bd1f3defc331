//! Rows for cluster-level kinds: nodes, namespaces, events, leases, runtime classes and
//! certificate signing requests.

use std::collections::BTreeSet;

use serde_json::Value;

use super::time::{age, human_duration, since, timestamp_at};
use super::{AGE, Column, NAME, flag, int, list, name, non_empty_or, text};

pub(super) const NODE_COLUMNS: &[Column] = &[
    NAME,
    Column::new("Status", "string", "The status of the node"),
    Column::new("Roles", "string", "The roles of the node"),
    AGE,
    Column::new("Version", "string", "Kubelet Version reported by the node."),
    Column::new(
        "Internal-IP",
        "string",
        "List of addresses reachable to the node.",
    )
    .wide(),
    Column::new(
        "External-IP",
        "string",
        "List of addresses reachable to the node.",
    )
    .wide(),
    Column::new("OS-Image", "string", "OS Image reported by the node.").wide(),
    Column::new(
        "Kernel-Version",
        "string",
        "Kernel Version reported by the node.",
    )
    .wide(),
    Column::new(
        "Container-Runtime",
        "string",
        "ContainerRuntime Version reported by the node.",
    )
    .wide(),
];

const ROLE_LABEL_PREFIX: &str = "node-role.kubernetes.io/";
const LEGACY_ROLE_LABEL: &str = "kubernetes.io/role";

fn node_status(node: &Value) -> String {
    // The last Ready condition wins, as kubectl indexes conditions by type.
    let ready = list(node, "/status/conditions")
        .iter()
        .rfind(|c| text(c, "/type") == "Ready");
    let mut status = match ready {
        Some(c) if text(c, "/status") == "True" => "Ready".to_string(),
        Some(_) => "NotReady".to_string(),
        None => "Unknown".to_string(),
    };
    if flag(node, "/spec/unschedulable") {
        status.push_str(",SchedulingDisabled");
    }
    status
}

fn node_roles(node: &Value) -> String {
    let mut roles = BTreeSet::new();
    if let Some(labels) = node.pointer("/metadata/labels").and_then(Value::as_object) {
        for (key, value) in labels {
            let value = value.as_str().unwrap_or("");
            if let Some(role) = key.strip_prefix(ROLE_LABEL_PREFIX) {
                if !role.is_empty() {
                    roles.insert(role.to_string());
                }
            } else if key == LEGACY_ROLE_LABEL && !value.is_empty() {
                roles.insert(value.to_string());
            }
        }
    }
    if roles.is_empty() {
        return "<none>".to_string();
    }
    roles.into_iter().collect::<Vec<_>>().join(",")
}

fn node_address<'a>(node: &'a Value, kind: &str) -> &'a str {
    list(node, "/status/addresses")
        .iter()
        .find(|a| text(a, "/type") == kind)
        .map_or("<none>", |a| text(a, "/address"))
}

pub(super) fn node_cells(node: &Value, now: i64) -> Vec<Value> {
    let info = |field: &str| {
        non_empty_or(
            text(node, &format!("/status/nodeInfo/{field}")),
            "<unknown>",
        )
        .to_string()
    };
    vec![
        name(node).into(),
        node_status(node).into(),
        node_roles(node).into(),
        age(node, now).into(),
        text(node, "/status/nodeInfo/kubeletVersion").into(),
        node_address(node, "InternalIP").into(),
        node_address(node, "ExternalIP").into(),
        info("osImage").into(),
        info("kernelVersion").into(),
        info("containerRuntimeVersion").into(),
    ]
}

pub(super) const NAMESPACE_COLUMNS: &[Column] = &[
    NAME,
    Column::new("Status", "string", "The status of the namespace"),
    AGE,
];

pub(super) fn namespace_cells(namespace: &Value, now: i64) -> Vec<Value> {
    vec![
        name(namespace).into(),
        text(namespace, "/status/phase").into(),
        age(namespace, now).into(),
    ]
}

pub(super) const EVENT_COLUMNS: &[Column] = &[
    Column::new(
        "Last Seen",
        "string",
        "The time at which the most recent occurrence of this event was recorded.",
    ),
    Column::new(
        "Type",
        "string",
        "Type of this event (Normal, Warning), new types could be added in the future",
    ),
    Column::new(
        "Reason",
        "string",
        "This should be a short, machine understandable string that gives the reason for the transition into the object's current status.",
    ),
    Column::new("Object", "string", "The object that this event is about."),
    Column::new(
        "Subobject",
        "string",
        "If referring to a piece of an object instead of an entire object, this string should contain a valid JSON/Go field access statement.",
    )
    .wide(),
    Column::new(
        "Source",
        "string",
        "The component reporting this event.",
    )
    .wide(),
    Column::new(
        "Message",
        "string",
        "A human-readable description of the status of this operation.",
    ),
    Column::new(
        "First Seen",
        "string",
        "The time at which the event was first recorded.",
    )
    .wide(),
    Column::new(
        "Count",
        "string",
        "The number of times this event has occurred.",
    )
    .wide(),
    Column {
        format: "name",
        ..Column::new("Name", "string", "Name must be unique within a namespace.").wide()
    },
];

/// `component, host`, preferring the legacy `source` and falling back to the reporting fields.
fn event_source(event: &Value) -> String {
    let component = non_empty_or(
        text(event, "/source/component"),
        text(event, "/reportingComponent"),
    );
    match non_empty_or(
        text(event, "/source/host"),
        text(event, "/reportingInstance"),
    ) {
        "" => component.to_string(),
        instance => format!("{component}, {instance}"),
    }
}

pub(super) fn event_cells(event: &Value, now: i64) -> Vec<Value> {
    let first_seen = match timestamp_at(event, "/firstTimestamp") {
        Some(first) => since(Some(first), now),
        None => since(timestamp_at(event, "/eventTime"), now),
    };
    let mut last_seen = match timestamp_at(event, "/lastTimestamp") {
        Some(last) => since(Some(last), now),
        None => first_seen.clone(),
    };
    let mut count = int(event, "/count");
    if let Some(series) = event.get("series").filter(|s| s.is_object()) {
        last_seen = since(timestamp_at(series, "/lastObservedTime"), now);
        count = int(series, "/count");
    } else if count == 0 {
        // Singleton events from the events.k8s.io API carry no count.
        count = 1;
    }
    let kind = text(event, "/involvedObject/kind").to_lowercase();
    let target = match text(event, "/involvedObject/name") {
        "" => kind,
        object_name => format!("{kind}/{object_name}"),
    };
    vec![
        last_seen.into(),
        text(event, "/type").into(),
        text(event, "/reason").into(),
        target.into(),
        text(event, "/involvedObject/fieldPath").into(),
        event_source(event).into(),
        text(event, "/message").trim().into(),
        first_seen.into(),
        count.into(),
        name(event).into(),
    ]
}

pub(super) const LEASE_COLUMNS: &[Column] = &[
    NAME,
    Column::new(
        "Holder",
        "string",
        "The identity of the holder of a current lease.",
    ),
    AGE,
];

pub(super) fn lease_cells(lease: &Value, now: i64) -> Vec<Value> {
    vec![
        name(lease).into(),
        text(lease, "/spec/holderIdentity").into(),
        age(lease, now).into(),
    ]
}

pub(super) const RUNTIMECLASS_COLUMNS: &[Column] = &[
    NAME,
    Column::new(
        "Handler",
        "string",
        "The underlying runtime and configuration that the CRI implementation will use.",
    ),
    AGE,
];

pub(super) fn runtimeclass_cells(runtime_class: &Value, now: i64) -> Vec<Value> {
    vec![
        name(runtime_class).into(),
        text(runtime_class, "/handler").into(),
        age(runtime_class, now).into(),
    ]
}

pub(super) const CSR_COLUMNS: &[Column] = &[
    NAME,
    AGE,
    Column::new(
        "SignerName",
        "string",
        "The signer the certificate is requested from.",
    ),
    Column::new("Requestor", "string", "The user who created the request."),
    Column::new(
        "RequestedDuration",
        "string",
        "How long the requested certificate should be valid.",
    ),
    Column::new(
        "Condition",
        "string",
        "The request's approval and issuance state.",
    ),
];

pub(super) fn csr_cells(csr: &Value, now: i64) -> Vec<Value> {
    let duration = csr
        .pointer("/spec/expirationSeconds")
        .and_then(Value::as_i64)
        .map_or_else(|| "<none>".to_string(), human_duration);
    vec![
        name(csr).into(),
        age(csr, now).into(),
        text(csr, "/spec/signerName").into(),
        text(csr, "/spec/username").into(),
        duration.into(),
        csr_condition(csr).into(),
    ]
}

/// `Approved,Issued`, `Denied`, `Pending`… as kubectl shows a CSR's state.
fn csr_condition(csr: &Value) -> String {
    let mut shown: Vec<&str> = csr
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|c| c.get("status").and_then(Value::as_str) != Some("False"))
        .filter_map(|c| c.get("type").and_then(Value::as_str))
        .collect();
    if csr
        .pointer("/status/certificate")
        .is_some_and(|c| c.as_str() != Some(""))
    {
        shown.push("Issued");
    }
    if shown.is_empty() {
        "Pending".into()
    } else {
        shown.join(",")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const NOW: i64 = 1_700_000_000; // 2023-11-14T22:13:20Z

    #[test]
    fn ready_control_plane_node() {
        let node = json!({
            "metadata": {"name": "cp-1", "creationTimestamp": "2023-11-11T18:13:20Z",
                "labels": {"node-role.kubernetes.io/control-plane": "",
                           "node-role.kubernetes.io/etcd": "", "kubernetes.io/os": "linux"}},
            "status": {
                "conditions": [{"type": "MemoryPressure", "status": "False"},
                               {"type": "Ready", "status": "True"}],
                "addresses": [{"type": "Hostname", "address": "cp-1"},
                              {"type": "InternalIP", "address": "192.168.1.10"}],
                "nodeInfo": {"kubeletVersion": "v1.33.1", "osImage": "Debian GNU/Linux 12",
                    "kernelVersion": "6.1.0", "containerRuntimeVersion": "rkube://0.1.0"}
            }
        });
        assert_eq!(
            node_cells(&node, NOW),
            vec![
                json!("cp-1"),
                json!("Ready"),
                json!("control-plane,etcd"),
                json!("3d4h"),
                json!("v1.33.1"),
                json!("192.168.1.10"),
                json!("<none>"),
                json!("Debian GNU/Linux 12"),
                json!("6.1.0"),
                json!("rkube://0.1.0")
            ]
        );
    }

    #[test]
    fn not_ready_cordoned_and_unknown_nodes() {
        let cordoned = json!({
            "metadata": {"name": "w1", "labels": {"kubernetes.io/role": "worker"}},
            "spec": {"unschedulable": true},
            "status": {"conditions": [{"type": "Ready", "status": "Unknown"}]}
        });
        let cells = node_cells(&cordoned, NOW);
        assert_eq!(
            cells[1..5],
            [
                json!("NotReady,SchedulingDisabled"),
                json!("worker"),
                json!("<unknown>"),
                json!("")
            ]
        );
        assert_eq!(
            cells[7..],
            [json!("<unknown>"), json!("<unknown>"), json!("<unknown>")]
        );
        let fresh = json!({"metadata": {"name": "w2"}});
        assert_eq!(
            node_cells(&fresh, NOW)[1..3],
            [json!("Unknown"), json!("<none>")]
        );
    }

    #[test]
    fn namespace_lease_runtimeclass_rows() {
        let ns = json!({"metadata": {"name": "default", "creationTimestamp": "2023-11-14T22:13:15Z"},
            "status": {"phase": "Active"}});
        assert_eq!(
            namespace_cells(&ns, NOW),
            vec![json!("default"), json!("Active"), json!("5s")]
        );
        let lease = json!({"metadata": {"name": "kube-scheduler"},
            "spec": {"holderIdentity": "sched-1_abc"}});
        assert_eq!(
            lease_cells(&lease, NOW),
            vec![
                json!("kube-scheduler"),
                json!("sched-1_abc"),
                json!("<unknown>")
            ]
        );
        let rc = json!({"metadata": {"name": "gvisor"}, "handler": "runsc"});
        assert_eq!(
            runtimeclass_cells(&rc, NOW)[..2],
            [json!("gvisor"), json!("runsc")]
        );
    }

    #[test]
    fn legacy_event_row() {
        let event = json!({
            "metadata": {"name": "web.17a", "namespace": "default"},
            "involvedObject": {"kind": "Pod", "name": "web", "fieldPath": "spec.containers{app}"},
            "reason": "Pulled", "type": "Normal", "message": "  Successfully pulled image \n",
            "source": {"component": "kubelet", "host": "node-1"},
            "firstTimestamp": "2023-11-14T22:03:20Z", "lastTimestamp": "2023-11-14T22:12:20Z",
            "count": 4
        });
        assert_eq!(
            event_cells(&event, NOW),
            vec![
                json!("60s"),
                json!("Normal"),
                json!("Pulled"),
                json!("pod/web"),
                json!("spec.containers{app}"),
                json!("kubelet, node-1"),
                json!("Successfully pulled image"),
                json!("10m"),
                json!(4),
                json!("web.17a")
            ]
        );
    }

    #[test]
    fn new_api_event_row() {
        let event = json!({
            "metadata": {"name": "e2"},
            "involvedObject": {"kind": "Node"},
            "reason": "Starting", "type": "Normal", "message": "",
            "reportingComponent": "kube-proxy", "reportingInstance": "node-1",
            "eventTime": "2023-11-14T22:13:10.123456Z"
        });
        let cells = event_cells(&event, NOW);
        assert_eq!(cells[0], json!("9s"));
        assert_eq!(cells[3], json!("node"));
        assert_eq!(cells[5], json!("kube-proxy, node-1"));
        assert_eq!(cells[7..9], [json!("9s"), json!(1)]);

        let series = json!({
            "involvedObject": {"kind": "Pod", "name": "p"},
            "eventTime": "2023-11-14T22:03:20.000000Z",
            "series": {"count": 7, "lastObservedTime": "2023-11-14T22:13:00.000000Z"}
        });
        let cells = event_cells(&series, NOW);
        assert_eq!(cells[0], json!("20s"));
        assert_eq!(cells[7..9], [json!("10m"), json!(7)]);
        assert_eq!(event_cells(&json!({}), NOW)[0], json!("<unknown>"));
    }

    #[test]
    fn csr_rows_show_requestor_and_state() {
        let mut csr = json!({"metadata": {"name": "node-csr-a", "creationTimestamp": "2023-11-14T22:13:00Z"},
            "spec": {"signerName": "kubernetes.io/kube-apiserver-client-kubelet",
                "username": "system:bootstrap:abcdef", "expirationSeconds": 86400}});
        assert_eq!(
            csr_cells(&csr, NOW)[2..],
            [
                json!("kubernetes.io/kube-apiserver-client-kubelet"),
                json!("system:bootstrap:abcdef"),
                json!("24h"),
                json!("Pending"),
            ]
        );
        csr["status"] = json!({"conditions": [{"type": "Approved", "status": "True"}],
            "certificate": "LS0t"});
        assert_eq!(csr_cells(&csr, NOW)[5], json!("Approved,Issued"));
    }
}
