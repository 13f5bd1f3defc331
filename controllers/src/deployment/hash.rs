//! The `pod-template-hash` that names a Deployment's ReplicaSets and labels their pods.

use k8s_openapi::api::core::v1::PodTemplateSpec;

pub const HASH_LABEL: &str = "pod-template-hash";

/// Characters Kubernetes uses for generated names: no vowels, no look-alikes.
const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

/// FNV-1a (32 bit) of the template's JSON, plus the collision count when set, rendered
/// like Kubernetes renders it (the decimal digits mapped onto the safe alphabet).
pub fn template_hash(template: &PodTemplateSpec, collision_count: Option<i32>) -> String {
    // The typed template serializes with fixed field order and sorted maps: stable bytes.
    let mut bytes = serde_json::to_vec(&without_hash(template)).unwrap_or_default();
    if let Some(count) = collision_count {
        bytes.extend_from_slice(&count.to_le_bytes());
    }
    let hash = bytes.iter().fold(0x811c_9dc5_u32, |h, b| {
        (h ^ u32::from(*b)).wrapping_mul(0x0100_0193)
    });
    hash.to_string()
        .bytes()
        .map(|digit| ALPHABET[usize::from(digit) % ALPHABET.len()] as char)
        .collect()
}

/// The template minus the hash label, as a Deployment's own template carries it.
pub fn without_hash(template: &PodTemplateSpec) -> PodTemplateSpec {
    let mut template = template.clone();
    if let Some(labels) = template.metadata.as_mut().and_then(|m| m.labels.as_mut()) {
        labels.remove(HASH_LABEL);
    }
    template
}

/// Whether two templates are the same rollout target, ignoring the hash label.
pub fn same_template(a: &PodTemplateSpec, b: &PodTemplateSpec) -> bool {
    without_hash(a) == without_hash(b)
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::{Container, PodSpec};
    use kube::api::ObjectMeta;

    use super::*;

    fn template(image: &str) -> PodTemplateSpec {
        PodTemplateSpec {
            metadata: Some(ObjectMeta {
                labels: Some([("app".to_string(), "web".to_string())].into()),
                ..ObjectMeta::default()
            }),
            spec: Some(PodSpec {
                containers: vec![Container {
                    name: "c".into(),
                    image: Some(image.into()),
                    ..Container::default()
                }],
                ..PodSpec::default()
            }),
        }
    }

    #[test]
    fn hash_depends_on_the_template_and_collisions_only() {
        let a = template("nginx:1");
        let h = template_hash(&a, None);
        assert_eq!(h, template_hash(&a.clone(), None));
        assert_ne!(h, template_hash(&template("nginx:2"), None));
        assert_ne!(h, template_hash(&a, Some(1)));
        assert!(h.bytes().all(|b| ALPHABET.contains(&b)));
        let mut labeled = a.clone();
        if let Some(labels) = labeled.metadata.as_mut().and_then(|m| m.labels.as_mut()) {
            labels.insert(HASH_LABEL.into(), h.clone());
        }
        assert_eq!(template_hash(&labeled, None), h);
        assert!(same_template(&labeled, &a));
        assert!(!same_template(&labeled, &template("nginx:2")));
    }
}
