//! `GET pods/<name>/log`: PodLogOptions validated here, the log streamed from the kubelet's
//! `/containerLogs` unchanged and unbuffered, so `follow` reaches the client line by line.

use axum::body::Body;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use chrono::{DateTime, SecondsFormat, Utc};
use tracing::Instrument;

use super::{bool_param, client, connector, kubelet_endpoint, resolve, upstream_error};
use crate::error::{ApiError, ApiResult, Cause};
use crate::request::{Params, Target};
use crate::server::ApiServer;

/// The PodLogOptions of one request.
#[derive(Debug, Default, PartialEq)]
pub struct LogOptions {
    pub container: Option<String>,
    pub follow: bool,
    pub previous: bool,
    pub timestamps: bool,
    pub since_seconds: Option<i64>,
    pub since_time: Option<DateTime<Utc>>,
    pub tail_lines: Option<i64>,
    pub limit_bytes: Option<i64>,
}

impl LogOptions {
    /// Decodes and validates the query as kube-apiserver does: malformed values are a 400,
    /// out-of-range ones a 422 naming `PodLogOptions`.
    pub fn from_params(params: &Params, target: &Target) -> ApiResult<LogOptions> {
        // Never verified anyway (see `TlsKubeletConnector`), but still a boolean.
        bool_param(params, "insecureSkipTLSVerifyBackend")?;
        let since_time = params
            .get("sinceTime")
            .map(|t| {
                DateTime::parse_from_rfc3339(t)
                    .map(|t| t.with_timezone(&Utc))
                    .map_err(|err| {
                        ApiError::BadRequest(format!("invalid value for sinceTime: {t:?}: {err}"))
                    })
            })
            .transpose()?;
        let options = LogOptions {
            container: params.get("container").map(String::from),
            follow: bool_param(params, "follow")?,
            previous: bool_param(params, "previous")?,
            timestamps: bool_param(params, "timestamps")?,
            since_seconds: params.int("sinceSeconds")?,
            since_time,
            tail_lines: params.int("tailLines")?,
            limit_bytes: params.int("limitBytes")?,
        };
        let causes = options.invalid_causes();
        if causes.is_empty() {
            Ok(options)
        } else {
            Err(ApiError::Invalid {
                target: crate::error::Target {
                    kind: "PodLogOptions".into(),
                    ..target.error_target()
                },
                causes,
            })
        }
    }

    fn invalid_causes(&self) -> Vec<Cause> {
        let invalid = |field: &str, value: i64, message: &str| Cause {
            reason: "FieldValueInvalid".into(),
            field: field.into(),
            message: format!("Invalid value: {value}: {message}"),
        };
        let mut causes = Vec::new();
        if let Some(tail) = self.tail_lines.filter(|t| *t < 0) {
            causes.push(invalid(
                "tailLines",
                tail,
                "must be greater than or equal to 0",
            ));
        }
        if let Some(limit) = self.limit_bytes.filter(|l| *l < 1) {
            causes.push(invalid("limitBytes", limit, "must be greater than 0"));
        }
        match (self.since_seconds, self.since_time) {
            (Some(_), Some(_)) => causes.push(Cause {
                reason: "FieldValueForbidden".into(),
                field: String::new(),
                message: "Forbidden: at most one of `sinceTime` or `sinceSeconds` may be specified"
                    .into(),
            }),
            (Some(since), None) if since < 1 => {
                causes.push(invalid("sinceSeconds", since, "must be greater than 0"));
            }
            _ => {}
        }
        causes
    }

