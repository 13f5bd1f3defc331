//! Matching one request against RBAC policy rules, with kube's wildcard semantics.

use k8s_openapi::api::rbac::v1::PolicyRule;

/// What a resource request asks to do, as RBAC sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Attributes<'a> {
    pub verb: &'a str,
    pub group: &'a str,
    pub resource: &'a str,
    pub subresource: Option<&'a str>,
    /// The request's namespace; for a named `namespaces` request, the namespace itself.
    pub namespace: Option<&'a str>,
    pub name: Option<&'a str>,
}

const ALL: &str = "*";

/// Whether `rule` grants the request.
pub fn rule_allows(rule: &PolicyRule, attrs: &Attributes<'_>) -> bool {
    verb_matches(rule, attrs.verb)
        && listed_or_all(rule.api_groups.as_deref(), attrs.group)
        && resource_matches(rule, attrs.resource, attrs.subresource)
        && name_matches(rule, attrs.name)
}

fn listed_or_all(values: Option<&[String]>, wanted: &str) -> bool {
    values
        .unwrap_or_default()
        .iter()
        .any(|v| v == ALL || v == wanted)
}

fn verb_matches(rule: &PolicyRule, verb: &str) -> bool {
    listed_or_all(Some(&rule.verbs), verb)
}

/// `pods`, `pods/status`, `*`, `*/status` and `pods/*` as kube reads them: a bare resource
/// never covers its subresources, `pods/*` covers every subresource but not `pods` itself.
fn resource_matches(rule: &PolicyRule, resource: &str, subresource: Option<&str>) -> bool {
    rule.resources
        .as_deref()
        .unwrap_or_default()
        .iter()
        .any(|entry| match (entry.split_once('/'), subresource) {
            _ if entry == ALL => true,
            (None, None) => entry == resource,
            (None, Some(_)) => false,
            (Some(_), None) => false,
            (Some((res, sub)), Some(wanted)) => {
                (res == ALL || res == resource) && (sub == ALL || sub == wanted)
            }
        })
}

/// Rules listing resource names only cover requests that name one of them.
fn name_matches(rule: &PolicyRule, name: Option<&str>) -> bool {
    let names = rule.resource_names.as_deref().unwrap_or_default();
    names.is_empty() || name.is_some_and(|name| names.iter().any(|n| n == name))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(verbs: &[&str], groups: &[&str], resources: &[&str], names: &[&str]) -> PolicyRule {
        let owned = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        PolicyRule {
            verbs: owned(verbs),
            api_groups: Some(owned(groups)),
            resources: Some(owned(resources)),
            resource_names: Some(owned(names)),
            non_resource_urls: None,
        }
    }

    fn attrs<'a>(verb: &'a str, resource: &'a str, sub: Option<&'a str>) -> Attributes<'a> {
        Attributes {
            verb,
            group: "",
            resource,
            subresource: sub,
            namespace: Some("default"),
            name: Some("p"),
        }
    }

    #[test]
    fn verbs_and_groups_match_exactly_or_by_wildcard() {
        let read = rule(&["get", "list"], &[""], &["pods"], &[]);
        assert!(rule_allows(&read, &attrs("get", "pods", None)));
        assert!(!rule_allows(&read, &attrs("delete", "pods", None)));
        let apps = Attributes {
            group: "apps",
            ..attrs("get", "pods", None)
        };
        assert!(!rule_allows(&read, &apps));
        let everything = rule(&["*"], &["*"], &["*"], &[]);
        assert!(rule_allows(&everything, &apps));
        assert!(rule_allows(
            &everything,
            &attrs("patch", "pods", Some("status"))
        ));
    }

    #[test]
    fn subresources_need_their_own_entry() {
        let pods = rule(&["get"], &[""], &["pods"], &[]);
        assert!(!rule_allows(&pods, &attrs("get", "pods", Some("log"))));
        let log = rule(&["get"], &[""], &["pods/log"], &[]);
        assert!(rule_allows(&log, &attrs("get", "pods", Some("log"))));
        assert!(!rule_allows(&log, &attrs("get", "pods", None)));
        assert!(!rule_allows(&log, &attrs("get", "pods", Some("exec"))));
        let any_sub = rule(&["get"], &[""], &["pods/*"], &[]);
        assert!(rule_allows(&any_sub, &attrs("get", "pods", Some("exec"))));
        assert!(!rule_allows(&any_sub, &attrs("get", "pods", None)));
        let any_status = rule(&["get"], &[""], &["*/status"], &[]);
        assert!(rule_allows(
            &any_status,
            &attrs("get", "nodes", Some("status"))
        ));
        assert!(!rule_allows(
            &any_status,
            &attrs("get", "nodes", Some("proxy"))
        ));
    }

    #[test]
    fn resource_names_restrict_to_named_requests() {
        let one = rule(&["get", "create"], &[""], &["pods"], &["p"]);
        assert!(rule_allows(&one, &attrs("get", "pods", None)));
        let other = Attributes {
            name: Some("q"),
            ..attrs("get", "pods", None)
        };
        assert!(!rule_allows(&one, &other));
        let unnamed = Attributes {
            name: None,
            ..attrs("create", "pods", None)
        };
        assert!(!rule_allows(&one, &unnamed));
    }

    #[test]
    fn non_resource_rules_grant_no_resources() {
        let urls = PolicyRule {
            verbs: vec!["*".into()],
            non_resource_urls: Some(vec!["*".into()]),
            ..PolicyRule::default()
        };
        assert!(!rule_allows(&urls, &attrs("get", "pods", None)));
    }
}
