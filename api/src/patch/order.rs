//! The order of merged lists. Items named by the patch (or its `$setElementOrder` list) follow
//! the patch order; items only the server had keep their live order; the two are interleaved
//! by live position wherever both items are known to the live list, patch items first otherwise.

use serde_json::Value;

/// What makes two list items "the same item".
#[derive(Debug, Clone, Copy)]
pub(super) enum Identity {
    /// Objects are identified by the value of their merge key.
    Key(&'static str),
    /// Primitives are identified by themselves.
    Value,
}

impl Identity {
    fn of(self, item: &Value) -> Option<&Value> {
        match self {
            Identity::Key(key) => item.get(key),
            Identity::Value => Some(item),
        }
    }

    pub(super) fn matches(self, a: &Value, b: &Value) -> bool {
        match (self.of(a), self.of(b)) {
            (Some(a), Some(b)) => same_value(a, b),
            _ => false,
        }
    }

    fn position(self, list: &[Value], item: &Value) -> Option<usize> {
        list.iter()
            .position(|candidate| self.matches(candidate, item))
    }
}

/// JSON equality where numbers compare by value, as Go's decoded `float64`s do (`80` == `80.0`).
pub(super) fn same_value(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        _ => a == b,
    }
}

/// Reorders `merged`: items present in `patch_order` are sorted by it, the rest by
/// `server_order`, and the two groups are then interleaved.
pub(super) fn normalize(
    merged: Vec<Value>,
    patch_order: &[Value],
    server_order: &[Value],
    by: Identity,
) -> Vec<Value> {
    let (mut from_patch, mut server_only): (Vec<Value>, Vec<Value>) = merged
        .into_iter()
        .partition(|item| by.position(patch_order, item).is_some());
    sort_by_order(&mut from_patch, patch_order, by);
    sort_by_order(&mut server_only, server_order, by);
    interleave(server_only, from_patch, server_order, by)
}

/// A stable sort by position in `order`; items `order` lacks go last.
fn sort_by_order(items: &mut [Value], order: &[Value], by: Identity) {
    items.sort_by_key(|item| by.position(order, item).unwrap_or(usize::MAX));
}

/// Merges two sorted lists, keeping each one's relative order. A server-only item goes first
/// only when both items are in the live list and it came first there.
fn interleave(
    server_only: Vec<Value>,
    from_patch: Vec<Value>,
    server_order: &[Value],
    by: Identity,
) -> Vec<Value> {
    let mut out = Vec::with_capacity(server_only.len() + from_patch.len());
    let mut server = server_only.into_iter().peekable();
    let mut patch = from_patch.into_iter().peekable();
    loop {
        let take_server = match (server.peek(), patch.peek()) {
            (None, None) => break,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (Some(s), Some(p)) => {
                match (by.position(server_order, s), by.position(server_order, p)) {
                    (Some(si), Some(pi)) => si < pi,
                    _ => false,
                }
            }
        };
        let next = if take_server {
            server.next()
        } else {
            patch.next()
        };
        out.extend(next);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn names(list: &[Value]) -> Vec<&str> {
        list.iter()
            .map(|v| v["name"].as_str().unwrap_or("?"))
            .collect()
    }

    fn named(names: &[&str]) -> Vec<Value> {
        names.iter().map(|n| json!({ "name": n })).collect()
    }

    #[test]
    fn orders() {
        type Names = &'static [&'static str];
        // (merged, patch order, server order, expected)
        let cases: &[(Names, Names, Names, Names)] = &[
            // New patch items go before server-only items the live list has no relation to.
            (&["a", "b", "c"], &["c"], &["a", "b"], &["c", "a", "b"]),
            // The patch order wins over the live order.
            (
                &["a", "b", "c"],
                &["c", "b", "a"],
                &["a", "b", "c"],
                &["c", "b", "a"],
            ),
            // Server-only items keep their live place relative to known patch items.
            (
                &["a", "x", "b"],
                &["a", "b"],
                &["a", "x", "b"],
                &["a", "x", "b"],
            ),
            (
                &["x", "a", "b"],
                &["b", "a"],
                &["x", "a", "b"],
                &["x", "b", "a"],
            ),
            // A $setElementOrder naming everything appends a new item at its position.
            (
                &["a", "b", "n"],
                &["a", "n", "b"],
                &["a", "b"],
                &["a", "n", "b"],
            ),
        ];
        for (merged, patch, server, want) in cases {
            let got = normalize(
                named(merged),
                &named(patch),
                &named(server),
                Identity::Key("name"),
            );
            assert_eq!(names(&got), *want, "{merged:?} {patch:?} {server:?}");
        }
    }

    #[test]
    fn numbers_compare_by_value() {
        assert!(same_value(&json!(80), &json!(80.0)));
        assert!(!same_value(&json!(80), &json!("80")));
        assert!(Identity::Key("port").matches(&json!({"port": 80}), &json!({"port": 80})));
        assert!(!Identity::Key("port").matches(&json!({}), &json!({})));
    }
}
