//! Taints and tolerations: NoSchedule and NoExecute taints must be tolerated; PreferNoSchedule
//! taints only lower a node's score.

use k8s_openapi::api::core::v1::{Taint, Toleration};

use super::Reason;
use crate::node_info::NodeSpec;
use crate::pod_info::PodInfo;

/// Whether `toleration` covers `taint`: an empty effect covers every effect, `Exists` with no
/// key covers every key, `Equal` (the default) needs key and value to match.
pub fn tolerates(toleration: &Toleration, taint: &Taint) -> bool {
    if let Some(effect) = toleration.effect.as_deref().filter(|e| !e.is_empty())
        && effect != taint.effect
    {
        return false;
    }
    let key = toleration.key.as_deref().unwrap_or_default();
    match toleration.operator.as_deref() {
        Some("Exists") => key.is_empty() || key == taint.key,
        None | Some("") | Some("Equal") => {
            key == taint.key
                && toleration.value.as_deref().unwrap_or_default()
                    == taint.value.as_deref().unwrap_or_default()
        }
        Some(_) => false,
    }
}

pub fn tolerated(tolerations: &[Toleration], taint: &Taint) -> bool {
    tolerations.iter().any(|t| tolerates(t, taint))
}

pub fn filter(pod: &PodInfo, node: &NodeSpec) -> Result<(), Reason> {
    let blocking = node.taints.iter().find(|taint| {
        matches!(taint.effect.as_str(), "NoSchedule" | "NoExecute")
            && !tolerated(&pod.tolerations, taint)
    });
    match blocking {
        Some(taint) => Err(Reason::UntoleratedTaint {
            key: taint.key.clone(),
            value: taint.value.clone().unwrap_or_default(),
        }),
        None => Ok(()),
    }
}

/// How many PreferNoSchedule taints of `node` the pod does not tolerate (fewer is better).
pub fn intolerable_preferences(pod: &PodInfo, node: &NodeSpec) -> i64 {
    let tolerations: Vec<&Toleration> = pod
        .tolerations
        .iter()
        .filter(|t| {
            t.effect
                .as_deref()
                .is_none_or(|e| e.is_empty() || e == "PreferNoSchedule")
        })
        .collect();
    node.taints
        .iter()
        .filter(|t| t.effect == "PreferNoSchedule")
        .filter(|taint| !tolerations.iter().any(|t| tolerates(t, taint)))
        .count() as i64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn taint(key: &str, value: &str, effect: &str) -> Taint {
        Taint {
            key: key.into(),
            value: (!value.is_empty()).then(|| value.into()),
            effect: effect.into(),
            time_added: None,
        }
    }

    fn toleration(key: &str, operator: &str, value: &str, effect: &str) -> Toleration {
        let some = |s: &str| (!s.is_empty()).then(|| s.to_string());
        Toleration {
            key: some(key),
            operator: some(operator),
            value: some(value),
            effect: some(effect),
            toleration_seconds: None,
        }
    }

    fn node(taints: Vec<Taint>) -> NodeSpec {
        NodeSpec {
            taints,
            ..NodeSpec::default()
        }
    }

    #[test]
    fn matching_rules() {
        let t = taint("k", "v", "NoSchedule");
        assert!(tolerates(&toleration("k", "Equal", "v", "NoSchedule"), &t));
        assert!(tolerates(&toleration("k", "", "v", ""), &t));
        assert!(!tolerates(&toleration("k", "Equal", "w", ""), &t));
        assert!(!tolerates(&toleration("k", "Equal", "v", "NoExecute"), &t));
        assert!(tolerates(&toleration("k", "Exists", "", ""), &t));
        assert!(tolerates(&toleration("", "Exists", "", ""), &t));
        assert!(!tolerates(&toleration("j", "Exists", "", ""), &t));
    }

    #[test]
    fn hard_taints_refuse_unless_tolerated() {
        let n = node(vec![
            taint("soft", "", "PreferNoSchedule"),
            taint("node.kubernetes.io/unreachable", "", "NoExecute"),
        ]);
        let mut pod = PodInfo::default();
        assert_eq!(
            filter(&pod, &n),
            Err(Reason::UntoleratedTaint {
                key: "node.kubernetes.io/unreachable".into(),
                value: String::new()
            })
        );
        pod.tolerations = vec![toleration(
            "node.kubernetes.io/unreachable",
            "Exists",
            "",
            "NoExecute",
        )];
        assert_eq!(filter(&pod, &n), Ok(()));
    }

    #[test]
    fn prefer_no_schedule_only_counts() {
        let n = node(vec![
            taint("a", "", "PreferNoSchedule"),
            taint("b", "", "PreferNoSchedule"),
        ]);
        let mut pod = PodInfo::default();
        assert_eq!(filter(&pod, &n), Ok(()));
        assert_eq!(intolerable_preferences(&pod, &n), 2);
        pod.tolerations = vec![toleration("a", "Exists", "", "PreferNoSchedule")];
        assert_eq!(intolerable_preferences(&pod, &n), 1);
    }
}
