//! One attempt of a probe: run its action against the container and judge the answer.

use std::io;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use k8s_openapi::api::core::v1::ContainerPort;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use rkube_runtimes::{ContainerId, ExecSpec, Runtime, RuntimeError};
use tokio::io::AsyncWrite;
use tokio::net::TcpStream;

use super::check::Action;
use super::http;

/// Output an exec probe keeps for its message, as much as the kubelet reads.
const MAX_OUTPUT: usize = 10 * 1024;

/// What one attempt found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    Success,
    /// The container answered wrongly or not at all; the message says how.
    Failure(String),
}

/// The probe could not be carried out; the attempt does not count either way.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error("gRPC probes are not supported by this node")]
    GrpcUnsupported,
    #[error("the probe names no action")]
    NoAction,
    #[error("the probe's exec command is empty")]
    EmptyCommand,
    #[error("port {port} is not a named container port")]
    UnknownPort { port: String },
    #[error("port {port} is out of range")]
    PortRange { port: i64 },
    #[error("invalid http probe {what}: {reason}")]
    InvalidRequest { what: String, reason: String },
    #[error("tls client setup: {reason}")]
    Tls { reason: String },
    #[error("running the exec probe: {source}")]
    Exec {
        #[source]
        source: RuntimeError,
    },
}

/// Where the probes of one container run run.
pub struct Target<'a> {
    pub runtime: &'a dyn Runtime,
    pub id: &'a ContainerId,
    pub pod_ip: IpAddr,
    pub ports: &'a [ContainerPort],
}

impl Target<'_> {
    /// `host` if the probe names one, else the pod's IP.
    fn host(&self, host: Option<&String>) -> String {
        host.filter(|h| !h.is_empty())
            .cloned()
            .unwrap_or_else(|| self.pod_ip.to_string())
    }

    /// A port by number or by the name of one of the container's ports.
    fn port(&self, port: &IntOrString) -> Result<u16, ProbeError> {
        let number = match port {
            IntOrString::Int(n) => i64::from(*n),
            IntOrString::String(name) => match self
                .ports
                .iter()
                .find(|p| p.name.as_deref() == Some(name.as_str()))
            {
                Some(found) => i64::from(found.container_port),
                // As the kubelet, a number spelled as a string still works.
                None => name
                    .parse()
                    .map_err(|_| ProbeError::UnknownPort { port: name.clone() })?,
            },
        };
        u16::try_from(number)
            .ok()
            .filter(|p| *p != 0)
            .ok_or(ProbeError::PortRange { port: number })
    }
}

/// Runs `action` once, `timeout` counting as a failure.
pub async fn attempt(
    action: &Action,
    target: &Target<'_>,
    timeout: Duration,
) -> Result<Verdict, ProbeError> {
    match action {
        Action::Exec(command) => exec(command, target, timeout).await,
        Action::HttpGet(get) => {
            let host = target.host(get.host.as_ref());
            let port = target.port(&get.port)?;
            http::get(get, &host, port, timeout).await
        }
        Action::TcpSocket(tcp) => {
            let host = target.host(tcp.host.as_ref());
            let port = target.port(&tcp.port)?;
            Ok(connect(&host, port, timeout).await)
        }
        Action::Grpc => Err(ProbeError::GrpcUnsupported),
        Action::Missing => Err(ProbeError::NoAction),
    }
}

