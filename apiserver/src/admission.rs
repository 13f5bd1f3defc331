//! The admission chain every write passes: identity checks, strict field decoding,
//! defaulting, server-set metadata and validation.

use rkube_api::resources::ResourceInfo;
use rkube_api::{defaults, validation};
use serde_json::{Map, Value};

use crate::error::{ApiError, ApiResult, Cause};
use crate::objects::{self, meta_mut};
use crate::request::{Params, Target};

/// How unknown or duplicate fields in a body are treated (`fieldValidation`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldValidation {
    Strict,
    Warn,
    Ignore,
}

impl FieldValidation {
    pub fn from_params(params: &Params) -> ApiResult<Self> {
        match params.get("fieldValidation") {
            None | Some("Warn") => Ok(FieldValidation::Warn),
            Some("Strict") => Ok(FieldValidation::Strict),
            Some("Ignore") => Ok(FieldValidation::Ignore),
            Some(other) => Err(ApiError::BadRequest(format!(
                "fieldValidation must be one of Ignore, Warn or Strict, got {other:?}"
            ))),
        }
    }
}

/// Makes the body's apiVersion/kind/namespace/name agree with the URL, filling what is
/// missing.
pub fn check_identity(target: &Target, obj: &mut Value) -> ApiResult<()> {
    let resource = target.resource;
    let want_version = resource.api_version();
    let root = obj
        .as_object_mut()
        .ok_or_else(|| ApiError::BadRequest("the request body must be an object".into()))?;
    match root.get("apiVersion").and_then(Value::as_str) {
        Some(v) if v != want_version => {
            return Err(ApiError::BadRequest(format!(
                "the API version in the data ({v}) does not match the expected API version ({want_version})"
            )));
        }
        _ => {}
    }
    match root.get("kind").and_then(Value::as_str) {
        Some(k) if k != resource.kind => {
            return Err(ApiError::BadRequest(format!(
                "the kind in the data ({k}) does not match the expected kind ({})",
                resource.kind
            )));
        }
        _ => {}
    }
    root.insert("apiVersion".into(), Value::String(want_version));
    root.insert("kind".into(), Value::String(resource.kind.into()));
    let meta = meta_mut(obj);
    if resource.namespaced {
        let url_ns = target.namespace.as_deref();
        match (meta.get("namespace").and_then(Value::as_str), url_ns) {
            (Some(body), Some(url)) if !body.is_empty() && body != url => {
                return Err(ApiError::BadRequest(
                    "the namespace of the provided object does not match the namespace sent on the request"
                        .into(),
                ));
            }
            (_, Some(url)) => {
                meta.insert("namespace".into(), Value::String(url.into()));
            }
            (_, None) => {
                return Err(ApiError::BadRequest(
                    "a namespace is required to create a namespaced object".into(),
                ));
            }
        }
    } else {
        meta.remove("namespace");
    }
    if let Some(url_name) = target.name.as_deref() {
        match meta.get("name").and_then(Value::as_str) {
            Some(body) if body != url_name => {
                return Err(ApiError::BadRequest(format!(
                    "the name of the object ({body}) does not match the name on the URL ({url_name})"
                )));
            }
            _ => {
                meta.insert("name".into(), Value::String(url_name.into()));
            }
        }
    }
    Ok(())
}

/// Decodes the object into its typed form (a type error is a 400 whatever the mode) and
/// applies the request's field validation to unknown fields, which are dropped unless the
/// mode refuses them (a typed decode never keeps them); returns the warnings to send.
pub fn check_fields(
    resource: &ResourceInfo,
    obj: &mut Value,
    mode: FieldValidation,
) -> ApiResult<Vec<String>> {
    let unknown = validation::decode_strict(resource, obj).map_err(|err| {
        ApiError::BadRequest(format!(
            "{} in version \"{}\" cannot be handled as a {}: {err}",
            resource.kind, resource.version, resource.kind
        ))
    })?;
    let messages: Vec<String> = unknown
        .iter()
        .map(|field| format!("unknown field \"{field}\""))
        .collect();
    if mode == FieldValidation::Strict && !messages.is_empty() {
        return Err(ApiError::BadRequest(format!(
            "strict decoding error: {}",
            messages.join(", ")
        )));
    }
    for field in &unknown {
        remove_path(obj, field);
    }
    match mode {
        FieldValidation::Warn => Ok(messages),
        FieldValidation::Strict | FieldValidation::Ignore => Ok(Vec::new()),
    }
}

