//! Kubernetes strategic merge patch (`application/strategic-merge-patch+json`).
//!
//! Maps merge recursively and `null` deletes a key. Lists merge by key, as sets, or are
//! replaced, per the schema table. Directives: `$patch: replace|merge|delete` on maps and on
//! list items, `$retainKeys`, `$setElementOrder/<field>` and `$deleteFromPrimitiveList/<field>`.
//! Directives never persist: values taken from the patch are applied onto nothing, which drops
//! them and any `null`s, as decoding the result into the typed object does on a real server.

use serde_json::{Map, Value};

use super::order::{self, Identity, same_value};
use super::schema::{self, FieldMeta, ListStrategy, Type};
use super::{PatchError, child_path};

const PATCH: &str = "$patch";
const RETAIN_KEYS: &str = "$retainKeys";
const SET_ELEMENT_ORDER: &str = "$setElementOrder/";
const DELETE_FROM_PRIMITIVE_LIST: &str = "$deleteFromPrimitiveList/";

/// Applies a strategic merge patch to a copy of `doc`, an object of the given kind. Kinds
/// without a schema (not built in) get map merging and list replacement throughout.
///
/// With a directive-free patch this is also the merge server-side apply needs: an applied
/// object merged onto the live one keeps live list items by key and adds the applied ones.
pub fn apply_strategic_merge_patch(
    doc: &Value,
    patch: &Value,
    api_version: &str,
    kind: &str,
) -> Result<Value, PatchError> {
    let Value::Object(patch) = patch else {
        return Err(PatchError::NotAnObject { what: "patch" });
    };
    let Value::Object(live) = doc else {
        return Err(PatchError::NotAnObject { what: "document" });
    };
    let root = schema::root(api_version, kind);
    Ok(Value::Object(merge_map(live.clone(), patch, root, "")?))
}

/// A `$patch` directive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Directive {
    Replace,
    Merge,
    Delete,
}

fn directive_of(map: &Map<String, Value>, path: &str) -> Result<Option<Directive>, PatchError> {
    let Some(value) = map.get(PATCH) else {
        return Ok(None);
    };
    match value.as_str() {
        Some("replace") => Ok(Some(Directive::Replace)),
        Some("merge") => Ok(Some(Directive::Merge)),
        Some("delete") => Ok(Some(Directive::Delete)),
        _ => Err(PatchError::UnknownPatchDirective {
            path: path.to_string(),
            value: value.to_string(),
        }),
    }
}

fn merge_map(
    mut original: Map<String, Value>,
    patch: &Map<String, Value>,
    ty: Option<Type>,
    path: &str,
) -> Result<Map<String, Value>, PatchError> {
    match directive_of(patch, path)? {
        Some(Directive::Delete) => return Ok(Map::new()),
        Some(Directive::Replace) => original.clear(),
        Some(Directive::Merge) | None => {}
    }
    if let Some(keys) = patch.get(RETAIN_KEYS) {
        retain_keys(&mut original, patch, keys, path)?;
    }

    // Lists named by $setElementOrder are merged and ordered together with their directive.
    let mut ordered = Vec::new();
    for (key, value) in patch {
        if let Some(field) = key.strip_prefix(SET_ELEMENT_ORDER)
            && apply_element_order(&mut original, patch, field, value, ty, path)?
        {
            ordered.push(field);
        }
    }

    for (key, value) in patch {
        if key.starts_with('$') {
            check_directive_key(key, path)?;
            continue;
        }
        if ordered.contains(&key.as_str()) {
            continue;
        }
        if value.is_null() {
            original.remove(key);
            continue;
        }
        let meta = schema::field(ty, key);
        let field_path = child_path(path, key);
        let merged = merge_value(original.remove(key), value, meta, &field_path)?;
        original.insert(key.clone(), merged);
    }

    for (key, value) in patch {
        if let Some(field) = key.strip_prefix(DELETE_FROM_PRIMITIVE_LIST) {
            delete_from_primitive_list(&mut original, field, value, path)?;
        }
    }
    Ok(original)
}

/// Accepts the directive keys this engine knows; any other `$` key is a client error.
fn check_directive_key(key: &str, path: &str) -> Result<(), PatchError> {
    let known = key == PATCH
        || key == RETAIN_KEYS
        || key
            .strip_prefix(SET_ELEMENT_ORDER)
            .or_else(|| key.strip_prefix(DELETE_FROM_PRIMITIVE_LIST))
            .is_some_and(|field| !field.is_empty());
    if known {
        Ok(())
    } else {
        Err(PatchError::UnsupportedDirective {
            path: path.to_string(),
            key: key.to_string(),
        })
    }
}

