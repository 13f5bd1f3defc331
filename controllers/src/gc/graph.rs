//! The garbage collector's ownership graph and its decisions, kept apart from the API so they
//! can be tested on plain data.

use std::collections::{HashMap, HashSet};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;

pub const FOREGROUND: &str = "foregroundDeletion";
pub const ORPHAN: &str = "orphan";

/// One object as the collector sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    /// Index of its kind in the collector's kind list.
    pub kind: usize,
    pub namespace: Option<String>,
    pub name: String,
    pub resource_version: String,
    pub owners: Vec<OwnerReference>,
    pub finalizers: Vec<String>,
    pub deleting: bool,
}

#[derive(Debug, Default)]
pub struct Graph {
    nodes: HashMap<String, Node>,
    dependents: HashMap<String, HashSet<String>>,
}

/// What the collector does for one object.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Check with the API that these owners are gone, then delete the object.
    DeleteIfOwnersGone {
        owners: Vec<OwnerReference>,
    },
    /// Delete dependents of a foreground deletion (foreground when they have their own).
    DeleteDependents {
        dependents: Vec<(String, bool)>,
    },
    /// Drop the owner reference to `owner` from these dependents.
    Orphan {
        owner: String,
        dependents: Vec<String>,
    },
    RemoveFinalizer(&'static str),
    Nothing,
}

impl Graph {
    /// Adds or updates an object; returns the owners whose dependents this changes (before
    /// and after), as a deleting owner may be waiting on them.
    pub fn upsert(&mut self, uid: &str, node: Node) -> Vec<String> {
        let mut owners: Vec<String> = self
            .nodes
            .get(uid)
            .map(|n| n.owners.iter().map(|o| o.uid.clone()).collect())
            .unwrap_or_default();
        owners.extend(node.owners.iter().map(|o| o.uid.clone()));
        owners.sort();
        owners.dedup();
        self.unlink(uid);
        for owner in &node.owners {
            self.dependents
                .entry(owner.uid.clone())
                .or_default()
                .insert(uid.to_string());
        }
        self.nodes.insert(uid.to_string(), node);
        owners
    }

    /// Removes an object; returns the uids whose state this changes (owners and dependents).
    pub fn remove(&mut self, uid: &str) -> Vec<String> {
        let owners: Vec<String> = self
            .nodes
            .get(uid)
            .map(|n| n.owners.iter().map(|o| o.uid.clone()).collect())
            .unwrap_or_default();
        self.unlink(uid);
        self.nodes.remove(uid);
        let dependents = self.dependents.get(uid).cloned().unwrap_or_default();
        owners.into_iter().chain(dependents).collect()
    }

    fn unlink(&mut self, uid: &str) {
        let Some(old) = self.nodes.get(uid) else {
            return;
        };
        for owner in &old.owners {
            if let Some(set) = self.dependents.get_mut(&owner.uid) {
                set.remove(uid);
                if set.is_empty() {
                    self.dependents.remove(&owner.uid);
                }
            }
        }
    }

    pub fn get(&self, uid: &str) -> Option<&Node> {
        self.nodes.get(uid)
    }

    /// Uids of every object of `kind`.
    pub fn uids_of_kind(&self, kind: usize) -> Vec<String> {
        self.nodes
            .iter()
            .filter(|(_, n)| n.kind == kind)
            .map(|(uid, _)| uid.clone())
            .collect()
    }

    pub fn uids(&self) -> Vec<String> {
        self.nodes.keys().cloned().collect()
    }

    fn dependents_of(&self, uid: &str) -> Vec<(&String, &Node)> {
        let mut out: Vec<(&String, &Node)> = self
            .dependents
            .get(uid)
            .into_iter()
            .flatten()
            .filter_map(|d| self.nodes.get_key_value(d))
            .collect();
        out.sort_by(|a, b| a.0.cmp(b.0));
        out
    }