    /// The kubelet's `/containerLogs` query, in kube-apiserver's order and encoding.
    pub fn kubelet_query(&self) -> String {
        let mut query = form_urlencoded::Serializer::new(String::new());
        for (name, set) in [
            ("follow", self.follow),
            ("previous", self.previous),
            ("timestamps", self.timestamps),
        ] {
            if set {
                query.append_pair(name, "true");
            }
        }
        if let Some(since) = self.since_seconds {
            query.append_pair("sinceSeconds", &since.to_string());
        }
        if let Some(since) = self.since_time {
            query.append_pair(
                "sinceTime",
                &since.to_rfc3339_opts(SecondsFormat::Secs, true),
            );
        }
        if let Some(tail) = self.tail_lines {
            query.append_pair("tailLines", &tail.to_string());
        }
        if let Some(limit) = self.limit_bytes {
            query.append_pair("limitBytes", &limit.to_string());
        }
        query.finish()
    }
}

fn text_response(body: Body) -> Response {
    let mut response = Response::new(body);
    *response.status_mut() = StatusCode::OK;
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    response
}

pub async fn log(server: &ApiServer, target: &Target, params: &Params) -> ApiResult<Response> {
    let options = LogOptions::from_params(params, target)?;
    let pod = resolve(server, target, options.container.as_deref()).await?;
    // An unscheduled pod has no logs yet: kube-apiserver answers an empty stream.
    let Some(node) = pod.node else {
        return Ok(text_response(Body::empty()));
    };
    let endpoint = kubelet_endpoint(server, &node).await?;
    let mut path = format!(
        "/containerLogs/{}/{}/{}",
        pod.namespace, pod.pod, pod.container
    );
    let query = options.kubelet_query();
    if !query.is_empty() {
        path = format!("{path}?{query}");
    }
    let span = tracing::info_span!("kubelet_log", %endpoint, container = %pod.container);
    let response = client::send(
        connector(server)?,
        &endpoint,
        http::Method::GET,
        path,
        http::HeaderMap::new(),
    )
    .instrument(span)
    .await?;
    if !response.status().is_success() {
        return Err(upstream_error(response).await);
    }
    // The kubelet's body is handed on frame by frame: hyper writes each as it arrives, and
    // dropping it when the client goes away closes the kubelet connection too.
    Ok(text_response(Body::new(response.into_body())))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pods_target() -> Target {
        Target::parse("", "v1", &["namespaces", "default", "pods", "web", "log"]).unwrap()
    }

    fn options(query: &str) -> ApiResult<LogOptions> {
        LogOptions::from_params(&Params::from_query(Some(query)).unwrap(), &pods_target())
    }

    #[test]
    fn translates_to_the_kubelet_query() {
        let opts = options(
            "container=app&follow=true&timestamps=1&tailLines=10&limitBytes=500&sinceTime=2024-01-02T03:04:05%2B01:00",
        )
        .unwrap();
        assert_eq!(opts.container.as_deref(), Some("app"));
        assert_eq!(
            opts.kubelet_query(),
            "follow=true&timestamps=true&sinceTime=2024-01-02T02%3A04%3A05Z&tailLines=10&limitBytes=500"
        );
        assert_eq!(options("").unwrap().kubelet_query(), "");
    }

    #[test]
    fn out_of_range_values_are_invalid() {
        let err = options("tailLines=-1&limitBytes=0").unwrap_err();
        assert_eq!(err.code(), StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(
            err.to_string(),
            "PodLogOptions \"web\" is invalid: [tailLines: Invalid value: -1: must be greater than or equal to 0, limitBytes: Invalid value: 0: must be greater than 0]"
        );
        let both = options("sinceSeconds=5&sinceTime=2024-01-02T03:04:05Z").unwrap_err();
        assert!(both.to_string().contains("at most one of `sinceTime`"));
        assert_eq!(
            options("sinceSeconds=0").unwrap_err().code(),
            StatusCode::UNPROCESSABLE_ENTITY
        );
    }

    #[test]
    fn malformed_values_are_bad_requests() {
        for query in ["tailLines=ten", "follow=yes", "sinceTime=yesterday"] {
            assert_eq!(
                options(query).unwrap_err().code(),
                StatusCode::BAD_REQUEST,
                "{query}"
            );
        }
    }
}
