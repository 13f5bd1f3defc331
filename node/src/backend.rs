//! A runtime as the node agent uses it: the runtime itself, where its images come from, and
//! whether its pods get a network of their own.

use std::sync::Arc;

use rkube_runtimes::Runtime;

use crate::image_source::ImageSource;
use crate::network::PodNetwork;

pub struct RuntimeBackend {
    pub runtime: Arc<dyn Runtime>,
    pub images: Arc<dyn ImageSource>,
    /// Pods of this runtime get their own network namespace and address; without it they
    /// share the node's (an in-process wasm guest has no namespace to put one in).
    pub network: Option<Arc<PodNetwork>>,
    /// The scheme of container ids in the pod status, e.g. `containerd` in `containerd://…`.
    pub id_scheme: String,
}

impl RuntimeBackend {
    /// A runtime whose pods use the node's network, with `wasm://` container ids.
    pub fn new(runtime: Arc<dyn Runtime>, images: Arc<dyn ImageSource>) -> Self {
        Self {
            runtime,
            images,
            network: None,
            id_scheme: "wasm".to_string(),
        }
    }

    pub fn handler(&self) -> &str {
        self.runtime.handler()
    }
}
