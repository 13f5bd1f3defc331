//! Spreading replicas: nodes with fewer pods of the same controller score higher.

use crate::node_info::Usage;

/// Pods of `owner` already on the node; normalized in reverse by `plugins::score`.
pub fn siblings(owner: &str, usage: &Usage) -> i64 {
    i64::from(usage.owned_by(owner))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugins::normalize;
    use crate::pod_info::Footprint;

    #[test]
    fn fewer_siblings_score_higher() {
        let sibling = Footprint {
            owner: Some("rs".into()),
            ..Footprint::default()
        };
        let empty = Usage::default();
        let mut crowded = Usage::default();
        crowded.add(&sibling);
        crowded.add(&sibling);
        let raw = [siblings("rs", &empty), siblings("rs", &crowded)];
        assert_eq!(normalize(&raw, true), vec![100, 0]);
        assert_eq!(siblings("other", &crowded), 0);
    }
}