/// `host:port`, bracketing an IPv6 address.
pub fn authority(host: &str, port: u16) -> String {
    if host.parse::<std::net::Ipv6Addr>().is_ok() {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// A TCP connection to `host:port`, or the failure message in the kubelet's words.
pub async fn dial(host: &str, port: u16, timeout: Duration) -> Result<TcpStream, String> {
    let address = authority(host, port);
    match tokio::time::timeout(timeout, TcpStream::connect((host, port))).await {
        Ok(Ok(stream)) => Ok(stream),
        Ok(Err(error)) => Err(format!("dial tcp {address}: {error}")),
        Err(_) => Err(format!("dial tcp {address}: i/o timeout")),
    }
}

async fn connect(host: &str, port: u16, timeout: Duration) -> Verdict {
    match dial(host, port, timeout).await {
        Ok(_) => Verdict::Success,
        Err(message) => Verdict::Failure(message),
    }
}

/// Runs the command in the container: exit code 0 passes; the output is the failure message.
async fn exec(
    command: &[String],
    target: &Target<'_>,
    timeout: Duration,
) -> Result<Verdict, ProbeError> {
    if command.is_empty() {
        return Err(ProbeError::EmptyCommand);
    }
    let output = Capture::default();
    let spec = ExecSpec {
        command: command.to_vec(),
        stdin: None,
        stdout: Some(Box::new(output.clone())),
        stderr: Some(Box::new(output.clone())),
        tty: false,
    };
    let status = match tokio::time::timeout(timeout, target.runtime.exec(target.id, spec)).await {
        Ok(status) => status.map_err(|source| ProbeError::Exec { source })?,
        Err(_) => {
            let message = format!("command \"{}\" timed out", command.join(" "));
            return Ok(Verdict::Failure(message));
        }
    };
    if status.code == 0 {
        return Ok(Verdict::Success);
    }
    let text = output.text();
    Ok(Verdict::Failure(if text.trim().is_empty() {
        format!(
            "command \"{}\" exited with code {}",
            command.join(" "),
            status.code
        )
    } else {
        text
    }))
}

/// Collects an exec's stdout and stderr together, up to [`MAX_OUTPUT`].
#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Capture {
    fn text(&self) -> String {
        let bytes = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        String::from_utf8_lossy(&bytes).into_owned()
    }
}

impl AsyncWrite for Capture {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let mut kept = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let room = MAX_OUTPUT.saturating_sub(kept.len()).min(buf.len());
        kept.extend_from_slice(&buf[..room]);
        // Everything counts as written: the rest is dropped, not pushed back on the guest.
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::TCPSocketAction;
    use tokio::net::TcpListener;

    use super::*;

    /// TEST FAKE: never asked for anything by socket probes.
    struct NoRuntime;

    #[async_trait::async_trait]
    impl Runtime for NoRuntime {
        fn handler(&self) -> &str {
            "none"
        }
        async fn create(
            &self,
            _: &rkube_runtimes::ContainerSpec,
        ) -> Result<ContainerId, RuntimeError> {
            unreachable!("socket probes use no runtime")
        }
        async fn start(&self, _: &ContainerId) -> Result<(), RuntimeError> {
            unreachable!("socket probes use no runtime")
        }
        async fn kill(
            &self,
            _: &ContainerId,
            _: rkube_runtimes::Signal,
        ) -> Result<(), RuntimeError> {
            unreachable!("socket probes use no runtime")
        }
        async fn wait(&self, _: &ContainerId) -> Result<rkube_runtimes::ExitStatus, RuntimeError> {
            unreachable!("socket probes use no runtime")
        }
        async fn delete(&self, _: &ContainerId) -> Result<(), RuntimeError> {
            unreachable!("socket probes use no runtime")
        }
        async fn exec(
            &self,
            _: &ContainerId,
            _: ExecSpec,
        ) -> Result<rkube_runtimes::ExitStatus, RuntimeError> {
            unreachable!("socket probes use no runtime")
        }
        async fn list(&self) -> Result<Vec<rkube_runtimes::ContainerInfo>, RuntimeError> {
            unreachable!("socket probes use no runtime")
        }
    }

    fn port(name: &str, number: i32) -> ContainerPort {
        ContainerPort {
            name: Some(name.into()),
            container_port: number,
            ..ContainerPort::default()
        }
    }

    #[test]
    fn ports_resolve_by_number_or_container_port_name() {
        let ports = [port("http", 8080)];
        let id = ContainerId("c".into());
        let target = Target {
            runtime: &NoRuntime,
            id: &id,
            pod_ip: [10, 0, 0, 5].into(),
            ports: &ports,
        };
        let resolve = |p: IntOrString| target.port(&p).map_err(|e| e.to_string());
        assert_eq!(resolve(IntOrString::Int(81)), Ok(81));
        assert_eq!(resolve(IntOrString::String("http".into())), Ok(8080));
        assert_eq!(resolve(IntOrString::String("9090".into())), Ok(9090));
        assert_eq!(
            resolve(IntOrString::String("grpc".into())),
            Err("port grpc is not a named container port".into())
        );
        assert_eq!(
            resolve(IntOrString::Int(70000)),
            Err("port 70000 is out of range".into())
        );
        assert_eq!(target.host(None), "10.0.0.5");
        assert_eq!(target.host(Some(&String::new())), "10.0.0.5");
        assert_eq!(target.host(Some(&"db".to_string())), "db");
        assert_eq!(authority("::1", 80), "[::1]:80");
    }

    #[tokio::test]
    async fn tcp_passes_while_something_listens_on_the_pod_ip() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let number = listener.local_addr().unwrap().port();
        let ports = [port("svc", i32::from(number))];
        let id = ContainerId("c".into());
        let target = Target {
            runtime: &NoRuntime,
            id: &id,
            pod_ip: [127, 0, 0, 1].into(),
            ports: &ports,
        };
        let action = Action::TcpSocket(TCPSocketAction {
            host: None,
            port: IntOrString::String("svc".into()),
        });
        let second = Duration::from_secs(1);
        let verdict = attempt(&action, &target, second).await.unwrap();
        assert_eq!(verdict, Verdict::Success);
        drop(listener);
        let verdict = attempt(&action, &target, second).await.unwrap();
        let Verdict::Failure(message) = verdict else {
            panic!("a closed port passed");
        };
        assert!(
            message.starts_with(&format!("dial tcp 127.0.0.1:{number}: ")),
            "{message}"
        );
    }
}
