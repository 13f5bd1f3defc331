//! The write verbs: create, update, patch (all four types), delete and deletecollection,
//! with optimistic concurrency, finalizers and graceful pod deletion.

use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use rkube_api::resources::Subresource;
use serde_json::{Value, json};

use crate::admission::{self, FieldValidation};
use crate::auth::User;
use crate::body::{self, PatchKind, Wanted};
use crate::error::{ApiError, ApiResult, Target as ErrorTarget};
use crate::filters::Filter;
use crate::handlers::{fetch, respond};
use crate::objects::{self, meta_mut};
use crate::request::{Params, Target};
use crate::server::ApiServer;
use crate::store::{Revision, StoreError};
use crate::{managed, patches};

/// How often an apply retries when its object is created or deleted under it. Plain lost
/// races are retried without a bound, as kube-apiserver does: each one means another write
/// landed, so the server as a whole always makes progress.
const CONFLICT_RETRIES: usize = 8;

/// Decodes a create/update body and applies the request's field validation; returns the
/// object and the warnings to send back.
fn decode_checked(
    target: &Target,
    params: &Params,
    headers: &HeaderMap,
    bytes: &[u8],
) -> ApiResult<(Value, Vec<String>)> {
    let mut obj = body::decode_object(target.resource, headers, bytes)?;
    let mode = FieldValidation::from_params(params)?;
    let warnings = admission::check_fields(target.resource, &mut obj, mode)?;
    Ok((obj, warnings))
}

pub async fn create(
    server: &ApiServer,
    user: &User,
    target: &Target,
    params: &Params,
    headers: &HeaderMap,
    bytes: &[u8],
) -> ApiResult<Response> {
    let (mut obj, warnings) = decode_checked(target, params, headers, bytes)?;
    let created = create_object(server, user, target, params, &mut obj, None).await?;
    respond(
        target,
        params,
        body::wanted(headers)?,
        StatusCode::CREATED,
        &created,
        &warnings,
    )
}

/// Admits and stores a new object; `manager` records an apply's field manager.
async fn create_object(
    server: &ApiServer,
    user: &User,
    target: &Target,
    params: &Params,
    obj: &mut Value,
    apply_manager: Option<&str>,
) -> ApiResult<Value> {
    let resource = target.resource;
    let identity = Target {
        name: None,
        ..target.clone()
    };
    admission::check_identity(&identity, obj)?;
    admission::generate_name(obj);
    admission::stamp_new(resource, obj);
    if let Some(manager) = apply_manager {
        managed::record_apply(obj, manager, &resource.api_version());
    }
    let name = objects::name(obj).to_string();
    let namespace = objects::namespace(obj).map(String::from);
    crate::rbac::node::admit_create(user, resource, obj)?;
    if let Some(ns) = &namespace {
        ensure_namespace_open(server, ns, ErrorTarget::new(resource, &name)).await?;
    }
    // Mutating admission before validation, as in kube-apiserver.
    if resource.kind == "Pod" && resource.group.is_empty() {
        crate::pod_admission::admit_new_pod(server, &ErrorTarget::new(resource, &name), obj)
            .await?;
    }
    let is_csr = resource.group == "certificates.k8s.io";
    if is_csr {
        crate::csr::admit_new(user, obj, &ErrorTarget::new(resource, &name))?;
    }
    admission::default_and_validate(resource, obj, None)?;
    if is_csr {
        crate::csr::approve_and_sign(server.signer.get().map(AsRef::as_ref), user, obj);
    }
    crate::allocate::on_create(server, resource, obj).await?;
    if params.dry_run() {
        return Ok(obj.clone());
    }
    let key = objects::key(resource, namespace.as_deref(), &name);
    let revision = server
        .store
        .create(&key, objects::encode(obj))
        .await
        .map_err(|e| ApiError::from_store(e, ErrorTarget::new(resource, &name)))?;
    objects::set_resource_version(obj, revision);
    Ok(obj.clone())
}

/// Objects may only be created in a namespace that exists and is not being deleted;
/// `object` names the object being created, as the 403 does (NamespaceLifecycle admission).
async fn ensure_namespace_open(
    server: &ApiServer,
    namespace: &str,
    object: ErrorTarget,
) -> ApiResult<()> {
    let namespaces = crate::objects::resource("", "v1", "namespaces")?;
    let key = objects::key(namespaces, None, namespace);
    let Some(found) = server.admission_lookup(&key).await? else {
        return Err(ApiError::NotFound(ErrorTarget::new(namespaces, namespace)));
    };
    if objects::is_deleting(&found) {
        return Err(ApiError::Forbidden {
            target: object,
            message: format!(
                "unable to create new content in namespace {namespace} because it is being terminated"
            ),
        });
    }
    Ok(())
}

