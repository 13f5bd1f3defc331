//! The Deployment controller: rolls a Deployment's pod template out through ReplicaSets
//! (RollingUpdate or Recreate), keeps revisions for `kubectl rollout undo`, scales, pauses,
//! cleans up old ReplicaSets and reports status and conditions.

mod hash;
mod rollout;
mod status;
mod written;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::apps::v1::{Deployment, DeploymentCondition, ReplicaSet, ReplicaSetSpec};
use k8s_openapi::api::core::v1::{Pod, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, ObjectMeta, Patch, PatchParams, PostParams};
use kube::runtime::reflector::{ObjectRef, Store};
use rkube_api::selector::LabelSelector as Selector;
use rkube_client::events::{EventType, Recorder};
use serde_json::json;

use crate::context::{Context, emit};
use crate::ownership::{self, controller_of};
use crate::queue::{Key, Next, Queue};

pub use hash::{HASH_LABEL, same_template, template_hash};
pub use rollout::{Bounds, Old, fenceposts, new_replicas, scale_down_old};

pub const REVISION: &str = "deployment.kubernetes.io/revision";
const REVISION_HISTORY: &str = "deployment.kubernetes.io/revision-history";
const DESIRED_REPLICAS: &str = "deployment.kubernetes.io/desired-replicas";
const MAX_REPLICAS: &str = "deployment.kubernetes.io/max-replicas";
/// Deployment annotations that are not copied onto its ReplicaSets.
const NOT_COPIED: &[&str] = &[
    "kubectl.kubernetes.io/last-applied-configuration",
    REVISION,
    REVISION_HISTORY,
    DESIRED_REPLICAS,
    MAX_REPLICAS,
    "deprecated.deployment.rollback.to",
];

#[derive(Debug, thiserror::Error)]
pub enum DeploymentError {
    #[error("{action} replicaset {rs} of deployment {deployment}: {source}")]
    ReplicaSet {
        action: &'static str,
        deployment: Key,
        rs: String,
        #[source]
        source: kube::Error,
    },
    #[error("updating deployment {deployment}: {source}")]
    Deployment {
        deployment: Key,
        #[source]
        source: kube::Error,
    },
    #[error("replicaset name {rs} of deployment {deployment} is taken; collision count raised")]
    Collision { deployment: Key, rs: String },
}

struct Shared {
    client: kube::Client,
    deployments: Store<Deployment>,
    replicasets: Store<ReplicaSet>,
    pods: Store<Pod>,
    written: written::Written,
    recorder: Recorder,
}

pub async fn run(ctx: Context) -> Result<(), DeploymentError> {
    let queue = Queue::new();
    let deployments = ctx.informers.get::<Deployment>();
    let replicasets = ctx.informers.get::<ReplicaSet>();
    let pods = ctx.informers.get::<Pod>();
    deployments.synced().await;
    replicasets.synced().await;
    pods.synced().await;
    let shared = Arc::new(Shared {
        client: ctx.client.clone(),
        deployments: deployments.store().clone(),
        replicasets: replicasets.store().clone(),
        pods: pods.store().clone(),
        written: written::Written::default(),
        recorder: ctx.recorder("deployment-controller"),
    });
    let q = queue.clone();
    deployments.on_change(move |d| q.add(Key::of(d)));
    let (q, store) = (queue.clone(), shared.deployments.clone());
    replicasets.on_change(move |rs| owners_of_rs(&store, rs).into_iter().for_each(|k| q.add(k)));
    // Recreate waits for old pods to go; their deletions concern the Deployment.
    let (q, rs_store) = (queue.clone(), shared.replicasets.clone());
    pods.on_change(move |pod| {
        let Some(owner) = controller_of(&pod.metadata).filter(|r| r.kind == "ReplicaSet") else {
            return;
        };
        let ns = pod.namespace().unwrap_or_default();
        if let Some(rs) = rs_store.get(&ObjectRef::new(&owner.name).within(&ns))
            && let Some(d) = controller_of(&rs.metadata).filter(|r| r.kind == "Deployment")
        {
            q.add(Key::new(&ns, &d.name));
        }
    });
    queue
        .run("deployment", ctx.options.workers, move |key| {
            let shared = Arc::clone(&shared);
            async move { reconcile(&shared, &key).await }
        })
        .await;
    Ok(())
}

