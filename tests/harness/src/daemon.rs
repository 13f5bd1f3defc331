//! A supervised child process for tests: logs to files, readiness with a deadline, killed on drop.

use std::fs::File;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use tempfile::TempDir;

const POLL_INTERVAL: Duration = Duration::from_millis(50);
const LOG_TAIL_LINES: usize = 40;

/// A loopback TCP port that was free a moment ago (the OS picked it).
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("binding an ephemeral loopback port");
    listener
        .local_addr()
        .expect("reading the ephemeral port")
        .port()
}

/// A running child process with its own temp dir holding `<name>.stdout` and `<name>.stderr`.
pub struct Daemon {
    name: String,
    child: Child,
    dir: TempDir,
}

impl Daemon {
    /// Creates a temp dir, builds the command with it (so the daemon can keep its data there),
    /// redirects stdout/stderr to files in it and spawns.
    pub fn spawn(name: &str, build: impl FnOnce(&Path) -> Command) -> anyhow::Result<Daemon> {
        let dir = tempfile::Builder::new()
            .prefix(&format!("rkube-{name}-"))
            .tempdir()
            .context("creating the daemon temp dir")?;
        let mut command = build(dir.path());
        let stdout = File::create(dir.path().join(format!("{name}.stdout")))?;
        let stderr = File::create(dir.path().join(format!("{name}.stderr")))?;
        command.stdin(Stdio::null()).stdout(stdout).stderr(stderr);
        let child = command
            .spawn()
            .with_context(|| format!("spawning {name}: {command:?}"))?;
        Ok(Daemon {
            name: name.to_string(),
            child,
            dir,
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The daemon's temp dir (removed on drop).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn stdout_path(&self) -> PathBuf {
        self.dir.path().join(format!("{}.stdout", self.name))
    }

    pub fn stderr_path(&self) -> PathBuf {
        self.dir.path().join(format!("{}.stderr", self.name))
    }

    /// Waits until `127.0.0.1:port` accepts a TCP connection.
    pub fn wait_for_port(&mut self, port: u16, timeout: Duration) -> anyhow::Result<()> {
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        self.wait_until(&format!("port {port} accepts"), timeout, || {
            TcpStream::connect_timeout(&addr, POLL_INTERVAL).is_ok()
        })
    }

    /// Polls `ready` until it holds; fails early if the process exits, and with the log tail
    /// on timeout.
    pub fn wait_until(
        &mut self,
        what: &str,
        timeout: Duration,
        mut ready: impl FnMut() -> bool,
    ) -> anyhow::Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait()? {
                bail!(
                    "{} exited ({status}) before {what}\n{}",
                    self.name,
                    self.log_tail()
                );
            }
            if ready() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                bail!(
                    "{} not ready after {timeout:?}: waited for {what}\n{}",
                    self.name,
                    self.log_tail()
                );
            }
            std::thread::sleep(POLL_INTERVAL);
        }
    }

    /// The last lines of stdout and stderr, for error messages.
    pub fn log_tail(&self) -> String {
        let tail = |path: PathBuf| {
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            let start = lines.len().saturating_sub(LOG_TAIL_LINES);
            format!("--- {} ---\n{}", path.display(), lines[start..].join("\n"))
        };
        format!("{}\n{}", tail(self.stdout_path()), tail(self.stderr_path()))
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        // Kill by PID and reap, so no process or zombie outlives the test.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shell(script: &'static str) -> impl FnOnce(&Path) -> Command {
        move |_| {
            let mut command = Command::new("sh");
            command.args(["-c", script]);
            command
        }
    }

    #[test]
    fn free_ports_can_be_bound() {
        let port = free_port();
        assert!(TcpListener::bind(("127.0.0.1", port)).is_ok());
    }

    #[test]
    fn early_exit_reports_status_and_log_tail() {
        let mut daemon =
            Daemon::spawn("early", shell("echo to-stdout; echo to-stderr >&2; exit 3"))
                .expect("spawn sh");
        let err = daemon
            .wait_for_port(free_port(), Duration::from_secs(10))
            .expect_err("the process exits without listening");
        let message = format!("{err:#}");
        assert!(message.contains("exited"), "{message}");
        assert!(message.contains("to-stdout"), "{message}");
        assert!(message.contains("to-stderr"), "{message}");
    }

    #[test]
    fn timeout_reports_what_was_awaited() {
        let mut daemon = Daemon::spawn("sleeper", shell("echo waiting; sleep 30")).expect("spawn");
        let err = daemon
            .wait_until("never", Duration::from_millis(300), || false)
            .expect_err("the check never passes");
        let message = format!("{err:#}");
        assert!(message.contains("not ready"), "{message}");
        assert!(message.contains("never"), "{message}");
    }

    #[test]
    fn drop_kills_the_process() {
        let daemon = Daemon::spawn("victim", shell("sleep 30")).expect("spawn");
        let proc_dir = PathBuf::from(format!("/proc/{}", daemon.pid()));
        assert!(proc_dir.exists());
        drop(daemon);
        assert!(!proc_dir.exists(), "process still present after drop");
    }
}
