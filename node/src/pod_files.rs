//! The files the kubelet manages for a pod with a network of its own: `/etc/hosts` naming the
//! pod at its IP, and `/etc/resolv.conf`, the host's (what `dnsPolicy: Default` gives; rkube
//! runs no cluster DNS, and the kubelet falls back to the host's without one too).

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::Pod;
use kube::ResourceExt;
use rkube_runtimes::Mount;

use crate::paths::Layout;

const HOST_RESOLV_CONF: &str = "/etc/resolv.conf";

/// A pod's hosts and resolv.conf on the host, bind-mounted into each of its containers.
#[derive(Debug)]
pub struct PodFiles {
    hosts: PathBuf,
    resolv_conf: PathBuf,
}

impl PodFiles {
    /// Writes both files for `pod` at `ip`, under the node's data dir.
    pub async fn write(layout: &Layout, pod: &Pod, ip: IpAddr) -> std::io::Result<PodFiles> {
        let dir = layout.pod_etc(&pod.uid().unwrap_or_default());
        tokio::fs::create_dir_all(&dir).await?;
        let files = PodFiles {
            hosts: dir.join("hosts"),
            resolv_conf: dir.join("resolv.conf"),
        };
        tokio::fs::write(&files.hosts, hosts_file(pod, ip)).await?;
        let resolv = match tokio::fs::read(HOST_RESOLV_CONF).await {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(e),
        };
        tokio::fs::write(&files.resolv_conf, resolv).await?;
        Ok(files)
    }

    /// The bind mounts for a container, leaving out a path the container mounts itself.
    pub fn mounts(&self, container_mounts: &[Mount]) -> Vec<Mount> {
        [
            (&self.hosts, "/etc/hosts"),
            (&self.resolv_conf, "/etc/resolv.conf"),
        ]
        .into_iter()
        .filter(|(_, target)| {
            !container_mounts
                .iter()
                .any(|m| Path::new(&m.container_path) == Path::new(target))
        })
        .map(|(source, target)| Mount {
            host_path: source.clone(),
            container_path: target.to_string(),
            read_only: false,
        })
        .collect()
    }
}

/// The pod's host name: `spec.hostname`, else its name cut to a DNS label's 63 characters.
pub fn hostname(pod: &Pod) -> String {
    let name = pod.spec.as_ref().and_then(|s| s.hostname.clone());
    let mut name = name.unwrap_or_else(|| pod.name_any());
    name.truncate(63);
    name.trim_end_matches(['-', '.']).to_string()
}

/// As the kubelet writes it: loopback names, then the pod's IP with its host name (and its
/// fully qualified name when `spec.subdomain` puts it under a headless Service), then
/// `spec.hostAliases`.
fn hosts_file(pod: &Pod, ip: IpAddr) -> String {
    let mut text = String::from(
        "# Kubernetes-managed hosts file.\n\
         127.0.0.1\tlocalhost\n\
         ::1\tlocalhost ip6-localhost ip6-loopback\n\
         fe00::0\tip6-localnet\n\
         fe00::0\tip6-mcastprefix\n\
         fe00::1\tip6-allnodes\n\
         fe00::2\tip6-allrouters\n",
    );
    let name = hostname(pod);
    let spec = pod.spec.as_ref();
    match spec.and_then(|s| s.subdomain.as_deref()) {
        Some(subdomain) => {
            let namespace = pod.namespace().unwrap_or_else(|| "default".into());
            let fqdn = format!("{name}.{subdomain}.{namespace}.svc.cluster.local");
            text.push_str(&format!("{ip}\t{fqdn}\t{name}\n"));
        }
        None => text.push_str(&format!("{ip}\t{name}\n")),
    }
    let aliases = spec.and_then(|s| s.host_aliases.as_ref());
    for alias in aliases.into_iter().flatten() {
        let names = alias.hostnames.clone().unwrap_or_default().join("\t");
        text.push_str(&format!(
            "\n# Entries added by HostAliases.\n{}\t{names}\n",
            alias.ip
        ));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(spec: serde_json::Value) -> Pod {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "web-7f9c", "namespace": "shop", "uid": "u1"},
            "spec": spec,
        }))
        .expect("a pod")
    }

    #[test]
    fn hosts_name_the_pod_at_its_ip() {
        let ip: IpAddr = "10.88.0.7".parse().expect("ip");
        let plain = hosts_file(&pod(serde_json::json!({"containers": []})), ip);
        assert!(plain.starts_with("# Kubernetes-managed hosts file.\n127.0.0.1\tlocalhost\n"));
        assert!(plain.ends_with("10.88.0.7\tweb-7f9c\n"), "{plain}");

        let named = pod(serde_json::json!({
            "containers": [], "hostname": "db-0", "subdomain": "db",
            "hostAliases": [{"ip": "10.0.0.1", "hostnames": ["a.example", "b.example"]}],
        }));
        let text = hosts_file(&named, ip);
        assert!(
            text.contains("10.88.0.7\tdb-0.db.shop.svc.cluster.local\tdb-0\n"),
            "{text}"
        );
        assert!(
            text.ends_with("# Entries added by HostAliases.\n10.0.0.1\ta.example\tb.example\n")
        );
    }

    #[test]
    fn a_long_name_is_cut_to_a_label() {
        let long = format!("{}-x", "a".repeat(62));
        let mut p = pod(serde_json::json!({"containers": []}));
        p.metadata.name = Some(long);
        assert_eq!(hostname(&p), "a".repeat(62));
    }

    #[tokio::test]
    async fn files_are_mounted_unless_the_container_mounts_the_path() {
        let dir = tempfile::tempdir().expect("temp dir");
        let layout = Layout::new(dir.path());
        let p = pod(serde_json::json!({"containers": []}));
        let files = PodFiles::write(&layout, &p, "10.88.0.7".parse().expect("ip"))
            .await
            .expect("written");
        let hosts = std::fs::read_to_string(&files.hosts).expect("hosts");
        assert!(hosts.contains("10.88.0.7\tweb-7f9c"));
        assert_eq!(files.mounts(&[]).len(), 2);
        let own = Mount {
            host_path: PathBuf::from("/x"),
            container_path: "/etc/hosts".into(),
            read_only: true,
        };
        let mounts = files.mounts(&[own]);
        assert_eq!(mounts.len(), 1);
        assert_eq!(mounts[0].container_path, "/etc/resolv.conf");
    }
}