fn owners_of_rs(deployments: &Store<Deployment>, rs: &ReplicaSet) -> Vec<Key> {
    let ns = rs.namespace().unwrap_or_default();
    if let Some(owner) = controller_of(&rs.metadata) {
        return if owner.kind == "Deployment" {
            vec![Key::new(&ns, &owner.name)]
        } else {
            Vec::new()
        };
    }
    deployments
        .state()
        .iter()
        .filter(|d| d.namespace().as_deref() == Some(ns.as_str()))
        .filter(|d| {
            Selector::from_label_selector(d.spec.as_ref().map(|s| &s.selector))
                .unwrap_or_else(|_| Selector::nothing())
                .matches(&rs.metadata.labels.as_ref())
        })
        .map(|d| Key::of(d.as_ref()))
        .collect()
}

fn replicas(rs: &ReplicaSet) -> i32 {
    rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(0)
}

/// The available pods `rs` will keep. Its status may still count pods that a scale-down
/// removes (the ReplicaSet controller has not acted on it yet); it deletes unavailable pods
/// first, so at most `spec.replicas` available ones stay.
fn available(rs: &ReplicaSet) -> i32 {
    rs.status
        .as_ref()
        .and_then(|s| s.available_replicas)
        .unwrap_or(0)
        .min(replicas(rs))
}

fn revision(rs: &ReplicaSet) -> i64 {
    rs.annotations()
        .get(REVISION)
        .and_then(|r| r.parse().ok())
        .unwrap_or(0)
}

fn template_of(rs: &ReplicaSet) -> PodTemplateSpec {
    rs.spec
        .as_ref()
        .and_then(|s| s.template.clone())
        .unwrap_or_default()
}

/// One reconcile's view of a Deployment and its ReplicaSets (oldest first).
struct View {
    key: Key,
    d: Arc<Deployment>,
    new: Option<ReplicaSet>,
    olds: Vec<ReplicaSet>,
    bounds: Bounds,
    /// A Progressing condition found while preparing the new ReplicaSet.
    progress_note: Option<DeploymentCondition>,
}

impl View {
    fn all(&self) -> Vec<&ReplicaSet> {
        self.olds.iter().chain(self.new.as_ref()).collect()
    }
}

async fn reconcile(shared: &Shared, key: &Key) -> Result<Next, DeploymentError> {
    let Some(d) = shared
        .deployments
        .get(&ObjectRef::new(&key.name).within(&key.namespace))
    else {
        shared.written.forget(key);
        return Ok(Next::Done);
    };
    let Some(mut owned) = claim(shared, key, &d).await? else {
        // Our last writes are not cached yet; their events bring us back.
        return Ok(Next::Done);
    };
    owned.sort_by(|a, b| {
        let created = |rs: &ReplicaSet| rs.metadata.creation_timestamp.as_ref().map(|t| t.0);
        created(a)
            .cmp(&created(b))
            .then(a.name_any().cmp(&b.name_any()))
    });
    let spec = d.spec.clone().unwrap_or_default();
    let template = spec.template.clone();
    let new_index = owned
        .iter()
        .position(|rs| same_template(&template_of(rs), &template));
    let new = new_index.map(|i| owned.remove(i));
    let desired = spec.replicas.unwrap_or(1);
    let rolling = spec.strategy.as_ref().and_then(|s| s.type_.as_deref()) != Some("Recreate");
    let (max_surge, max_unavailable) = if rolling {
        let ru = spec
            .strategy
            .as_ref()
            .and_then(|s| s.rolling_update.as_ref());
        fenceposts(
            ru.and_then(|r| r.max_surge.as_ref()),
            ru.and_then(|r| r.max_unavailable.as_ref()),
            desired,
        )
    } else {
        (0, 0)
    };
    let mut view = View {
        key: key.clone(),
        d: Arc::clone(&d),
        new,
        olds: owned,
        bounds: Bounds {
            desired,
            max_surge,
            max_unavailable,
        },
        progress_note: None,
    };
    if d.metadata.deletion_timestamp.is_some() {
        return finish(shared, &view, false).await;
    }
    let paused = spec.paused.unwrap_or(false);
    if paused || is_scaling_event(&view) {
        sync_new(shared, &mut view, false).await?;
        scale(shared, &view).await?;
        return finish(shared, &view, paused).await;
    }
    if rolling {
        rolling_update(shared, &mut view).await?;
    } else {
        recreate(shared, &mut view).await?;
    }
    finish(shared, &view, false).await
}

