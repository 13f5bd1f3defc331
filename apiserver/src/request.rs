//! Parsing of resource URLs and query parameters.

use std::collections::HashMap;

use rkube_api::resources::{self, ResourceInfo, Subresource};

use crate::error::{ApiError, ApiResult};
use crate::store::Revision;

/// What a resource URL addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub resource: &'static ResourceInfo,
    /// The namespace in the URL; `None` for cluster-scoped resources and all-namespace lists.
    pub namespace: Option<String>,
    pub name: Option<String>,
    pub subresource: Option<Subresource>,
}

impl Target {
    /// Parses the segments after `/api/v1` or `/apis/<group>/<version>`.
    pub fn parse(group: &str, version: &str, rest: &[&str]) -> Option<Target> {
        let namespaced =
            |plural: &str| resources::find(group, version, plural).filter(|r| r.namespaced);
        let (resource, namespace, tail) = match rest {
            ["namespaces", ns, plural, tail @ ..] if namespaced(plural).is_some() => {
                (namespaced(plural)?, Some(ns.to_string()), tail)
            }
            [plural, tail @ ..] => (resources::find(group, version, plural)?, None, tail),
            [] => return None,
        };
        let (name, subresource) = match tail {
            [] => (None, None),
            [name] => (Some(name.to_string()), None),
            [name, sub] => {
                let sub = Subresource::from_name(sub).filter(|s| resource.has_subresource(*s))?;
                (Some(name.to_string()), Some(sub))
            }
            _ => return None,
        };
        if name.as_deref() == Some("") {
            return None;
        }
        Some(Target {
            resource,
            namespace,
            name,
            subresource,
        })
    }

    /// The namespace objects of this request live in, for namespaced resources.
    pub fn object_namespace(&self) -> Option<&str> {
        self.namespace
            .as_deref()
            .filter(|_| self.resource.namespaced)
    }

    pub fn error_target(&self) -> crate::error::Target {
        crate::error::Target::new(self.resource, self.name.as_deref().unwrap_or_default())
    }
}

/// Query parameters of resource requests, parsed once. A repeated parameter keeps every
/// value (`exec`'s `command`); single-valued reads take the last.
#[derive(Debug, Default, Clone)]
pub struct Params {
    raw: HashMap<String, Vec<String>>,
}

impl Params {
    pub fn from_query(query: Option<&str>) -> ApiResult<Params> {
        let raw = match query {
            None => HashMap::new(),
            Some(q) => serde_urlencoded_pairs(q)?,
        };
        Ok(Params { raw })
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.raw
            .get(name)
            .and_then(|values| values.last())
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    /// Every value of a repeatable parameter, in request order.
    pub fn all(&self, name: &str) -> &[String] {
        self.raw.get(name).map(Vec::as_slice).unwrap_or_default()
    }

    pub fn flag(&self, name: &str) -> bool {
        matches!(self.get(name), Some("true" | "1"))
    }

    pub fn int(&self, name: &str) -> ApiResult<Option<i64>> {
        self.get(name)
            .map(|v| {
                v.parse().map_err(|_| {
                    ApiError::BadRequest(format!(
                        "invalid value for {name}: {v:?} is not an integer"
                    ))
                })
            })
            .transpose()
    }

    /// `resourceVersion` as a revision; `None` when unset, `Some(0)` for "0".
    pub fn resource_version(&self) -> ApiResult<Option<Revision>> {
        self.revision("resourceVersion")
    }

    pub fn revision(&self, name: &str) -> ApiResult<Option<Revision>> {
        match self.get(name) {
            None => Ok(None),
            Some(v) => v
                .parse::<Revision>()
                .ok()
                .filter(|r| *r >= 0)
                .map(Some)
                .ok_or_else(|| ApiError::BadRequest(format!("invalid resource version: {v:?}"))),
        }
    }

    pub fn dry_run(&self) -> bool {
        self.get("dryRun").is_some()
    }
}

/// Decodes an `a=b&c=d` query string (percent-encoding and `+` for space).
fn serde_urlencoded_pairs(query: &str) -> ApiResult<HashMap<String, Vec<String>>> {
    let mut out: HashMap<String, Vec<String>> = HashMap::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        out.entry(percent_decode(k)?)
            .or_default()
            .push(percent_decode(v)?);
    }
    Ok(out)
}

fn percent_decode(s: &str) -> ApiResult<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = bytes
                    .get(i + 1..i + 3)
                    .and_then(|h| std::str::from_utf8(h).ok())
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                    .ok_or_else(|| ApiError::BadRequest(format!("invalid query string: {s:?}")))?;
                out.push(hex);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).map_err(|_| ApiError::BadRequest("query string is not UTF-8".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_resource_paths() {
        let t = Target::parse("", "v1", &["namespaces", "default", "pods", "p", "status"]).unwrap();
        assert_eq!(t.resource.plural, "pods");
        assert_eq!(t.namespace.as_deref(), Some("default"));
        assert_eq!(t.name.as_deref(), Some("p"));
        assert_eq!(t.subresource, Some(Subresource::Status));

        let ns = Target::parse("", "v1", &["namespaces", "default"]).unwrap();
        assert_eq!(ns.resource.plural, "namespaces");
        assert_eq!(ns.name.as_deref(), Some("default"));

        let all = Target::parse("apps", "v1", &["deployments"]).unwrap();
        assert_eq!(all.namespace, None);
        assert_eq!(all.name, None);

        assert!(Target::parse("", "v1", &["pods", "p", "scale"]).is_none());
        assert!(Target::parse("", "v1", &["nothing"]).is_none());
        assert!(Target::parse("apps", "v1", &["namespaces", "a", "pods"]).is_none());
    }

    #[test]
    fn decodes_query() {
        let p = Params::from_query(Some(
            "labelSelector=app%3Dweb%2Ctier+in+(a)&watch=1&limit=5",
        ))
        .unwrap();
        assert_eq!(p.get("labelSelector"), Some("app=web,tier in (a)"));
        assert!(p.flag("watch"));
        assert_eq!(p.int("limit").unwrap(), Some(5));
        let repeated = Params::from_query(Some("command=sh&command=-c&command=echo+hi")).unwrap();
        assert_eq!(repeated.all("command"), ["sh", "-c", "echo hi"]);
        assert_eq!(repeated.get("command"), Some("echo hi"));
        assert!(repeated.all("container").is_empty());
        assert!(Params::from_query(Some("a=%zz")).is_err());
        assert!(
            Params::from_query(Some("resourceVersion=x"))
                .unwrap()
                .resource_version()
                .is_err()
        );
    }
}