pub async fn update(
    server: &ApiServer,
    target: &Target,
    params: &Params,
    headers: &HeaderMap,
    bytes: &[u8],
) -> ApiResult<Response> {
    let (mut body_obj, warnings) = decode_checked(target, params, headers, bytes)?;
    admission::check_identity(target, &mut body_obj)?;
    let precondition = objects::resource_version(&body_obj);
    let updated = guaranteed_update(server, target, params, precondition, |_| {
        Ok(body_obj.clone())
    })
    .await?;
    respond(
        target,
        params,
        body::wanted(headers)?,
        StatusCode::OK,
        &updated,
        &warnings,
    )
}

pub async fn patch(
    server: &ApiServer,
    user: &User,
    target: &Target,
    params: &Params,
    headers: &HeaderMap,
    bytes: &[u8],
) -> ApiResult<Response> {
    let (kind, patch) = body::decode_patch(headers, bytes)?;
    let wanted = body::wanted(headers)?;
    let mode = FieldValidation::from_params(params)?;
    if kind == PatchKind::Apply {
        return apply(server, user, target, params, wanted, patch, mode).await;
    }
    let precondition = patch
        .pointer("/metadata/resourceVersion")
        .and_then(Value::as_str)
        .and_then(|rv| rv.parse().ok());
    let mut warnings = Vec::new();
    let resource = target.resource;
    let updated = guaranteed_update(server, target, params, precondition, |current| {
        let mut patched = patches::apply(kind, current, &patch, resource)?;
        warnings = admission::check_fields(resource, &mut patched, mode)?;
        Ok(patched)
    })
    .await?;
    respond(target, params, wanted, StatusCode::OK, &updated, &warnings)
}

/// Server-side apply: creates the object when missing, else merges the applied
/// configuration onto it and records the field manager.
async fn apply(
    server: &ApiServer,
    user: &User,
    target: &Target,
    params: &Params,
    wanted: Wanted,
    mut applied: Value,
    mode: FieldValidation,
) -> ApiResult<Response> {
    let manager = params
        .get("fieldManager")
        .ok_or_else(missing_field_manager)?
        .to_string();
    if !applied.is_object() {
        return Err(ApiError::BadRequest(
            "an apply patch must be an object".into(),
        ));
    }
    let warnings = admission::check_fields(target.resource, &mut applied, mode)?;
    let resource = target.resource;
    for _ in 0..CONFLICT_RETRIES {
        match fetch(server, target).await {
            Err(ApiError::NotFound(_)) => {
                let mut obj = applied.clone();
                admission::check_identity(target, &mut obj)?;
                match create_object(server, user, target, params, &mut obj, Some(&manager)).await {
                    Err(ApiError::AlreadyExists(_)) => continue,
                    Err(other) => return Err(other),
                    Ok(created) => {
                        return respond(
                            target,
                            params,
                            wanted,
                            StatusCode::CREATED,
                            &created,
                            &warnings,
                        );
                    }
                }
            }
            Err(other) => return Err(other),
            Ok(_) => {
                let updated = guaranteed_update(server, target, params, None, |current| {
                    let mut merged = patches::apply(PatchKind::Apply, current, &applied, resource)?;
                    managed::record_apply(&mut merged, &manager, &resource.api_version());
                    Ok(merged)
                })
                .await;
                match updated {
                    Err(ApiError::NotFound(_)) => continue,
                    Err(other) => return Err(other),
                    Ok(updated) => {
                        return respond(
                            target,
                            params,
                            wanted,
                            StatusCode::OK,
                            &updated,
                            &warnings,
                        );
                    }
                }
            }
        }
    }
    Err(ApiError::Conflict(target.error_target()))
}

/// kube-apiserver validates PatchOptions first: an apply without a manager is a 422 about
/// `PatchOptions.meta.k8s.io`, not about the object.
fn missing_field_manager() -> ApiError {
    ApiError::Invalid {
        target: ErrorTarget {
            group: "meta.k8s.io".into(),
            resource: String::new(),
            kind: "PatchOptions".into(),
            name: String::new(),
        },
        causes: vec![crate::error::Cause {
            reason: "FieldValueRequired".into(),
            field: "fieldManager".into(),
            message: "Required value: is required for apply patch".into(),
        }],
    }
}

