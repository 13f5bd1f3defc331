//! Pod networking for runtimes that isolate pods (containerd): each pod gets a network
//! namespace (`ip netns`, so it outlives the node agent) with an address on a node-local bridge
//! from the standard CNI plugins (`bridge` + `host-local`, `loopback` for `lo`), configured by a
//! conflist the node writes under its data dir. What a pod got is recorded there too, so a
//! restarted agent finds its pods' addresses and can tear down pods deleted meanwhile.

mod cni;
mod error;

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

pub use self::error::NetworkError;

/// Where Debian's containernetworking-plugins live.
pub const DEFAULT_PLUGIN_DIR: &str = "/usr/lib/cni";
const NETWORK_NAME: &str = "rkube";
const CNI_VERSION: &str = "1.0.0";
const POD_INTERFACE: &str = "eth0";

#[derive(Clone, Debug)]
pub struct NetworkConfig {
    /// The CNI plugin binaries.
    pub plugin_dir: PathBuf,
    /// The conflist, IPAM leases and per-pod records.
    pub state_dir: PathBuf,
    /// Pod addresses come from this range, e.g. `10.88.0.0/16`.
    pub pod_cidr: String,
    /// The node-local bridge pods attach to.
    pub bridge: String,
}

/// The network a pod's containers join.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PodAddress {
    /// The bind-mounted namespace file containers are created in.
    pub netns: PathBuf,
    pub ip: IpAddr,
}

pub struct PodNetwork {
    config: NetworkConfig,
    conflist: Value,
}

impl PodNetwork {
    /// Writes the network's conflist; fails when the plugins are not installed.
    pub fn new(config: NetworkConfig) -> Result<Self, NetworkError> {
        for plugin in ["bridge", "host-local", "loopback"] {
            let path = config.plugin_dir.join(plugin);
            if !path.is_file() {
                return Err(NetworkError::MissingPlugin { path });
            }
        }
        let conflist = conflist(&config);
        let path = config.state_dir.join(format!("{NETWORK_NAME}.conflist"));
        std::fs::create_dir_all(config.state_dir.join("pods"))
            .and_then(|()| std::fs::write(&path, conflist.to_string()))
            .map_err(|source| NetworkError::State { path, source })?;
        Ok(Self { config, conflist })
    }

    fn record_path(&self, uid: &str) -> PathBuf {
        self.config
            .state_dir
            .join("pods")
            .join(format!("{uid}.json"))
    }

    /// The pod's network, set up unless an earlier call (of this or an earlier agent) did.
    pub async fn attach(&self, uid: &str) -> Result<PodAddress, NetworkError> {
        check_uid(uid)?;
        let record = self.record_path(uid);
        if let Ok(bytes) = tokio::fs::read(&record).await
            && let Ok(address) = serde_json::from_slice::<PodAddress>(&bytes)
            && address.netns.exists()
        {
            return Ok(address);
        }
        let name = netns_name(uid);
        // A leftover of an attach that failed half way.
        self.detach(uid).await?;
        cni::ip(&["netns", "add", &name]).await?;
        let netns = Path::new("/run/netns").join(&name);
        let address = match self.add(uid, &netns).await {
            Ok(ip) => PodAddress { netns, ip },
            Err(error) => {
                if let Err(cleanup) = self.detach(uid).await {
                    tracing::warn!(pod = uid, error = %cleanup, "cleaning up a failed pod network");
                }
                return Err(error);
            }
        };
        let json = serde_json::to_vec(&address).map_err(|e| NetworkError::State {
            path: record.clone(),
            source: std::io::Error::other(e),
        })?;
        tokio::fs::write(&record, json)
            .await
            .map_err(|source| NetworkError::State {
                path: record,
                source,
            })?;
        Ok(address)
    }

