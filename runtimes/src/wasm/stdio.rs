//! Where a guest's standard streams go: the container log, or the streams of an exec.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncWrite};
use wasmtime_wasi::WasiCtxBuilder;
use wasmtime_wasi::cli::{
    AsyncStdinStream, AsyncStdoutStream, IsTerminal, StdinStream, StdoutStream,
};
use wasmtime_wasi::p2::{InputStream, OutputStream, Pollable, StreamError, StreamResult};

use crate::{CriLog, ExecSpec, LogStream};

/// Bytes an exec stream may buffer before the guest has to wait for the reader.
const EXEC_STREAM_BUDGET: usize = 64 * 1024;
/// How much a guest may write to the log in one go; the log write itself never blocks long.
const LOG_WRITE_BUDGET: usize = 64 * 1024;

pub(crate) enum Stdio {
    Log(CriLog),
    Exec(ExecSpec),
}

impl Stdio {
    /// Wires the streams into a WASI context; exec streams left out read as empty / are dropped.
    pub(crate) fn apply(self, builder: &mut WasiCtxBuilder) {
        match self {
            Stdio::Log(log) => {
                builder
                    .stdout(LogOutput::new(log.clone(), LogStream::Stdout))
                    .stderr(LogOutput::new(log, LogStream::Stderr));
            }
            Stdio::Exec(spec) => {
                let tty = spec.tty;
                if let Some(stdin) = spec.stdin {
                    builder.stdin(Terminal::new(AsyncStdinStream::new(stdin), tty));
                }
                if let Some(stdout) = spec.stdout {
                    let stdout =
                        Terminal::new(AsyncStdoutStream::new(EXEC_STREAM_BUDGET, stdout), tty);
                    if tty {
                        // A terminal has one output: stderr shares it.
                        builder.stderr(stdout.clone());
                    }
                    builder.stdout(stdout);
                }
                if let (Some(stderr), false) = (spec.stderr, tty) {
                    builder.stderr(AsyncStdoutStream::new(EXEC_STREAM_BUDGET, stderr));
                }
            }
        }
    }
}

/// One stream of the container log, written synchronously: a log append is a page-cache copy.
#[derive(Clone)]
pub(crate) struct LogOutput {
    log: CriLog,
    stream: LogStream,
}

impl LogOutput {
    fn new(log: CriLog, stream: LogStream) -> Self {
        Self { log, stream }
    }
}

impl IsTerminal for LogOutput {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for LogOutput {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }

    fn async_stream(&self) -> Box<dyn AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

#[async_trait::async_trait]
impl Pollable for LogOutput {
    async fn ready(&mut self) {}
}

impl OutputStream for LogOutput {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        self.log
            .write(self.stream, &bytes)
            .map_err(|e| StreamError::LastOperationFailed(wasmtime::Error::new(e)))
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(LOG_WRITE_BUDGET)
    }
}

impl AsyncWrite for LogOutput {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Poll::Ready(self.log.write(self.stream, buf).map(|()| buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

/// An exec stream that tells the guest whether it is attached to a terminal.
struct Terminal<S> {
    stream: Arc<S>,
    tty: bool,
}

impl<S> Clone for Terminal<S> {
    fn clone(&self) -> Self {
        Self {
            stream: self.stream.clone(),
            tty: self.tty,
        }
    }
}

impl<S> Terminal<S> {
    fn new(stream: S, tty: bool) -> Self {
        Self {
            stream: Arc::new(stream),
            tty,
        }
    }
}

impl<S> IsTerminal for Terminal<S> {
    fn is_terminal(&self) -> bool {
        self.tty
    }
}

impl<S: StdoutStream + Sync> StdoutStream for Terminal<S> {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        self.stream.p2_stream()
    }

    fn async_stream(&self) -> Box<dyn AsyncWrite + Send + Sync> {
        self.stream.async_stream()
    }
}

impl<S: StdinStream + Sync> StdinStream for Terminal<S> {
    fn p2_stream(&self) -> Box<dyn InputStream> {
        self.stream.p2_stream()
    }

    fn async_stream(&self) -> Box<dyn AsyncRead + Send + Sync> {
        self.stream.async_stream()
    }
}
