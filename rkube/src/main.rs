//! `rkube`: one binary for every part of the cluster.

mod backends;
mod up;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};

#[derive(Parser)]
#[command(
    name = "rkube",
    version,
    about = "A Kubernetes-compatible, WebAssembly-native orchestrator"
)]
struct Cli {
    /// Log format.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Run a whole cluster in this process: API server, scheduler, controllers and a node.
    Up {
        /// Where the store, certificates, kubeconfig and node data live.
        #[arg(long, env = "RKUBE_DATA_DIR")]
        data_dir: Option<PathBuf>,
        /// Address the API server listens on.
        #[arg(long, default_value = "127.0.0.1:6443")]
        listen: SocketAddr,
        /// etcd endpoints (comma-separated), instead of the embedded store.
        #[arg(long, value_delimiter = ',')]
        etcd: Vec<String>,
        /// The Node name; the host name by default.
        #[arg(long)]
        node_name: Option<String>,
        #[command(flatten)]
        runtime: backends::RuntimeFlags,
        /// Where the kubelet API (container logs, exec) listens.
        #[arg(long, default_value = "0.0.0.0:10250")]
        kubelet_listen: SocketAddr,
        /// How long a node may go without renewing its Lease before it is marked unreachable.
        #[arg(long, default_value = "50s", value_parser = parse_duration)]
        node_monitor_grace_period: Duration,
    },
    /// Run the API server on the embedded store, or on etcd with --etcd.
    Apiserver {
        /// Where the store, certificates and kubeconfig live.
        #[arg(long, env = "RKUBE_DATA_DIR")]
        data_dir: Option<PathBuf>,
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:6443")]
        listen: SocketAddr,
        /// etcd endpoints (comma-separated), instead of the embedded store.
        #[arg(long, value_delimiter = ',')]
        etcd: Vec<String>,
    },
    /// Run a node agent that runs the pods bound to this node (wasm and/or containerd).
    Node {
        /// The kubeconfig to reach the API server with; or join with --server and --token.
        #[arg(long, env = "KUBECONFIG", required_unless_present = "server")]
        kubeconfig: Option<PathBuf>,
        /// The API server to join (`https://host:port`), with a bootstrap token.
        #[arg(long, requires = "token")]
        server: Option<String>,
        /// A bootstrap token (`rkube token create` prints one in a join command).
        #[arg(long, env = "RKUBE_TOKEN")]
        token: Option<String>,
        /// The cluster CA's public key hash (`sha256:…`) to check the server against.
        #[arg(long)]
        ca_cert_hash: Option<String>,
        /// The Node name; the host name by default.
        #[arg(long)]
        name: Option<String>,
        /// Where pod volumes, logs, the image cache and compiled modules live.
        #[arg(long, env = "RKUBE_DATA_DIR")]
        data_dir: Option<PathBuf>,
        /// Runtimes this node offers (comma-separated): `wasm` (handler `wasmtime`) and
        /// `containerd` (handler `runc`, ordinary OCI container pods).
        #[arg(long, value_delimiter = ',', default_value = "wasm")]
        runtime: Vec<String>,
        #[command(flatten)]
        runtime_flags: backends::RuntimeFlags,
        /// Where the kubelet API (container logs, exec) listens.
        #[arg(long, default_value = "0.0.0.0:10250")]
        kubelet_listen: SocketAddr,
        /// First delay before restarting a crashed container or retrying a failed pull; it
        /// doubles on each failure up to 5m, as the kubelet's does.
        #[arg(long, default_value = "10s", value_parser = parse_duration)]
        crash_backoff_initial: Duration,
    },
    /// Push a wasm module to an OCI registry as a wasm artifact, or a directory as a one-layer
    /// Linux container image of its contents.
    Push {
        /// The `.wasm` file (a `.wat` text module is compiled first), or a root filesystem
        /// directory.
        file: PathBuf,
        /// Where to push it: `REGISTRY/REPO:TAG`.
        reference: String,
        /// Registries to reach over plain HTTP besides loopback ones.
        #[arg(long, value_delimiter = ',')]
        insecure_registry: Vec<String>,
    },
    /// Manage bootstrap tokens for joining nodes.
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
    /// Run the scheduler against an API server.
    Scheduler {
        #[command(flatten)]
        component: ComponentArgs,
    },
    /// Run the controller manager against an API server.
    ControllerManager {
        #[command(flatten)]
        component: ComponentArgs,
        /// How long a node may go without renewing its Lease before it is marked unreachable.
        #[arg(long, default_value = "50s", value_parser = parse_duration)]
        node_monitor_grace_period: Duration,
    },
}

