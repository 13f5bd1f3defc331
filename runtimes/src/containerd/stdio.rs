//! Task stdio through named pipes the shim writes (and reads, for stdin): container output is
//! copied into the CRI log, exec streams to the caller's readers and writers.
//!
//! A reader opened on a FIFO sees end-of-file whenever no writer is attached, even before the
//! shim has attached. So each output pipe also gets a read-write "keepalive" handle of ours,
//! held until the process has exited; end-of-file then means the shim let go too.

use std::fs::{File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};

use rustix::fs::{CWD, Mode, mkfifoat};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::unix::pipe;
use tokio::sync::watch;

use crate::{ContainerId, CriLog, LogStream, RuntimeError};

const CHUNK: usize = 32 * 1024;

/// A FIFO created for a task, with our keepalive handle on it.
pub(crate) struct OutputPipe {
    pub(crate) path: PathBuf,
    keepalive: Option<File>,
    receiver: pipe::Receiver,
}

impl OutputPipe {
    /// Creates the FIFO (or reuses it) and opens it without blocking.
    pub(crate) fn create(id: &ContainerId, path: PathBuf) -> Result<Self, RuntimeError> {
        let error = |source| RuntimeError::Stdio {
            id: id.clone(),
            path: path.clone(),
            source,
        };
        make_fifo(&path).map_err(error)?;
        let keepalive = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .map_err(error)?;
        let receiver = pipe::OpenOptions::new()
            .open_receiver(&path)
            .map_err(error)?;
        Ok(Self {
            path,
            keepalive: Some(keepalive),
            receiver,
        })
    }

    /// Opens an existing FIFO whose writer (a shim) is attached: no keepalive needed.
    pub(crate) fn reopen(id: &ContainerId, path: PathBuf) -> Result<Self, RuntimeError> {
        let receiver = pipe::OpenOptions::new()
            .open_receiver(&path)
            .map_err(|source| RuntimeError::Stdio {
                id: id.clone(),
                path: path.clone(),
                source,
            })?;
        Ok(Self {
            path,
            keepalive: None,
            receiver,
        })
    }

    pub(crate) fn take_keepalive(&mut self) -> Option<File> {
        self.keepalive.take()
    }
}

/// The stdin FIFO of an exec; our handle is read-write so opening never waits for the shim.
pub(crate) fn create_input(id: &ContainerId, path: PathBuf) -> Result<pipe::Sender, RuntimeError> {
    let error = |source| RuntimeError::Stdio {
        id: id.clone(),
        path: path.clone(),
        source,
    };
    make_fifo(&path).map_err(error)?;
    pipe::OpenOptions::new()
        .read_write(true)
        .open_sender(&path)
        .map_err(error)
}

fn make_fifo(path: &Path) -> io::Result<()> {
    match mkfifoat(CWD, path, Mode::RUSR | Mode::WUSR) {
        Ok(()) => Ok(()),
        Err(rustix::io::Errno::EXIST) => Ok(()),
        Err(errno) => Err(errno.into()),
    }
}

/// Copies a container's stdout and stderr into its CRI log; `done` turns true once both
/// pipes have ended and the log is flushed.
pub(crate) fn pump_logs(
    log: CriLog,
    stdout: OutputPipe,
    stderr: OutputPipe,
) -> watch::Receiver<bool> {
    let (done, finished) = watch::channel(false);
    tokio::spawn(async move {
        let out = copy_to_log(stdout.receiver, log.clone(), LogStream::Stdout);
        let err = copy_to_log(stderr.receiver, log.clone(), LogStream::Stderr);
        tokio::join!(out, err);
        if let Err(error) = log.finish() {
            tracing::warn!(%error, "flushing a container log");
        }
        done.send_replace(true);
    });
    finished
}

async fn copy_to_log(mut from: pipe::Receiver, log: CriLog, stream: LogStream) {
    let mut buffer = vec![0; CHUNK];
    loop {
        match from.read(&mut buffer).await {
            Ok(0) => return,
            Ok(n) => {
                if let Err(error) = log.write(stream, &buffer[..n]) {
                    tracing::warn!(%error, "writing a container log");
                }
            }
            Err(error) => {
                tracing::warn!(%error, "reading container output");
                return;
            }
        }
    }
}

/// Copies one exec output pipe to the caller until the shim closes it.
pub(crate) async fn copy_out(
    mut from: OutputPipe,
    mut to: Box<dyn AsyncWrite + Send + Sync + Unpin>,
) {
    if let Err(error) = tokio::io::copy(&mut from.receiver, &mut to).await {
        tracing::debug!(%error, path = %from.path.display(), "copying exec output");
    }
    let _ = to.shutdown().await;
}

/// Copies the caller's stdin into the exec's stdin pipe until the caller's input ends.
pub(crate) async fn copy_in(
    mut from: Box<dyn AsyncRead + Send + Sync + Unpin>,
    to: &mut pipe::Sender,
) {
    if let Err(error) = tokio::io::copy(&mut from, to).await {
        tracing::debug!(%error, "copying exec input");
    }
}
