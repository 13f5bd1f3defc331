//! A throwaway OCI registry (Debian's docker-registry, the CNCF distribution server) on a
//! loopback port, storing into its temp dir.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, anyhow};

use crate::daemon::{Daemon, free_port};

const BINARY: &str = "/usr/bin/docker-registry";
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// Ports from `free_port` can be taken by a parallel test before the registry binds them.
const START_ATTEMPTS: usize = 3;

pub struct Registry {
    daemon: Daemon,
    port: u16,
}

impl Registry {
    /// Starts docker-registry; fails (never skips) when it is not installed.
    pub fn start() -> anyhow::Result<Registry> {
        if !Path::new(BINARY).is_file() {
            return Err(anyhow!(
                "{BINARY} is missing; run the test setup: apt-get install docker-registry"
            ));
        }
        let mut last_error = None;
        for _ in 0..START_ATTEMPTS {
            match Self::start_once() {
                Ok(registry) => return Ok(registry),
                Err(e) => last_error = Some(e),
            }
        }
        Err(last_error.unwrap_or_else(|| anyhow!("docker-registry did not start")))
    }

    fn start_once() -> anyhow::Result<Registry> {
        let port = free_port();
        let mut daemon = Daemon::spawn("registry", |dir| {
            let config = dir.join("config.yml");
            let yaml = format!(
                "version: 0.1\n\
                 log:\n  level: info\n\
                 storage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\n\
                 http:\n  addr: 127.0.0.1:{port}\n",
                dir.join("data").display()
            );
            // A failed write shows up as the registry exiting on a missing config.
            let _ = std::fs::write(&config, yaml);
            let mut command = Command::new(BINARY);
            command.arg("serve").arg(config);
            command
        })?;
        daemon
            .wait_until("GET /v2/ answers 200", START_TIMEOUT, || answers_v2(port))
            .context("starting docker-registry")?;
        Ok(Registry { daemon, port })
    }

    /// `127.0.0.1:<port>`, the registry part of an image reference.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn daemon(&self) -> &Daemon {
        &self.daemon
    }
}

/// The distribution API's base endpoint answers 200 once the registry serves.
fn answers_v2(port: u16) -> bool {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let Ok(mut stream) = TcpStream::connect_timeout(&addr, Duration::from_millis(200)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    let request = format!("GET /v2/ HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\n\r\n");
    if stream.write_all(request.as_bytes()).is_err() {
        return false;
    }
    let mut response = String::new();
    let _ = stream.read_to_string(&mut response);
    response.starts_with("HTTP/1.0 200") || response.starts_with("HTTP/1.1 200")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn starts_serving_and_stops_on_drop() {
        let registry = Registry::start()
            .expect("docker-registry must be installed: apt-get install docker-registry");
        assert!(answers_v2(registry.port));
        let port = registry.port;
        drop(registry);
        assert!(!answers_v2(port));
    }
}
