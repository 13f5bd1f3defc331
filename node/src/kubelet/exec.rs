//! `GET|POST /exec/{namespace}/{pod}/{container}`: a command run in the container over a
//! WebSocket with the Kubernetes channel protocol (`v5.channel.k8s.io`, `v4.channel.k8s.io`):
//! every binary frame starts with its channel, 0 stdin, 1 stdout, 2 stderr, 3 the final
//! Status, 4 terminal resizes; v5 adds 255 for a client closing one of its streams.

use std::sync::Arc;

use axum::extract::ws::{
    CloseFrame, Message, WebSocket, WebSocketUpgrade, close_code,
    rejection::WebSocketUpgradeRejection,
};
use axum::extract::{Path as UrlPath, Query, State};
use axum::response::Response;
use futures::stream::SplitStream;
use futures::{SinkExt, StreamExt};
use rkube_runtimes::{ContainerId, ExecSpec, ExitStatus, Runtime, RuntimeError};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use super::error::ApiError;
use super::log_lines::flag;
use super::lookup::Target;
use super::server::Kubelet;

const V5: &str = "v5.channel.k8s.io";
const V4: &str = "v4.channel.k8s.io";
const STDIN: u8 = 0;
const STDOUT: u8 = 1;
const STDERR: u8 = 2;
const ERROR: u8 = 3;
const CLOSE: u8 = 255;
/// Bytes buffered between the WebSocket and the command, per stream.
const PIPE: usize = 64 * 1024;

/// What the query asks for.
#[derive(Debug, Default)]
struct Command {
    argv: Vec<String>,
    stdin: bool,
    stdout: bool,
    stderr: bool,
    tty: bool,
}

impl Command {
    /// Reads the kubelet's names (`input`, `output`, `error`) and the API's (`stdin`, ...).
    fn parse(pairs: &[(String, String)]) -> Result<Self, ApiError> {
        let mut command = Command::default();
        for (key, value) in pairs {
            match key.as_str() {
                "command" => command.argv.push(value.clone()),
                "input" | "stdin" => command.stdin = flag(value),
                "output" | "stdout" => command.stdout = flag(value),
                "error" | "stderr" => command.stderr = flag(value),
                "tty" => command.tty = flag(value),
                _ => {}
            }
        }
        if command.argv.is_empty() {
            return Err(ApiError::BadRequest(
                "you must specify at least one command for the container".into(),
            ));
        }
        if !(command.stdin || command.stdout || command.stderr) {
            return Err(ApiError::BadRequest(
                "you must specify at least one of stdin, stdout, stderr".into(),
            ));
        }
        // A terminal has one output stream.
        command.stderr &= !command.tty;
        Ok(command)
    }
}

#[tracing::instrument(skip_all, fields(%namespace, %pod, %container))]
pub async fn exec(
    State(kubelet): State<Arc<Kubelet>>,
    UrlPath((namespace, pod, container)): UrlPath<(String, String, String)>,
    Query(pairs): Query<Vec<(String, String)>>,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<Response, ApiError> {
    let command = Command::parse(&pairs)?;
    let target = Target::find(&kubelet.registry, &namespace, &pod, &container)?;
    let (runtime, id) = match target.live_run(&kubelet.runtimes).await {
        Some((runtime, id, true)) => (runtime, id),
        _ => {
            return Err(ApiError::BadRequest(format!(
                "container \"{container}\" in pod \"{pod}\" is not running"
            )));
        }
    };
    let upgrade = upgrade
        .map_err(|e| ApiError::BadRequest(format!("exec needs a websocket upgrade: {e}")))?
        .protocols([V5, V4]);
    let v5 = match upgrade.selected_protocol().and_then(|p| p.to_str().ok()) {
        Some(V5) => true,
        Some(V4) => false,
        _ => {
            return Err(ApiError::BadRequest(format!(
                "none of the requested websocket protocols is supported; use {V5} or {V4}"
            )));
        }
    };
    tracing::debug!(command = ?command.argv, v5, "exec");
    Ok(upgrade.on_upgrade(move |socket| session(socket, v5, runtime, id, command)))
}

async fn session(
    socket: WebSocket,
    v5: bool,
    runtime: Arc<dyn Runtime>,
    id: ContainerId,
    command: Command,
) {
    let (mut sink, incoming) = socket.split();
    let (frames, mut outgoing) = mpsc::channel::<Vec<u8>>(16);
    let writer = tokio::spawn(async move {
        while let Some(frame) = outgoing.recv().await {
            if sink.send(Message::Binary(frame.into())).await.is_err() {
                return;
            }
        }
        // A normal-closure code: client-go treats a close without one as a broken stream.
        let close = CloseFrame {
            code: close_code::NORMAL,
            reason: "".into(),
        };
        if let Err(error) = sink.send(Message::Close(Some(close))).await {
            tracing::debug!(%error, "closing an exec websocket");
        }
    });
    // An empty frame on the first channel the client reads tells it the streams are ready.
    let ready = if command.stdout {
        STDOUT
    } else if command.stderr {
        STDERR
    } else {
        ERROR
    };
    // A send fails only once the writer is gone, when the client already left.
    let _ = frames.send(vec![ready]).await;

    let mut spec = ExecSpec {
        command: command.argv.clone(),
        stdin: None,
        stdout: None,
        stderr: None,
        tty: command.tty,
    };
    let mut pumps = JoinSet::new();
    for (wanted, channel) in [(command.stdout, STDOUT), (command.stderr, STDERR)] {
        if !wanted {
            continue;
        }
        let (theirs, ours) = tokio::io::duplex(PIPE);
        match channel {
            STDOUT => spec.stdout = Some(Box::new(theirs)),
            _ => spec.stderr = Some(Box::new(theirs)),
        }
        pumps.spawn(pump(ours, channel, frames.clone()));
    }
    let stdin = command.stdin.then(|| {
        let (theirs, ours) = tokio::io::duplex(PIPE);
        spec.stdin = Some(Box::new(theirs));
        ours
    });
    let mut client = tokio::spawn(feed_stdin(incoming, stdin, v5));

    let result = tokio::select! {
        result = runtime.exec(&id, spec) => result,
        // The client left: dropping the exec stops the command.
        _ = &mut client => {
            tracing::debug!("exec client went away");
            return;
        }
    };
    while pumps.join_next().await.is_some() {}
    client.abort();
    let mut status = vec![ERROR];
    status.extend_from_slice(status_of(&command.argv, result).to_string().as_bytes());
    let _ = frames.send(status).await;
    drop(frames);
    if let Err(error) = writer.await {
        tracing::debug!(%error, "exec websocket writer");
    }
}

/// Copies one output stream of the command into frames of its channel until it ends.
async fn pump(mut output: DuplexStream, channel: u8, frames: mpsc::Sender<Vec<u8>>) {
    let mut buffer = vec![0u8; 32 * 1024];
    loop {
        match output.read(&mut buffer).await {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                let mut frame = Vec::with_capacity(n + 1);
                frame.push(channel);
                frame.extend_from_slice(&buffer[..n]);
                if frames.send(frame).await.is_err() {
                    return;
                }
            }
        }
    }
}

