//! The next step of a StatefulSet from its pods: which ordinal to create, which pods to
//! delete (scale-down in reverse order, rolling updates from the highest ordinal down to the
//! partition), and the status to report.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{StatefulSet, StatefulSetStatus};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;

use crate::owned_pods::{self, REVISION_HASH_LABEL};

pub const POD_NAME_LABEL: &str = "statefulset.kubernetes.io/pod-name";
pub const POD_INDEX_LABEL: &str = "apps.kubernetes.io/pod-index";

#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// Ordinals to create pods for.
    pub create: Vec<i32>,
    /// Pods to delete.
    pub delete: Vec<String>,
    pub status: StatefulSetStatus,
}

/// The revision name of the current template: `<statefulset>-<hash>`, as Kubernetes names
/// its ControllerRevisions and labels the pods.
pub fn update_revision(sts: &StatefulSet) -> String {
    let hash = sts
        .spec
        .as_ref()
        .map(|s| owned_pods::template_hash(&s.template))
        .unwrap_or_default();
    format!("{}-{hash}", sts.name_any())
}

/// The ordinal in a pod name `<statefulset>-<ordinal>`.
pub fn ordinal(sts: &str, pod: &str) -> Option<i32> {
    let digits = pod.strip_prefix(sts)?.strip_prefix('-')?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// The pod for `ordinal`, from the current template.
pub fn pod_for(sts: &StatefulSet, ordinal: i32) -> Option<Pod> {
    let spec = sts.spec.as_ref()?;
    let owner = owned_pods::controller_ref(sts)?;
    let name = format!("{}-{ordinal}", sts.name_any());
    let namespace = sts.namespace().unwrap_or_default();
    let mut pod = owned_pods::from_template(&spec.template, owner, &namespace, &name, false);
    let labels = pod.labels_mut();
    labels.insert(POD_NAME_LABEL.into(), name.clone());
    labels.insert(POD_INDEX_LABEL.into(), ordinal.to_string());
    labels.insert(REVISION_HASH_LABEL.into(), update_revision(sts));
    if let Some(pod_spec) = pod.spec.as_mut() {
        pod_spec.hostname = Some(name);
        pod_spec.subdomain = spec.service_name.clone().filter(|s| !s.is_empty());
    }
    Some(pod)
}

fn revision(pod: &Pod) -> Option<&str> {
    pod.labels().get(REVISION_HASH_LABEL).map(String::as_str)
}

/// Decides the next step. With OrderedReady, at most one pod is created or deleted per
/// step and only when every lower ordinal is Running and Ready; with Parallel, all at once.
pub fn plan(sts: &StatefulSet, pods: &[Pod], now: Timestamp) -> Plan {
    let spec = sts.spec.clone().unwrap_or_default();
    let name = sts.name_any();
    let replicas = spec.replicas.unwrap_or(1).max(0);
    let start = spec
        .ordinals
        .as_ref()
        .and_then(|o| o.start)
        .unwrap_or(0)
        .max(0);
    let end = start.saturating_add(replicas);
    let ordered = spec.pod_management_policy.as_deref() != Some("Parallel");
    let update = update_revision(sts);
    let status_before = sts.status.clone().unwrap_or_default();
    let current = status_before
        .current_revision
        .clone()
        .filter(|r| !r.is_empty())
        .unwrap_or_else(|| update.clone());

    let by_ordinal: BTreeMap<i32, &Pod> = pods
        .iter()
        .filter_map(|p| Some((ordinal(&name, &p.name_any())?, p)))
        .collect();
    let mut create = Vec::new();
    let mut delete = Vec::new();
    // Set when an ordered step has to wait for a pod.
    let mut blocked = false;

    for ordinal in start..end {
        match by_ordinal.get(&ordinal) {
            None => {
                create.push(ordinal);
                blocked = ordered;
            }
            Some(pod) if owned_pods::phase(pod) == "Failed" && !owned_pods::is_terminating(pod) => {
                delete.push(pod.name_any());
                blocked = ordered;
            }
            Some(pod) => blocked = ordered && !healthy(pod),
        }
        if blocked {
            break;
        }
    }

    if !blocked {
        let condemned = by_ordinal
            .iter()
            .rev()
            .filter(|(ordinal, _)| **ordinal < start || **ordinal >= end);
        for (_, pod) in condemned {
            if owned_pods::is_terminating(pod) {
                blocked = ordered;
            } else {
                delete.push(pod.name_any());
                blocked = ordered;
            }
            if blocked {
                break;
            }
        }
    }

    let rolling = spec
        .update_strategy
        .as_ref()
        .and_then(|s| s.type_.as_deref())
        != Some("OnDelete");
    if !blocked && rolling && delete.is_empty() && create.is_empty() {
        let partition = spec
            .update_strategy
            .as_ref()
            .and_then(|s| s.rolling_update.as_ref())
            .and_then(|r| r.partition)
            .unwrap_or(0);
        let lowest = start.saturating_add(partition.max(0));
        for ordinal in (lowest..end).rev() {
            let Some(pod) = by_ordinal.get(&ordinal) else {
                break;
            };
            if revision(pod) != Some(update.as_str()) && !owned_pods::is_terminating(pod) {
                delete.push(pod.name_any());
                break;
            }
            // One pod at a time: wait for the last replaced one to be healthy.
            if !healthy(pod) {
                break;
            }
        }
    }

    let status = status(sts, pods, &current, &update, now);
    Plan {
        create,
        delete,
        status,
    }
}

fn healthy(pod: &Pod) -> bool {
    owned_pods::is_running_and_ready(pod) && !owned_pods::is_terminating(pod)
}

fn status(
    sts: &StatefulSet,
    pods: &[Pod],
    current: &str,
    update: &str,
    now: Timestamp,
) -> StatefulSetStatus {
    let spec = sts.spec.clone().unwrap_or_default();
    let min_ready = spec.min_ready_seconds.unwrap_or(0);
    let live: Vec<&Pod> = pods
        .iter()
        .filter(|p| !owned_pods::is_terminating(p))
        .collect();
    let count = |f: &dyn Fn(&Pod) -> bool| {
        i32::try_from(live.iter().filter(|p| f(p)).count()).unwrap_or(i32::MAX)
    };
    let replicas = count(&|_| true);
    let ready = count(&|p| owned_pods::is_ready(p));
    let available = count(&|p| owned_pods::is_available(p, min_ready, now));
    let updated = count(&|p| revision(p) == Some(update));
    let mut current_revision = current.to_string();
    let mut current_replicas = count(&|p| revision(p) == Some(current));
    // A rollout is complete once every pod runs the new revision and is ready.
    if updated == replicas && ready == replicas && replicas == spec.replicas.unwrap_or(1) {
        current_revision = update.to_string();
        current_replicas = updated;
    }
    StatefulSetStatus {
        observed_generation: sts.metadata.generation,
        replicas,
        ready_replicas: Some(ready),
        available_replicas: Some(available),
        current_replicas: Some(current_replicas),
        updated_replicas: Some(updated),
        current_revision: Some(current_revision),
        update_revision: Some(update.to_string()),
        collision_count: Some(
            sts.status
                .as_ref()
                .and_then(|s| s.collision_count)
                .unwrap_or(0),
        ),
        conditions: sts.status.as_ref().and_then(|s| s.conditions.clone()),
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
    use serde_json::json;

    use super::*;
    use crate::owned_pods::test_pods::with_status;

    fn sts(extra_spec: serde_json::Value) -> StatefulSet {
        let mut spec = json!({
            "replicas": 3, "serviceName": "web",
            "selector": {"matchLabels": {"app": "w"}},
            "template": {"metadata": {"labels": {"app": "w"}},
                         "spec": {"containers": [{"name": "c", "image": "i"}]}}
        });
        if let (Some(spec), Some(extra)) = (spec.as_object_mut(), extra_spec.as_object()) {
            spec.extend(extra.clone());
        }
        serde_json::from_value(json!({
            "metadata": {"name": "web", "namespace": "default", "uid": "sts-uid", "generation": 1},
            "spec": spec
        }))
        .unwrap()
    }

    fn pod(set: &StatefulSet, ordinal: i32, phase: &str, ready: bool) -> Pod {
        with_status(pod_for(set, ordinal).unwrap(), phase, ready)
    }

    fn now() -> Timestamp {
        Timestamp::from_second(1_000_000).unwrap()
    }

    #[test]
    fn ordinals_parse_only_from_own_names() {
        assert_eq!(ordinal("web", "web-0"), Some(0));
        assert_eq!(ordinal("web", "web-12"), Some(12));
        assert_eq!(ordinal("web", "web-x"), None);
        assert_eq!(ordinal("web", "webs-1"), None);
        assert_eq!(ordinal("web", "web-"), None);
    }

    #[test]
    fn pods_get_identity_labels_and_hostname() {
        let set = sts(json!({}));
        let pod = pod_for(&set, 2).unwrap();
        assert_eq!(pod.name_any(), "web-2");
        assert_eq!(pod.labels()[POD_NAME_LABEL], "web-2");
        assert_eq!(pod.labels()[POD_INDEX_LABEL], "2");
        assert_eq!(pod.labels()[REVISION_HASH_LABEL], update_revision(&set));
        let spec = pod.spec.unwrap();
        assert_eq!(spec.hostname.as_deref(), Some("web-2"));
        assert_eq!(spec.subdomain.as_deref(), Some("web"));
    }

    #[test]
    fn ordered_ready_creates_one_at_a_time() {
        let set = sts(json!({}));
        assert_eq!(plan(&set, &[], now()).create, vec![0]);
        let pending = [pod(&set, 0, "Pending", false)];
        assert!(plan(&set, &pending, now()).create.is_empty());
        let ready = [pod(&set, 0, "Running", true)];
        assert_eq!(plan(&set, &ready, now()).create, vec![1]);
    }

    #[test]
    fn parallel_creates_all() {
        let set = sts(json!({"podManagementPolicy": "Parallel"}));
        assert_eq!(plan(&set, &[], now()).create, vec![0, 1, 2]);
    }

    #[test]
    fn scale_down_goes_in_reverse_one_at_a_time() {
        let set = sts(json!({"replicas": 1}));
        let pods = [
            pod(&set, 0, "Running", true),
            pod(&set, 1, "Running", true),
            pod(&set, 2, "Running", true),
        ];
        assert_eq!(plan(&set, &pods, now()).delete, vec!["web-2"]);
        let mut terminating = pods[2].clone();
        terminating.metadata.deletion_timestamp = Some(Time(now()));
        let waiting = [pods[0].clone(), pods[1].clone(), terminating];
        assert!(plan(&set, &waiting, now()).delete.is_empty());
    }

    #[test]
    fn failed_pod_is_replaced() {
        let set = sts(json!({}));
        let pods = [pod(&set, 0, "Failed", false)];
        assert_eq!(plan(&set, &pods, now()).delete, vec!["web-0"]);
    }

    #[test]
    fn rolling_update_goes_down_from_the_top_to_the_partition() {
        let old = sts(json!({}));
        let pods: Vec<Pod> = (0..3).map(|i| pod(&old, i, "Running", true)).collect();
        let new = sts(json!({"updateStrategy": {"type": "RollingUpdate",
            "rollingUpdate": {"partition": 1}},
            "template": {"metadata": {"labels": {"app": "w"}},
                         "spec": {"containers": [{"name": "c", "image": "j"}]}}}));
        let mut new = new;
        new.status = Some(StatefulSetStatus {
            current_revision: Some(update_revision(&old)),
            ..StatefulSetStatus::default()
        });
        assert_eq!(plan(&new, &pods, now()).delete, vec!["web-2"]);
        let mut updated = pods.clone();
        updated[2] = pod(&new, 2, "Running", false);
        // The replaced pod is not ready yet: wait.
        assert!(plan(&new, &updated, now()).delete.is_empty());
        updated[2] = pod(&new, 2, "Running", true);
        assert_eq!(plan(&new, &updated, now()).delete, vec!["web-1"]);
        updated[1] = pod(&new, 1, "Running", true);
        // web-0 is below the partition.
        let done = plan(&new, &updated, now());
        assert!(done.delete.is_empty());
        assert_eq!(done.status.updated_replicas, Some(2));
        assert_eq!(done.status.current_replicas, Some(1));
        assert_eq!(done.status.current_revision, Some(update_revision(&old)));
        assert_eq!(done.status.update_revision, Some(update_revision(&new)));
    }

    #[test]
    fn status_counts_and_revisions() {
        let set = sts(json!({}));
        let pods = [
            pod(&set, 0, "Running", true),
            pod(&set, 1, "Pending", false),
        ];
        let status = plan(&set, &pods, now()).status;
        assert_eq!(status.replicas, 2);
        assert_eq!(status.ready_replicas, Some(1));
        assert_eq!(status.available_replicas, Some(1));
        assert_eq!(status.updated_replicas, Some(2));
        assert_eq!(status.update_revision, Some(update_revision(&set)));
        assert_eq!(status.current_revision, Some(update_revision(&set)));
        assert_eq!(status.observed_generation, Some(1));
    }
}