/// The ReplicaSets this Deployment controls, after adopting matching orphans and releasing
/// those that stopped matching; `None` while the cache lags our own writes or the
/// Deployment's own deletion.
async fn claim(
    shared: &Shared,
    key: &Key,
    d: &Deployment,
) -> Result<Option<Vec<ReplicaSet>>, DeploymentError> {
    let uid = d.uid().unwrap_or_default();
    let in_namespace = shared
        .replicasets
        .state_filter(|rs| rs.namespace().as_deref() == Some(key.namespace.as_str()));
    let caught_up = shared.written.caught_up(key, |name| {
        in_namespace
            .iter()
            .find(|rs| rs.metadata.name.as_deref() == Some(name))
            .and_then(|rs| rs.resource_version()?.parse().ok())
    });
    if !caught_up {
        return Ok(None);
    }
    let api: Api<ReplicaSet> = Api::namespaced(shared.client.clone(), &key.namespace);
    // Validation refuses malformed selectors; one that got past it selects nothing.
    let sel = Selector::from_label_selector(d.spec.as_ref().map(|s| &s.selector))
        .unwrap_or_else(|_| Selector::nothing());
    let deleting = d.metadata.deletion_timestamp.is_some();
    let deployments: Api<Deployment> = Api::namespaced(shared.client.clone(), &key.namespace);
    let mut rechecked = false;
    let mut owned = Vec::new();
    for rs in in_namespace {
        let matching = sel.matches(&rs.metadata.labels.as_ref());
        let err = |source| DeploymentError::ReplicaSet {
            action: "claiming",
            deployment: key.clone(),
            rs: rs.name_any(),
            source,
        };
        match controller_of(&rs.metadata) {
            Some(r) if r.uid == uid => {
                if matching || deleting {
                    owned.push((*rs).clone());
                } else {
                    ownership::release(&api, rs.as_ref(), &uid)
                        .await
                        .map_err(err)?;
                }
            }
            None if matching && !deleting && rs.metadata.deletion_timestamp.is_none() => {
                if !rechecked {
                    let live = ownership::can_adopt(&deployments, &key.name, &uid)
                        .await
                        .map_err(|source| DeploymentError::Deployment {
                            deployment: key.clone(),
                            source,
                        })?;
                    if !live {
                        // Being deleted or gone: its event brings us back.
                        return Ok(None);
                    }
                    rechecked = true;
                }
                let adopted = ownership::adopt(&api, rs.as_ref(), ownership::controller_ref(d))
                    .await
                    .map_err(err)?;
                owned.push(adopted);
            }
            _ => {}
        }
    }
    Ok(Some(owned))
}

/// A scale happened when an active ReplicaSet was sized for a different replica count.
fn is_scaling_event(view: &View) -> bool {
    view.all().iter().filter(|rs| replicas(rs) > 0).any(|rs| {
        rs.annotations()
            .get(DESIRED_REPLICAS)
            .and_then(|v| v.parse::<i32>().ok())
            .is_some_and(|v| v != view.bounds.desired)
    })
}

/// Writes `rs` with `count` replicas and this Deployment's sizing annotations.
async fn set_replicas(
    shared: &Shared,
    view: &View,
    rs: &ReplicaSet,
    count: i32,
) -> Result<ReplicaSet, DeploymentError> {
    let mut updated = rs.clone();
    let annotations = updated
        .metadata
        .annotations
        .get_or_insert_with(BTreeMap::new);
    annotations.insert(DESIRED_REPLICAS.into(), view.bounds.desired.to_string());
    annotations.insert(
        MAX_REPLICAS.into(),
        (view.bounds.desired + view.bounds.max_surge).to_string(),
    );
    let before = replicas(rs);
    if let Some(spec) = updated.spec.as_mut() {
        spec.replicas = Some(count);
    }
    if updated == *rs {
        return Ok(updated);
    }
    let written = write_rs(shared, view, &updated).await?;
    if before != count {
        let direction = if count > before { "up" } else { "down" };
        let message = format!(
            "Scaled {direction} replica set {} from {before} to {count}",
            rs.name_any()
        );
        emit(
            &shared.recorder,
            view.d.as_ref(),
            EventType::Normal,
            "ScalingReplicaSet",
            &message,
        );
    }
    Ok(written)
}

