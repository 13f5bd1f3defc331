//! What every pod worker shares.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};

use kube::Client;
use rkube_client::events::Recorder;
use rkube_runtimes::ContainerInfo;
use tokio::sync::watch;

use crate::backend::RuntimeBackend;
use crate::options::Backoff;
use crate::paths::Layout;
use crate::volumes::TokenSource;

pub struct Context {
    pub client: Client,
    pub node_name: String,
    pub node_ip: IpAddr,
    pub layout: Layout,
    /// By RuntimeClass handler.
    pub runtimes: HashMap<String, Arc<RuntimeBackend>>,
    pub backoff: Backoff,
    pub recorder: Recorder,
    /// Service-account tokens for projected volumes.
    pub tokens: Arc<dyn TokenSource>,
    /// Turns true when the agent shuts down: workers kill their containers and leave the pods
    /// in the API as they are.
    pub node_stopping: watch::Receiver<bool>,
    /// Containers the runtimes still had when the agent started, by pod uid: each pod's worker
    /// takes its own to adopt those still running.
    pub leftovers: Mutex<HashMap<String, Vec<Leftover>>>,
}

/// A container an earlier agent created, and the runtime handler it belongs to.
#[derive(Clone, Debug)]
pub struct Leftover {
    pub handler: String,
    pub container: ContainerInfo,
}

impl Context {
    /// The containers an earlier agent left for this pod (once: later calls get none).
    pub fn take_leftovers(&self, uid: &str) -> Vec<Leftover> {
        self.leftovers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(uid)
            .unwrap_or_default()
    }
}
