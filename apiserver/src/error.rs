//! API errors and their one mapping to `metav1.Status` responses.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use rkube_api::resources::ResourceInfo;
use serde_json::{Value, json};

use crate::store::StoreError;

/// One field-level cause of an `Invalid` error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cause {
    pub reason: String,
    pub field: String,
    pub message: String,
}

impl From<rkube_api::validation::FieldCause> for Cause {
    fn from(cause: rkube_api::validation::FieldCause) -> Self {
        Cause {
            reason: cause.reason.as_str().to_string(),
            field: cause.field,
            message: cause.message,
        }
    }
}

/// Names the object an error is about, as Status `details` do.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Target {
    pub group: String,
    /// The plural resource name (`details.kind` in Kubernetes is the resource).
    pub resource: String,
    pub kind: String,
    pub name: String,
}

impl Target {
    pub fn new(resource: &ResourceInfo, name: &str) -> Self {
        Target {
            group: resource.group.to_string(),
            resource: resource.plural.to_string(),
            kind: resource.kind.to_string(),
            name: name.to_string(),
        }
    }

    /// `Pod` or `Deployment.apps`, as Invalid messages name kinds.
    fn qualified_kind(&self) -> String {
        if self.group.is_empty() {
            self.kind.clone()
        } else {
            format!("{}.{}", self.kind, self.group)
        }
    }

    /// `pods "x"` or `deployments.apps "x"`, the way Kubernetes names objects in messages.
    fn qualified(&self) -> String {
        if self.group.is_empty() {
            format!("{} \"{}\"", self.resource, self.name)
        } else {
            format!("{}.{} \"{}\"", self.resource, self.group, self.name)
        }
    }

    /// `pods "web"`, or just `pods` when no single object is addressed (a list, a create).
    fn subject(&self) -> String {
        match (self.name.is_empty(), self.group.is_empty()) {
            (false, _) => self.qualified(),
            (true, true) => self.resource.clone(),
            (true, false) => format!("{}.{}", self.resource, self.group),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{} not found", .0.qualified())]
    NotFound(Target),
    #[error("{} already exists", .0.qualified())]
    AlreadyExists(Target),
    #[error(
        "Operation cannot be fulfilled on {}: the object has been modified; please apply your changes to the latest version and try again",
        .0.qualified()
    )]
    Conflict(Target),
    #[error("Operation cannot be fulfilled on {}: {message}", .target.qualified())]
    ConflictWith { target: Target, message: String },
    #[error("{kind} \"{name}\" is invalid: {summary}", kind = .target.qualified_kind(), name = .target.name, summary = summarize(.causes))]
    Invalid { target: Target, causes: Vec<Cause> },
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Gone(String),
    #[error("{0}")]
    Expired(String),
    #[error("the server does not allow this method on the requested resource")]
    MethodNotAllowed,
    #[error("the server could not find the requested resource")]
    NoSuchRoute,
    #[error(
        "the body of the request was in an unknown format - accepted media types include: {accepted}"
    )]
    UnsupportedMediaType { accepted: String },
    #[error("only the following media types are accepted: {0}")]
    NotAcceptable(String),
    #[error("the request is too large: limit is {limit} bytes")]
    TooLarge { limit: usize },
    #[error("Unauthorized")]
    Unauthorized,
    #[error("{} is forbidden: {message}", .target.subject())]
    Forbidden { target: Target, message: String },
    #[error("{0}")]
    Internal(String),
    #[error("{0}")]
    ServiceUnavailable(String),
    /// An error a backend (a kubelet) answered with, passed on with its code.
    #[error("{message}")]
    Upstream { code: StatusCode, message: String },
}

fn summarize(causes: &[Cause]) -> String {
    let parts: Vec<String> = causes
        .iter()
        .map(|c| {
            if c.field.is_empty() {
                c.message.clone()
            } else {
                format!("{}: {}", c.field, c.message)
            }
        })
        .collect();
    if parts.len() == 1 {
        parts[0].clone()
    } else {
        format!("[{}]", parts.join(", "))
    }
}

/// The Status reason kube-apiserver gives a backend's error code (`NewGenericServerResponse`).
fn reason_for(code: StatusCode) -> &'static str {
    match code.as_u16() {
        400 => "BadRequest",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "NotFound",
        405 => "MethodNotAllowed",
        406 => "NotAcceptable",
        409 => "Conflict",
        415 => "UnsupportedMediaType",
        422 => "Invalid",
        429 => "TooManyRequests",
        500 => "InternalError",
        503 => "ServiceUnavailable",
        504 => "Timeout",
        _ => "Unknown",
    }
}