#[derive(Subcommand)]
enum TokenCommand {
    /// Create a bootstrap token and print the `rkube node` command that joins with it.
    Create {
        /// An admin kubeconfig; `DATA_DIR/kubeconfig` by default.
        #[arg(long, env = "KUBECONFIG")]
        kubeconfig: Option<PathBuf>,
        /// How long the token may be used to join; `0s` never expires.
        #[arg(long, default_value = "24h", value_parser = parse_duration)]
        ttl: Duration,
        /// A note stored with the token.
        #[arg(long, default_value = "created by rkube token create")]
        description: String,
    },
}

/// Flags every API client component takes.
#[derive(clap::Args)]
struct ComponentArgs {
    /// The kubeconfig to reach the API server with.
    #[arg(long, env = "KUBECONFIG")]
    kubeconfig: PathBuf,
    /// Take a Lease before acting, so several copies can run for availability.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    leader_elect: bool,
}

/// Durations as Kubernetes flags write them: `50s`, `2m`, `500ms`, `1h`.
fn parse_duration(text: &str) -> Result<Duration, String> {
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .ok_or_else(|| format!("{text:?} needs a unit (ms, s, m, h)"))?;
    let (number, unit) = text.split_at(split);
    let n: u64 = number
        .parse()
        .map_err(|_| format!("invalid duration {text:?}"))?;
    match unit {
        "ms" => Ok(Duration::from_millis(n)),
        "s" => Ok(Duration::from_secs(n)),
        "m" => Ok(Duration::from_secs(n * 60)),
        "h" => Ok(Duration::from_secs(n * 3600)),
        _ => Err(format!("unknown unit in {text:?} (use ms, s, m or h)")),
    }
}

/// A client for the API server named in a kubeconfig file.
async fn client_from_kubeconfig(path: &Path) -> anyhow::Result<kube::Client> {
    let kubeconfig = kube::config::Kubeconfig::read_from(path)
        .with_context(|| format!("reading {}", path.display()))?;
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
        .await
        .context("loading the kubeconfig")?;
    kube::Client::try_from(config).context("building the API client")
}

/// Creates a bootstrap token through the API and returns the `rkube node` line that joins
/// the cluster of `kubeconfig` with it.
async fn create_join_token(
    kubeconfig: &Path,
    ttl: Duration,
    description: &str,
) -> anyhow::Result<String> {
    let cluster = current_cluster(kubeconfig)?;
    let server = cluster
        .server
        .clone()
        .context("the kubeconfig has no server")?;
    let hash = rkube_client::bootstrap::ca_cert_hash(&ca_pem_of(&cluster)?)?;
    let client = client_from_kubeconfig(kubeconfig).await?;
    let token = rkube_client::bootstrap::Token::generate();
    let ttl = (!ttl.is_zero()).then_some(ttl);
    rkube_client::bootstrap::create(client, &token, ttl, description).await?;
    Ok(format!(
        "rkube node --server {server} --token {} --ca-cert-hash {hash} --runtime wasm",
        token.text()
    ))
}

/// The CA (PEM) of the kubeconfig's current cluster: the kubelet API trusts it for clients, and
/// the controller manager publishes it as `kube-root-ca.crt`.
fn cluster_ca_pem(path: &Path) -> anyhow::Result<String> {
    ca_pem_of(&current_cluster(path)?)
}

