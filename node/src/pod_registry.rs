//! The pods this node runs, by namespace and name, as the pod watch last saw them: written by
//! the agent's watch loop only, read by the kubelet API to map a pod name to its uid.

use std::collections::HashMap;
use std::sync::{Arc, PoisonError, RwLock};

use k8s_openapi::api::core::v1::Pod;
use kube::ResourceExt;

/// Pods by (namespace, name).
type Pods = HashMap<(String, String), Arc<Pod>>;

#[derive(Clone, Default)]
pub struct PodRegistry {
    pods: Arc<RwLock<Pods>>,
}

fn key(pod: &Pod) -> (String, String) {
    (pod.namespace().unwrap_or_default(), pod.name_any())
}

impl PodRegistry {
    /// Records the latest version of a pod; a recreated pod replaces the old one of its name.
    pub fn upsert(&self, pod: &Pod) {
        let mut pods = self.pods.write().unwrap_or_else(PoisonError::into_inner);
        pods.insert(key(pod), Arc::new(pod.clone()));
    }

    /// Forgets the pod with this uid, leaving a newer pod of the same name alone.
    pub fn remove_uid(&self, uid: &str) {
        let mut pods = self.pods.write().unwrap_or_else(PoisonError::into_inner);
        pods.retain(|_, pod| pod.metadata.uid.as_deref() != Some(uid));
    }

    pub fn get(&self, namespace: &str, name: &str) -> Option<Arc<Pod>> {
        let pods = self.pods.read().unwrap_or_else(PoisonError::into_inner);
        pods.get(&(namespace.to_string(), name.to_string()))
            .cloned()
    }

    /// Whether the pod with this uid is still on the node.
    pub fn has_uid(&self, uid: &str) -> bool {
        let pods = self.pods.read().unwrap_or_else(PoisonError::into_inner);
        pods.values()
            .any(|pod| pod.metadata.uid.as_deref() == Some(uid))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(name: &str, uid: &str) -> Pod {
        let mut pod = Pod::default();
        pod.metadata.name = Some(name.into());
        pod.metadata.namespace = Some("ns".into());
        pod.metadata.uid = Some(uid.into());
        pod
    }

    #[test]
    fn a_recreated_pod_survives_the_removal_of_its_predecessor() {
        let registry = PodRegistry::default();
        registry.upsert(&pod("web", "u1"));
        registry.upsert(&pod("web", "u2"));
        registry.remove_uid("u1");
        let found = registry
            .get("ns", "web")
            .and_then(|p| p.metadata.uid.clone());
        assert_eq!(found.as_deref(), Some("u2"));
        assert!(!registry.has_uid("u1"));
        registry.remove_uid("u2");
        assert!(registry.get("ns", "web").is_none());
    }
}
