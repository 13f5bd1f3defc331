//! Resource verbs: the dispatch of a parsed request to get, list, watch and the writes.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::Response;
use hyper::upgrade::OnUpgrade;
use rkube_api::resources::Subresource;
use serde_json::Value;

use crate::auth::User;
use crate::body::{self, Wanted};
use crate::error::{ApiError, ApiResult};
use crate::objects;
use crate::request::{Params, Target};
use crate::server::ApiServer;
use crate::{kubelet_proxy, list, serviceaccount, subresources, watch, write};

/// What of a request the verbs read besides its target and query.
pub struct RequestParts<'a> {
    pub method: &'a Method,
    pub headers: &'a HeaderMap,
    pub body: Body,
    /// The connection's upgrade, on HTTP/1.1 connections served with upgrades.
    pub upgrade: Option<OnUpgrade>,
    /// Who asks: certificate requests record it.
    pub user: &'a User,
}

pub async fn handle(
    server: &Arc<ApiServer>,
    target: &Target,
    params: &Params,
    request: RequestParts<'_>,
) -> ApiResult<Response> {
    let RequestParts {
        method,
        headers,
        body: request_body,
        upgrade,
        user,
    } = request;
    let sub = target.subresource;
    // Logs and exec sessions are not objects: they skip the Accept negotiation below.
    match (method, target.name.is_some(), sub) {
        (&Method::GET, true, Some(Subresource::Log)) => {
            return kubelet_proxy::log::log(server, target, params).await;
        }
        (&Method::GET | &Method::POST, true, Some(Subresource::Exec)) => {
            return kubelet_proxy::exec::exec(server, target, params, method, headers, upgrade)
                .await;
        }
        _ => {}
    }
    let wanted = body::wanted(headers)?;
    match (method, target.name.is_some(), sub) {
        (&Method::GET, false, _) if params.flag("watch") => {
            watch::watch(server, target, params, wanted).await
        }
        (&Method::GET, false, _) => list::list(server, target, params, wanted).await,
        (&Method::GET, true, None | Some(Subresource::Status | Subresource::Approval)) => {
            get(server, target, params, wanted).await
        }
        (&Method::GET, true, Some(Subresource::Scale)) => {
            subresources::get_scale(server, target).await
        }
        (&Method::POST, false, None) => {
            let bytes = body::read(request_body).await?;
            write::create(server, user, target, params, headers, &bytes).await
        }
        (&Method::POST, true, Some(Subresource::Binding)) => {
            let bytes = body::read(request_body).await?;
            subresources::bind(server, target, headers, &bytes).await
        }
        (&Method::POST, true, Some(Subresource::Token)) => {
            let bytes = body::read(request_body).await?;
            serviceaccount::issue::create_token(server, user, target, headers, &bytes).await
        }
        (&Method::PUT, true, None | Some(Subresource::Status | Subresource::Approval)) => {
            let bytes = body::read(request_body).await?;
            write::update(server, target, params, headers, &bytes).await
        }
        (&Method::PUT, true, Some(Subresource::Scale)) => {
            let bytes = body::read(request_body).await?;
            subresources::update_scale(server, target, params, headers, &bytes, false).await
        }
        (&Method::PATCH, true, None | Some(Subresource::Status | Subresource::Approval)) => {
            let bytes = body::read(request_body).await?;
            write::patch(server, user, target, params, headers, &bytes).await
        }
        (&Method::PATCH, true, Some(Subresource::Scale)) => {
            let bytes = body::read(request_body).await?;
            subresources::update_scale(server, target, params, headers, &bytes, true).await
        }
        (&Method::DELETE, true, None) => {
            let bytes = body::read(request_body).await?;
            write::delete(server, target, params, &bytes).await
        }
        (&Method::DELETE, false, None) => {
            let bytes = body::read(request_body).await?;
            write::delete_collection(server, target, params, &bytes).await
        }
        _ => Err(ApiError::MethodNotAllowed),
    }
}

/// Reads one object from the store (consistent, like kube-apiserver without a resourceVersion).
pub async fn fetch(server: &ApiServer, target: &Target) -> ApiResult<(String, Value)> {
    let name = target.name.as_deref().unwrap_or_default();
    let key = objects::key(target.resource, target.object_namespace(), name);
    let kv = server
        .store
        .get(&key)
        .await?
        .ok_or_else(|| ApiError::NotFound(target.error_target()))?;
    Ok((key, objects::decode(&kv)?))
}

async fn get(
    server: &ApiServer,
    target: &Target,
    params: &Params,
    wanted: Wanted,
) -> ApiResult<Response> {
    let (_, obj) = fetch(server, target).await?;
    respond(target, params, wanted, StatusCode::OK, &obj, &[])
}

/// Answers with one object, as JSON or as a one-row Table, with any warnings.
pub fn respond(
    target: &Target,
    params: &Params,
    wanted: Wanted,
    code: StatusCode,
    obj: &Value,
    warnings: &[String],
) -> ApiResult<Response> {
    let mut response = match wanted {
        Wanted::Object => body::object_response(code, obj),
        Wanted::Metadata => body::object_response(code, &body::partial_metadata(obj)),
        Wanted::Table => {
            let table = list::table(target.resource, params, std::slice::from_ref(obj))?;
            body::object_response(code, &table)
        }
    };
    for warning in warnings {
        let value = format!("299 - {}", serde_json::Value::String(warning.clone()));
        if let Ok(value) = HeaderValue::from_str(&value) {
            response.headers_mut().append("Warning", value);
        }
    }
    Ok(response)
}
