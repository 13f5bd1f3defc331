//! Controller references: who owns an object, and adopting or releasing objects the way
//! Kubernetes' ControllerRefManager does.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::api::{Api, Patch, PatchParams};
use kube::{Resource, ResourceExt};
use serde::de::DeserializeOwned;
use serde_json::json;

/// The owner reference marked `controller: true`, if any.
pub fn controller_of(meta: &ObjectMeta) -> Option<&OwnerReference> {
    meta.owner_references
        .iter()
        .flatten()
        .find(|r| r.controller == Some(true))
}

/// Whether `meta` is controlled by the object with `uid`.
pub fn is_controlled_by(meta: &ObjectMeta, uid: &str) -> bool {
    controller_of(meta).is_some_and(|r| r.uid == uid)
}

/// A controller reference to `owner` that blocks the owner's foreground deletion.
pub fn controller_ref<K: Resource<DynamicType = ()>>(owner: &K) -> OwnerReference {
    OwnerReference {
        api_version: K::api_version(&()).into_owned(),
        kind: K::kind(&()).into_owned(),
        name: owner.name_any(),
        uid: owner.uid().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

/// Replaces the owner references of `obj`, guarded by its resourceVersion so that a decision
/// made on a stale cache fails instead of overwriting a newer owner.
async fn set_owner_references<K>(
    api: &Api<K>,
    obj: &K,
    refs: Vec<OwnerReference>,
) -> Result<K, kube::Error>
where
    K: Resource + Clone + DeserializeOwned + std::fmt::Debug,
{
    // A merge patch replaces the list whole; the resourceVersion in it is a precondition.
    let patch = json!({
        "metadata": {"resourceVersion": obj.resource_version(), "ownerReferences": refs}
    });
    api.patch(
        &obj.name_any(),
        &PatchParams::default(),
        &Patch::Merge(patch),
    )
    .await
}

/// Whether the owner `name` still exists with `uid` and is not being deleted, read from the
/// API rather than a cache, as Kubernetes rechecks before adopting: an owner cache that has
/// not yet seen an orphaning deletion would otherwise take back what the garbage collector
/// just released, and once the owner is gone the collector deletes it.
pub async fn can_adopt<K>(api: &Api<K>, name: &str, uid: &str) -> Result<bool, kube::Error>
where
    K: Resource + Clone + DeserializeOwned + std::fmt::Debug,
{
    Ok(api.get_opt(name).await?.is_some_and(|owner| {
        owner.uid().as_deref() == Some(uid) && owner.meta().deletion_timestamp.is_none()
    }))
}

/// Makes `owner` the controller of the orphan `obj`.
pub async fn adopt<K>(api: &Api<K>, obj: &K, owner: OwnerReference) -> Result<K, kube::Error>
where
    K: Resource + Clone + DeserializeOwned + std::fmt::Debug,
{
    let mut refs: Vec<OwnerReference> = obj.owner_references().to_vec();
    refs.retain(|r| r.uid != owner.uid);
    refs.push(owner);
    set_owner_references(api, obj, refs).await
}

/// Drops the reference to the owner with `uid` from `obj` (its labels stopped matching).
pub async fn release<K>(api: &Api<K>, obj: &K, uid: &str) -> Result<K, kube::Error>
where
    K: Resource + Clone + DeserializeOwned + std::fmt::Debug,
{
    let mut refs: Vec<OwnerReference> = obj.owner_references().to_vec();
    refs.retain(|r| r.uid != uid);
    set_owner_references(api, obj, refs).await
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use k8s_openapi::api::core::v1::ConfigMap;
    use kube::api::{DeleteParams, PostParams};
    use rkube_apiserver::in_process;
    use rkube_apiserver::server::{ApiServer, router};
    use rkube_apiserver::store::memory::MemoryStore;

    use super::*;

    #[tokio::test]
    async fn an_owner_being_deleted_or_gone_cannot_adopt() {
        let server = ApiServer::new(Arc::new(MemoryStore::new())).await.unwrap();
        rkube_apiserver::run::ensure_system_namespaces(&server)
            .await
            .unwrap();
        let client = in_process::client(router(server), in_process::admin());
        let api: Api<ConfigMap> = Api::namespaced(client, "default");
        let mut owner = ConfigMap::default();
        owner.metadata.name = Some("owner".into());
        let created = api.create(&PostParams::default(), &owner).await.unwrap();
        let uid = created.uid().unwrap();
        assert!(can_adopt(&api, "owner", &uid).await.unwrap());
        assert!(!can_adopt(&api, "owner", "another-uid").await.unwrap());
        // An orphaning deletion keeps the owner, with a deletionTimestamp, until the
        // collector has released its dependents.
        api.delete("owner", &DeleteParams::orphan()).await.unwrap();
        assert!(!can_adopt(&api, "owner", &uid).await.unwrap());
        assert!(!can_adopt(&api, "missing", &uid).await.unwrap());
    }
}
