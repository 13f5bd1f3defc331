//! Request bodies and response encoding: content types, size limits, YAML/JSON decoding.

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use rkube_api::resources::ResourceInfo;

use crate::error::{ApiError, ApiResult};
use crate::protobuf;

/// Kubernetes refuses request bodies over 3 MiB.
pub const MAX_BODY: usize = 3 * 1024 * 1024;

/// How a PATCH body is to be applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchKind {
    Json,
    Merge,
    Strategic,
    Apply,
}

/// The media type of a request body, lowercased, without parameters.
pub fn content_type(headers: &HeaderMap) -> String {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or_default()
                .trim()
                .to_ascii_lowercase()
        })
        .unwrap_or_default()
}

/// Reads the whole body, refusing more than `MAX_BODY` bytes.
pub async fn read(body: Body) -> ApiResult<bytes::Bytes> {
    axum::body::to_bytes(body, MAX_BODY).await.map_err(|err| {
        let too_large = std::error::Error::source(&err)
            .is_some_and(|s| s.is::<http_body_util::LengthLimitError>());
        if too_large {
            ApiError::TooLarge { limit: MAX_BODY }
        } else {
            ApiError::BadRequest(format!("reading the request body: {err}"))
        }
    })
}

/// Decodes a create/update body (JSON, YAML or Kubernetes protobuf) into an object.
pub fn decode_object(
    resource: &ResourceInfo,
    headers: &HeaderMap,
    bytes: &[u8],
) -> ApiResult<Value> {
    let value = match content_type(headers).as_str() {
        "" | "application/json" | "*/*" => parse_json(bytes)?,
        "application/yaml" | "application/x-yaml" | "text/yaml" => parse_yaml(bytes)?,
        t if protobuf::is_protobuf(t) => {
            protobuf::decode(resource, bytes).map_err(|e| ApiError::BadRequest(e.to_string()))?
        }
        _ => {
            return Err(ApiError::UnsupportedMediaType {
                accepted: "application/json, application/yaml, application/vnd.kubernetes.protobuf"
                    .into(),
            });
        }
    };
    if !value.is_object() {
        return Err(ApiError::BadRequest(
            "the request body must be a JSON or YAML object".into(),
        ));
    }
    Ok(value)
}

/// Decodes a PATCH body by its content type.
pub fn decode_patch(headers: &HeaderMap, bytes: &[u8]) -> ApiResult<(PatchKind, Value)> {
    let kind = match content_type(headers).as_str() {
        "application/json-patch+json" => PatchKind::Json,
        "application/merge-patch+json" => PatchKind::Merge,
        "application/strategic-merge-patch+json" => PatchKind::Strategic,
        "application/apply-patch+yaml" => PatchKind::Apply,
        _ => {
            return Err(ApiError::UnsupportedMediaType {
                accepted: "application/json-patch+json, application/merge-patch+json, \
                           application/strategic-merge-patch+json, application/apply-patch+yaml"
                    .into(),
            });
        }
    };
    let value = if kind == PatchKind::Apply {
        parse_yaml(bytes)?
    } else {
        parse_json(bytes)?
    };
    Ok((kind, value))
}

pub fn parse_json(bytes: &[u8]) -> ApiResult<Value> {
    serde_json::from_slice(bytes)
        .map_err(|e| ApiError::BadRequest(format!("error decoding JSON request body: {e}")))
}

/// YAML is a superset of JSON, so this also takes JSON bodies.
pub fn parse_yaml(bytes: &[u8]) -> ApiResult<Value> {
    let text = std::str::from_utf8(bytes)
        .map_err(|_| ApiError::BadRequest("the request body is not UTF-8".into()))?;
    serde_saphyr::from_str::<Value>(text)
        .map_err(|e| ApiError::BadRequest(format!("error decoding YAML request body: {e}")))
}

/// What the client asked the response to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wanted {
    Object,
    Table,
    /// `PartialObjectMetadata`: only apiVersion, kind and metadata (kube-rs metadata watches).
    Metadata,
}