/// Read-modify-write with optimistic concurrency: `mutate` turns the stored object into the
/// desired one; a lost race is retried unless the client named the revision it expects.
pub async fn guaranteed_update(
    server: &ApiServer,
    target: &Target,
    params: &Params,
    precondition: Option<Revision>,
    mut mutate: impl FnMut(&Value) -> ApiResult<Value>,
) -> ApiResult<Value> {
    let resource = target.resource;
    loop {
        let (key, current) = fetch(server, target).await?;
        let current_rv = objects::resource_version(&current).unwrap_or_default();
        if precondition.is_some_and(|rv| rv != current_rv) {
            return Err(ApiError::Conflict(target.error_target()));
        }
        let mut desired = mutate(&current)?;
        admission::check_identity(target, &mut desired)?;
        let mut next = match target.subresource {
            // A binding sets the node and the PodScheduled condition together.
            Some(Subresource::Binding) => desired,
            // The status subresource changes status only, the main resource everything else.
            Some(Subresource::Status) => {
                let mut next = current.clone();
                next["status"] = desired.get("status").cloned().unwrap_or(Value::Null);
                next
            }
            // Approval changes the conditions only; the signer acts on an approval at once.
            Some(Subresource::Approval) => {
                let mut next = current.clone();
                let conditions = desired.pointer("/status/conditions").cloned();
                if !next.get("status").is_some_and(Value::is_object) {
                    next["status"] = serde_json::json!({});
                }
                next["status"]["conditions"] = conditions.unwrap_or(Value::Null);
                crate::csr::sign_if_approved(server.signer.get().map(AsRef::as_ref), &mut next);
                next
            }
            _ if resource.has_subresource(Subresource::Status) => {
                match current.get("status") {
                    Some(status) => desired["status"] = status.clone(),
                    None => {
                        if let Some(map) = desired.as_object_mut() {
                            map.remove("status");
                        }
                    }
                }
                desired
            }
            _ => desired,
        };
        admission::carry_over(&current, &mut next);
        // Pod updates may not change spec.nodeName; a binding exists to do just that, so it
        // is validated as a whole object rather than as an update.
        let old = (target.subresource != Some(Subresource::Binding)).then_some(&current);
        admission::default_and_validate(resource, &mut next, old)?;
        objects::set_resource_version(&mut next, current_rv);
        if next == current {
            // Kubernetes does not write (or bump resourceVersion) for a no-op update.
            return Ok(current);
        }
        if params.dry_run() {
            return Ok(next);
        }
        let outcome = if objects::is_deleting(&next)
            && objects::finalizers(&next).is_empty()
            && !awaits_node(resource, &next)
            && !awaits_namespace_finalizers(resource, &next)
        {
            server
                .store
                .delete(&key, Some(current_rv))
                .await
                .map(|rev| (rev, true))
        } else {
            server
                .store
                .update(&key, objects::encode(&next), current_rv)
                .await
                .map(|rev| (rev, false))
        };
        match outcome {
            Ok((revision, _)) => {
                objects::set_resource_version(&mut next, revision);
                return Ok(next);
            }
            Err(StoreError::Conflict { .. }) if precondition.is_none() => continue,
            Err(err) => {
                return Err(ApiError::from_store(err, target.error_target()));
            }
        }
    }
}

/// A pod being deleted gracefully stays until its node confirms with a zero-grace delete.
fn awaits_node(resource: &rkube_api::resources::ResourceInfo, obj: &Value) -> bool {
    resource.kind == "Pod"
        && resource.group.is_empty()
        && obj
            .pointer("/metadata/deletionGracePeriodSeconds")
            .and_then(Value::as_i64)
            .is_some_and(|g| g > 0)
}

/// A namespace also waits for the finalizers in its spec: the namespace controller removes
/// `kubernetes` once the namespace is empty (Kubernetes' `finalize` subresource, folded
/// into a plain update here).
fn awaits_namespace_finalizers(resource: &rkube_api::resources::ResourceInfo, obj: &Value) -> bool {
    resource.kind == "Namespace"
        && resource.group.is_empty()
        && obj
            .pointer("/spec/finalizers")
            .and_then(Value::as_array)
            .is_some_and(|f| !f.is_empty())
}

