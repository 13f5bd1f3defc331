//! The API server as an axum `Router`: tests and in-process components call it directly,
//! `serve` puts it behind TLS.

use std::sync::{Arc, OnceLock};

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use tracing::Instrument;

use crate::auth::User;
use crate::cache::WatchCache;
use crate::csr::CertSigner;
use crate::error::{ApiError, ApiResult};
use crate::kubelet_proxy::KubeletConnector;
use crate::rbac::Authorizer;
use crate::request::{Params, Target};
use crate::serviceaccount::token::TokenKey;
use crate::store::Store;
use crate::{discovery, handlers};

/// How many recent events the watch cache keeps for watchers resuming from a revision.
const WATCH_WINDOW: usize = 100_000;

pub struct ApiServer {
    pub store: Arc<dyn Store>,
    pub cache: Arc<WatchCache>,
    /// How `pods/log` and `pods/exec` reach kubelets; without one they answer 503.
    pub kubelet: Option<Arc<dyn KubeletConnector>>,
    /// Signs approved client certificate requests; unset, requests stay unsigned.
    pub signer: OnceLock<Arc<CertSigner>>,
    /// Decides every resource request (Node authorizer, then RBAC).
    pub authorizer: Authorizer,
    /// Signs and verifies service-account tokens; unset, TokenRequests answer 503 and
    /// service-account bearer tokens are refused.
    pub token_key: OnceLock<Arc<TokenKey>>,
}

impl ApiServer {
    pub async fn new(store: Arc<dyn Store>) -> ApiResult<Arc<ApiServer>> {
        Self::start(store, WATCH_WINDOW, None).await
    }

    /// A server whose watch cache keeps only `window` recent events, so tests can make a
    /// resourceVersion fall out of it.
    pub async fn with_watch_window(
        store: Arc<dyn Store>,
        window: usize,
    ) -> ApiResult<Arc<ApiServer>> {
        Self::start(store, window, None).await
    }

    /// A server that proxies `pods/log` and `pods/exec` through `kubelet`.
    pub async fn with_kubelet(
        store: Arc<dyn Store>,
        kubelet: Arc<dyn KubeletConnector>,
    ) -> ApiResult<Arc<ApiServer>> {
        Self::start(store, WATCH_WINDOW, Some(kubelet)).await
    }

    async fn start(
        store: Arc<dyn Store>,
        window: usize,
        kubelet: Option<Arc<dyn KubeletConnector>>,
    ) -> ApiResult<Arc<ApiServer>> {
        let cache = WatchCache::start(Arc::clone(&store), window).await?;
        Ok(Arc::new(ApiServer {
            store,
            cache,
            kubelet,
            signer: OnceLock::new(),
            authorizer: Authorizer::default(),
            token_key: OnceLock::new(),
        }))
    }
}

impl ApiServer {
    /// An object as admission reads it: from the watch cache, which spares the request a
    /// store round trip, or from the store when the cache has not seen it yet (created a
    /// moment ago) — as kube-apiserver's admission plugins read their informers.
    pub async fn admission_lookup(&self, key: &str) -> ApiResult<Option<serde_json::Value>> {
        if let Some(cached) = self.cache.get(key) {
            return Ok(Some(cached.object.clone()));
        }
        match self.store.get(key).await? {
            Some(kv) => crate::objects::decode(&kv).map(Some),
            None => Ok(None),
        }
    }
}

/// Every route of the API server. Requests must carry an authenticated [`User`] extension
/// (set by the TLS layer or by an in-process caller), except health and version.
pub fn router(server: Arc<ApiServer>) -> Router {
    Router::new()
        .route("/version", get(discovery::version))
        .route("/version/", get(discovery::version))
        .route("/healthz", get(health))
        .route("/livez", get(health))
        .route("/readyz", get(health))
        .route("/api", get(discovery::core_versions))
        .route("/api/", get(discovery::core_versions))
        .route("/apis", get(discovery::group_list))
        .route("/apis/", get(discovery::group_list))
        .route("/openapi/v3", get(discovery::openapi_index))
        .route("/openapi/v3/{*path}", get(discovery::openapi_document))
        .route("/api/{*rest}", any(core_request))
        .route("/apis/{*rest}", any(group_request))
        .fallback(|| async { ApiError::NoSuchRoute })
        .layer(middleware::from_fn_with_state(
            Arc::clone(&server),
            authenticate,
        ))
        .with_state(server)
}

