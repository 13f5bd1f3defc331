//! The node's runtime backends, as `--runtime` names them: `wasm` (in-process wasmtime with
//! the OCI puller) and `containerd` (with its image store and CNI pod networking).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use rkube_node::RuntimeBackend;

/// The runtime flags `rkube up` and `rkube node` share.
#[derive(clap::Args)]
pub struct RuntimeFlags {
    /// containerd's gRPC socket (`rkube up` runs container pods when it answers).
    #[arg(long, default_value = "/run/containerd/containerd.sock")]
    pub containerd_socket: PathBuf,
    /// Addresses of containerd pods come from this range (CNI bridge + host-local).
    #[arg(long, default_value = "10.88.0.0/16")]
    pub pod_cidr: String,
    /// The node-local bridge containerd pods attach to.
    #[arg(long, default_value = "rkube0")]
    pub pod_bridge: String,
    /// Registries to reach over plain HTTP besides loopback ones.
    #[arg(long, value_delimiter = ',')]
    pub insecure_registry: Vec<String>,
}

/// The backend of one `--runtime` name, its state under the node's data dir.
pub async fn backend(
    name: &str,
    data_dir: &Path,
    options: &RuntimeFlags,
) -> anyhow::Result<RuntimeBackend> {
    let layout = rkube_node::paths::Layout::new(data_dir);
    match name {
        "wasm" => {
            let wasm = rkube_runtimes::wasm::WasmRuntime::new(
                rkube_runtimes::wasm::WasmConfig::new(data_dir.join("compiled")),
            )
            .context("starting the wasm runtime")?;
            let images = rkube_node::images::OciImages::new(
                data_dir.join("images"),
                options.insecure_registry.clone(),
            );
            Ok(RuntimeBackend::new(Arc::new(wasm), Arc::new(images)))
        }
        "containerd" => {
            let handler = rkube_runtimes::containerd::HANDLER;
            let mut config = rkube_runtimes::containerd::ContainerdConfig::new(
                &options.containerd_socket,
                layout.runtime_state(handler),
            );
            config.insecure_registries = options.insecure_registry.clone();
            let runtime = Arc::new(
                rkube_runtimes::containerd::ContainerdRuntime::connect(config)
                    .await
                    .with_context(|| {
                        format!(
                            "connecting to containerd at {}",
                            options.containerd_socket.display()
                        )
                    })?,
            );
            let network =
                rkube_node::network::PodNetwork::new(rkube_node::network::NetworkConfig {
                    plugin_dir: PathBuf::from(rkube_node::network::DEFAULT_PLUGIN_DIR),
                    state_dir: data_dir.join("cni"),
                    pod_cidr: options.pod_cidr.clone(),
                    bridge: options.pod_bridge.clone(),
                })
                .context("setting up pod networking")?;
            let images = rkube_node::images::ContainerdImages::new(runtime.clone());
            Ok(RuntimeBackend {
                runtime,
                images: Arc::new(images),
                network: Some(Arc::new(network)),
                id_scheme: "containerd".to_string(),
            })
        }
        other => anyhow::bail!("unknown runtime {other:?}: use wasm and/or containerd"),
    }
}