/// The DeleteOptions of a request: the body (if any) with query parameters on top.
struct DeleteOptions {
    grace_period: Option<i64>,
    propagation: Option<String>,
    uid: Option<String>,
    resource_version: Option<Revision>,
}

impl DeleteOptions {
    fn parse(params: &Params, bytes: &[u8]) -> ApiResult<DeleteOptions> {
        let body = if bytes.iter().all(u8::is_ascii_whitespace) {
            Value::Null
        } else {
            body::parse_json(bytes)?
        };
        let orphan = body
            .get("orphanDependents")
            .and_then(Value::as_bool)
            .or_else(|| params.get("orphanDependents").map(|v| v == "true"));
        let propagation = params
            .get("propagationPolicy")
            .map(String::from)
            .or_else(|| {
                body.get("propagationPolicy")
                    .and_then(Value::as_str)
                    .map(String::from)
            })
            .or_else(|| orphan.map(|o| if o { "Orphan" } else { "Background" }.to_string()));
        if let Some(p) = &propagation
            && !matches!(p.as_str(), "Orphan" | "Background" | "Foreground")
        {
            return Err(ApiError::BadRequest(format!(
                "propagationPolicy must be one of Orphan, Background or Foreground, got {p:?}"
            )));
        }
        Ok(DeleteOptions {
            grace_period: params
                .int("gracePeriodSeconds")?
                .or_else(|| body.get("gracePeriodSeconds").and_then(Value::as_i64)),
            propagation,
            uid: body
                .pointer("/preconditions/uid")
                .and_then(Value::as_str)
                .map(String::from),
            resource_version: body
                .pointer("/preconditions/resourceVersion")
                .and_then(Value::as_str)
                .and_then(|rv| rv.parse().ok()),
        })
    }
}

pub async fn delete(
    server: &ApiServer,
    target: &Target,
    params: &Params,
    bytes: &[u8],
) -> ApiResult<Response> {
    let options = DeleteOptions::parse(params, bytes)?;
    let deleted = delete_object(server, target, params, &options).await?;
    Ok(body::object_response(StatusCode::OK, &deleted))
}

async fn delete_object(
    server: &ApiServer,
    target: &Target,
    params: &Params,
    options: &DeleteOptions,
) -> ApiResult<Value> {
    let resource = target.resource;
    loop {
        let (key, current) = fetch(server, target).await?;
        let current_rv = objects::resource_version(&current).unwrap_or_default();
        if options
            .uid
            .as_deref()
            .is_some_and(|uid| objects::meta_str(&current, "uid") != Some(uid))
        {
            return Err(ApiError::ConflictWith {
                target: target.error_target(),
                message: "Precondition failed: UID in precondition does not match the UID in the stored object".into(),
            });
        }
        if options.resource_version.is_some_and(|rv| rv != current_rv) {
            return Err(ApiError::Conflict(target.error_target()));
        }
        let grace = grace_period(resource, &current, options);
        let mut next = current.clone();
        let meta = meta_mut(&mut next);
        let mut finalizers = objects::finalizers(&current);
        let orphan_or_foreground = match options.propagation.as_deref() {
            Some("Orphan") => Some("orphan"),
            Some("Foreground") => Some("foregroundDeletion"),
            _ => None,
        };
        if let Some(f) = orphan_or_foreground
            && !finalizers.iter().any(|x| x == f)
        {
            finalizers.push(f.to_string());
            meta.insert("finalizers".into(), json!(finalizers));
        }
        let graceful = grace > 0;
        let namespace_held = awaits_namespace_finalizers(resource, &current);
        if finalizers.is_empty() && !graceful && !namespace_held {
            if params.dry_run() {
                return Ok(current);
            }
            match server.store.delete(&key, Some(current_rv)).await {
                Ok(revision) => {
                    objects::set_resource_version(&mut next, revision);
                    return Ok(next);
                }
                Err(StoreError::Conflict { .. }) => continue,
                Err(err) => return Err(ApiError::from_store(err, target.error_target())),
            }
        }
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs() as i64;
        let already = objects::is_deleting(&current);
        let shorter = current
            .pointer("/metadata/deletionGracePeriodSeconds")
            .and_then(Value::as_i64)
            .is_none_or(|g| grace < g);
        if !already || (graceful && shorter) {
            meta.insert(
                "deletionTimestamp".into(),
                json!(objects::rfc3339(now + grace)),
            );
            meta.insert("deletionGracePeriodSeconds".into(), json!(grace));
        }
        if namespace_held && let Some(root) = next.as_object_mut() {
            // As kube-apiserver's namespace strategy: a namespace being deleted terminates.
            let status = root.entry("status").or_insert_with(|| json!({}));
            if let Some(status) = status.as_object_mut() {
                status.insert("phase".into(), json!("Terminating"));
            }
        }
        if next == current {
            return Ok(current);
        }
        if params.dry_run() {
            return Ok(next);
        }
        match server
            .store
            .update(&key, objects::encode(&next), current_rv)
            .await
        {
            Ok(revision) => {
                objects::set_resource_version(&mut next, revision);
                return Ok(next);
            }
            Err(StoreError::Conflict { .. }) => continue,
            Err(err) => return Err(ApiError::from_store(err, target.error_target())),
        }
    }
}

