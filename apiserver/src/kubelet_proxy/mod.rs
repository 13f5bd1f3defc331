//! `pods/log` and `pods/exec`: requests resolved to a container on a node, then proxied to
//! that node's kubelet API, as kube-apiserver's LogREST and ExecREST do.

pub mod client;
pub mod exec;
pub mod log;

use axum::http::StatusCode;
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use serde_json::Value;

pub use client::{KubeletConnector, KubeletEndpoint, KubeletError, TlsKubeletConnector};

use crate::error::{ApiError, ApiResult};
use crate::handlers::fetch;
use crate::request::{Params, Target};
use crate::server::ApiServer;

/// The kubelet port when a node does not report one (kube-apiserver's `--kubelet-port`).
const DEFAULT_KUBELET_PORT: u16 = 10250;

/// How much of a kubelet's error body becomes the Status message (kube-apiserver reads 50 kB).
const ERROR_BODY_LIMIT: usize = 50_000;

/// The node addresses to reach a kubelet on, most preferred first.
const ADDRESS_TYPES: &[&str] = &[
    "InternalIP",
    "Hostname",
    "InternalDNS",
    "ExternalIP",
    "ExternalDNS",
];

impl From<KubeletError> for ApiError {
    fn from(err: KubeletError) -> Self {
        ApiError::Internal(format!("error dialing backend: {err}"))
    }
}

/// A pod and the one of its containers a log or exec request is about.
pub struct PodContainer {
    pub namespace: String,
    pub pod: String,
    pub container: String,
    /// `spec.nodeName`; `None` while the pod is unscheduled.
    pub node: Option<String>,
}

/// Reads the pod and settles the container as kube-apiserver's `validateContainer` does: the
/// named one must exist (any kind), and none named picks the only regular container.
pub async fn resolve(
    server: &ApiServer,
    target: &Target,
    container: Option<&str>,
) -> ApiResult<PodContainer> {
    let pod_target = Target {
        subresource: None,
        ..target.clone()
    };
    let (_, pod) = fetch(server, &pod_target).await?;
    let name = target.name.clone().unwrap_or_default();
    let container = choose_container(&pod, &name, container)?;
    let node = pod
        .pointer("/spec/nodeName")
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty())
        .map(String::from);
    Ok(PodContainer {
        namespace: target.namespace.clone().unwrap_or_default(),
        pod: name,
        container,
        node,
    })
}

fn container_names<'a>(pod: &'a Value, list: &str) -> impl Iterator<Item = &'a str> {
    pod.pointer(&format!("/spec/{list}"))
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|c| c.get("name").and_then(Value::as_str))
}

fn choose_container(pod: &Value, pod_name: &str, requested: Option<&str>) -> ApiResult<String> {
    // Init, regular, then ephemeral containers: the order kube-apiserver lists them in.
    let all = || {
        container_names(pod, "initContainers")
            .chain(container_names(pod, "containers"))
            .chain(container_names(pod, "ephemeralContainers"))
    };
    if let Some(name) = requested {
        return if all().any(|c| c == name) {
            Ok(name.to_string())
        } else {
            Err(ApiError::BadRequest(format!(
                "container {name} is not valid for pod {pod_name}"
            )))
        };
    }
    let regular: Vec<&str> = container_names(pod, "containers").collect();
    match regular.as_slice() {
        [only] => Ok(only.to_string()),
        [] => Err(ApiError::BadRequest(format!(
            "a container name must be specified for pod {pod_name}"
        ))),
        _ => Err(ApiError::BadRequest(format!(
            "a container name must be specified for pod {pod_name}, choose one of: [{}]",
            all().collect::<Vec<_>>().join(" ")
        ))),
    }
}

/// Where the kubelet of `node` listens: its preferred address and reported port.
pub async fn kubelet_endpoint(server: &ApiServer, node: &str) -> ApiResult<KubeletEndpoint> {
    let nodes = crate::objects::resource("", "v1", "nodes")?;
    let node_target = Target {
        resource: nodes,
        namespace: None,
        name: Some(node.to_string()),
        subresource: None,
    };
    let (_, node) = fetch(server, &node_target).await?;
    let addresses: Vec<(&str, &str)> = node
        .pointer("/status/addresses")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|a| Some((a.get("type")?.as_str()?, a.get("address")?.as_str()?)))
        .collect();
    let host = ADDRESS_TYPES
        .iter()
        .find_map(|wanted| addresses.iter().find(|(kind, _)| kind == wanted))
        .map(|(_, address)| address.to_string())
        .ok_or_else(|| {
            ApiError::Internal(format!(
                "no preferred addresses found; known addresses: {addresses:?}"
            ))
        })?;
    let port = node
        .pointer("/status/daemonEndpoints/kubeletEndpoint/Port")
        .and_then(Value::as_u64)
        .and_then(|p| u16::try_from(p).ok())
        .filter(|p| *p > 0)
        .unwrap_or(DEFAULT_KUBELET_PORT);
    Ok(KubeletEndpoint { host, port })
}