/// Replaces a ReplicaSet guarded by its resourceVersion, remembering what we wrote.
async fn write_rs(
    shared: &Shared,
    view: &View,
    rs: &ReplicaSet,
) -> Result<ReplicaSet, DeploymentError> {
    let api: Api<ReplicaSet> = Api::namespaced(shared.client.clone(), &view.key.namespace);
    let written = api
        .replace(&rs.name_any(), &PostParams::default(), rs)
        .await
        .map_err(|source| DeploymentError::ReplicaSet {
            action: "updating",
            deployment: view.key.clone(),
            rs: rs.name_any(),
            source,
        })?;
    shared.written.record(
        &view.key,
        &written.name_any(),
        written.resource_version().as_deref(),
    );
    Ok(written)
}

/// Scaling without rolling out (a paused Deployment, or a replica count change): the one
/// active ReplicaSet takes the new count; several share the change in proportion.
async fn scale(shared: &Shared, view: &View) -> Result<(), DeploymentError> {
    let desired = view.bounds.desired;
    let all = view.all();
    let active: Vec<&ReplicaSet> = all.iter().copied().filter(|rs| replicas(rs) > 0).collect();
    if active.len() <= 1 {
        let target = active
            .first()
            .copied()
            .or(view.new.as_ref())
            .or(view.olds.last());
        if let Some(rs) = target {
            set_replicas(shared, view, rs, desired).await?;
        }
        return Ok(());
    }
    if let Some(new) = &view.new
        && replicas(new) == desired
        && available(new) >= desired
    {
        for old in view.olds.iter().filter(|rs| replicas(rs) > 0) {
            set_replicas(shared, view, old, 0).await?;
        }
        return Ok(());
    }
    let allowed = desired + view.bounds.max_surge;
    let total: i32 = active.iter().map(|rs| replicas(rs)).sum();
    let sizes = proportional(
        allowed,
        &active.iter().map(|rs| replicas(rs)).collect::<Vec<_>>(),
    );
    if total == allowed {
        // Only the annotations are stale.
        for rs in &active {
            set_replicas(shared, view, rs, replicas(rs)).await?;
        }
        return Ok(());
    }
    for (rs, size) in active.iter().zip(sizes) {
        set_replicas(shared, view, rs, size).await?;
    }
    Ok(())
}

/// Splits `allowed` replicas over ReplicaSets in proportion to their `sizes`; the rounding
/// remainder goes to the largest (the first on ties).
fn proportional(allowed: i32, sizes: &[i32]) -> Vec<i32> {
    let total: i64 = sizes.iter().map(|s| i64::from(*s)).sum();
    if total == 0 {
        return sizes.to_vec();
    }
    let mut out: Vec<i32> = sizes
        .iter()
        .map(|s| i32::try_from(i64::from(*s) * i64::from(allowed) / total).unwrap_or(0))
        .collect();
    let rest = allowed - out.iter().sum::<i32>();
    if let Some(largest) = (0..sizes.len()).max_by_key(|i| (sizes[*i], std::cmp::Reverse(*i))) {
        out[largest] += rest;
    }
    out
}