/// Removes the field at a `decode_strict` path (`spec.template.spec.containers[0].foo`).
/// Keys are matched whole first, so a key holding a dot is still found.
fn remove_path(value: &mut Value, path: &str) {
    match value {
        Value::Object(map) => {
            if map.remove(path).is_some() {
                return;
            }
            let next = map.keys().find(|key| {
                path.strip_prefix(key.as_str())
                    .is_some_and(|rest| rest.starts_with('.') || rest.starts_with('['))
            });
            if let Some(key) = next.cloned() {
                let rest = &path[key.len()..];
                let rest = rest.strip_prefix('.').unwrap_or(rest);
                if let Some(child) = map.get_mut(&key) {
                    remove_path(child, rest);
                }
            }
        }
        Value::Array(items) => {
            let Some((index, rest)) = path
                .strip_prefix('[')
                .and_then(|p| p.split_once(']'))
                .and_then(|(i, rest)| Some((i.parse::<usize>().ok()?, rest)))
            else {
                return;
            };
            let rest = rest.strip_prefix('.').unwrap_or(rest);
            if let Some(item) = items.get_mut(index) {
                remove_path(item, rest);
            }
        }
        _ => {}
    }
}

/// Defaults and then validates an object; `old` is the stored object on updates.
pub fn default_and_validate(
    resource: &'static ResourceInfo,
    obj: &mut Value,
    old: Option<&Value>,
) -> ApiResult<()> {
    defaults::apply_defaults(resource, obj);
    let causes = validation::validate(resource, obj, old);
    if causes.is_empty() {
        return Ok(());
    }
    let name = objects::name(obj).to_string();
    Err(ApiError::Invalid {
        target: crate::error::Target::new(resource, &name),
        causes: causes.into_iter().map(Cause::from).collect(),
    })
}

/// Fills a `generateName`d object's name: the prefix and five random characters, like
/// Kubernetes (consonants and digits that cannot spell words).
pub fn generate_name(obj: &mut Value) {
    let meta = meta_mut(obj);
    let has_name = meta
        .get("name")
        .and_then(Value::as_str)
        .is_some_and(|n| !n.is_empty());
    let Some(prefix) = meta.get("generateName").and_then(Value::as_str) else {
        return;
    };
    if has_name {
        return;
    }
    let name = format!("{prefix}{}", random_suffix());
    meta.insert("name".into(), Value::String(name));
}

/// Five random characters from consonants and digits, as Kubernetes appends to generated
/// names.
pub fn random_suffix() -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let random = uuid::Uuid::new_v4();
    random.as_bytes()[..5]
        .iter()
        .map(|b| ALPHABET[*b as usize % ALPHABET.len()] as char)
        .collect()
}

/// Sets what the server owns on a new object: uid, creation time, generation, and for pods
/// the initial status, as kube-apiserver's pod strategy does.
pub fn stamp_new(resource: &ResourceInfo, obj: &mut Value) {
    // Status is the controllers' to write; nodes and namespaces report their own on create.
    let keeps_status = matches!(resource.kind, "Node" | "Namespace");
    if resource.has_subresource(rkube_api::resources::Subresource::Status)
        && !keeps_status
        && let Some(map) = obj.as_object_mut()
    {
        map.remove("status");
    }
    if resource.kind == "Pod" && resource.group.is_empty() {
        let qos = qos_class(obj);
        obj["status"] = serde_json::json!({"phase": "Pending", "qosClass": qos});
    }
    let meta = meta_mut(obj);
    for server_owned in [
        "resourceVersion",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "selfLink",
    ] {
        meta.remove(server_owned);
    }
    meta.insert(
        "uid".into(),
        Value::String(uuid::Uuid::new_v4().to_string()),
    );
    meta.insert(
        "creationTimestamp".into(),
        Value::String(objects::now_rfc3339()),
    );
    meta.insert("generation".into(), Value::from(1));
}

/// The pod QoS class from its containers' requests and limits: Guaranteed when every
/// container limits cpu and memory with requests equal to limits, BestEffort when none sets
/// anything, else Burstable.
fn qos_class(pod: &Value) -> &'static str {
    let containers: Vec<&Value> = ["containers", "initContainers"]
        .iter()
        .filter_map(|f| pod.pointer(&format!("/spec/{f}")).and_then(Value::as_array))
        .flatten()
        .collect();
    let resources = |c: &Value, kind: &str, name: &str| {
        c.pointer(&format!("/resources/{kind}/{name}")).cloned()
    };
    let any_set = containers.iter().any(|c| {
        ["requests", "limits"].iter().any(|k| {
            c.pointer(&format!("/resources/{k}"))
                .and_then(Value::as_object)
                .is_some_and(|m| !m.is_empty())
        })
    });
    if !any_set {
        return "BestEffort";
    }
    let guaranteed = containers.iter().all(|c| {
        ["cpu", "memory"].iter().all(|r| {
            let limit = resources(c, "limits", r);
            let request = resources(c, "requests", r).or_else(|| limit.clone());
            limit.is_some() && request == limit
        })
    });
    if guaranteed {
        "Guaranteed"
    } else {
        "Burstable"
    }
}