/// Feeds stdin frames to the command until the client closes stdin or the connection;
/// resize frames are ignored (wasm guests have no terminal size).
async fn feed_stdin(
    mut incoming: SplitStream<WebSocket>,
    mut stdin: Option<DuplexStream>,
    v5: bool,
) {
    while let Some(Ok(message)) = incoming.next().await {
        let data = match message {
            Message::Binary(data) => data,
            Message::Close(_) => return,
            _ => continue,
        };
        match data.split_first() {
            Some((&STDIN, bytes)) => {
                if let Some(pipe) = &mut stdin
                    && pipe.write_all(bytes).await.is_err()
                {
                    stdin = None;
                }
            }
            // Dropping our end is the command's end of input.
            Some((&CLOSE, [STDIN])) if v5 => stdin = None,
            _ => {}
        }
    }
}

/// The Status written on the error channel: kubectl turns `NonZeroExitCode` into its own exit
/// code through the `ExitCode` cause.
fn status_of(argv: &[String], result: Result<ExitStatus, RuntimeError>) -> Value {
    match result {
        Ok(exit) if exit.code == 0 => json!({ "metadata": {}, "status": "Success" }),
        Ok(exit) => {
            let code = exit.code;
            json!({
                "metadata": {},
                "status": "Failure",
                "message": format!(
                    "command terminated with non-zero exit code: error executing command [{}], exit code {code}",
                    argv.join(" ")
                ),
                "reason": "NonZeroExitCode",
                "details": { "causes": [{ "reason": "ExitCode", "message": code.to_string() }] },
            })
        }
        Err(error) => json!({
            "metadata": {},
            "status": "Failure",
            "message": error.to_string(),
            "reason": "InternalError",
        }),
    }
}

#[cfg(test)]
mod tests {
    use std::time::SystemTime;

    use rkube_runtimes::ExitReason;

    use super::*;

    fn pairs(p: &[(&str, &str)]) -> Vec<(String, String)> {
        p.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn the_query_names_the_command_and_its_streams() {
        let command = Command::parse(&pairs(&[
            ("command", "sh"),
            ("command", "-c"),
            ("command", "ls"),
            ("input", "1"),
            ("output", "1"),
            ("error", "1"),
            ("tty", "1"),
        ]))
        .unwrap();
        assert_eq!(command.argv, vec!["sh", "-c", "ls"]);
        assert!(command.stdin && command.stdout && command.tty);
        assert!(!command.stderr, "a terminal has no separate stderr");
        assert!(Command::parse(&pairs(&[("output", "1")])).is_err());
        assert!(Command::parse(&pairs(&[("command", "ls")])).is_err());
    }

    #[test]
    fn exit_codes_become_kubectl_statuses() {
        let exit = |code| ExitStatus {
            code,
            reason: ExitReason::Error,
            message: None,
            started_at: SystemTime::UNIX_EPOCH,
            finished_at: SystemTime::UNIX_EPOCH,
        };
        let argv = vec!["app".to_string(), "fail".to_string()];
        assert_eq!(
            status_of(&argv, Ok(exit(0))),
            json!({ "metadata": {}, "status": "Success" })
        );
        let failed = status_of(&argv, Ok(exit(3)));
        assert_eq!(failed["reason"], "NonZeroExitCode");
        assert_eq!(
            failed["message"],
            "command terminated with non-zero exit code: error executing command [app fail], exit code 3"
        );
        assert_eq!(
            failed["details"]["causes"],
            json!([{ "reason": "ExitCode", "message": "3" }])
        );
    }
}