/// Finds or creates the ReplicaSet for the current template and brings its revision and
/// annotations up to date.
async fn sync_new(shared: &Shared, view: &mut View, create: bool) -> Result<(), DeploymentError> {
    let d = Arc::clone(&view.d);
    let next_revision = view.olds.iter().map(revision).max().unwrap_or(0) + 1;
    let has_progressing = d
        .status
        .as_ref()
        .is_some_and(|s| status::condition(s, status::PROGRESSING).is_some());
    if let Some(rs) = view.new.clone() {
        let mut updated = rs.clone();
        let annotations = updated
            .metadata
            .annotations
            .get_or_insert_with(BTreeMap::new);
        copy_annotations(&d, annotations);
        let current = revision(&rs);
        if current < next_revision {
            if current > 0 {
                let history = annotations
                    .get(REVISION_HISTORY)
                    .map(|h| format!("{h},{current}"))
                    .unwrap_or_else(|| current.to_string());
                annotations.insert(REVISION_HISTORY.into(), history);
            }
            annotations.insert(REVISION.into(), next_revision.to_string());
        }
        if let Some(spec) = updated.spec.as_mut() {
            spec.min_ready_seconds = d.spec.as_ref().and_then(|s| s.min_ready_seconds);
        }
        if updated != rs {
            updated = write_rs(shared, view, &updated).await?;
        }
        if !has_progressing && status::deadline(&d).is_some() {
            let message = format!("Found new replica set \"{}\"", rs.name_any());
            view.progress_note = Some(status::new_condition(
                status::PROGRESSING,
                "True",
                status::FOUND_NEW_RS,
                message,
            ));
        }
        view.new = Some(updated);
        return Ok(());
    }
    if !create {
        return Ok(());
    }
    let all: i32 = view.olds.iter().map(replicas).sum();
    let initial = if view.bounds.max_surge == 0 && view.bounds.max_unavailable == 0 {
        // Recreate: the new ReplicaSet starts once the old pods are gone.
        view.bounds.desired
    } else {
        new_replicas(view.bounds, 0, all)
    };
    let rs = new_replica_set(&d, next_revision, initial, view.bounds);
    let api: Api<ReplicaSet> = Api::namespaced(shared.client.clone(), &view.key.namespace);
    let name = rs.name_any();
    let created = match api.create(&PostParams::default(), &rs).await {
        Ok(created) => created,
        Err(kube::Error::Api(s)) if s.code == 409 => {
            return adopt_existing_new(shared, view, &name).await;
        }
        Err(source) => {
            return Err(DeploymentError::ReplicaSet {
                action: "creating",
                deployment: view.key.clone(),
                rs: name,
                source,
            });
        }
    };
    shared
        .written
        .record(&view.key, &name, created.resource_version().as_deref());
    let message = format!("Scaled up replica set {name} from 0 to {initial}");
    emit(
        &shared.recorder,
        d.as_ref(),
        EventType::Normal,
        "ScalingReplicaSet",
        &message,
    );
    if status::deadline(&d).is_some() {
        view.progress_note = Some(status::new_condition(
            status::PROGRESSING,
            "True",
            status::NEW_RS_CREATED,
            format!("Created new replica set \"{name}\""),
        ));
    }
    view.new = Some(created);
    Ok(())
}

/// The name of the new ReplicaSet is taken: ours but not cached yet, or a hash collision,
/// after which the collision count changes the name.
async fn adopt_existing_new(
    shared: &Shared,
    view: &mut View,
    name: &str,
) -> Result<(), DeploymentError> {
    let api: Api<ReplicaSet> = Api::namespaced(shared.client.clone(), &view.key.namespace);
    let d_err = |source| DeploymentError::Deployment {
        deployment: view.key.clone(),
        source,
    };
    let existing = api.get_opt(name).await.map_err(d_err)?;
    let uid = view.d.uid().unwrap_or_default();
    let template = view
        .d
        .spec
        .as_ref()
        .map(|s| s.template.clone())
        .unwrap_or_default();
    if let Some(rs) = existing
        && ownership::is_controlled_by(&rs.metadata, &uid)
        && same_template(&template_of(&rs), &template)
    {
        view.new = Some(rs);
        return Ok(());
    }
    let count = view
        .d
        .status
        .as_ref()
        .and_then(|s| s.collision_count)
        .unwrap_or(0)
        + 1;
    let deployments: Api<Deployment> = Api::namespaced(shared.client.clone(), &view.key.namespace);
    let patch = json!({"status": {"collisionCount": count}});
    deployments
        .patch_status(
            &view.key.name,
            &PatchParams::default(),
            &Patch::Merge(patch),
        )
        .await
        .map_err(d_err)?;
    Err(DeploymentError::Collision {
        deployment: view.key.clone(),
        rs: name.to_string(),
    })
}

fn copy_annotations(d: &Deployment, into: &mut BTreeMap<String, String>) {
    for (k, v) in d.annotations() {
        if !NOT_COPIED.contains(&k.as_str()) {
            into.insert(k.clone(), v.clone());
        }
    }
}

