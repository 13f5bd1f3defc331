//! An API server in-process on the memory store, a wasm runtime and a node agent against them.

pub mod guests;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{ConfigMap, Container, Pod, PodSpec, ServiceAccount};
use k8s_openapi::api::node::v1::RuntimeClass;
use kube::Client;
use kube::api::{Api, PostParams};
use rkube_apiserver::in_process;
use rkube_apiserver::server::{ApiServer, router};
use rkube_apiserver::serviceaccount::token::TokenKey;
use rkube_apiserver::store::memory::MemoryStore;
use rkube_node::{Backoff, LocalImages, NodeOptions};
use rkube_runtimes::Runtime;
use rkube_runtimes::wasm::{WasmConfig, WasmRuntime};
use tokio::task::JoinHandle;

pub const NODE: &str = "node-1";
/// The `ca.crt` of the test cluster's `kube-root-ca.crt` ConfigMap.
pub const ROOT_CA: &str = "the test cluster's CA";

/// What the controller manager keeps in a namespace and every pod's service-account token
/// volume needs: the `default` ServiceAccount and the `kube-root-ca.crt` ConfigMap.
async fn stand_in_for_the_controller_manager(client: &Client) {
    let account: ServiceAccount =
        serde_json::from_value(serde_json::json!({"metadata": {"name": "default"}})).unwrap();
    Api::<ServiceAccount>::namespaced(client.clone(), "default")
        .create(&PostParams::default(), &account)
        .await
        .unwrap();
    let root_ca: ConfigMap = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "kube-root-ca.crt"},
        "data": {"ca.crt": ROOT_CA},
    }))
    .unwrap();
    Api::<ConfigMap>::namespaced(client.clone(), "default")
        .create(&PostParams::default(), &root_ca)
        .await
        .unwrap();
}

pub struct Cluster {
    pub client: Client,
    pub dir: tempfile::TempDir,
    pub images: LocalImages,
}

impl Cluster {
    pub async fn start() -> Self {
        let server = ApiServer::new(Arc::new(MemoryStore::new())).await.unwrap();
        rkube_apiserver::run::ensure_system_namespaces(&server)
            .await
            .unwrap();
        server
            .token_key
            .set(Arc::new(TokenKey::generate().unwrap()))
            .unwrap();
        let client = in_process::client(router(server), in_process::admin());
        stand_in_for_the_controller_manager(&client).await;
        let classes: Api<RuntimeClass> = Api::all(client.clone());
        let mut class = RuntimeClass {
            handler: "wasmtime".into(),
            ..RuntimeClass::default()
        };
        class.metadata.name = Some("wasmtime".into());
        classes
            .create(&PostParams::default(), &class)
            .await
            .unwrap();
        Self {
            client,
            dir: tempfile::tempdir().unwrap(),
            images: LocalImages::new(),
        }
    }

    /// Makes `image` a module compiled from `wat`.
    pub fn image(&mut self, image: &str, wat: &str) {
        let bytes = wat::parse_str(wat).expect("test guest is valid wat");
        let path = self
            .dir
            .path()
            .join(format!("{}.wasm", image.replace(['/', ':'], "_")));
        std::fs::write(&path, bytes).unwrap();
        self.images.insert(image, path);
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("node")
    }

    /// A fresh wasm runtime, as a newly started agent has.
    pub fn runtime(&self) -> Arc<WasmRuntime> {
        let mut config = WasmConfig::new(self.dir.path().join("cache"));
        config.max_instances = 50;
        config.max_memory_bytes = 64 << 20;
        Arc::new(WasmRuntime::new(config).unwrap())
    }

    /// Starts a node agent with fast backoffs; dropping the handle does not stop it, abort does.
    pub fn agent(&self, runtime: Arc<WasmRuntime>) -> JoinHandle<()> {
        self.agent_until(runtime, std::future::pending())
    }

    /// A node agent as [`Cluster::agent`] that shuts down cleanly when `shutdown` resolves.
    pub fn agent_until(
        &self,
        runtime: Arc<WasmRuntime>,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> JoinHandle<()> {
        let runtimes: Vec<Arc<dyn Runtime>> = vec![runtime];
        let mut options = NodeOptions::new(
            NODE,
            self.data_dir(),
            runtimes,
            Arc::new(self.images.clone()),
        );
        options.backoff = Backoff {
            initial: Duration::from_millis(400),
            max: Duration::from_secs(2),
            reset_after: Duration::from_secs(60),
        };
        options.lease_renew = Duration::from_millis(200);
        let client = self.client.clone();
        tokio::spawn(async move {
            if let Err(error) = rkube_node::run_until(client, options, shutdown).await {
                panic!("node agent failed: {error}");
            }
        })
    }

    pub fn pods(&self) -> Api<Pod> {
        Api::namespaced(self.client.clone(), "default")
    }

    pub async fn create(&self, pod: Pod) -> Pod {
        self.pods()
            .create(&PostParams::default(), &pod)
            .await
            .unwrap()
    }

    /// Polls the pod until `check` holds; panics with the last pod after `limit`.
    pub async fn wait_for(
        &self,
        name: &str,
        limit: Duration,
        what: &str,
        check: impl Fn(&Pod) -> bool,
    ) -> Pod {
        let deadline = Instant::now() + limit;
        loop {
            let pod = self.pods().get_opt(name).await.unwrap();
            if let Some(pod) = &pod
                && check(pod)
            {
                return pod.clone();
            }
            if Instant::now() > deadline {
                panic!(
                    "{what}: not within {limit:?}; last seen {:#?}",
                    pod.map(|p| p.status)
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Creates `pod`, waits until it ends and asserts that it Succeeded; returns it as it ended.
    pub async fn run_to_success(&self, pod: Pod) -> Pod {
        let name = pod.metadata.name.clone().unwrap_or_default();
        self.create(pod).await;
        let done = self
            .wait_for(&name, Duration::from_secs(10), "finished", |p| {
                matches!(phase(p), "Succeeded" | "Failed")
            })
            .await;
        assert_eq!(phase(&done), "Succeeded", "{:#?}", done.status);
        done
    }

    pub fn log(&self, uid: &str, container: &str, restart: i32) -> String {
        let path = self
            .data_dir()
            .join("pods")
            .join(uid)
            .join(container)
            .join(format!("{restart}.log"));
        std::fs::read_to_string(path).unwrap_or_default()
    }
}

/// A wasm pod bound to the test node with one container.
pub fn wasm_pod(name: &str, image: &str, restart_policy: &str) -> Pod {
    let mut pod = Pod {
        spec: Some(PodSpec {
            node_name: Some(NODE.into()),
            runtime_class_name: Some("wasmtime".into()),
            restart_policy: Some(restart_policy.into()),
            containers: vec![Container {
                name: "main".into(),
                image: Some(image.into()),
                ..Container::default()
            }],
            ..PodSpec::default()
        }),
        ..Pod::default()
    };
    pod.metadata.name = Some(name.into());
    pod.metadata.namespace = Some("default".into());
    pod
}

pub fn phase(pod: &Pod) -> &str {
    pod.status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or_default()
}

pub fn main_status(pod: &Pod) -> Option<&k8s_openapi::api::core::v1::ContainerStatus> {
    pod.status.as_ref()?.container_statuses.as_ref()?.first()
}

pub fn waiting_reason(pod: &Pod) -> Option<&str> {
    main_status(pod)?
        .state
        .as_ref()?
        .waiting
        .as_ref()?
        .reason
        .as_deref()
}
