//! `GET /containerLogs/{namespace}/{pod}/{container}`: a container's log file as text, and with
//! `follow` the lines written after, until that run of the container ends.

use std::io::SeekFrom;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Path as UrlPath, Query, State};
use axum::http::header;
use axum::response::Response;
use bytes::Bytes;
use chrono::Utc;
use tokio::io::{AsyncReadExt, AsyncSeekExt};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use super::error::ApiError;
use super::log_lines::{Assembler, Budget, LogQuery, select};
use super::lookup::Target;
use super::server::Kubelet;

/// How often a followed log is checked for new lines.
const FOLLOW_POLL: Duration = Duration::from_millis(200);

#[tracing::instrument(skip_all, fields(%namespace, %pod, %container))]
pub async fn container_logs(
    State(kubelet): State<Arc<Kubelet>>,
    UrlPath((namespace, pod, container)): UrlPath<(String, String, String)>,
    Query(pairs): Query<Vec<(String, String)>>,
) -> Result<Response, ApiError> {
    let query = LogQuery::parse(&pairs, Utc::now())?;
    let target = Target::find(&kubelet.registry, &namespace, &pod, &container)?;
    let dir = kubelet.layout.pod_logs(&target.uid).join(&container);
    let runs = runs_of(&dir).await;
    let run = if query.previous {
        runs.iter().rev().nth(1).copied().ok_or_else(|| {
            ApiError::BadRequest(format!(
                "previous terminated container \"{container}\" in pod \"{pod}\" not found"
            ))
        })?
    } else {
        runs.last().copied().ok_or_else(|| {
            ApiError::BadRequest(format!(
                "container \"{container}\" in pod \"{pod}\" is waiting to start: {}",
                target.waiting_reason()
            ))
        })?
    };
    let path = kubelet.layout.container_log(&target.uid, &container, run);
    let mut reader = LogReader::new(path);
    let mut budget = Budget::new(query.limit_bytes);
    let lines = reader
        .read_new()
        .await
        .map_err(|e| ApiError::Internal(format!("reading the log of {container}: {e}")))?;
    let head: Vec<u8> = select(lines, &query)
        .iter()
        .flat_map(|line| line.render(query.timestamps))
        .collect();
    let head = budget.take(head);
    let response = Response::builder().header(header::CONTENT_TYPE, "text/plain; charset=utf-8");
    let body = if query.follow && !query.previous && !budget.exhausted() {
        let (sender, receiver) = mpsc::channel(16);
        let follow = Follow {
            kubelet,
            target,
            run,
            reader,
            budget,
            query,
            sender,
        };
        // The first chunk goes out before any waiting so that the client sees it at once.
        if follow.sender.send(Ok(Bytes::from(head))).await.is_ok() {
            tokio::spawn(follow.run());
        }
        Body::from_stream(ReceiverStream::new(receiver))
    } else {
        Body::from(head)
    };
    response
        .body(body)
        .map_err(|e| ApiError::Internal(e.to_string()))
}

/// The restart numbers of a container's log files, in order.
async fn runs_of(dir: &Path) -> Vec<i32> {
    let mut runs = Vec::new();
    let Ok(mut entries) = tokio::fs::read_dir(dir).await else {
        return runs;
    };
    while let Ok(Some(entry)) = entries.next_entry().await {
        let name = entry.file_name();
        let run = name.to_str().and_then(|n| n.strip_suffix(".log"));
        if let Some(run) = run.and_then(|r| r.parse().ok()) {
            runs.push(run);
        }
    }
    runs.sort_unstable();
    runs
}

/// Reads a log file from where the last read stopped.
struct LogReader {
    path: PathBuf,
    offset: u64,
    assembler: Assembler,
}

impl LogReader {
    fn new(path: PathBuf) -> Self {
        Self {
            path,
            offset: 0,
            assembler: Assembler::default(),
        }
    }

    async fn read_new(&mut self) -> std::io::Result<Vec<super::log_lines::Line>> {
        let mut file = tokio::fs::File::open(&self.path).await?;
        file.seek(SeekFrom::Start(self.offset)).await?;
        let mut fresh = Vec::new();
        file.read_to_end(&mut fresh).await?;
        self.offset += fresh.len() as u64;
        Ok(self.assembler.feed(&fresh))
    }
}

/// A followed log: polls the file and stops once the run ended, the pod left the node, the
/// byte limit was reached or the client went away.
struct Follow {
    kubelet: Arc<Kubelet>,
    target: Target,
    run: i32,
    reader: LogReader,
    budget: Budget,
    query: LogQuery,
    sender: mpsc::Sender<Result<Bytes, std::io::Error>>,
}

impl Follow {
    async fn run(mut self) {
        let mut ticker = tokio::time::interval(FOLLOW_POLL);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = ticker.tick() => {}
                () = self.sender.closed() => return,
            }
            // Decided before reading so that the last lines of an ended run still go out.
            let ended = self.ended().await;
            match self.forward().await {
                Ok(true) if !ended => {}
                Ok(_) => return,
                Err(error) => {
                    // The pod's files are removed as it is torn down: the stream just ends.
                    tracing::debug!(%error, "following a log");
                    return;
                }
            }
        }
    }

    /// Sends the new lines; false once nothing more may be sent.
    async fn forward(&mut self) -> std::io::Result<bool> {
        let lines = self.reader.read_new().await?;
        let since = self.query.since;
        let chunk: Vec<u8> = lines
            .iter()
            .filter(|line| since.is_none_or(|since| line.at >= since))
            .flat_map(|line| line.render(self.query.timestamps))
            .collect();
        if chunk.is_empty() {
            return Ok(true);
        }
        let chunk = self.budget.take(chunk);
        let sent = self.sender.send(Ok(Bytes::from(chunk))).await.is_ok();
        Ok(sent && !self.budget.exhausted())
    }

    async fn ended(&self) -> bool {
        if !self.kubelet.registry.has_uid(&self.target.uid) {
            return true;
        }
        let dir = self.kubelet.layout.pod_logs(&self.target.uid);
        let newer = runs_of(&dir.join(&self.target.container))
            .await
            .last()
            .is_some_and(|last| *last > self.run);
        newer || self.target.live_run(&self.kubelet.runtimes).await.is_none()
    }
}