/// The cluster the kubeconfig's current context names.
fn current_cluster(path: &Path) -> anyhow::Result<kube::config::Cluster> {
    let kubeconfig = kube::config::Kubeconfig::read_from(path)
        .with_context(|| format!("reading {}", path.display()))?;
    let context_name = kubeconfig.current_context.clone().unwrap_or_default();
    let cluster_name = kubeconfig
        .contexts
        .iter()
        .find(|c| c.name == context_name)
        .and_then(|c| c.context.as_ref())
        .map(|c| c.cluster.clone())
        .with_context(|| format!("the kubeconfig has no context {context_name:?}"))?;
    kubeconfig
        .clusters
        .into_iter()
        .find(|c| c.name == cluster_name)
        .and_then(|c| c.cluster)
        .with_context(|| format!("the kubeconfig has no cluster {cluster_name:?}"))
}

/// A cluster's CA as PEM, from its certificate-authority-data or the file it names.
fn ca_pem_of(cluster: &kube::config::Cluster) -> anyhow::Result<String> {
    use base64::Engine;
    if let Some(data) = &cluster.certificate_authority_data {
        let pem = base64::engine::general_purpose::STANDARD
            .decode(data.trim())
            .context("decoding certificate-authority-data")?;
        return String::from_utf8(pem).context("certificate-authority-data is not PEM text");
    }
    let file = cluster
        .certificate_authority
        .as_ref()
        .context("the kubeconfig's cluster names no certificate authority")?;
    std::fs::read_to_string(file).with_context(|| format!("reading {file}"))
}

/// `/var/lib/rkube` as root, else `$XDG_DATA_HOME/rkube` (or `~/.local/share/rkube`).
fn default_data_dir() -> PathBuf {
    if effective_uid() == Some(0) {
        return PathBuf::from("/var/lib/rkube");
    }
    std::env::var_os("XDG_DATA_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/share")))
        .unwrap_or_else(|| PathBuf::from("."))
        .join("rkube")
}

