//! The test API server over a chosen store, raw request helpers, Status assertions and a
//! reader for watch streams.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::{Body, BodyDataStream};
use bytes::Bytes;
use futures::StreamExt;
use http::{HeaderMap, Method, Request, StatusCode};
use rkube_apiserver::in_process::{admin, client};
use rkube_apiserver::server::{ApiServer, router};
use rkube_apiserver::store::Store;
use rkube_apiserver::store::memory::MemoryStore;
use rkube_apiserver::store::redb::RedbStore;
use serde_json::{Value, json};
use tempfile::TempDir;
use tower::ServiceExt;

/// The watch window of test servers unless a test asks for a smaller one.
const DEFAULT_WINDOW: usize = 10_000;
/// How long a test waits for a watch event before failing.
const EVENT_WAIT: Duration = Duration::from_secs(5);

#[derive(Debug, Clone, Copy)]
pub enum Backend {
    Memory,
    Redb,
}

/// Runs each named `async fn(TestApi)` against both stores, as `<name>::memory` and
/// `<name>::redb`.
macro_rules! on_both_stores {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            use crate::support::{Backend, TestApi};

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn memory() {
                super::$name(TestApi::start(Backend::Memory).await).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn redb() {
                super::$name(TestApi::start(Backend::Redb).await).await;
            }
        }
    )*};
}

/// An API server with the system namespaces, over a fresh store.
pub struct TestApi {
    pub server: Arc<ApiServer>,
    router: Router,
    /// Keeps the redb file alive as long as the server.
    _dir: Option<TempDir>,
}

impl TestApi {
    pub async fn start(backend: Backend) -> TestApi {
        TestApi::with_window(backend, DEFAULT_WINDOW).await
    }

    pub async fn memory() -> TestApi {
        TestApi::start(Backend::Memory).await
    }

    /// A server whose watch cache keeps only `window` events.
    pub async fn with_window(backend: Backend, window: usize) -> TestApi {
        let (store, dir): (Arc<dyn Store>, Option<TempDir>) = match backend {
            Backend::Memory => (Arc::new(MemoryStore::new()), None),
            Backend::Redb => {
                let dir = tempfile::tempdir().unwrap();
                let store = RedbStore::open(&dir.path().join("store.redb")).unwrap();
                (Arc::new(store), Some(dir))
            }
        };
        let server = ApiServer::with_watch_window(store, window).await.unwrap();
        rkube_apiserver::run::ensure_system_namespaces(&server)
            .await
            .unwrap();
        TestApi {
            router: router(Arc::clone(&server)),
            server,
            _dir: dir,
        }
    }

    pub fn client(&self) -> kube::Client {
        client(self.router.clone(), admin())
    }

    /// A kube client authenticated as `user`.
    pub fn client_as(&self, user: rkube_apiserver::auth::User) -> kube::Client {
        client(self.router.clone(), user)
    }

    /// Sends a request as-is (no user unless the caller inserted one).
    pub async fn send(&self, request: Request<Body>) -> Reply {
        let response = self.router.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let body = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        Reply {
            status,
            headers,
            body,
        }
    }

    /// Sends an authenticated request with a body of the given content type.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        content_type: &str,
        body: impl Into<Body>,
    ) -> Reply {
        self.send(request(method, path, content_type, body)).await
    }

    pub async fn get(&self, path: &str) -> Reply {
        self.call(Method::GET, path, "", Body::empty()).await
    }

    pub async fn post(&self, path: &str, obj: &Value) -> Reply {
        self.call(Method::POST, path, JSON, obj.to_string()).await
    }

    pub async fn put(&self, path: &str, obj: &Value) -> Reply {
        self.call(Method::PUT, path, JSON, obj.to_string()).await
    }

    pub async fn patch(&self, path: &str, content_type: &str, patch: &Value) -> Reply {
        self.call(Method::PATCH, path, content_type, patch.to_string())
            .await
    }

    pub async fn delete(&self, path: &str) -> Reply {
        self.call(Method::DELETE, path, "", Body::empty()).await
    }

    /// Creates an object and returns it as stored.
    pub async fn create(&self, path: &str, obj: &Value) -> Value {
        let reply = self.post(path, obj).await;
        assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text());
        reply.json()
    }

    /// The object at `path`, which must exist.
    pub async fn read(&self, path: &str) -> Value {
        let reply = self.get(path).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
        reply.json()
    }

    /// Starts a watch; the response must be a 200 stream.
    pub async fn watch(&self, path: &str) -> Watch {
        let response = self
            .router
            .clone()
            .oneshot(request(Method::GET, path, "", Body::empty()))
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        Watch {
            body: response.into_body().into_data_stream(),
            buffer: Vec::new(),
        }
    }

    /// The names of a list's items and its resourceVersion.
    pub async fn list_names(&self, path: &str) -> (Vec<String>, String) {
        let list = self.read(path).await;
        (names(&list), rv(&list).to_string())
    }
}