async fn health() -> &'static str {
    "ok"
}

fn is_public(path: &str) -> bool {
    matches!(
        path,
        "/healthz" | "/livez" | "/readyz" | "/version" | "/version/"
    )
}

/// The TLS layer has set the user of a client certificate; a bearer token (a
/// service-account JWT or a bootstrap token) authenticates a request that has none. A bad token is refused even on public
/// paths, as kube-apiserver does.
async fn authenticate(
    State(server): State<Arc<ApiServer>>,
    mut request: Request,
    next: Next,
) -> Response {
    if request.extensions().get::<User>().is_none()
        && let Some(bearer) = bearer_token(request.headers())
    {
        let authenticated = if crate::serviceaccount::authn::is_jwt(bearer) {
            crate::serviceaccount::authn::authenticate(&server, bearer).await
        } else {
            crate::bootstrap::authenticate(&server, bearer).await
        };
        match authenticated {
            Ok(user) => {
                request.extensions_mut().insert(user);
            }
            Err(err) => return err.into_response(),
        }
    }
    if request.extensions().get::<User>().is_none()
        && request.method() == Method::GET
        && request.uri().path() == CLUSTER_INFO_PATH
    {
        request.extensions_mut().insert(User::anonymous());
    }
    if !is_public(request.uri().path()) && request.extensions().get::<User>().is_none() {
        return ApiError::Unauthorized.into_response();
    }
    next.run(request).await
}

/// What a joining node reads before it has credentials (see `run::publish_cluster_info`).
const CLUSTER_INFO_PATH: &str = "/api/v1/namespaces/kube-public/configmaps/cluster-info";

fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    let value = headers
        .get(axum::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

async fn core_request(State(server): State<Arc<ApiServer>>, request: Request) -> Response {
    let path = request.uri().path().to_string();
    let segments: Vec<&str> = path.trim_start_matches("/api/").split('/').collect();
    match segments.as_slice() {
        ["v1"] | ["v1", ""] => discovery::resource_list("", "v1"),
        ["v1", rest @ ..] => resource_request(&server, "", "v1", rest, request).await,
        _ => ApiError::NoSuchRoute.into_response(),
    }
}

async fn group_request(State(server): State<Arc<ApiServer>>, request: Request) -> Response {
    let path = request.uri().path().to_string();
    let segments: Vec<&str> = path.trim_start_matches("/apis/").split('/').collect();
    match segments.as_slice() {
        [group] | [group, ""] => discovery::group(group),
        [group, version] | [group, version, ""] => discovery::resource_list(group, version),
        [group, version, rest @ ..] => {
            resource_request(&server, group, version, rest, request).await
        }
        _ => ApiError::NoSuchRoute.into_response(),
    }
}

async fn resource_request(
    server: &Arc<ApiServer>,
    group: &str,
    version: &str,
    rest: &[&str],
    request: Request,
) -> Response {
    let Some(target) = Target::parse(group, version, rest) else {
        return ApiError::NoSuchRoute.into_response();
    };
    let (mut parts, body) = request.into_parts();
    let (method, uri, headers) = (parts.method, parts.uri, parts.headers);
    // Present on HTTP/1.1 connections; `pods/exec` hands the connection over to the kubelet.
    let upgrade = parts.extensions.remove::<hyper::upgrade::OnUpgrade>();
    // `authenticate` has put a user on every request that reaches a resource.
    let Some(user) = parts.extensions.remove::<User>() else {
        return ApiError::Unauthorized.into_response();
    };
    let span = tracing::info_span!(
        "request",
        verb = %method,
        resource = target.resource.plural,
        namespace = target.namespace.as_deref().unwrap_or_default(),
        name = target.name.as_deref().unwrap_or_default(),
    );
    let result = async {
        let params = Params::from_query(uri.query())?;
        let verb = crate::rbac::verb(&method, &target, &params);
        server
            .authorizer
            .authorize(&server.cache, &user, &target, verb)?;
        let request = handlers::RequestParts {
            method: &method,
            headers: &headers,
            body,
            upgrade,
            user: &user,
        };
        handlers::handle(server, &target, &params, request).await
    }
    .instrument(span)
    .await;
    result.unwrap_or_else(IntoResponse::into_response)
}

/// A 200/201 response is the default; this names the code where it matters.
pub fn created_or_ok(created: bool) -> StatusCode {
    if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    }
}
