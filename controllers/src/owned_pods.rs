//! What the workload controllers share about the pods they own: listing them, reading their
//! state, and stamping new ones out of a pod template.

use k8s_openapi::api::core::v1::{Pod, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, OwnerReference};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::{Api, ListParams, ObjectMeta};
use kube::core::{ParseExpressionError, Selector};
use kube::runtime::reflector::ObjectRef;
use kube::{Client, Resource, ResourceExt};

/// The label DaemonSets and StatefulSets put on pods to say which template made them.
pub const REVISION_HASH_LABEL: &str = "controller-revision-hash";

#[derive(Debug, thiserror::Error)]
pub enum OwnedPodsError {
    #[error("selector of {owner} is invalid: {source}")]
    Selector {
        owner: String,
        #[source]
        source: ParseExpressionError,
    },
    #[error("listing pods of {owner}: {source}")]
    List {
        owner: String,
        #[source]
        source: kube::Error,
    },
}

/// The pods in `namespace` matching `selector` whose controller is the object with `owner_uid`.
/// A consistent list (no resourceVersion), so pods this controller just created are in it:
/// that is what keeps a reconcile from creating them twice.
pub async fn list(
    client: &Client,
    namespace: &str,
    owner: &str,
    selector: Option<&LabelSelector>,
    owner_uid: &str,
) -> Result<Vec<Pod>, OwnedPodsError> {
    let selector: Selector =
        selector
            .cloned()
            .unwrap_or_default()
            .try_into()
            .map_err(|source| OwnedPodsError::Selector {
                owner: owner.to_string(),
                source,
            })?;
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let listed = pods
        .list(&ListParams::default().labels_from(&selector))
        .await
        .map_err(|source| OwnedPodsError::List {
            owner: owner.to_string(),
            source,
        })?;
    Ok(listed
        .items
        .into_iter()
        .filter(|pod| controller_uid(pod) == Some(owner_uid))
        .collect())
}

/// The uid of the object that controls `pod`, if any.
pub fn controller_uid(pod: &Pod) -> Option<&str> {
    pod.owner_references()
        .iter()
        .find(|r| r.controller == Some(true))
        .map(|r| r.uid.as_str())
}

pub fn phase(pod: &Pod) -> &str {
    pod.status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or("Pending")
}

pub fn is_terminating(pod: &Pod) -> bool {
    pod.metadata.deletion_timestamp.is_some()
}

pub fn is_finished(pod: &Pod) -> bool {
    matches!(phase(pod), "Succeeded" | "Failed")
}

/// Not finished and not being deleted: the pod counts toward what its owner wants running.
pub fn is_active(pod: &Pod) -> bool {
    !is_finished(pod) && !is_terminating(pod)
}

/// When the pod's Ready condition last became True, if it is True.
pub fn ready_since(pod: &Pod) -> Option<Option<Timestamp>> {
    pod.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == "Ready" && c.status == "True")
        .map(|c| c.last_transition_time.as_ref().map(|t| t.0))
}

pub fn is_ready(pod: &Pod) -> bool {
    ready_since(pod).is_some()
}

pub fn is_running_and_ready(pod: &Pod) -> bool {
    phase(pod) == "Running" && is_ready(pod)
}

/// Ready for at least `min_ready_seconds`, as Deployments and DaemonSets count availability.
pub fn is_available(pod: &Pod, min_ready_seconds: i32, now: Timestamp) -> bool {
    match ready_since(pod) {
        None => false,
        Some(_) if min_ready_seconds <= 0 => true,
        Some(None) => false,
        Some(Some(since)) => {
            now.duration_since(since) >= SignedDuration::from_secs(i64::from(min_ready_seconds))
        }
    }
}

/// A pod made from `template`, controlled by `owner`, with `name` (or a generated name with
/// `name` as prefix when `generate` is set).
pub fn from_template(
    template: &PodTemplateSpec,
    owner: OwnerReference,
    namespace: &str,
    name: &str,
    generate: bool,
) -> Pod {
    let template_meta = template.metadata.clone().unwrap_or_default();
    let (name, generate_name) = if generate {
        (None, Some(name.to_string()))
    } else {
        (Some(name.to_string()), None)
    };
    Pod {
        metadata: ObjectMeta {
            name,
            generate_name,
            namespace: Some(namespace.to_string()),
            labels: Some(template_meta.labels.unwrap_or_default()),
            annotations: template_meta.annotations,
            finalizers: template_meta.finalizers,
            owner_references: Some(vec![owner]),
            ..ObjectMeta::default()
        },
        spec: template.spec.clone(),
        status: None,
    }
}