/// The connector to kubelets, or a clear error on servers started without one.
pub fn connector(server: &ApiServer) -> ApiResult<&dyn KubeletConnector> {
    server.kubelet.as_deref().ok_or_else(|| {
        ApiError::ServiceUnavailable(
            "this API server has no kubelet client credentials configured".into(),
        )
    })
}

/// A boolean query parameter, parsed as Go's `strconv.ParseBool` (kube's query decoding).
pub fn bool_param(params: &Params, name: &str) -> ApiResult<bool> {
    match params.get(name) {
        None => Ok(false),
        Some("1" | "t" | "T" | "true" | "TRUE" | "True") => Ok(true),
        Some("0" | "f" | "F" | "false" | "FALSE" | "False") => Ok(false),
        Some(other) => Err(ApiError::BadRequest(format!(
            "invalid value for {name}: {other:?} is not a boolean"
        ))),
    }
}

/// A kubelet's error answer as the Status kube-apiserver's response checker makes of it:
/// the body (or the message of a Status body) under the kubelet's code.
pub async fn upstream_error(response: http::Response<Incoming>) -> ApiError {
    let code = response.status();
    let body = match Limited::new(response.into_body(), ERROR_BODY_LIMIT)
        .collect()
        .await
    {
        Ok(collected) => collected.to_bytes(),
        Err(err) => {
            return ApiError::Internal(format!("reading the kubelet's {code} answer: {err}"));
        }
    };
    let message = serde_json::from_slice::<Value>(&body)
        .ok()
        .filter(|v| v.get("kind").and_then(Value::as_str) == Some("Status"))
        .and_then(|status| status.get("message")?.as_str().map(String::from))
        .unwrap_or_else(|| String::from_utf8_lossy(&body).trim().to_string());
    let message = if message.is_empty() {
        format!("the kubelet answered {code}")
    } else {
        message
    };
    match code {
        StatusCode::BAD_REQUEST => ApiError::BadRequest(message),
        StatusCode::INTERNAL_SERVER_ERROR => ApiError::Internal(message),
        code => ApiError::Upstream { code, message },
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn pod(containers: &[&str], init: &[&str]) -> Value {
        let list = |names: &[&str]| names.iter().map(|n| json!({"name": n})).collect::<Vec<_>>();
        json!({"spec": {"containers": list(containers), "initContainers": list(init)}})
    }

    fn message(result: ApiResult<String>) -> String {
        match result {
            Err(ApiError::BadRequest(message)) => message,
            other => panic!("expected a bad request, got {other:?}"),
        }
    }

    #[test]
    fn one_container_is_the_default() {
        assert_eq!(
            choose_container(&pod(&["app"], &[]), "p", None).unwrap(),
            "app"
        );
    }

    #[test]
    fn several_containers_need_a_name() {
        let p = pod(&["a", "b"], &["setup"]);
        assert_eq!(
            message(choose_container(&p, "p", None)),
            "a container name must be specified for pod p, choose one of: [setup a b]"
        );
        assert_eq!(
            message(choose_container(&pod(&[], &[]), "p", None)),
            "a container name must be specified for pod p"
        );
    }

    #[test]
    fn named_containers_must_exist_in_any_list() {
        let p = pod(&["a", "b"], &["setup"]);
        assert_eq!(choose_container(&p, "p", Some("setup")).unwrap(), "setup");
        assert_eq!(
            message(choose_container(&p, "p", Some("c"))),
            "container c is not valid for pod p"
        );
    }

    #[test]
    fn booleans_parse_as_go_does() {
        let params = Params::from_query(Some("a=True&b=0&c=yes")).unwrap();
        assert!(bool_param(&params, "a").unwrap());
        assert!(!bool_param(&params, "b").unwrap());
        assert!(!bool_param(&params, "missing").unwrap());
        assert!(bool_param(&params, "c").is_err());
    }
}
