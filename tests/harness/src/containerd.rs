//! A throwaway containerd (Debian's, with runc) with its own config, root, state and socket
//! under its temp dir. Needs root.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use anyhow::{Context, anyhow, bail};

use crate::daemon::Daemon;

const BINARY: &str = "/usr/bin/containerd";
const CTR: &str = "/usr/bin/ctr";
const START_TIMEOUT: Duration = Duration::from_secs(30);

pub struct Containerd {
    daemon: Daemon,
}

/// Whether this process runs as root (containerd and runc need it).
pub fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status").is_ok_and(|status| {
        status
            .lines()
            .find_map(|line| line.strip_prefix("Uid:"))
            .and_then(|ids| ids.split_whitespace().nth(1))
            == Some("0")
    })
}

impl Containerd {
    /// Starts containerd; fails (never skips) when it or runc is not installed.
    pub fn start() -> anyhow::Result<Containerd> {
        for binary in [
            BINARY,
            CTR,
            "/usr/bin/runc",
            "/usr/bin/containerd-shim-runc-v2",
        ] {
            if !Path::new(binary).is_file() {
                bail!("{binary} is missing; run the test setup: apt-get install containerd runc");
            }
        }
        if !is_root() {
            bail!("containerd needs root");
        }
        let mut daemon = Daemon::spawn("containerd", |dir| {
            let config = format!(
                "version = 2\n\
                 root = \"{dir}/root\"\n\
                 state = \"{dir}/state\"\n\
                 disabled_plugins = [\"io.containerd.grpc.v1.cri\"]\n\
                 [grpc]\n  address = \"{dir}/containerd.sock\"\n\
                 [ttrpc]\n  address = \"{dir}/containerd.sock.ttrpc\"\n\
                 [plugins.\"io.containerd.internal.v1.opt\"]\n  path = \"{dir}/opt\"\n",
                dir = dir.display()
            );
            // A failed write shows up as containerd failing to start.
            let _ = std::fs::write(dir.join("config.toml"), config);
            let mut command = Command::new(BINARY);
            command.arg("--config").arg(dir.join("config.toml"));
            command
        })?;
        let socket = daemon.dir().join("containerd.sock");
        let probe = socket.clone();
        daemon
            .wait_until("ctr version answers", START_TIMEOUT, || {
                Command::new(CTR)
                    .arg("--address")
                    .arg(&probe)
                    .arg("version")
                    .output()
                    .is_ok_and(|o| o.status.success())
            })
            .context("starting containerd")?;
        Ok(Containerd { daemon })
    }

    pub fn socket(&self) -> PathBuf {
        self.daemon.dir().join("containerd.sock")
    }

    /// A scratch directory inside containerd's temp dir (removed on drop).
    pub fn scratch(&self, name: &str) -> anyhow::Result<PathBuf> {
        let dir = self.daemon.dir().join("scratch").join(name);
        std::fs::create_dir_all(&dir)?;
        Ok(dir)
    }

    /// Runs `ctr --address <socket> --namespace <namespace> <args>`; fails on a non-zero exit.
    pub fn ctr(&self, namespace: &str, args: &[&str]) -> anyhow::Result<String> {
        let Output {
            status,
            stdout,
            stderr,
        } = Command::new(CTR)
            .arg("--address")
            .arg(self.socket())
            .arg("--namespace")
            .arg(namespace)
            .args(args)
            .output()
            .context("running ctr")?;
        if !status.success() {
            return Err(anyhow!(
                "ctr {args:?}: {status}: {}",
                String::from_utf8_lossy(&stderr)
            ));
        }
        Ok(String::from_utf8_lossy(&stdout).into_owned())
    }

    pub fn daemon(&self) -> &Daemon {
        &self.daemon
    }

    /// Shims this containerd started: they outlive it unless killed.
    fn shim_pids(&self) -> Vec<u32> {
        let socket = self.socket().display().to_string();
        let Ok(entries) = std::fs::read_dir("/proc") else {
            return Vec::new();
        };
        entries
            .flatten()
            .filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok())
            .filter(|pid| {
                std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|cmdline| {
                    let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
                    args.first()
                        .is_some_and(|a| a.ends_with(b"containerd-shim-runc-v2"))
                        && args.contains(&socket.as_bytes())
                })
            })
            .collect()
    }

    /// Mounts (container rootfs, shim state) left under the temp dir, deepest first.
    fn leftover_mounts(&self) -> Vec<String> {
        let root = self.daemon.dir().display().to_string();
        let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        let mut mounts: Vec<String> = mountinfo
            .lines()
            .filter_map(|line| line.split(' ').nth(4))
            .filter(|point| point.starts_with(&root))
            .map(String::from)
            .collect();
        mounts.sort_by_key(|m| std::cmp::Reverse(m.len()));
        mounts
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        for pid in self.shim_pids() {
            let _ = Command::new("kill").arg("-9").arg(pid.to_string()).status();
        }
        for mount in self.leftover_mounts() {
            let _ = Command::new("umount").arg("-l").arg(&mount).status();
        }
        // The daemon (and its temp dir) goes when `daemon` drops: killed by PID.
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn starts_answers_and_stops_on_drop() {
        if !is_root() {
            eprintln!("skipped: containerd needs root");
            return;
        }
        let containerd =
            Containerd::start().expect("containerd starts: apt-get install containerd runc");
        let version = containerd
            .ctr("default", &["version"])
            .expect("ctr version");
        assert!(version.contains("Server"), "{version}");
        let socket = containerd.socket();
        let pid = containerd.daemon().pid();
        drop(containerd);
        assert!(!Path::new(&format!("/proc/{pid}")).exists());
        assert!(!socket.exists());
    }
}
