//! Rows for RBAC kinds: roles show when they were created, bindings the role they grant and,
//! with `-o wide`, whom they grant it to.

use serde_json::Value;

use super::time::age;
use super::{AGE, Column, NAME, list, name, text};

pub(super) const ROLE_COLUMNS: &[Column] = &[
    NAME,
    Column {
        format: "",
        ..Column::new(
            "Created At",
            "date",
            "CreationTimestamp is a timestamp representing the server time when this object was created.",
        )
    },
];

/// kubectl prints roles with their creation time as stored (RFC 3339, UTC).
pub(super) fn role_cells(role: &Value, _now: i64) -> Vec<Value> {
    vec![
        name(role).into(),
        text(role, "/metadata/creationTimestamp").into(),
    ]
}

pub(super) const BINDING_COLUMNS: &[Column] = &[
    NAME,
    Column::new(
        "Role",
        "string",
        "RoleRef can reference a Role in the current namespace or a ClusterRole in the global namespace.",
    ),
    AGE,
    Column::new("Users", "string", "Users in the roleBinding").wide(),
    Column::new("Groups", "string", "Groups in the roleBinding").wide(),
    Column::new(
        "ServiceAccounts",
        "string",
        "ServiceAccounts in the roleBinding",
    )
    .wide(),
];

pub(super) fn binding_cells(binding: &Value, now: i64) -> Vec<Value> {
    let role = format!(
        "{}/{}",
        text(binding, "/roleRef/kind"),
        text(binding, "/roleRef/name")
    );
    let subjects = list(binding, "/subjects");
    let of_kind = |kind: &str| -> String {
        subjects
            .iter()
            .filter(|s| text(s, "/kind") == kind)
            .map(|s| match kind {
                "ServiceAccount" => format!("{}/{}", text(s, "/namespace"), text(s, "/name")),
                _ => text(s, "/name").to_string(),
            })
            .collect::<Vec<_>>()
            .join(", ")
    };
    vec![
        name(binding).into(),
        role.into(),
        age(binding, now).into(),
        of_kind("User").into(),
        of_kind("Group").into(),
        of_kind("ServiceAccount").into(),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const NOW: i64 = 1_700_000_000;

    #[test]
    fn roles_show_their_creation_time() {
        let role =
            json!({"metadata": {"name": "view", "creationTimestamp": "2023-11-14T22:13:00Z"}});
        assert_eq!(
            role_cells(&role, NOW),
            [json!("view"), json!("2023-11-14T22:13:00Z")]
        );
    }

    #[test]
    fn bindings_show_role_and_subjects() {
        let binding = json!({"metadata": {"name": "b", "creationTimestamp": "2023-11-14T22:13:00Z"},
            "roleRef": {"kind": "ClusterRole", "name": "view"},
            "subjects": [{"kind": "User", "name": "jane"}, {"kind": "User", "name": "joe"},
                {"kind": "Group", "name": "devs"},
                {"kind": "ServiceAccount", "name": "robot", "namespace": "ci"}]});
        assert_eq!(
            binding_cells(&binding, NOW),
            [
                json!("b"),
                json!("ClusterRole/view"),
                json!("20s"),
                json!("jane, joe"),
                json!("devs"),
                json!("ci/robot"),
            ]
        );
        let bare = json!({"metadata": {"name": "b"}, "roleRef": {"kind": "Role", "name": "r"}});
        assert_eq!(
            binding_cells(&bare, NOW)[3..],
            [json!(""), json!(""), json!("")]
        );
    }
}