/// `<deployment>-<hash>` with the hash on its selector, labels and pod template.
fn new_replica_set(d: &Deployment, revision: i64, replicas: i32, bounds: Bounds) -> ReplicaSet {
    let spec = d.spec.clone().unwrap_or_default();
    let collisions = d.status.as_ref().and_then(|s| s.collision_count);
    let hash = template_hash(&spec.template, collisions);
    let mut template = spec.template.clone();
    let template_meta = template.metadata.get_or_insert_with(ObjectMeta::default);
    template_meta
        .labels
        .get_or_insert_with(BTreeMap::new)
        .insert(HASH_LABEL.into(), hash.clone());
    let labels = template_meta.labels.clone();
    let mut selector: LabelSelector = spec.selector.clone();
    selector
        .match_labels
        .get_or_insert_with(BTreeMap::new)
        .insert(HASH_LABEL.into(), hash.clone());
    let mut annotations = BTreeMap::new();
    copy_annotations(d, &mut annotations);
    annotations.insert(REVISION.into(), revision.to_string());
    annotations.insert(DESIRED_REPLICAS.into(), bounds.desired.to_string());
    annotations.insert(
        MAX_REPLICAS.into(),
        (bounds.desired + bounds.max_surge).to_string(),
    );
    ReplicaSet {
        metadata: ObjectMeta {
            name: Some(format!("{}-{hash}", d.name_any())),
            namespace: d.namespace(),
            labels,
            annotations: Some(annotations),
            owner_references: Some(vec![ownership::controller_ref(d)]),
            ..ObjectMeta::default()
        },
        spec: Some(ReplicaSetSpec {
            replicas: Some(replicas),
            min_ready_seconds: spec.min_ready_seconds,
            selector,
            template: Some(template),
        }),
        status: None,
    }
}

/// One step of a rolling update: grow the new ReplicaSet within the surge, else shrink the
/// old ones within the unavailability budget.
async fn rolling_update(shared: &Shared, view: &mut View) -> Result<(), DeploymentError> {
    sync_new(shared, view, true).await?;
    let Some(new) = view.new.clone() else {
        return Ok(());
    };
    let all: i32 = view.all().iter().map(|rs| replicas(rs)).sum();
    let target = new_replicas(view.bounds, replicas(&new), all);
    if target != replicas(&new) {
        view.new = Some(set_replicas(shared, view, &new, target).await?);
        return Ok(());
    }
    let olds: Vec<Old> = view
        .olds
        .iter()
        .map(|rs| Old {
            replicas: replicas(rs),
            available: available(rs),
        })
        .collect();
    let new_old = Old {
        replicas: replicas(&new),
        available: available(&new),
    };
    let sizes = scale_down_old(view.bounds, new_old, &olds);
    for i in 0..view.olds.len() {
        if sizes[i] != olds[i].replicas {
            let rs = view.olds[i].clone();
            view.olds[i] = set_replicas(shared, view, &rs, sizes[i]).await?;
        }
    }
    Ok(())
}

/// Recreate: old ReplicaSets to zero, wait until their pods are gone, then the new one.
async fn recreate(shared: &Shared, view: &mut View) -> Result<(), DeploymentError> {
    sync_new(shared, view, false).await?;
    let mut scaled_down = false;
    for i in 0..view.olds.len() {
        if replicas(&view.olds[i]) > 0 {
            let rs = view.olds[i].clone();
            view.olds[i] = set_replicas(shared, view, &rs, 0).await?;
            scaled_down = true;
        }
    }
    let old_uids: Vec<String> = view.olds.iter().filter_map(|rs| rs.uid()).collect();
    let old_pods_left = shared.pods.state().iter().any(|p| {
        let finished = matches!(
            p.status.as_ref().and_then(|s| s.phase.as_deref()),
            Some("Succeeded" | "Failed")
        );
        !finished && controller_of(&p.metadata).is_some_and(|r| old_uids.contains(&r.uid))
    });
    if scaled_down || old_pods_left {
        return Ok(());
    }
    sync_new(shared, view, true).await?;
    if let Some(new) = view.new.clone() {
        view.new = Some(set_replicas(shared, view, &new, view.bounds.desired).await?);
    }
    Ok(())
}