/// The `PartialObjectMetadata` form of an object.
pub fn partial_metadata(obj: &Value) -> Value {
    serde_json::json!({
        "kind": "PartialObjectMetadata",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": obj.get("metadata").cloned().unwrap_or_default(),
    })
}

/// Reads the `Accept` header: a server-side Table when asked for, JSON otherwise; a client
/// that accepts neither JSON nor a wildcard gets 406.
pub fn wanted(headers: &HeaderMap) -> ApiResult<Wanted> {
    let Some(accept) = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()) else {
        return Ok(Wanted::Object);
    };
    let mut json_ok = false;
    for choice in accept.split(',') {
        let mut parts = choice.split(';').map(str::trim);
        let media = parts.next().unwrap_or_default();
        let params: Vec<&str> = parts.collect();
        let is_json = matches!(media, "application/json" | "*/*" | "application/*");
        let meta_v1 = params.contains(&"v=v1") && params.contains(&"g=meta.k8s.io");
        if is_json && params.contains(&"as=Table") {
            if meta_v1 {
                return Ok(Wanted::Table);
            }
            continue;
        }
        let partial = params.contains(&"as=PartialObjectMetadata")
            || params.contains(&"as=PartialObjectMetadataList");
        if is_json && partial {
            if meta_v1 {
                return Ok(Wanted::Metadata);
            }
            continue;
        }
        if is_json && !params.iter().any(|p| p.starts_with("as=")) {
            json_ok = true;
        }
    }
    if json_ok {
        Ok(Wanted::Object)
    } else {
        Err(ApiError::NotAcceptable("application/json".into()))
    }
}

/// A JSON response with a status code.
pub fn json_response(code: StatusCode, body: impl Into<Body>) -> Response {
    let mut response = (code, body.into()).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

pub fn object_response(code: StatusCode, obj: &Value) -> Response {
    json_response(code, serde_json::to_vec(obj).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(name: header::HeaderName, value: &'static str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(name, HeaderValue::from_static(value));
        h
    }

    #[test]
    fn negotiates_tables() {
        let kubectl = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json";
        assert_eq!(
            wanted(&headers(header::ACCEPT, kubectl)).unwrap(),
            Wanted::Table
        );
        assert_eq!(
            wanted(&headers(header::ACCEPT, "application/json")).unwrap(),
            Wanted::Object
        );
        assert!(
            wanted(&headers(
                header::ACCEPT,
                "application/vnd.kubernetes.protobuf"
            ))
            .is_err()
        );
    }

    fn pods() -> &'static ResourceInfo {
        rkube_api::resources::find("", "v1", "pods").unwrap()
    }

    #[test]
    fn decodes_yaml_and_refuses_garbage() {
        let h = headers(header::CONTENT_TYPE, "application/yaml");
        let v = decode_object(pods(), &h, b"kind: Pod\nmetadata:\n  name: x\n").unwrap();
        assert_eq!(v["metadata"]["name"], "x");
        assert!(matches!(
            decode_object(pods(), &h, b"kind: [unclosed"),
            Err(ApiError::BadRequest(_))
        ));
        let j = headers(header::CONTENT_TYPE, "application/json");
        assert!(matches!(
            decode_object(pods(), &j, b"[1,2]"),
            Err(ApiError::BadRequest(_))
        ));
        let bad = headers(header::CONTENT_TYPE, "text/html");
        assert!(matches!(
            decode_object(pods(), &bad, b"{}"),
            Err(ApiError::UnsupportedMediaType { .. })
        ));
    }

    #[test]
    fn patch_types_by_content_type() {
        let h = headers(header::CONTENT_TYPE, "application/apply-patch+yaml");
        assert_eq!(decode_patch(&h, b"a: 1").unwrap().0, PatchKind::Apply);
        let h = headers(
            header::CONTENT_TYPE,
            "application/strategic-merge-patch+json",
        );
        assert_eq!(decode_patch(&h, b"{}").unwrap().0, PatchKind::Strategic);
    }
}