/// Merges one patch value onto the live value (if any). A patch object or list meeting a
/// missing or differently typed live value is applied onto an empty one.
fn merge_value(
    original: Option<Value>,
    patch: &Value,
    meta: FieldMeta,
    path: &str,
) -> Result<Value, PatchError> {
    match patch {
        Value::Object(patch) => {
            let base = match original {
                Some(Value::Object(live)) => live,
                _ => Map::new(),
            };
            Ok(Value::Object(merge_map(base, patch, meta.child, path)?))
        }
        Value::Array(patch) => {
            let base = match original {
                Some(Value::Array(live)) => live,
                _ => Vec::new(),
            };
            Ok(Value::Array(merge_list(base, patch, meta, path)?))
        }
        scalar => Ok(scalar.clone()),
    }
}

fn merge_list(
    original: Vec<Value>,
    patch: &[Value],
    meta: FieldMeta,
    path: &str,
) -> Result<Vec<Value>, PatchError> {
    match meta.list {
        ListStrategy::Replace => replace_list(patch, meta.child, path),
        ListStrategy::MergeSet => merge_set(original, patch, path),
        ListStrategy::MergeByKey(key) => merge_by_key(original, patch, key, meta.child, path),
    }
}

/// The patch list as the new value, its objects cleaned of directives and `null`s.
fn replace_list(
    patch: &[Value],
    child: Option<Type>,
    path: &str,
) -> Result<Vec<Value>, PatchError> {
    patch
        .iter()
        .enumerate()
        .map(|(i, item)| match item {
            Value::Object(map) => Ok(Value::Object(merge_map(
                Map::new(),
                map,
                child,
                &child_path(path, &i.to_string()),
            )?)),
            other => Ok(other.clone()),
        })
        .collect()
}

/// Merges lists of primitives as an ordered set: live items stay, patch items are added.
fn merge_set(original: Vec<Value>, patch: &[Value], path: &str) -> Result<Vec<Value>, PatchError> {
    if original
        .iter()
        .chain(patch)
        .any(|v| v.is_object() || v.is_array())
    {
        return Err(PatchError::InvalidList {
            path: path.to_string(),
            reason: "a list merged as a set may hold only primitives",
        });
    }
    let mut merged: Vec<Value> = Vec::with_capacity(original.len() + patch.len());
    for item in original.iter().chain(patch) {
        if !merged.iter().any(|m| same_value(m, item)) {
            merged.push(item.clone());
        }
    }
    Ok(order::normalize(merged, patch, &original, Identity::Value))
}

/// Merges lists of objects by the value of `key`, honouring `$patch: delete` (drop the live
/// item with that key) and `$patch: replace` (the list becomes the patch's other items).
fn merge_by_key(
    original: Vec<Value>,
    patch: &[Value],
    key: &'static str,
    child: Option<Type>,
    path: &str,
) -> Result<Vec<Value>, PatchError> {
    let not_objects = || PatchError::InvalidList {
        path: path.to_string(),
        reason: "items of a list merged by key must be objects",
    };
    if original.iter().any(|v| !v.is_object()) {
        return Err(not_objects());
    }
    let by = Identity::Key(key);

    let mut live = original;
    let mut replace = false;
    let mut items = Vec::with_capacity(patch.len());
    for (i, item) in patch.iter().enumerate() {
        let item_path = child_path(path, &i.to_string());
        let map = item.as_object().ok_or_else(not_objects)?;
        match directive_of(map, &item_path)? {
            Some(Directive::Delete) => {
                if !map.contains_key(key) {
                    return Err(PatchError::MissingMergeKey {
                        path: item_path,
                        key,
                    });
                }
                live.retain(|l| !by.matches(l, item));
            }
            // `{"$patch": "replace"}` marks the whole list; the item itself is not kept.
            Some(Directive::Replace) => replace = true,
            Some(Directive::Merge) | None => items.push((item_path, map)),
        }
    }
    if replace {
        live.clear();
    }

    let server_order = live.clone();
    for (item_path, map) in &items {
        if !map.contains_key(key) {
            return Err(PatchError::MissingMergeKey {
                path: item_path.clone(),
                key,
            });
        }
        let patch_item = Value::Object((*map).clone());
        match live.iter().position(|l| by.matches(l, &patch_item)) {
            Some(i) => {
                let base = match live[i].take() {
                    Value::Object(m) => m,
                    _ => Map::new(),
                };
                live[i] = Value::Object(merge_map(base, map, child, item_path)?);
            }
            None => live.push(Value::Object(merge_map(Map::new(), map, child, item_path)?)),
        }
    }
    let patch_order: Vec<Value> = items
        .iter()
        .map(|(_, m)| Value::Object((*m).clone()))
        .collect();
    Ok(order::normalize(live, &patch_order, &server_order, by))
}