pub const JSON: &str = "application/json";
pub const MERGE: &str = "application/merge-patch+json";
pub const STRATEGIC: &str = "application/strategic-merge-patch+json";
pub const JSON_PATCH: &str = "application/json-patch+json";
pub const APPLY: &str = "application/apply-patch+yaml";

/// An authenticated (as the in-process admin) request.
pub fn request(
    method: Method,
    path: &str,
    content_type: &str,
    body: impl Into<Body>,
) -> Request<Body> {
    let mut builder = Request::builder().method(method).uri(path);
    if !content_type.is_empty() {
        builder = builder.header(http::header::CONTENT_TYPE, content_type);
    }
    builder.extension(admin()).body(body.into()).unwrap()
}

pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Reply {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }

    /// Asserts a failure: the HTTP code and a `metav1.Status` body with the same code and
    /// `reason`. Returns the Status for further checks.
    pub fn failure(&self, code: u16, reason: &str) -> Value {
        assert_eq!(self.status.as_u16(), code, "{}", self.text());
        assert_eq!(
            self.headers.get(http::header::CONTENT_TYPE).unwrap(),
            "application/json"
        );
        let status = self.json();
        assert_eq!(status["kind"], "Status", "{status}");
        assert_eq!(status["apiVersion"], "v1", "{status}");
        assert_eq!(status["status"], "Failure", "{status}");
        assert_eq!(status["code"], code, "{status}");
        assert_eq!(status["reason"], reason, "{status}");
        status
    }

    pub fn warnings(&self) -> Vec<String> {
        self.headers
            .get_all("Warning")
            .iter()
            .map(|v| v.to_str().unwrap().to_string())
            .collect()
    }
}

/// The lines of a watch response, one JSON event each.
pub struct Watch {
    body: BodyDataStream,
    buffer: Vec<u8>,
}

impl Watch {
    /// The next event; fails the test if none comes in time or the stream ends.
    pub async fn next(&mut self) -> Value {
        match tokio::time::timeout(EVENT_WAIT, self.next_line()).await {
            Ok(Some(event)) => event,
            Ok(None) => panic!("the watch ended while an event was expected"),
            Err(_) => panic!("no watch event within {EVENT_WAIT:?}"),
        }
    }

    /// The next event as (type, name).
    pub async fn next_named(&mut self) -> (String, String) {
        let event = self.next().await;
        (
            event["type"].as_str().unwrap().to_string(),
            event["object"]["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
        )
    }

    /// Asserts that the stream ends (within `within`) without further events.
    pub async fn assert_ends(&mut self, within: Duration) {
        match tokio::time::timeout(within, self.next_line()).await {
            Ok(None) => {}
            Ok(Some(event)) => panic!("unexpected watch event {event}"),
            Err(_) => panic!("the watch did not end within {within:?}"),
        }
    }

    /// Asserts that no event arrives for `quiet`.
    pub async fn assert_quiet(&mut self, quiet: Duration) {
        if let Ok(event) = tokio::time::timeout(quiet, self.next_line()).await {
            panic!("unexpected watch event or end: {event:?}");
        }
    }

    async fn next_line(&mut self) -> Option<Value> {
        loop {
            if let Some(end) = self.buffer.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = self.buffer.drain(..=end).collect();
                return Some(serde_json::from_slice(&line).unwrap());
            }
            let chunk = self.body.next().await?.unwrap();
            self.buffer.extend_from_slice(&chunk);
        }
    }
}

pub fn configmap(name: &str, labels: Value) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "labels": labels},
        "data": {"k": "v"},
    })
}

pub fn pod(name: &str, node: Option<&str>) -> Value {
    let mut pod = json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {"containers": [
            {"name": "app", "image": "nginx:1.27"},
            {"name": "sidecar", "image": "busybox:1.36"},
        ]},
    });
    if let Some(node) = node {
        pod["spec"]["nodeName"] = json!(node);
    }
    pod
}

pub fn deployment(name: &str, replicas: i64) -> Value {
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "app", "image": "nginx:1.27"}]},
            },
        },
    })
}

/// Creates a namespace with the given metadata finalizers.
pub async fn namespace(api: &TestApi, name: &str, finalizers: &[&str]) -> Value {
    let ns = json!({
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": name, "finalizers": finalizers},
    });
    api.create("/api/v1/namespaces", &ns).await
}

pub fn names(list: &Value) -> Vec<String> {
    list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["metadata"]["name"].as_str().unwrap().to_string())
        .collect()
}

pub fn rv(obj: &Value) -> &str {
    obj["metadata"]["resourceVersion"].as_str().unwrap()
}