/// Removes old, empty ReplicaSets beyond `revisionHistoryLimit`, oldest revision first.
async fn cleanup(shared: &Shared, view: &View) -> Result<(), DeploymentError> {
    let limit = view
        .d
        .spec
        .as_ref()
        .and_then(|s| s.revision_history_limit)
        .unwrap_or(10);
    let mut empty: Vec<&ReplicaSet> = view
        .olds
        .iter()
        .filter(|rs| {
            replicas(rs) == 0
                && rs.status.as_ref().is_none_or(|s| s.replicas == 0)
                && rs.metadata.deletion_timestamp.is_none()
        })
        .collect();
    let excess = empty
        .len()
        .saturating_sub(usize::try_from(limit).unwrap_or(0));
    empty.sort_by_key(|rs| revision(rs));
    let api: Api<ReplicaSet> = Api::namespaced(shared.client.clone(), &view.key.namespace);
    for rs in empty.into_iter().take(excess) {
        match api.delete(&rs.name_any(), &DeleteParams::default()).await {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 404 => {}
            Err(source) => {
                return Err(DeploymentError::ReplicaSet {
                    action: "deleting",
                    deployment: view.key.clone(),
                    rs: rs.name_any(),
                    source,
                });
            }
        }
    }
    Ok(())
}

/// Writes the revision annotation and the status; says when to look again.
async fn finish(shared: &Shared, view: &View, paused: bool) -> Result<Next, DeploymentError> {
    let d = view.d.as_ref();
    let all = view.all();
    let mut status = status::counts(d, &all, view.new.as_ref(), view.bounds.max_unavailable);
    if let Some(note) = view.progress_note.clone() {
        status::set_condition(&mut status, note);
    }
    let deleting = d.metadata.deletion_timestamp.is_some();
    let progressing_reason =
        status::condition(&status, status::PROGRESSING).and_then(|c| c.reason.clone());
    let mut recheck = None;
    if paused {
        if progressing_reason.as_deref() != Some(status::PAUSED) {
            status::set_condition(
                &mut status,
                status::new_condition(
                    status::PROGRESSING,
                    "Unknown",
                    status::PAUSED,
                    "Deployment is paused".into(),
                ),
            );
        }
    } else if !deleting {
        if progressing_reason.as_deref() == Some(status::PAUSED) {
            status::set_condition(
                &mut status,
                status::new_condition(
                    status::PROGRESSING,
                    "Unknown",
                    status::RESUMED,
                    "Deployment is resumed".into(),
                ),
            );
        }
        let new_name = view.new.as_ref().map(|rs| rs.name_any());
        recheck = status::track_progress(d, new_name.as_deref(), &mut status, Timestamp::now());
        if status::is_complete(d, &status) {
            cleanup(shared, view).await?;
        }
    }
    let api: Api<Deployment> = Api::namespaced(shared.client.clone(), &view.key.namespace);
    let d_err = |source| DeploymentError::Deployment {
        deployment: view.key.clone(),
        source,
    };
    let mut current = d.clone();
    let wanted_revision = view.new.as_ref().map(|rs| revision(rs).to_string());
    if let Some(rev) = wanted_revision
        && d.annotations().get(REVISION) != Some(&rev)
        && !deleting
    {
        let patch = json!({"metadata": {"annotations": {REVISION: rev}}});
        current = api
            .patch(
                &view.key.name,
                &PatchParams::default(),
                &Patch::Merge(patch),
            )
            .await
            .map_err(d_err)?;
    }
    if current.status.as_ref() != Some(&status) {
        current.status = Some(status);
        api.replace_status(&view.key.name, &PostParams::default(), &current)
            .await
            .map_err(d_err)?;
    }
    Ok(match recheck {
        Some(secs) => Next::After(Duration::from_secs(secs.unsigned_abs())),
        None => Next::Done,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proportional_shares_follow_sizes() {
        assert_eq!(proportional(10, &[5, 5]), vec![5, 5]);
        assert_eq!(proportional(12, &[6, 2]), vec![9, 3]);
        assert_eq!(proportional(7, &[2, 2]), vec![4, 3]);
        assert_eq!(proportional(4, &[0, 0]), vec![0, 0]);
    }

    #[test]
    fn availability_never_exceeds_what_a_scale_down_keeps() {
        let rs = |replicas: i32, available: i32| ReplicaSet {
            spec: Some(ReplicaSetSpec {
                replicas: Some(replicas),
                ..ReplicaSetSpec::default()
            }),
            status: Some(k8s_openapi::api::apps::v1::ReplicaSetStatus {
                replicas: 8,
                available_replicas: Some(available),
                ..Default::default()
            }),
            ..ReplicaSet::default()
        };
        // Scaled 8 → 6, status not yet caught up: only 6 of the 8 available pods stay.
        assert_eq!(available(&rs(6, 8)), 6);
        assert_eq!(available(&rs(8, 5)), 5);
    }
}