    async fn add(&self, uid: &str, netns: &Path) -> Result<IpAddr, NetworkError> {
        let plugins = &self.config.plugin_dir;
        cni::invoke(plugins, "ADD", uid, netns, "lo", &loopback()).await?;
        let result =
            cni::run_list(plugins, "ADD", uid, netns, POD_INTERFACE, &self.conflist).await?;
        cni::first_ip(&result)
    }

    /// Releases the pod's address and removes its namespace; a pod never attached is fine.
    pub async fn detach(&self, uid: &str) -> Result<(), NetworkError> {
        check_uid(uid)?;
        let name = netns_name(uid);
        let netns = Path::new("/run/netns").join(&name);
        // DEL must succeed even when the namespace is gone, so the lease is always released.
        cni::run_list(
            &self.config.plugin_dir,
            "DEL",
            uid,
            &netns,
            POD_INTERFACE,
            &self.conflist,
        )
        .await?;
        if netns.exists() {
            cni::ip(&["netns", "delete", &name]).await?;
        }
        let record = self.record_path(uid);
        match tokio::fs::remove_file(&record).await {
            Err(source) if source.kind() != std::io::ErrorKind::NotFound => {
                Err(NetworkError::State {
                    path: record,
                    source,
                })
            }
            _ => Ok(()),
        }
    }

    /// Pods that have a network on this node.
    pub async fn attached(&self) -> Result<Vec<String>, NetworkError> {
        let dir = self.config.state_dir.join("pods");
        let mut entries =
            tokio::fs::read_dir(&dir)
                .await
                .map_err(|source| NetworkError::State {
                    path: dir.clone(),
                    source,
                })?;
        let mut uids = Vec::new();
        while let Some(entry) =
            entries
                .next_entry()
                .await
                .map_err(|source| NetworkError::State {
                    path: dir.clone(),
                    source,
                })?
        {
            if let Some(uid) = entry
                .file_name()
                .to_str()
                .and_then(|n| n.strip_suffix(".json"))
            {
                uids.push(uid.to_string());
            }
        }
        Ok(uids)
    }
}

fn netns_name(uid: &str) -> String {
    format!("rkube-{uid}")
}

/// Pod uids name files and namespaces: only the characters a uid has.
fn check_uid(uid: &str) -> Result<(), NetworkError> {
    if uid.is_empty() || !uid.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
        return Err(NetworkError::InvalidUid {
            uid: uid.to_string(),
        });
    }
    Ok(())
}

fn conflist(config: &NetworkConfig) -> Value {
    json!({
        "cniVersion": CNI_VERSION,
        "name": NETWORK_NAME,
        "plugins": [{
            "type": "bridge",
            "bridge": config.bridge,
            "isGateway": true,
            "hairpinMode": true,
            "ipam": {
                "type": "host-local",
                "ranges": [[{ "subnet": config.pod_cidr }]],
                "routes": [{ "dst": "0.0.0.0/0" }],
                "dataDir": config.state_dir.join("ipam"),
            },
        }],
    })
}

fn loopback() -> Value {
    json!({ "cniVersion": CNI_VERSION, "name": "lo", "type": "loopback" })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_conflist_puts_pods_on_the_bridge_with_host_local_addresses() {
        let config = NetworkConfig {
            plugin_dir: PathBuf::from(DEFAULT_PLUGIN_DIR),
            state_dir: PathBuf::from("/data/cni"),
            pod_cidr: "10.99.0.0/16".into(),
            bridge: "rk0".into(),
        };
        let list = conflist(&config);
        let bridge = &list["plugins"][0];
        assert_eq!(bridge["bridge"], "rk0");
        assert_eq!(bridge["ipam"]["ranges"][0][0]["subnet"], "10.99.0.0/16");
        assert_eq!(bridge["ipam"]["dataDir"], "/data/cni/ipam");
    }

    #[test]
    fn uids_must_be_safe_names() {
        assert!(check_uid("3f1c-aa").is_ok());
        assert!(check_uid("../x").is_err());
        assert!(check_uid("").is_err());
    }
}
