//! Who a request comes from, as RBAC subjects name users: by user name, by group (with the
//! groups every authenticated user implicitly has), or as a service account.

use k8s_openapi::api::rbac::v1::Subject;

use crate::auth::{ANONYMOUS, User};

pub const MASTERS: &str = "system:masters";
pub const AUTHENTICATED: &str = "system:authenticated";
pub const UNAUTHENTICATED: &str = "system:unauthenticated";

/// A user's name and groups, borrowed from the request's [`User`].
#[derive(Debug, Clone, Copy)]
pub struct UserInfo<'a> {
    pub name: &'a str,
    groups: &'a [String],
}

impl<'a> UserInfo<'a> {
    pub fn new(name: &'a str, groups: &'a [String]) -> UserInfo<'a> {
        UserInfo { name, groups }
    }

    pub fn of(user: &'a User) -> UserInfo<'a> {
        UserInfo::new(&user.name, &user.groups)
    }

    /// Whether the user is in `group`; every user but the anonymous one is in
    /// `system:authenticated`, whether or not the credential listed it.
    pub fn in_group(&self, group: &str) -> bool {
        let anonymous = self.name == ANONYMOUS;
        (group == AUTHENTICATED && !anonymous)
            || (group == UNAUTHENTICATED && anonymous)
            || self.groups.iter().any(|g| g == group)
    }

    /// Whether a binding's `subject` names this user; a service account without a namespace
    /// is one of the binding's namespace.
    pub fn is_subject(&self, subject: &Subject, binding_namespace: Option<&str>) -> bool {
        match subject.kind.as_str() {
            "User" => subject.name == self.name,
            "Group" => self.in_group(&subject.name),
            "ServiceAccount" => {
                let namespace = subject
                    .namespace
                    .as_deref()
                    .filter(|ns| !ns.is_empty())
                    .or(binding_namespace);
                namespace.is_some_and(|ns| {
                    self.name
                        .strip_prefix(crate::serviceaccount::USER_PREFIX)
                        .and_then(|rest| rest.split_once(':'))
                        == Some((ns, subject.name.as_str()))
                })
            }
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn subject(kind: &str, name: &str, namespace: Option<&str>) -> Subject {
        Subject {
            kind: kind.into(),
            name: name.into(),
            namespace: namespace.map(String::from),
            api_group: None,
        }
    }

    #[test]
    fn users_groups_and_service_accounts() {
        let groups = ["devs".to_string()];
        let jane = UserInfo::new("jane", &groups);
        assert!(jane.is_subject(&subject("User", "jane", None), None));
        assert!(!jane.is_subject(&subject("User", "joe", None), None));
        assert!(jane.is_subject(&subject("Group", "devs", None), None));
        assert!(jane.is_subject(&subject("Group", AUTHENTICATED, None), None));
        assert!(!jane.is_subject(&subject("Group", UNAUTHENTICATED, None), None));

        let robot = UserInfo::new("system:serviceaccount:ci:robot", &[]);
        assert!(robot.is_subject(&subject("ServiceAccount", "robot", Some("ci")), None));
        assert!(robot.is_subject(&subject("ServiceAccount", "robot", None), Some("ci")));
        assert!(!robot.is_subject(&subject("ServiceAccount", "robot", None), Some("dev")));
        assert!(!robot.is_subject(&subject("ServiceAccount", "robot", None), None));
    }

    #[test]
    fn the_anonymous_user_is_unauthenticated() {
        let anonymous = User::anonymous();
        let info = UserInfo::of(&anonymous);
        assert!(!info.in_group(AUTHENTICATED));
        assert!(info.in_group(UNAUTHENTICATED));
    }
}