/// The effective user id, from `/proc/self/status` (no unsafe libc call needed).
fn effective_uid() -> Option<u32> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("Uid:"))?;
    line.split_whitespace().nth(2)?.parse().ok()
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("installing the SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    tracing::info!("shutting down");
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    init_logging(cli.log_format);
    rustls::crypto::ring::default_provider()
        .install_default()
        .map_err(|_| anyhow::anyhow!("a TLS crypto provider was already installed"))?;
    match cli.command {
        Command::Up {
            data_dir,
            listen,
            etcd,
            node_name,
            runtime,
            kubelet_listen,
            node_monitor_grace_period,
        } => {
            let options = up::UpOptions {
                data_dir: data_dir.unwrap_or_else(default_data_dir),
                listen,
                etcd,
                node_name: node_name.map_or_else(up::host_name, Ok)?,
                runtime,
                kubelet_listen,
                node_monitor_grace: node_monitor_grace_period,
            };
            up::run(options, shutdown_signal()).await?;
        }
        Command::Apiserver {
            data_dir,
            listen,
            etcd,
        } => {
            let options = rkube_apiserver::run::Options {
                data_dir: data_dir.unwrap_or_else(default_data_dir),
                listen,
                etcd,
            };
            rkube_apiserver::run::run(options, shutdown_signal())
                .await
                .context("api server failed")?;
        }
        Command::Node {
            kubeconfig,
            server,
            token,
            ca_cert_hash,
            name,
            data_dir,
            runtime,
            runtime_flags,
            kubelet_listen,
            crash_backoff_initial,
        } => {
            let data_dir = data_dir.unwrap_or_else(default_data_dir).join("node");
            let mut backends = Vec::new();
            for name in &runtime {
                backends.push(backends::backend(name, &data_dir, &runtime_flags).await?);
            }
            let name = name.map_or_else(up::host_name, Ok)?;
            // Joining leaves the node's own kubeconfig in its data dir; later starts reuse it.
            let kubeconfig = match (server, token, kubeconfig) {
                (Some(server), Some(token), _) => {
                    let joined = data_dir.join("kubeconfig");
                    let join = rkube_node::join::Join {
                        server: &server,
                        token: &token,
                        ca_cert_hash: ca_cert_hash.as_deref(),
                        node_name: &name,
                        kubeconfig: &joined,
                    };
                    rkube_node::join::ensure_kubeconfig(&join)
                        .await
                        .context("joining the cluster")?;
                    joined
                }
                (_, _, Some(kubeconfig)) => kubeconfig,
                _ => anyhow::bail!("pass --kubeconfig, or --server and --token to join"),
            };
            let client = client_from_kubeconfig(&kubeconfig).await?;
            let mut options = rkube_node::NodeOptions::with_backends(name, data_dir, backends);
            options.kubelet = Some(rkube_node::KubeletOptions {
                listen: kubelet_listen,
                cluster_ca_pem: cluster_ca_pem(&kubeconfig)?,
            });
            options.backoff.initial = crash_backoff_initial;
            rkube_node::run_until(client, options, shutdown_signal())
                .await
                .context("node agent failed")?;
        }
        Command::Push {
            file,
            reference,
            insecure_registry,
        } => {
            let digest = if file.is_dir() {
                rkube_node::images::push_rootfs(&file, &reference, &insecure_registry, None).await
            } else if file.extension().is_some_and(|e| e == "wat") {
                let module = wat::parse_file(&file)
                    .with_context(|| format!("compiling {}", file.display()))?;
                let compiled = tempfile::NamedTempFile::new()?;
                std::fs::write(compiled.path(), module)?;
                rkube_node::images::push_wasm(compiled.path(), &reference, &insecure_registry, None)
                    .await
            } else {
                rkube_node::images::push_wasm(&file, &reference, &insecure_registry, None).await
            }
            .with_context(|| format!("pushing {}", file.display()))?;
            println!("{reference}@{digest}");
        }
        Command::Token {
            command:
                TokenCommand::Create {
                    kubeconfig,
                    ttl,
                    description,
                },
        } => {
            let kubeconfig = kubeconfig.unwrap_or_else(|| default_data_dir().join("kubeconfig"));
            let line = create_join_token(&kubeconfig, ttl, &description).await?;
            println!("{line}");
        }
        Command::Scheduler { component } => {
            let client = client_from_kubeconfig(&component.kubeconfig).await?;
            let options = rkube_scheduler::SchedulerOptions {
                leader_elect: component.leader_elect,
                ..Default::default()
            };
            tokio::select! {
                result = rkube_scheduler::run(client, options) => {
                    result.context("scheduler failed")?;
                }
                _ = shutdown_signal() => {}
            }
        }
        Command::ControllerManager {
            component,
            node_monitor_grace_period,
        } => {
            let client = client_from_kubeconfig(&component.kubeconfig).await?;
            // Without a CA (a kubeconfig that trusts the system roots) there is nothing to
            // publish as kube-root-ca.crt; the other controllers run regardless.
            let root_ca_pem = match cluster_ca_pem(&component.kubeconfig) {
                Ok(pem) => Some(pem),
                Err(error) => {
                    tracing::warn!(error = %format!("{error:#}"), "not publishing kube-root-ca.crt");
                    None
                }
            };
            let options = rkube_controllers::manager::ManagerOptions {
                leader_elect: component.leader_elect,
                node_monitor_grace: node_monitor_grace_period,
                root_ca_pem,
                ..Default::default()
            };
            tokio::select! {
                result = rkube_controllers::manager::run(client, options) => {
                    result.context("controller manager failed")?;
                }
                _ = shutdown_signal() => {}
            }
        }
    }
    Ok(())
}