impl ApiError {
    pub fn code(&self) -> StatusCode {
        match self {
            ApiError::NotFound(_) | ApiError::NoSuchRoute => StatusCode::NOT_FOUND,
            ApiError::AlreadyExists(_) | ApiError::Conflict(_) | ApiError::ConflictWith { .. } => {
                StatusCode::CONFLICT
            }
            ApiError::Invalid { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Gone(_) | ApiError::Expired(_) => StatusCode::GONE,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::UnsupportedMediaType { .. } => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::NotAcceptable(_) => StatusCode::NOT_ACCEPTABLE,
            ApiError::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden { .. } => StatusCode::FORBIDDEN,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            ApiError::ServiceUnavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Upstream { code, .. } => *code,
        }
    }

    fn reason(&self) -> &'static str {
        match self {
            ApiError::NotFound(_) | ApiError::NoSuchRoute => "NotFound",
            ApiError::AlreadyExists(_) => "AlreadyExists",
            ApiError::Conflict(_) | ApiError::ConflictWith { .. } => "Conflict",
            ApiError::Invalid { .. } => "Invalid",
            ApiError::BadRequest(_) => "BadRequest",
            ApiError::Gone(_) => "Gone",
            ApiError::Expired(_) => "Expired",
            ApiError::MethodNotAllowed => "MethodNotAllowed",
            ApiError::UnsupportedMediaType { .. } => "UnsupportedMediaType",
            ApiError::NotAcceptable(_) => "NotAcceptable",
            ApiError::TooLarge { .. } => "RequestEntityTooLarge",
            ApiError::Unauthorized => "Unauthorized",
            ApiError::Forbidden { .. } => "Forbidden",
            ApiError::Internal(_) => "InternalError",
            ApiError::ServiceUnavailable(_) => "ServiceUnavailable",
            ApiError::Upstream { code, .. } => reason_for(*code),
        }
    }

    fn details(&self) -> Option<Value> {
        let target = match self {
            ApiError::NotFound(t) | ApiError::AlreadyExists(t) | ApiError::Conflict(t) => t,
            ApiError::ConflictWith { target, .. } | ApiError::Forbidden { target, .. } => target,
            ApiError::Invalid { target, causes } => {
                let causes: Vec<Value> = causes
                    .iter()
                    .map(|c| json!({"reason": c.reason, "message": c.message, "field": c.field}))
                    .collect();
                return Some(json!({
                    "name": target.name,
                    "group": target.group,
                    "kind": target.kind,
                    "causes": causes,
                }));
            }
            _ => return None,
        };
        Some(json!({"name": target.name, "group": target.group, "kind": target.resource}))
    }

    /// The `metav1.Status` object for this error.
    pub fn status(&self) -> Value {
        let mut status = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.to_string(),
            "reason": self.reason(),
            "code": self.code().as_u16(),
        });
        if let Some(details) = self.details() {
            status["details"] = details;
        }
        status
    }

    /// Maps a store error about one object to the API error a client expects.
    pub fn from_store(err: StoreError, target: Target) -> Self {
        match err {
            StoreError::NotFound { .. } => ApiError::NotFound(target),
            StoreError::AlreadyExists { .. } => ApiError::AlreadyExists(target),
            StoreError::Conflict { .. } => ApiError::Conflict(target),
            other => ApiError::from(other),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::Compacted {
                requested,
                compacted,
            } => ApiError::Expired(format!(
                "too old resource version: {requested} ({compacted})"
            )),
            StoreError::FutureRevision { requested, current } => ApiError::Gone(format!(
                "resource version {requested} is newer than the current revision {current}"
            )),
            StoreError::Backend { .. } => ApiError::Internal(err.to_string()),
            StoreError::NotFound { key }
            | StoreError::AlreadyExists { key }
            | StoreError::Conflict { key, .. } => {
                ApiError::Internal(format!("unexpected store outcome for {key}"))
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let code = self.code();
        if code.is_server_error() {
            tracing::error!(error = %self, "request failed");
        }
        let body = serde_json::to_vec(&self.status()).unwrap_or_default();
        let mut response = (code, body).into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        response
    }
}

pub type ApiResult<T> = Result<T, ApiError>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn not_found_status_names_the_resource() {
        let target = Target {
            group: "apps".into(),
            resource: "deployments".into(),
            kind: "Deployment".into(),
            name: "web".into(),
        };
        let status = ApiError::NotFound(target).status();
        assert_eq!(status["code"], 404);
        assert_eq!(status["reason"], "NotFound");
        assert_eq!(status["message"], "deployments.apps \"web\" not found");
        assert_eq!(status["details"]["kind"], "deployments");
    }

    #[test]
    fn invalid_lists_causes() {
        let target = Target {
            kind: "Pod".into(),
            name: "p".into(),
            resource: "pods".into(),
            ..Target::default()
        };
        let causes = vec![
            Cause {
                reason: "FieldValueRequired".into(),
                field: "spec.containers".into(),
                message: "Required value".into(),
            },
            Cause {
                reason: "FieldValueInvalid".into(),
                field: "metadata.name".into(),
                message: "Invalid value".into(),
            },
        ];
        let status = ApiError::Invalid { target, causes }.status();
        assert_eq!(status["code"], 422);
        assert_eq!(
            status["message"],
            "Pod \"p\" is invalid: [spec.containers: Required value, metadata.name: Invalid value]"
        );
        assert_eq!(status["details"]["causes"][1]["field"], "metadata.name");
    }

    #[test]
    fn upstream_errors_keep_their_code() {
        let status = ApiError::Upstream {
            code: StatusCode::FORBIDDEN,
            message: "denied".into(),
        }
        .status();
        assert_eq!(status["code"], 403);
        assert_eq!(status["reason"], "Forbidden");
        assert_eq!(status["message"], "denied");
    }

    #[test]
    fn compaction_is_expired() {
        let err: ApiError = StoreError::Compacted {
            requested: 3,
            compacted: 9,
        }
        .into();
        assert_eq!(err.code(), StatusCode::GONE);
        assert_eq!(err.status()["reason"], "Expired");
    }
}