    /// Decides the next step for the object `uid`.
    pub fn decide(&self, uid: &str) -> Action {
        let Some(node) = self.nodes.get(uid) else {
            return Action::Nothing;
        };
        let dependents = self.dependents_of(uid);
        if node.deleting && node.finalizers.iter().any(|f| f == ORPHAN) {
            return if dependents.is_empty() {
                Action::RemoveFinalizer(ORPHAN)
            } else {
                Action::Orphan {
                    owner: uid.to_string(),
                    dependents: dependents.iter().map(|(d, _)| (*d).clone()).collect(),
                }
            };
        }
        if node.deleting && node.finalizers.iter().any(|f| f == FOREGROUND) {
            let to_delete: Vec<(String, bool)> = dependents
                .iter()
                .filter(|(_, d)| !d.deleting)
                .map(|(d, _)| ((*d).clone(), self.dependents.contains_key(*d)))
                .collect();
            if !to_delete.is_empty() {
                return Action::DeleteDependents {
                    dependents: to_delete,
                };
            }
            // Only dependents that block owner deletion are waited for.
            let blocking = dependents.iter().any(|(_, d)| {
                d.owners
                    .iter()
                    .any(|o| o.uid == uid && o.block_owner_deletion == Some(true))
            });
            return if blocking {
                Action::Nothing
            } else {
                Action::RemoveFinalizer(FOREGROUND)
            };
        }
        if node.deleting || node.owners.is_empty() {
            return Action::Nothing;
        }
        if node.owners.iter().all(|o| !self.nodes.contains_key(&o.uid)) {
            Action::DeleteIfOwnersGone {
                owners: node.owners.clone(),
            }
        } else {
            Action::Nothing
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn owner(uid: &str, block: bool) -> OwnerReference {
        OwnerReference {
            api_version: "apps/v1".into(),
            kind: "ReplicaSet".into(),
            name: format!("rs-{uid}"),
            uid: uid.into(),
            controller: Some(true),
            block_owner_deletion: Some(block),
        }
    }

    fn node(owners: Vec<OwnerReference>, finalizers: &[&str], deleting: bool) -> Node {
        Node {
            kind: 0,
            namespace: Some("ns".into()),
            name: "x".into(),
            resource_version: "1".into(),
            owners,
            finalizers: finalizers.iter().map(|f| f.to_string()).collect(),
            deleting,
        }
    }

    #[test]
    fn objects_whose_owners_are_all_gone_are_candidates() {
        let mut g = Graph::default();
        g.upsert("rs", node(vec![], &[], false));
        g.upsert("pod", node(vec![owner("rs", true)], &[], false));
        assert_eq!(g.decide("pod"), Action::Nothing);
        assert_eq!(g.remove("rs"), vec!["pod".to_string()]);
        assert_eq!(
            g.decide("pod"),
            Action::DeleteIfOwnersGone {
                owners: vec![owner("rs", true)]
            }
        );
        g.upsert("other", node(vec![], &[], false));
        g.upsert(
            "pod",
            node(vec![owner("rs", true), owner("other", false)], &[], false),
        );
        assert_eq!(g.decide("pod"), Action::Nothing, "one owner remains");
    }

    #[test]
    fn foreground_deletes_dependents_then_waits_for_blocking_ones() {
        let mut g = Graph::default();
        g.upsert("d", node(vec![], &[FOREGROUND], true));
        g.upsert("rs", node(vec![owner("d", true)], &[], false));
        g.upsert("pod", node(vec![owner("rs", true)], &[], false));
        assert_eq!(
            g.decide("d"),
            Action::DeleteDependents {
                dependents: vec![("rs".into(), true)]
            }
        );
        g.upsert("rs", node(vec![owner("d", true)], &[FOREGROUND], true));
        assert_eq!(g.decide("d"), Action::Nothing, "waits for the blocking rs");
        g.remove("rs");
        assert_eq!(g.decide("d"), Action::RemoveFinalizer(FOREGROUND));
    }

    #[test]
    fn orphaning_strips_references_then_the_finalizer() {
        let mut g = Graph::default();
        g.upsert("rs", node(vec![], &[ORPHAN], true));
        g.upsert("pod", node(vec![owner("rs", true)], &[], false));
        assert_eq!(
            g.decide("rs"),
            Action::Orphan {
                owner: "rs".into(),
                dependents: vec!["pod".into()]
            }
        );
        assert_eq!(
            g.upsert("pod", node(vec![], &[], false)),
            vec!["rs".to_string()]
        );
        assert_eq!(g.decide("rs"), Action::RemoveFinalizer(ORPHAN));
        assert_eq!(g.decide("pod"), Action::Nothing);
    }
}