/// Carries the server-owned metadata of `old` onto an update and bumps `generation` when
/// anything but metadata and status changed.
pub fn carry_over(old: &Value, new: &mut Value) {
    let old_meta = old.get("metadata").and_then(Value::as_object);
    let keep = [
        "uid",
        "creationTimestamp",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "generation",
    ];
    let meta = meta_mut(new);
    for field in keep {
        match old_meta.and_then(|m| m.get(field)) {
            Some(v) => meta.insert(field.into(), v.clone()),
            None => meta.remove(field),
        };
    }
    if spec_of(old) != spec_of(new) {
        let generation = old
            .pointer("/metadata/generation")
            .and_then(Value::as_i64)
            .unwrap_or(0);
        meta_mut(new).insert("generation".into(), Value::from(generation + 1));
    }
}

/// Everything the generation tracks: the object minus metadata and status.
fn spec_of(obj: &Value) -> Map<String, Value> {
    let mut out = obj.as_object().cloned().unwrap_or_default();
    out.remove("metadata");
    out.remove("status");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use rkube_api::resources::find;
    use serde_json::json;

    fn target(plural: &str, ns: Option<&str>, name: Option<&str>) -> Target {
        let resource = rkube_api::resources::RESOURCES
            .iter()
            .find(|r| r.plural == plural)
            .unwrap();
        Target {
            resource,
            namespace: ns.map(String::from),
            name: name.map(String::from),
            subresource: None,
        }
    }

    #[test]
    fn identity_fills_and_checks() {
        let mut obj = json!({"metadata": {"name": "p"}});
        check_identity(&target("pods", Some("default"), None), &mut obj).unwrap();
        assert_eq!(obj["apiVersion"], "v1");
        assert_eq!(obj["metadata"]["namespace"], "default");

        let mut wrong = json!({"apiVersion": "apps/v1", "kind": "Pod"});
        assert!(check_identity(&target("pods", Some("a"), None), &mut wrong).is_err());
        let mut other_ns = json!({"metadata": {"namespace": "b"}});
        assert!(check_identity(&target("pods", Some("a"), None), &mut other_ns).is_err());
        let mut other_name = json!({"metadata": {"name": "b"}});
        assert!(check_identity(&target("pods", Some("a"), Some("c")), &mut other_name).is_err());
    }

    #[test]
    fn generation_bumps_only_on_spec_change() {
        let old = json!({"metadata": {"generation": 3, "uid": "u"}, "spec": {"a": 1}});
        let mut same =
            json!({"metadata": {"labels": {"x": "y"}}, "spec": {"a": 1}, "status": {"s": 1}});
        carry_over(&old, &mut same);
        assert_eq!(same["metadata"]["generation"], 3);
        assert_eq!(same["metadata"]["uid"], "u");
        let mut changed = json!({"spec": {"a": 2}});
        carry_over(&old, &mut changed);
        assert_eq!(changed["metadata"]["generation"], 4);
    }

    #[test]
    fn unknown_fields_are_dropped_unless_strict() {
        let deployments = find("apps", "v1", "deployments").unwrap();
        let body = json!({
            "metadata": {"name": "d", "labels": {"a.b/c": "x"}},
            "spec": {"foo": 1, "selector": {}, "template": {"spec": {"containers": [
                {"name": "a", "image": "i"},
                {"name": "b", "image": "i", "bar": true},
            ]}}},
        });
        let mut warned = body.clone();
        let warnings = check_fields(deployments, &mut warned, FieldValidation::Warn).unwrap();
        assert_eq!(warnings.len(), 2);
        assert!(warned["spec"].get("foo").is_none());
        assert!(
            warned["spec"]["template"]["spec"]["containers"][1]
                .get("bar")
                .is_none()
        );
        assert_eq!(
            warned["spec"]["template"]["spec"]["containers"][1]["name"],
            "b"
        );
        assert_eq!(warned["metadata"]["labels"]["a.b/c"], "x");

        let mut strict = body.clone();
        assert!(check_fields(deployments, &mut strict, FieldValidation::Strict).is_err());
        assert_eq!(strict, body);
    }

    #[test]
    fn generated_names_use_the_prefix() {
        let mut obj = json!({"metadata": {"generateName": "web-"}});
        generate_name(&mut obj);
        let name = obj["metadata"]["name"].as_str().unwrap();
        assert!(name.starts_with("web-") && name.len() == 9);
        let _ = find("", "v1", "pods");
    }
}
