//! `rkube`: one binary for every part of the cluster.

use std::net::SocketAddr;
use std::path::PathBuf;

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
}

/// `/var/lib/rkube` as root, else `$XDG_DATA_HOME/rkube` (or `~/.local/share/rkube`).
fn default_data_dir() -> PathBuf {
    if std::env::var("USER").as_deref() == Ok("root")
        || std::env::var("HOME").as_deref() == Ok("/root")
    {
        return PathBuf::from("/var/lib/rkube");
    }
    std::env::var_os("XDG_DATA_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/share")))
        .unwrap_or_else(|| PathBuf::from("."))
        .join("rkube")
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
    }
    Ok(())
}