/// `$retainKeys`: drops live keys not in the list; the patch may only set listed keys.
fn retain_keys(
    original: &mut Map<String, Value>,
    patch: &Map<String, Value>,
    keys: &Value,
    path: &str,
) -> Result<(), PatchError> {
    let invalid = |reason| PatchError::InvalidDirective {
        path: path.to_string(),
        directive: RETAIN_KEYS,
        reason,
    };
    let names = keys
        .as_array()
        .ok_or_else(|| invalid("must be a list of field names"))?
        .iter()
        .map(|k| {
            k.as_str()
                .ok_or_else(|| invalid("must be a list of field names"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let sets_unretained = patch
        .iter()
        .any(|(k, v)| !v.is_null() && !k.starts_with('$') && !names.contains(&k.as_str()));
    if sets_unretained {
        return Err(invalid("the patch sets a field the list does not retain"));
    }
    original.retain(|k, _| names.contains(&k.as_str()));
    Ok(())
}

/// `$setElementOrder/<field>`: merges `field` (if patched) and orders the result by the
/// directive's list. Returns whether the field was handled here; the directive means nothing
/// for lists that are not merged, which are then patched normally.
fn apply_element_order(
    original: &mut Map<String, Value>,
    patch: &Map<String, Value>,
    field: &str,
    order_value: &Value,
    ty: Option<Type>,
    path: &str,
) -> Result<bool, PatchError> {
    let meta = schema::field(ty, field);
    let by = match meta.list {
        ListStrategy::MergeByKey(key) => Identity::Key(key),
        ListStrategy::MergeSet => Identity::Value,
        ListStrategy::Replace => return Ok(false),
    };
    let field_path = child_path(path, field);
    let invalid = |reason| PatchError::InvalidDirective {
        path: field_path.clone(),
        directive: "$setElementOrder",
        reason,
    };
    let order = order_value
        .as_array()
        .ok_or_else(|| invalid("must be a list"))?;
    if let Identity::Key(key) = by
        && order.iter().any(|entry| entry.get(key).is_none())
    {
        return Err(invalid(
            "every entry must be an object holding the merge key",
        ));
    }
    let patch_list = match patch.get(field) {
        None => None,
        Some(Value::Array(list)) => Some(list),
        Some(_) => return Err(invalid("the ordered field must be a list in the patch")),
    };
    if let Some(list) = patch_list {
        check_order(list, order, by, &field_path)?;
    }

    let live = match original.get(field) {
        Some(Value::Array(list)) => Some(list.clone()),
        _ => None,
    };
    let merged = match (&live, patch_list) {
        (None, None) => return Ok(true),
        (Some(live), None) => live.clone(),
        (live, Some(list)) => {
            merge_list(live.clone().unwrap_or_default(), list, meta, &field_path)?
        }
    };
    let server_order = live.unwrap_or_default();
    let ordered = order::normalize(merged, order, &server_order, by);
    original.insert(field.to_string(), Value::Array(ordered));
    Ok(true)
}

/// The patch list's items (directive items aside) must appear in the `$setElementOrder` list,
/// in the same relative order.
fn check_order(
    list: &[Value],
    order: &[Value],
    by: Identity,
    path: &str,
) -> Result<(), PatchError> {
    if order.is_empty() {
        return Ok(());
    }
    let mut wanted = list
        .iter()
        .filter(|item| item.get(PATCH).is_none())
        .peekable();
    for entry in order {
        if let Some(item) = wanted.peek() {
            if let Identity::Key(key) = by
                && item.get(key).is_none()
            {
                return Err(PatchError::MissingMergeKey {
                    path: path.to_string(),
                    key,
                });
            }
            if by.matches(item, entry) {
                wanted.next();
            }
        }
    }
    match wanted.peek() {
        Some(_) => Err(PatchError::ElementOrderMismatch {
            path: path.to_string(),
        }),
        None => Ok(()),
    }
}

/// `$deleteFromPrimitiveList/<field>`: removes the listed values from a live primitive list.
fn delete_from_primitive_list(
    original: &mut Map<String, Value>,
    field: &str,
    value: &Value,
    path: &str,
) -> Result<(), PatchError> {
    let remove = value
        .as_array()
        .ok_or_else(|| PatchError::InvalidDirective {
            path: child_path(path, field),
            directive: "$deleteFromPrimitiveList",
            reason: "must be a list",
        })?;
    if let Some(Value::Array(live)) = original.get_mut(field) {
        live.retain(|item| !remove.iter().any(|r| same_value(r, item)));
    }
    Ok(())
}

#[cfg(test)]
#[path = "strategic_tests.rs"]
mod tests;
