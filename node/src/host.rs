//! Facts about the machine the node agent runs on, as the Node object reports them.

use std::net::{IpAddr, Ipv4Addr, UdpSocket};

#[derive(Clone, Debug)]
pub struct HostInfo {
    pub hostname: String,
    pub ip: IpAddr,
    pub cpus: usize,
    pub memory_bytes: u64,
    /// Kubernetes names: `linux`, `amd64`/`arm64`.
    pub os: String,
    pub arch: String,
    pub kernel: String,
    pub os_image: String,
    pub machine_id: String,
    pub boot_id: String,
}

impl HostInfo {
    pub fn detect() -> Self {
        let read = |path: &str| {
            std::fs::read_to_string(path)
                .map(|s| s.trim().to_string())
                .unwrap_or_default()
        };
        let hostname = read("/proc/sys/kernel/hostname");
        Self {
            hostname: if hostname.is_empty() {
                "localhost".into()
            } else {
                hostname
            },
            ip: outbound_ip(),
            cpus: std::thread::available_parallelism().map_or(1, |n| n.get()),
            memory_bytes: mem_total(&read("/proc/meminfo")).unwrap_or(0),
            os: std::env::consts::OS.to_string(),
            arch: kube_arch(std::env::consts::ARCH).to_string(),
            kernel: read("/proc/sys/kernel/osrelease"),
            os_image: pretty_name(&read("/etc/os-release")).unwrap_or_else(|| "Linux".into()),
            machine_id: read("/etc/machine-id"),
            boot_id: read("/proc/sys/kernel/random/boot_id"),
        }
    }
}

/// The address other machines reach this one at: the source of the default route. Connecting
/// a UDP socket sends nothing; without a route the node falls back to loopback.
fn outbound_ip() -> IpAddr {
    UdpSocket::bind("0.0.0.0:0")
        .and_then(|socket| {
            socket.connect("192.0.2.1:9")?;
            socket.local_addr()
        })
        .map(|addr| addr.ip())
        .ok()
        .filter(|ip| !ip.is_unspecified())
        .unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST))
}

fn mem_total(meminfo: &str) -> Option<u64> {
    let line = meminfo.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    kib.checked_mul(1024)
}

fn pretty_name(os_release: &str) -> Option<String> {
    let value = os_release
        .lines()
        .find_map(|l| l.strip_prefix("PRETTY_NAME="))?;
    Some(value.trim_matches('"').to_string())
}

/// Kubernetes' (and OCI's) name of a Rust target architecture.
pub(crate) fn kube_arch(rust_arch: &str) -> &str {
    match rust_arch {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" => "ppc64le",
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_proc_and_os_release() {
        let meminfo = "MemTotal:       16318480 kB\nMemFree:         1000 kB\n";
        assert_eq!(mem_total(meminfo), Some(16_318_480 * 1024));
        assert_eq!(mem_total("nothing"), None);
        let os_release = "NAME=\"Debian\"\nPRETTY_NAME=\"Debian GNU/Linux 13\"\n";
        assert_eq!(
            pretty_name(os_release).as_deref(),
            Some("Debian GNU/Linux 13")
        );
        assert_eq!(kube_arch("x86_64"), "amd64");
        assert_eq!(kube_arch("aarch64"), "arm64");
    }

    #[test]
    fn detects_this_machine() {
        let host = HostInfo::detect();
        assert!(host.cpus >= 1);
        assert!(host.memory_bytes > 0);
        assert!(!host.hostname.is_empty());
    }
}
