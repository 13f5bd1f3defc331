//! Which nodes a DaemonSet's pods belong on, which pods to create and delete (rolling
//! updates included), and the status to report, from the DaemonSet, the nodes and its pods.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{DaemonSet, DaemonSetStatus};
use k8s_openapi::api::core::v1::{
    Affinity, Node, NodeAffinity, NodeSelector, NodeSelectorRequirement, NodeSelectorTerm, Pod,
    PodSpec, PodTemplateSpec, Toleration,
};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;

use crate::node_fit;
use crate::owned_pods::{self, REVISION_HASH_LABEL};

/// The tolerations every daemon pod gets, so it keeps running through the node conditions
/// that would drive other pods away.
fn default_tolerations(host_network: bool) -> Vec<Toleration> {
    let mut tolerations: Vec<Toleration> = [
        ("node.kubernetes.io/not-ready", "NoExecute"),
        ("node.kubernetes.io/unreachable", "NoExecute"),
        ("node.kubernetes.io/disk-pressure", "NoSchedule"),
        ("node.kubernetes.io/memory-pressure", "NoSchedule"),
        ("node.kubernetes.io/pid-pressure", "NoSchedule"),
        ("node.kubernetes.io/unschedulable", "NoSchedule"),
    ]
    .into_iter()
    .map(|(key, effect)| Toleration {
        key: Some(key.into()),
        operator: Some("Exists".into()),
        effect: Some(effect.into()),
        ..Toleration::default()
    })
    .collect();
    if host_network {
        tolerations.push(Toleration {
            key: Some("node.kubernetes.io/network-unavailable".into()),
            operator: Some("Exists".into()),
            effect: Some("NoSchedule".into()),
            ..Toleration::default()
        });
    }
    tolerations
}

/// The template's pod spec with the daemon tolerations added (those it lacks).
pub fn daemon_pod_spec(template: &PodTemplateSpec) -> PodSpec {
    let mut spec = template.spec.clone().unwrap_or_default();
    let tolerations = spec.tolerations.get_or_insert_with(Vec::new);
    for extra in default_tolerations(spec.host_network == Some(true)) {
        let present = tolerations
            .iter()
            .any(|t| t.key == extra.key && t.effect == extra.effect);
        if !present {
            tolerations.push(extra);
        }
    }
    spec
}

/// Whether a daemon pod should start on a node, and whether one already there may stay:
/// an untolerated NoSchedule taint keeps new pods off but does not evict.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fit {
    pub should_run: bool,
    pub may_stay: bool,
}

pub fn fit(spec: &PodSpec, node: &Node) -> Fit {
    if !node_fit::selects(spec, node) {
        return Fit {
            should_run: false,
            may_stay: false,
        };
    }
    let tolerations = spec.tolerations.as_deref().unwrap_or_default();
    let evicting = node_fit::untolerated(node, tolerations, &["NoExecute"])
        .next()
        .is_some();
    let blocking = node_fit::untolerated(node, tolerations, &["NoSchedule"])
        .next()
        .is_some();
    Fit {
        should_run: !evicting && !blocking,
        may_stay: !evicting,
    }
}

/// The node a daemon pod is for: where it is bound, or else the node its affinity names.
pub fn target_node(pod: &Pod) -> Option<String> {
    let spec = pod.spec.as_ref()?;
    if let Some(node) = spec.node_name.as_ref().filter(|n| !n.is_empty()) {
        return Some(node.clone());
    }
    let terms = &spec
        .affinity
        .as_ref()?
        .node_affinity
        .as_ref()?
        .required_during_scheduling_ignored_during_execution
        .as_ref()?
        .node_selector_terms;
    terms
        .iter()
        .flat_map(|t| t.match_fields.iter().flatten())
        .find(|r| r.key == "metadata.name" && r.operator == "In")
        .and_then(|r| r.values.as_ref()?.first().cloned())
}