/// Seconds until a ready pod becomes available, when it is ready but not yet available.
pub fn seconds_to_available(pod: &Pod, min_ready_seconds: i32, now: Timestamp) -> Option<i64> {
    let since = ready_since(pod)??;
    let left = i64::from(min_ready_seconds) - (now.as_second() - since.as_second());
    (left > 0).then_some(left)
}

/// A short, stable name for a pod template, so pods made from an older template can be told
/// apart: FNV-1a over its JSON form, spelled with the alphabet Kubernetes uses for hashes.
pub fn template_hash(template: &PodTemplateSpec) -> String {
    let text = serde_json::to_string(template).unwrap_or_default();
    let hash = text.bytes().fold(0x811c_9dc5_u32, |h, b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    });
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut value = hash;
    let mut out = String::new();
    loop {
        out.push(char::from(ALPHABET[(value % 27) as usize]));
        value /= 27;
        if value == 0 {
            break;
        }
    }
    out
}

/// The owner reference a controller puts on what it creates; `blockOwnerDeletion` makes a
/// foreground deletion of the owner wait for it.
pub fn controller_ref<K: Resource<DynamicType = ()>>(owner: &K) -> Option<OwnerReference> {
    let mut reference = owner.controller_owner_ref(&())?;
    reference.block_owner_deletion = Some(true);
    Some(reference)
}

/// The object of kind `K` controlling `child`: maps a child's changes to its owner's
/// reconcile. (kube's `Controller::owns` watches metadata only, as PartialObjectMetadata,
/// which the rkube API server does not serve; this works on a plain watch.)
pub fn controller_of<K, C>(child: &C) -> Option<ObjectRef<K>>
where
    K: Resource<DynamicType = ()>,
    C: Resource,
{
    let owner = child
        .meta()
        .owner_references
        .as_ref()?
        .iter()
        .find(|r| r.controller == Some(true))?;
    if owner.kind != K::kind(&()) || owner.api_version != K::api_version(&()) {
        return None;
    }
    let reference = ObjectRef::new(&owner.name);
    Some(match &child.meta().namespace {
        Some(namespace) => reference.within(namespace),
        None => reference,
    })
}

/// Test pods in a given state, shared by the workload controllers' plan tests.
#[cfg(test)]
pub(crate) mod test_pods {
    use k8s_openapi::api::core::v1::{Pod, PodCondition, PodStatus};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
    use k8s_openapi::jiff::Timestamp;

    /// `pod` in `phase`, its Ready condition `ready` since the Unix epoch.
    pub fn with_status(mut pod: Pod, phase: &str, ready: bool) -> Pod {
        pod.status = Some(PodStatus {
            phase: Some(phase.into()),
            conditions: Some(vec![PodCondition {
                type_: "Ready".into(),
                status: if ready { "True" } else { "False" }.into(),
                last_transition_time: Some(Time(Timestamp::UNIX_EPOCH)),
                ..PodCondition::default()
            }]),
            ..PodStatus::default()
        });
        pod
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::{PodCondition, PodSpec, PodStatus};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    use super::*;

    fn ready_pod(phase: &str, since: Timestamp) -> Pod {
        Pod {
            status: Some(PodStatus {
                phase: Some(phase.into()),
                conditions: Some(vec![PodCondition {
                    type_: "Ready".into(),
                    status: "True".into(),
                    last_transition_time: Some(Time(since)),
                    ..PodCondition::default()
                }]),
                ..PodStatus::default()
            }),
            ..Pod::default()
        }
    }

    #[test]
    fn availability_waits_for_min_ready_seconds() {
        let since = Timestamp::from_second(1_000).unwrap();
        let pod = ready_pod("Running", since);
        let at = |s| Timestamp::from_second(s).unwrap();
        assert!(is_available(&pod, 0, at(1_000)));
        assert!(!is_available(&pod, 10, at(1_005)));
        assert!(is_available(&pod, 10, at(1_010)));
        assert_eq!(seconds_to_available(&pod, 10, at(1_005)), Some(5));
        assert_eq!(seconds_to_available(&pod, 10, at(1_010)), None);
        assert!(is_running_and_ready(&pod));
        assert!(!is_running_and_ready(&ready_pod("Pending", since)));
        assert!(!is_ready(&Pod::default()));
    }

    #[test]
    fn template_hash_changes_with_the_template() {
        let mut template = PodTemplateSpec {
            spec: Some(PodSpec::default()),
            ..PodTemplateSpec::default()
        };
        let first = template_hash(&template);
        assert_eq!(first, template_hash(&template));
        template.spec.as_mut().unwrap().hostname = Some("x".into());
        assert_ne!(first, template_hash(&template));
        assert!(first.chars().all(|c| c.is_ascii_alphanumeric()));
    }
}
