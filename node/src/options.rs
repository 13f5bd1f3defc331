//! What a node agent is configured with.

use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use rkube_runtimes::Runtime;

use crate::backend::RuntimeBackend;
use crate::image_source::ImageSource;
use crate::kubelet::KubeletOptions;

/// Delays between restarts of a crashing container (and between image pull attempts):
/// `initial`, doubling up to `max`; a container that ran for `reset_after` starts over.
#[derive(Clone, Copy, Debug)]
pub struct Backoff {
    pub initial: Duration,
    pub max: Duration,
    pub reset_after: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            initial: Duration::from_secs(10),
            max: Duration::from_secs(300),
            reset_after: Duration::from_secs(600),
        }
    }
}

impl Backoff {
    /// The delay before the attempt after `failures` consecutive failures (1 → `initial`).
    pub fn delay(&self, failures: u32) -> Duration {
        let doublings = failures.saturating_sub(1).min(31);
        self.initial
            .checked_mul(1u32 << doublings)
            .map_or(self.max, |d| d.min(self.max))
    }
}

pub struct NodeOptions {
    /// The Node object's name.
    pub name: String,
    /// Logs, volumes and runtime state live here (see [`crate::paths`]).
    pub data_dir: PathBuf,
    /// One per RuntimeClass handler this node serves.
    pub backends: Vec<RuntimeBackend>,
    /// The address reported for the node and its host-network (wasm) pods; detected when `None`.
    pub node_ip: Option<IpAddr>,
    pub backoff: Backoff,
    /// How often the node Lease is renewed.
    pub lease_renew: Duration,
    /// How often the Ready condition's heartbeat is refreshed.
    pub status_refresh: Duration,
    /// Serve the kubelet API (container logs, exec); off when `None`.
    pub kubelet: Option<KubeletOptions>,
}

impl NodeOptions {
    /// Options for `runtimes` that share one image source and the node's network.
    pub fn new(
        name: impl Into<String>,
        data_dir: impl Into<PathBuf>,
        runtimes: Vec<Arc<dyn Runtime>>,
        images: Arc<dyn ImageSource>,
    ) -> Self {
        let backends = runtimes
            .into_iter()
            .map(|runtime| RuntimeBackend::new(runtime, images.clone()))
            .collect();
        Self::with_backends(name, data_dir, backends)
    }

    /// Options for runtimes each with its own images and networking.
    pub fn with_backends(
        name: impl Into<String>,
        data_dir: impl Into<PathBuf>,
        backends: Vec<RuntimeBackend>,
    ) -> Self {
        Self {
            name: name.into(),
            data_dir: data_dir.into(),
            backends,
            node_ip: None,
            backoff: Backoff::default(),
            lease_renew: Duration::from_secs(10),
            status_refresh: Duration::from_secs(60),
            kubelet: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let backoff = Backoff::default();
        let secs: Vec<u64> = (1..=7).map(|n| backoff.delay(n).as_secs()).collect();
        assert_eq!(secs, vec![10, 20, 40, 80, 160, 300, 300]);
        assert_eq!(backoff.delay(100).as_secs(), 300);
    }
}