/// A daemon pod for `node`: the template with the revision hash label, the daemon
/// tolerations, and a required affinity for exactly that node (the scheduler binds it).
pub fn pod_for_node(ds: &DaemonSet, node: &str, hash: &str) -> Option<Pod> {
    let spec = ds.spec.as_ref()?;
    let owner = owned_pods::controller_ref(ds)?;
    let namespace = ds.namespace().unwrap_or_default();
    let mut pod = owned_pods::from_template(
        &spec.template,
        owner,
        &namespace,
        &format!("{}-", ds.name_any()),
        true,
    );
    pod.labels_mut()
        .insert(REVISION_HASH_LABEL.into(), hash.into());
    let mut pod_spec = daemon_pod_spec(&spec.template);
    let affinity = pod_spec.affinity.get_or_insert_with(Affinity::default);
    let node_affinity = affinity
        .node_affinity
        .get_or_insert_with(NodeAffinity::default);
    node_affinity.required_during_scheduling_ignored_during_execution = Some(NodeSelector {
        node_selector_terms: vec![NodeSelectorTerm {
            match_fields: Some(vec![NodeSelectorRequirement {
                key: "metadata.name".into(),
                operator: "In".into(),
                values: Some(vec![node.to_string()]),
            }]),
            match_expressions: None,
        }],
    });
    pod.spec = Some(pod_spec);
    Some(pod)
}

#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// Nodes that need a daemon pod.
    pub create: Vec<String>,
    /// Pods to delete.
    pub delete: Vec<String>,
    pub status: DaemonSetStatus,
}

fn is_updated(pod: &Pod, hash: &str) -> bool {
    pod.labels().get(REVISION_HASH_LABEL).map(String::as_str) == Some(hash)
}

/// `maxUnavailable` as a number of nodes: percentages of the desired count round up, and at
/// least one pod may be down at a time so the update progresses.
fn max_unavailable(ds: &DaemonSet, desired: usize) -> usize {
    let value = ds
        .spec
        .as_ref()
        .and_then(|s| s.update_strategy.as_ref())
        .and_then(|s| s.rolling_update.as_ref())
        .and_then(|r| r.max_unavailable.clone())
        .unwrap_or(IntOrString::Int(1));
    let count = match value {
        IntOrString::Int(n) => usize::try_from(n).unwrap_or(0),
        IntOrString::String(text) => {
            let percent: usize = text.trim_end_matches('%').parse().unwrap_or(0);
            (desired * percent).div_ceil(100)
        }
    };
    count.max(1)
}

fn on_delete(ds: &DaemonSet) -> bool {
    ds.spec
        .as_ref()
        .and_then(|s| s.update_strategy.as_ref())
        .and_then(|s| s.type_.as_deref())
        == Some("OnDelete")
}

