//! The node must be Ready and not cordoned; a cordon is tolerated by pods that tolerate the
//! `node.kubernetes.io/unschedulable:NoSchedule` taint, as in kube-scheduler.

use k8s_openapi::api::core::v1::Taint;

use super::Reason;
use super::taints::tolerated;
use crate::node_info::NodeSpec;
use crate::pod_info::PodInfo;

const UNSCHEDULABLE_TAINT: &str = "node.kubernetes.io/unschedulable";

pub fn filter(pod: &PodInfo, node: &NodeSpec) -> Result<(), Reason> {
    if node.unschedulable {
        let cordon = Taint {
            key: UNSCHEDULABLE_TAINT.into(),
            effect: "NoSchedule".into(),
            ..Taint::default()
        };
        if !tolerated(&pod.tolerations, &cordon) {
            return Err(Reason::Unschedulable);
        }
    }
    if !node.ready {
        return Err(Reason::NotReady);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::Toleration;

    use super::*;

    #[test]
    fn cordoned_and_unready_nodes_refuse() {
        let pod = PodInfo::default();
        let ready = NodeSpec {
            ready: true,
            ..NodeSpec::default()
        };
        assert_eq!(filter(&pod, &ready), Ok(()));
        let unready = NodeSpec::default();
        assert_eq!(filter(&pod, &unready), Err(Reason::NotReady));
        let cordoned = NodeSpec {
            ready: true,
            unschedulable: true,
            ..NodeSpec::default()
        };
        assert_eq!(filter(&pod, &cordoned), Err(Reason::Unschedulable));
        let tolerant = PodInfo {
            tolerations: vec![Toleration {
                key: Some(UNSCHEDULABLE_TAINT.into()),
                operator: Some("Exists".into()),
                ..Toleration::default()
            }],
            ..PodInfo::default()
        };
        assert_eq!(filter(&tolerant, &cordoned), Ok(()));
    }
}