/// Pods bound to a node and still running wait for the node to stop them; every other
/// object goes at once.
fn grace_period(
    resource: &rkube_api::resources::ResourceInfo,
    obj: &Value,
    options: &DeleteOptions,
) -> i64 {
    if resource.kind != "Pod" || !resource.group.is_empty() {
        return 0;
    }
    let bound = obj
        .pointer("/spec/nodeName")
        .and_then(Value::as_str)
        .is_some_and(|n| !n.is_empty());
    let finished = matches!(
        obj.pointer("/status/phase").and_then(Value::as_str),
        Some("Succeeded" | "Failed")
    );
    if !bound || finished {
        return 0;
    }
    options
        .grace_period
        .or_else(|| {
            obj.pointer("/spec/terminationGracePeriodSeconds")
                .and_then(Value::as_i64)
        })
        .unwrap_or(30)
        .max(0)
}

pub async fn delete_collection(
    server: &ApiServer,
    target: &Target,
    params: &Params,
    bytes: &[u8],
) -> ApiResult<Response> {
    let options = DeleteOptions::parse(params, bytes)?;
    let filter = Filter::from_params(target.resource, params)?;
    let prefix = objects::prefix(target.resource, target.object_namespace());
    let (items, revision) = server.cache.list(&prefix);
    let mut deleted = Vec::new();
    for item in items.iter().filter(|i| filter.matches(&i.object)) {
        let one = Target {
            name: Some(objects::name(&item.object).to_string()),
            namespace: objects::namespace(&item.object).map(String::from),
            ..target.clone()
        };
        match delete_object(server, &one, params, &options).await {
            Ok(obj) => deleted.push(obj),
            Err(ApiError::NotFound(_)) => {}
            Err(err) => return Err(err),
        }
    }
    let list = json!({
        "kind": target.resource.list_kind(),
        "apiVersion": target.resource.api_version(),
        "metadata": {"resourceVersion": revision.to_string()},
        "items": deleted,
    });
    Ok(body::object_response(StatusCode::OK, &list))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::store::memory::MemoryStore;

    fn namespace(name: &str, deleting: bool) -> Value {
        let mut ns = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}});
        if deleting {
            ns["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:00:00Z");
        }
        ns
    }

    fn pod() -> ErrorTarget {
        ErrorTarget::new(rkube_api::resources::find("", "v1", "pods").unwrap(), "p")
    }

    #[tokio::test]
    async fn creates_need_an_open_namespace_seen_by_the_cache_or_the_store() {
        let server = ApiServer::new(Arc::new(MemoryStore::new())).await.unwrap();
        assert!(matches!(
            ensure_namespace_open(&server, "missing", pod()).await,
            Err(ApiError::NotFound(_))
        ));

        // Written straight to the store: found whether or not the cache has caught up.
        let open = objects::encode(&namespace("open", false));
        server
            .store
            .create("/registry/namespaces/open", open)
            .await
            .unwrap();
        ensure_namespace_open(&server, "open", pod()).await.unwrap();

        let closing = objects::encode(&namespace("closing", true));
        let revision = server
            .store
            .create("/registry/namespaces/closing", closing)
            .await
            .unwrap();
        assert!(matches!(
            ensure_namespace_open(&server, "closing", pod()).await,
            Err(ApiError::Forbidden { .. })
        ));
        server.cache.wait_for(revision).await.unwrap();
        assert!(matches!(
            ensure_namespace_open(&server, "closing", pod()).await,
            Err(ApiError::Forbidden { .. })
        ));
        ensure_namespace_open(&server, "open", pod()).await.unwrap();
    }
}