pub fn plan(ds: &DaemonSet, nodes: &[Node], pods: &[Pod], now: Timestamp) -> Plan {
    let spec = ds.spec.clone().unwrap_or_default();
    let hash = owned_pods::template_hash(&spec.template);
    let pod_spec = daemon_pod_spec(&spec.template);
    let min_ready = spec.min_ready_seconds.unwrap_or(0);
    let mut by_node: BTreeMap<String, Vec<&Pod>> = BTreeMap::new();
    let mut delete = Vec::new();
    for pod in pods.iter().filter(|p| !owned_pods::is_terminating(p)) {
        match target_node(pod) {
            // A failed daemon pod is replaced.
            Some(_) if owned_pods::phase(pod) == "Failed" => delete.push(pod.name_any()),
            Some(node) => by_node.entry(node).or_default().push(pod),
            None => delete.push(pod.name_any()),
        }
    }
    let mut create = Vec::new();
    let mut status = DaemonSetStatus {
        observed_generation: ds.metadata.generation,
        ..DaemonSetStatus::default()
    };
    let (mut desired, mut current, mut ready, mut available, mut updated, mut misscheduled) =
        (0, 0, 0, 0, 0, 0);
    // Old-revision pods a rolling update may replace, available ones separately.
    let mut old_unavailable = Vec::new();
    let mut old_available = Vec::new();
    let mut unavailable = 0;
    for node in nodes {
        let name = node.name_any();
        let mut here = by_node.remove(&name).unwrap_or_default();
        let fit = fit(&pod_spec, node);
        if !fit.may_stay {
            delete.extend(here.iter().map(|p| p.name_any()));
            here.clear();
        } else if here.len() > 1 {
            // Keep the oldest pod on the node.
            here.sort_by_key(|p| p.creation_timestamp().map(|t| t.0));
            delete.extend(here.drain(1..).map(|p| p.name_any()));
        }
        if fit.should_run {
            desired += 1;
        }
        let Some(pod) = here.first() else {
            if fit.should_run {
                create.push(name);
                unavailable += 1;
            }
            continue;
        };
        if !fit.should_run {
            misscheduled += 1;
            continue;
        }
        current += 1;
        let is_available = owned_pods::is_available(pod, min_ready, now);
        ready += usize::from(owned_pods::is_ready(pod));
        available += usize::from(is_available);
        if is_updated(pod, &hash) {
            updated += 1;
        } else if is_available {
            old_available.push(pod.name_any());
        } else {
            old_unavailable.push(pod.name_any());
        }
        if !is_available {
            unavailable += 1;
        }
    }
    // Pods for nodes that no longer exist.
    delete.extend(by_node.into_values().flatten().map(|p| p.name_any()));
    if !on_delete(ds) {
        let budget = max_unavailable(ds, desired);
        // Replacing a pod that is down anyway costs no availability.
        delete.extend(old_unavailable);
        let room = budget.saturating_sub(unavailable);
        delete.extend(old_available.into_iter().take(room));
    }
    let count = |n: usize| i32::try_from(n).unwrap_or(i32::MAX);
    status.desired_number_scheduled = count(desired);
    status.current_number_scheduled = count(current);
    status.number_misscheduled = count(misscheduled);
    status.number_ready = count(ready);
    status.number_available = (available > 0).then(|| count(available));
    status.number_unavailable = (desired > available).then(|| count(desired - available));
    status.updated_number_scheduled = (updated > 0).then(|| count(updated));
    Plan {
        create,
        delete,
        status,
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::{NodeSpec, Taint};
    use kube::api::ObjectMeta;
    use serde_json::json;

    use super::*;
    use crate::owned_pods::test_pods::with_status;

    fn daemonset(extra_spec: serde_json::Value) -> DaemonSet {
        let mut spec = json!({
            "selector": {"matchLabels": {"app": "d"}},
            "template": {"metadata": {"labels": {"app": "d"}},
                         "spec": {"containers": [{"name": "c", "image": "i"}]}}
        });
        if let (Some(spec), Some(extra)) = (spec.as_object_mut(), extra_spec.as_object()) {
            spec.extend(extra.clone());
        }
        serde_json::from_value(json!({
            "metadata": {"name": "d", "namespace": "default", "uid": "ds-uid", "generation": 2},
            "spec": spec
        }))
        .unwrap()
    }

    fn node(name: &str, taints: Vec<Taint>) -> Node {
        Node {
            metadata: ObjectMeta {
                name: Some(name.into()),
                labels: Some([("role".to_string(), name.to_string())].into()),
                ..ObjectMeta::default()
            },
            spec: Some(NodeSpec {
                taints: Some(taints),
                ..NodeSpec::default()
            }),
            status: None,
        }
    }

    fn taint(key: &str, effect: &str) -> Taint {
        Taint {
            key: key.into(),
            effect: effect.into(),
            ..Taint::default()
        }
    }

    fn ready_pod(ds: &DaemonSet, node: &str, name: &str, hash: &str, ready: bool) -> Pod {
        let mut pod = pod_for_node(ds, node, hash).unwrap();
        pod.metadata.name = Some(name.into());
        with_status(pod, "Running", ready)
    }

    fn now() -> Timestamp {
        Timestamp::from_second(1_000_000).unwrap()
    }

    #[test]
    fn eligibility_follows_selector_and_taints() {
        let ds = daemonset(json!({}));
        let spec = daemon_pod_spec(&ds.spec.as_ref().unwrap().template);
        let plain = fit(&spec, &node("a", vec![]));
        assert!(plain.should_run && plain.may_stay);
        // Default daemon tolerations cover unreachable and unschedulable nodes.
        let unreachable = node(
            "b",
            vec![
                taint("node.kubernetes.io/unreachable", "NoExecute"),
                taint("node.kubernetes.io/unschedulable", "NoSchedule"),
            ],
        );
        assert!(fit(&spec, &unreachable).should_run);
        let dedicated = fit(&spec, &node("c", vec![taint("dedicated", "NoSchedule")]));
        assert_eq!(
            dedicated,
            Fit {
                should_run: false,
                may_stay: true
            }
        );
        let evicting = fit(&spec, &node("d", vec![taint("dedicated", "NoExecute")]));
        assert_eq!(
            evicting,
            Fit {
                should_run: false,
                may_stay: false
            }
        );
        let selective = daemonset(json!({"template": {"metadata": {"labels": {"app": "d"}},
            "spec": {"nodeSelector": {"role": "a"}, "containers": []}}}));
        let spec = daemon_pod_spec(&selective.spec.as_ref().unwrap().template);
        assert!(fit(&spec, &node("a", vec![])).should_run);
        assert!(!fit(&spec, &node("b", vec![])).may_stay);
    }

    #[test]
    fn daemon_pods_target_their_node() {
        let ds = daemonset(json!({}));
        let pod = pod_for_node(&ds, "n1", "h").unwrap();
        assert_eq!(target_node(&pod).as_deref(), Some("n1"));
        assert_eq!(pod.labels()[REVISION_HASH_LABEL], "h");
        assert_eq!(pod.metadata.generate_name.as_deref(), Some("d-"));
        let tolerations = pod.spec.unwrap().tolerations.unwrap();
        assert!(
            tolerations
                .iter()
                .any(|t| t.key.as_deref() == Some("node.kubernetes.io/unreachable"))
        );
    }

    #[test]
    fn one_pod_per_eligible_node() {
        let ds = daemonset(json!({}));
        let hash = owned_pods::template_hash(&ds.spec.as_ref().unwrap().template);
        let nodes = [
            node("a", vec![]),
            node("b", vec![]),
            node("c", vec![taint("x", "NoSchedule")]),
        ];
        let pods = [
            ready_pod(&ds, "a", "pa", &hash, true),
            ready_pod(&ds, "a", "pa2", &hash, true),
            ready_pod(&ds, "gone", "pg", &hash, true),
        ];
        let plan = plan(&ds, &nodes, &pods, now());
        assert_eq!(plan.create, vec!["b"]);
        assert_eq!(plan.delete.len(), 2);
        assert!(plan.delete.contains(&"pg".to_string()));
        assert_eq!(plan.status.desired_number_scheduled, 2);
        assert_eq!(plan.status.current_number_scheduled, 1);
        assert_eq!(plan.status.number_ready, 1);
        assert_eq!(plan.status.number_unavailable, Some(1));
        assert_eq!(plan.status.updated_number_scheduled, Some(1));
        assert_eq!(plan.status.observed_generation, Some(2));
    }

    #[test]
    fn rolling_update_respects_max_unavailable() {
        let ds = daemonset(json!({"updateStrategy": {"type": "RollingUpdate",
            "rollingUpdate": {"maxUnavailable": 1}}}));
        let nodes = [node("a", vec![]), node("b", vec![]), node("c", vec![])];
        let old = [
            ready_pod(&ds, "a", "pa", "old", true),
            ready_pod(&ds, "b", "pb", "old", true),
            ready_pod(&ds, "c", "pc", "old", false),
        ];
        // The unready old pod goes first, and that uses up the budget.
        assert_eq!(plan(&ds, &nodes, &old, now()).delete, vec!["pc"]);
        let hash = owned_pods::template_hash(&ds.spec.as_ref().unwrap().template);
        let mut partly = old.clone();
        partly[2] = ready_pod(&ds, "c", "pc2", &hash, true);
        assert_eq!(plan(&ds, &nodes, &partly, now()).delete.len(), 1);
        let on_delete = daemonset(json!({"updateStrategy": {"type": "OnDelete"}}));
        assert!(plan(&on_delete, &nodes, &old, now()).delete.is_empty());
    }

    #[test]
    fn percentage_budget_rounds_up() {
        let ds = daemonset(json!({"updateStrategy": {"type": "RollingUpdate",
            "rollingUpdate": {"maxUnavailable": "30%"}}}));
        assert_eq!(max_unavailable(&ds, 10), 3);
        assert_eq!(max_unavailable(&ds, 1), 1);
        assert_eq!(max_unavailable(&ds, 0), 1);
    }
}
