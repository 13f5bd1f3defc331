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

/// The login of a registry from [`Registry::start_with_login`].
pub const REGISTRY_USERNAME: &str = "rkube";
pub const REGISTRY_PASSWORD: &str = "rkube-secret";
/// bcrypt (cost 4, for speed) of `REGISTRY_PASSWORD`, as the registry's htpasswd wants it.
const REGISTRY_PASSWORD_BCRYPT: &str =
    "$2b$04$Lh.vfFm0XjItW2yc39jZ6uMW1Szg3/3TVaHIT9XX7KItCvYjd/7Eu";

pub struct Registry {
    daemon: Daemon,
    port: u16,
}

impl Registry {
    /// Starts docker-registry open to anyone; fails (never skips) when it is not installed.
    pub fn start() -> anyhow::Result<Registry> {
        Self::start_with(false)
    }

    /// Starts docker-registry requiring basic auth as `REGISTRY_USERNAME`/`REGISTRY_PASSWORD`.
    pub fn start_with_login() -> anyhow::Result<Registry> {
        Self::start_with(true)
    }

    fn start_with(login: bool) -> anyhow::Result<Registry> {
        if !Path::new(BINARY).is_file() {
            return Err(anyhow!(
                "{BINARY} is missing; run the test setup: apt-get install docker-registry"
            ));
        }
        let mut last_error = None;
        for _ in 0..START_ATTEMPTS {
            match Self::start_once(login) {
                Ok(registry) => return Ok(registry),
                Err(e) => last_error = Some(e),
            }
        }
        Err(last_error.unwrap_or_else(|| anyhow!("docker-registry did not start")))
    }

    fn start_once(login: bool) -> anyhow::Result<Registry> {
        let port = free_port();
        let mut daemon = Daemon::spawn("registry", |dir| {
            let config = dir.join("config.yml");
            let htpasswd = dir.join("htpasswd");
            let auth = if login {
                format!(
                    "auth:\n  htpasswd:\n    realm: rkube-test\n    path: {}\n",
                    htpasswd.display()
                )
            } else {
                String::new()
            };
            // A failed write shows up as the registry failing to start.
            let _ = std::fs::write(
                &htpasswd,
                format!("{REGISTRY_USERNAME}:{REGISTRY_PASSWORD_BCRYPT}\n"),
            );
            let yaml = format!(
                "version: 0.1\n\
                 log:\n  level: info\n\
                 storage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\n\
                 http:\n  addr: 127.0.0.1:{port}\n{auth}",
                dir.join("data").display()
            );
            let _ = std::fs::write(&config, yaml);
            let mut command = Command::new(BINARY);
            command.arg("serve").arg(config);
            command
        })?;
        daemon
            .wait_until("GET /v2/ answers", START_TIMEOUT, || answers_v2(port))
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

/// The distribution API's base endpoint answers 200 (401 with a login) once the registry
/// serves.
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
    let status = response.split(' ').nth(1).unwrap_or_default();
    response.starts_with("HTTP/") && (status == "200" || status == "401")
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

    #[test]
    fn a_login_registry_turns_anonymous_requests_away() {
        let registry = Registry::start_with_login().expect("docker-registry starts");
        let addr = SocketAddr::from(([127, 0, 0, 1], registry.port));
        let mut stream = TcpStream::connect(addr).expect("connect");
        let request = format!("GET /v2/ HTTP/1.0\r\nHost: {}\r\n\r\n", registry.host());
        stream.write_all(request.as_bytes()).expect("send");
        let mut response = String::new();
        let _ = stream.read_to_string(&mut response);
        assert!(response.starts_with("HTTP/1.0 401"), "{response}");
    }
}
