//! A throwaway single-member etcd on loopback ports, for tests against the real thing.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, anyhow};

use crate::daemon::{Daemon, free_port};

const START_TIMEOUT: Duration = Duration::from_secs(30);
/// Ports from `free_port` can be taken by a parallel test before etcd binds them.
const START_ATTEMPTS: usize = 3;

pub struct Etcd {
    daemon: Daemon,
    client_port: u16,
}

impl Etcd {
    /// Starts etcd from PATH with its data dir in a temp dir; fails (never skips) when etcd
    /// is not installed.
    pub fn start() -> anyhow::Result<Etcd> {
        let binary = find_on_path("etcd").ok_or_else(|| {
            anyhow!(
                "etcd is not installed (not found on PATH); run the test setup: \
                 apt-get install etcd-server"
            )
        })?;
        let mut last_error = None;
        for _ in 0..START_ATTEMPTS {
            match Self::start_once(&binary) {
                Ok(etcd) => return Ok(etcd),
                Err(e) => last_error = Some(e),
            }
        }
        Err(last_error.unwrap_or_else(|| anyhow!("etcd did not start")))
    }

    fn start_once(binary: &Path) -> anyhow::Result<Etcd> {
        let client_port = free_port();
        let peer_port = free_port();
        let client_url = format!("http://127.0.0.1:{client_port}");
        let peer_url = format!("http://127.0.0.1:{peer_port}");
        let mut daemon = Daemon::spawn("etcd", |dir| {
            let mut command = Command::new(binary);
            command
                .arg("--name=rkube-test")
                .arg(format!("--data-dir={}", dir.join("data").display()))
                .arg(format!("--listen-client-urls={client_url}"))
                .arg(format!("--advertise-client-urls={client_url}"))
                .arg(format!("--listen-peer-urls={peer_url}"))
                .arg(format!("--initial-advertise-peer-urls={peer_url}"))
                .arg(format!("--initial-cluster=rkube-test={peer_url}"))
                .arg("--initial-cluster-state=new")
                .arg("--logger=zap")
                .arg("--log-outputs=stderr");
            command
        })?;
        daemon
            .wait_until("etcd /health reports healthy", START_TIMEOUT, || {
                is_healthy(client_port)
            })
            .context("starting etcd")?;
        Ok(Etcd {
            daemon,
            client_port,
        })
    }

    /// The client URL, e.g. `http://127.0.0.1:40123`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.client_port)
    }

    pub fn daemon(&self) -> &Daemon {
        &self.daemon
    }
}

fn find_on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}

/// etcd answers `/health` with `"health":"true"` once it has a leader and serves requests.
fn is_healthy(port: u16) -> bool {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let Ok(mut stream) = TcpStream::connect_timeout(&addr, Duration::from_millis(200)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    let request = format!("GET /health HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\n\r\n");
    if stream.write_all(request.as_bytes()).is_err() {
        return false;
    }
    let mut response = String::new();
    let _ = stream.read_to_string(&mut response);
    response.contains("\"health\":\"true\"")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn starts_healthy_and_stops_on_drop() {
        let etcd = Etcd::start().expect("etcd must be installed: apt-get install etcd-server");
        assert!(etcd.endpoint().starts_with("http://127.0.0.1:"));
        assert!(is_healthy(etcd.client_port));
        let port = etcd.client_port;
        let data = etcd.daemon().dir().join("data");
        assert!(data.exists());
        drop(etcd);
        assert!(!is_healthy(port));
        assert!(!data.exists(), "temp dir removed on drop");
    }
}
