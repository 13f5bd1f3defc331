//! Watch streams: history from the log, then live batches from the writer, deduplicated by
//! revision. A watcher that falls behind the broadcast buffer catches up from the log.

use std::collections::VecDeque;
use std::sync::Arc;

use ::redb::{Database, ReadableDatabase};
use tokio::sync::broadcast::{self, error::RecvError};

use super::super::{Revision, StoreError, WatchEvent, WatchStream};
use super::tables::{self, BACKEND, Context};
use super::writer::EventBatch;

struct WatchState {
    db: Arc<Database>,
    prefix: String,
    live: broadcast::Receiver<EventBatch>,
    pending: VecDeque<WatchEvent>,
    /// The newest revision already queued or delivered; live events at or below it are dups.
    last: Revision,
    failed: bool,
}

/// Subscribes first, then reads history, so every commit is seen by at least one of the two.
pub(super) async fn watch(
    db: Arc<Database>,
    events: &broadcast::Sender<EventBatch>,
    prefix: &str,
    after: Revision,
) -> Result<WatchStream, StoreError> {
    let live = events.subscribe();
    let (history, upto) = read_history(db.clone(), prefix.to_string(), after).await?;
    let state = WatchState {
        db,
        prefix: prefix.to_string(),
        live,
        pending: history.into(),
        last: upto.max(after),
        failed: false,
    };
    Ok(Box::pin(futures::stream::unfold(state, next_event)))
}

async fn next_event(mut state: WatchState) -> Option<(Result<WatchEvent, StoreError>, WatchState)> {
    loop {
        if state.failed {
            return None;
        }
        if let Some(event) = state.pending.pop_front() {
            return Some((Ok(event), state));
        }
        match state.live.recv().await {
            Ok(batch) => {
                let fresh = batch
                    .iter()
                    .filter(|e| e.revision() > state.last && e.kv().key.starts_with(&state.prefix));
                state.pending.extend(fresh.cloned());
                if let Some(event) = state.pending.back() {
                    state.last = event.revision();
                }
            }
            Err(RecvError::Lagged(_)) => {
                match read_history(state.db.clone(), state.prefix.clone(), state.last).await {
                    Ok((events, upto)) => {
                        state.pending.extend(events);
                        state.last = state.last.max(upto);
                    }
                    Err(error) => {
                        state.failed = true;
                        return Some((Err(error), state));
                    }
                }
            }
            Err(RecvError::Closed) => return None,
        }
    }
}

async fn read_history(
    db: Arc<Database>,
    prefix: String,
    after: Revision,
) -> Result<(Vec<WatchEvent>, Revision), StoreError> {
    tokio::task::spawn_blocking(move || {
        let txn = db.begin_read().ctx("beginning read transaction")?;
        tables::history(&txn, &prefix, after)
    })
    .await
    .map_err(|e| StoreError::Backend {
        backend: BACKEND,
        message: format!("reading watch history: {e}"),
    })?
}
