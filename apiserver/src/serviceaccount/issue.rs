//! `POST serviceaccounts/<name>/token`: a TokenRequest answered with a signed token for the
//! service account, optionally bound to one of its pods (`kubectl create token`, kubelets).

use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::token::{Claims, ISSUER, KubernetesClaims, ObjectRef};
use super::{core_resource, of_pod, user_name};
use crate::auth::User;
use crate::body;
use crate::error::{ApiError, ApiResult, Cause, Target as ErrorTarget};
use crate::handlers::fetch;
use crate::objects;
use crate::objects::now_unix;
use crate::request::Target;
use crate::server::ApiServer;

/// kube-apiserver's lifetime of a token whose request does not name one.
const DEFAULT_EXPIRATION_SECONDS: i64 = 3600;
const API_VERSION: &str = "authentication.k8s.io/v1";
const KIND: &str = "TokenRequest";

pub async fn create_token(
    server: &ApiServer,
    user: &User,
    target: &Target,
    headers: &HeaderMap,
    bytes: &[u8],
) -> ApiResult<Response> {
    let key = server.token_key.get().ok_or_else(|| {
        ApiError::ServiceUnavailable("no service-account signing key is configured".into())
    })?;
    let sa_name = target.name.clone().unwrap_or_default();
    let namespace = target.object_namespace().unwrap_or_default().to_string();
    let mut spec = decode(headers, bytes)?;
    spec.fill_defaults();
    validate(&spec, &sa_name)?;
    let sa_target = Target {
        subresource: None,
        ..target.clone()
    };
    let (_, service_account) = fetch(server, &sa_target).await?;
    let pod = match &mut spec.bound_object_ref {
        Some(bound) => {
            let pod = bound_pod(server, &namespace, &sa_name, bound).await?;
            // Filled in when the request left it out, so the response names what was bound.
            bound.uid = objects::meta_str(&pod, "uid").unwrap_or_default().into();
            Some(pod)
        }
        None => None,
    };
    crate::rbac::node::admit_token_request(user, &sa_target.error_target(), pod.as_ref())?;
    let now = now_unix();
    let claims = Claims {
        iss: ISSUER.into(),
        aud: spec.audiences.clone().unwrap_or_default(),
        sub: user_name(&namespace, &sa_name),
        iat: now,
        nbf: now,
        exp: now
            + spec
                .expiration_seconds
                .unwrap_or(DEFAULT_EXPIRATION_SECONDS),
        jti: uuid::Uuid::new_v4().to_string(),
        kubernetes: KubernetesClaims {
            namespace: namespace.clone(),
            serviceaccount: reference(&service_account),
            node: match &pod {
                Some(pod) => node_of(server, pod).await?,
                None => None,
            },
            pod: pod.as_ref().map(reference),
        },
    };
    let token = key
        .sign(&claims)
        .map_err(|err| ApiError::Internal(err.to_string()))?;
    let response = json!({
        "kind": KIND,
        "apiVersion": API_VERSION,
        "metadata": {
            "name": sa_name,
            "namespace": namespace,
            "creationTimestamp": objects::rfc3339(now),
        },
        "spec": spec,
        "status": {"token": token, "expirationTimestamp": objects::rfc3339(claims.exp)},
    });
    Ok(body::object_response(StatusCode::CREATED, &response))
}

/// What a TokenRequest asks for; its metadata and status are the server's to fill.
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
struct Spec {
    audiences: Option<Vec<String>>,
    expiration_seconds: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    bound_object_ref: Option<BoundObjectRef>,
}

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", default)]
struct BoundObjectRef {
    api_version: String,
    kind: String,
    name: String,
    uid: String,
}

impl Spec {
    /// An unset lifetime is an hour; no audiences means the API server's own.
    fn fill_defaults(&mut self) {
        self.expiration_seconds
            .get_or_insert(DEFAULT_EXPIRATION_SECONDS);
        if self.audiences.as_ref().is_none_or(Vec::is_empty) {
            self.audiences = Some(vec![ISSUER.into()]);
        }
    }
}

/// The spec of a JSON, YAML or protobuf (what `kubectl create token` sends) TokenRequest
/// body: a body of another kind or whose spec does not decode is a 400.
fn decode(headers: &HeaderMap, bytes: &[u8]) -> ApiResult<Spec> {
    let resource = core_resource("serviceaccounts")?;
    let mut request = body::decode_object(resource, headers, bytes)?;
    for (field, want) in [("apiVersion", API_VERSION), ("kind", KIND)] {
        match request.get(field).and_then(Value::as_str) {
            None | Some("") => {}
            Some(got) if got == want => {}
            Some(got) => {
                return Err(ApiError::BadRequest(format!(
                    "the {field} of the request body is {got:?}, not {want:?}"
                )));
            }
        }
    }
    let spec = match request.get_mut("spec").map(Value::take) {
        None | Some(Value::Null) => return Ok(Spec::default()),
        Some(spec) => spec,
    };
    serde_json::from_value(spec).map_err(|err| {
        ApiError::BadRequest(format!(
            "TokenRequest in version \"v1\" cannot be handled as a TokenRequest: {err}"
        ))
    })
}

