//! What every pod worker shares.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

use kube::Client;
use rkube_client::events::Recorder;
use rkube_runtimes::Runtime;
use tokio::sync::watch;

use crate::image_source::ImageSource;
use crate::options::Backoff;
use crate::paths::Layout;

pub struct Context {
    pub client: Client,
    pub node_name: String,
    pub node_ip: IpAddr,
    pub layout: Layout,
    pub runtimes: HashMap<String, Arc<dyn Runtime>>,
    pub images: Arc<dyn ImageSource>,
    pub backoff: Backoff,
    pub recorder: Recorder,
    /// Turns true when the agent shuts down: workers kill their containers and leave the pods
    /// in the API as they are.
    pub node_stopping: watch::Receiver<bool>,
}