fn validate(spec: &Spec, sa_name: &str) -> ApiResult<()> {
    let request = json!({ "spec": spec });
    let causes = rkube_api::validation::validate_token_request(&request);
    if causes.is_empty() {
        return Ok(());
    }
    Err(ApiError::Invalid {
        target: ErrorTarget {
            group: "authentication.k8s.io".into(),
            resource: "tokenrequests".into(),
            kind: KIND.into(),
            name: sa_name.into(),
        },
        causes: causes.into_iter().map(Cause::from).collect(),
    })
}

/// The pod a request binds its token to: it must exist, be the one the reference's uid
/// names, and run as the service account the token is for.
async fn bound_pod(
    server: &ApiServer,
    namespace: &str,
    sa_name: &str,
    bound: &BoundObjectRef,
) -> ApiResult<Value> {
    let (api_version, kind) = (bound.api_version.as_str(), bound.kind.as_str());
    if kind != "Pod" || !matches!(api_version, "v1" | "") {
        return Err(ApiError::BadRequest(format!(
            "cannot bind token to object of type {api_version}, Kind={kind}"
        )));
    }
    let pods = core_resource("pods")?;
    let pod_target = Target {
        resource: pods,
        namespace: Some(namespace.into()),
        name: Some(bound.name.clone()),
        subresource: None,
    };
    let (_, pod) = fetch(server, &pod_target).await?;
    let uid = bound.uid.as_str();
    if !uid.is_empty() && objects::meta_str(&pod, "uid") != Some(uid) {
        return Err(ApiError::ConflictWith {
            target: pod_target.error_target(),
            message: format!(
                "the UID in the bound object reference ({uid}) does not match the UID in record. The object might have been deleted and then recreated"
            ),
        });
    }
    if of_pod(&pod) != sa_name {
        return Err(ApiError::BadRequest(format!(
            "cannot bind token for serviceaccount \"{sa_name}\" to pod running with different serviceaccount name."
        )));
    }
    Ok(pod)
}

/// The node a bound pod runs on, named in the token as kube-apiserver does.
async fn node_of(server: &ApiServer, pod: &Value) -> ApiResult<Option<ObjectRef>> {
    let Some(node) = pod
        .pointer("/spec/nodeName")
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty())
    else {
        return Ok(None);
    };
    let key = objects::key(core_resource("nodes")?, None, node);
    Ok(server.admission_lookup(&key).await?.map(|n| reference(&n)))
}

fn reference(obj: &Value) -> ObjectRef {
    ObjectRef {
        name: objects::name(obj).to_string(),
        uid: objects::meta_str(obj, "uid")
            .unwrap_or_default()
            .to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_spec_gets_an_hour_for_the_api_server() {
        let mut spec = Spec::default();
        spec.fill_defaults();
        assert_eq!(
            json!(spec),
            json!({"expirationSeconds": 3600, "audiences": [ISSUER]})
        );
        let mut asked: Spec =
            serde_json::from_value(json!({"expirationSeconds": 7200, "audiences": ["vault"]}))
                .unwrap();
        asked.fill_defaults();
        assert_eq!(
            json!(asked),
            json!({"expirationSeconds": 7200, "audiences": ["vault"]})
        );
    }

    #[test]
    fn short_lifetimes_are_invalid_token_requests() {
        let spec = Spec {
            expiration_seconds: Some(60),
            ..Spec::default()
        };
        let err = validate(&spec, "default").unwrap_err();
        assert_eq!(err.code(), StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(
            err.to_string(),
            "TokenRequest.authentication.k8s.io \"default\" is invalid: spec.expirationSeconds: Invalid value: 60: may not specify a duration less than 10 minutes"
        );
    }

    #[test]
    fn bodies_of_another_kind_or_type_are_bad_requests() {
        let json_headers = HeaderMap::new();
        for bad in [
            &br#"{"kind": "Pod"}"#[..],
            br#"{"spec": {"expirationSeconds": "soon"}}"#,
            br#"{"spec": {"boundObjectRef": {"name": 7}}}"#,
            b"[1]",
            b"{",
        ] {
            let err = decode(&json_headers, bad).unwrap_err();
            assert_eq!(err.code(), StatusCode::BAD_REQUEST, "{err}");
        }
        // What kubectl sends: nulls and an empty status.
        let kubectl = br#"{"kind": "TokenRequest", "apiVersion": "authentication.k8s.io/v1",
            "metadata": {"creationTimestamp": null},
            "spec": {"audiences": null, "expirationSeconds": null, "boundObjectRef": null},
            "status": {"token": "", "expirationTimestamp": null}}"#;
        let spec = decode(&json_headers, kubectl).unwrap();
        assert!(spec.audiences.is_none() && spec.bound_object_ref.is_none());
    }
}
