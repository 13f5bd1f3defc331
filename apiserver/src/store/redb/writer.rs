//! Group commit: one thread owns all writes, applies every queued request in a single
//! transaction (one fsync for the batch), then publishes the events and answers the callers.

use std::sync::Arc;

use ::redb::{Database, ReadableTable, Table, WriteTransaction};
use tokio::sync::{broadcast, mpsc, oneshot};

use super::super::{KeyValue, Revision, StoreError, WatchEvent};
use super::tables::{Context, KEYS, KeyRow, LOG, LogRow, META, META_COMPACTED, META_REVISION};

/// Upper bound on requests per transaction, to bound memory and latency of one commit.
const MAX_BATCH: usize = 1024;

pub(super) type EventBatch = Arc<[WatchEvent]>;

pub(super) enum Op {
    Write(Write),
    /// Forget the log up to the revision; answers with the compacted revision.
    Compact {
        revision: Revision,
    },
}

pub(super) enum Write {
    Create {
        key: String,
        value: Vec<u8>,
    },
    Update {
        key: String,
        value: Vec<u8>,
        expected: Revision,
    },
    Delete {
        key: String,
        expected: Option<Revision>,
    },
}

pub(super) struct Request {
    pub op: Op,
    pub reply: oneshot::Sender<Result<Revision, StoreError>>,
}

/// Runs until every sender is gone.
pub(super) fn run(
    db: Arc<Database>,
    mut requests: mpsc::Receiver<Request>,
    events: broadcast::Sender<EventBatch>,
) {
    while let Some(first) = requests.blocking_recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match requests.try_recv() {
                Ok(request) => batch.push(request),
                Err(_) => break,
            }
        }
        let ops: Vec<&Op> = batch.iter().map(|r| &r.op).collect();
        match commit_batch(&db, &ops) {
            Ok((outcomes, committed)) => {
                if !committed.is_empty() {
                    // No receivers is fine: nobody is watching.
                    let _ = events.send(committed.into());
                }
                for (request, outcome) in batch.into_iter().zip(outcomes) {
                    let _ = request.reply.send(outcome);
                }
            }
            Err(error) => {
                for request in batch {
                    let _ = request.reply.send(Err(error.clone()));
                }
            }
        }
    }
}

/// Per-request outcomes and the events of the successful writes, once durably committed.
type BatchResult = (Vec<Result<Revision, StoreError>>, Vec<WatchEvent>);

fn commit_batch(db: &Database, ops: &[&Op]) -> Result<BatchResult, StoreError> {
    let txn = db.begin_write().ctx("beginning write transaction")?;
    let result = apply_batch(&txn, ops)?;
    txn.commit().ctx("committing")?;
    Ok(result)
}

struct Tables<'txn> {
    keys: Table<'txn, &'static str, KeyRow>,
    log: Table<'txn, i64, LogRow>,
    revision: Revision,
    compacted: Revision,
}

fn apply_batch(txn: &WriteTransaction, ops: &[&Op]) -> Result<BatchResult, StoreError> {
    let mut meta = txn.open_table(META).ctx("opening meta table")?;
    let read_meta = |meta: &Table<&str, i64>, name: &str| -> Result<Revision, StoreError> {
        Ok(meta
            .get(name)
            .ctx("reading meta")?
            .map(|v| v.value())
            .unwrap_or(0))
    };
    let mut tables = Tables {
        keys: txn.open_table(KEYS).ctx("opening keys table")?,
        log: txn.open_table(LOG).ctx("opening log table")?,
        revision: read_meta(&meta, META_REVISION)?,
        compacted: read_meta(&meta, META_COMPACTED)?,
    };
    let mut outcomes = Vec::with_capacity(ops.len());
    let mut events = Vec::new();
    for op in ops {
        let outcome = match op {
            Op::Compact { revision } => tables.compact(*revision)?,
            Op::Write(write) => match tables.write(write)? {
                Ok(event) => {
                    let revision = event.revision();
                    events.push(event);
                    Ok(revision)
                }
                Err(e) => Err(e),
            },
        };
        outcomes.push(outcome);
    }
    meta.insert(META_REVISION, tables.revision)
        .ctx("writing revision")?;
    meta.insert(META_COMPACTED, tables.compacted)
        .ctx("writing compacted revision")?;
    Ok((outcomes, events))
}

/// Outer error: the transaction failed. Inner error: this request was refused, and changed
/// nothing, so the rest of the batch goes on.
type Outcome<T> = Result<Result<T, StoreError>, StoreError>;

impl Tables<'_> {
    fn current(&self, key: &str) -> Result<Option<KeyValue>, StoreError> {
        let found = self.keys.get(key).ctx("reading key")?;
        Ok(found.map(|guard| {
            let (value, create_revision, mod_revision) = guard.value();
            KeyValue {
                key: key.to_string(),
                value: value.to_vec(),
                create_revision,
                mod_revision,
            }
        }))
    }

    fn write(&mut self, write: &Write) -> Outcome<WatchEvent> {
        let revision = self.revision + 1;
        let event = match write {
            Write::Create { key, value } => {
                if self.current(key)?.is_some() {
                    return Ok(Err(StoreError::AlreadyExists { key: key.clone() }));
                }
                self.put(key, value, revision, None)?
            }
            Write::Update {
                key,
                value,
                expected,
            } => {
                let Some(current) = self.current(key)? else {
                    return Ok(Err(StoreError::NotFound { key: key.clone() }));
                };
                if current.mod_revision != *expected {
                    return Ok(Err(StoreError::Conflict {
                        key: key.clone(),
                        expected: *expected,
                        actual: current.mod_revision,
                    }));
                }
                self.put(key, value, revision, Some(current))?
            }
            Write::Delete { key, expected } => {
                let Some(current) = self.current(key)? else {
                    return Ok(Err(StoreError::NotFound { key: key.clone() }));
                };
                if let Some(expected) = expected
                    && current.mod_revision != *expected
                {
                    return Ok(Err(StoreError::Conflict {
                        key: key.clone(),
                        expected: *expected,
                        actual: current.mod_revision,
                    }));
                }
                self.remove(current, revision)?
            }
        };
        self.revision = revision;
        Ok(Ok(event))
    }

    fn put(
        &mut self,
        key: &str,
        value: &[u8],
        revision: Revision,
        previous: Option<KeyValue>,
    ) -> Result<WatchEvent, StoreError> {
        let create_revision = previous.as_ref().map_or(revision, |p| p.create_revision);
        let (prev_mod_revision, prev_value) = previous
            .map(|p| (p.mod_revision, p.value))
            .unwrap_or_default();
        self.keys
            .insert(key, (value, create_revision, revision))
            .ctx("writing key")?;
        self.log
            .insert(
                revision,
                (
                    false,
                    key,
                    value,
                    create_revision,
                    prev_mod_revision,
                    prev_value.as_slice(),
                ),
            )
            .ctx("appending to log")?;
        Ok(WatchEvent::Put {
            kv: KeyValue {
                key: key.to_string(),
                value: value.to_vec(),
                create_revision,
                mod_revision: revision,
            },
        })
    }

    fn remove(&mut self, current: KeyValue, revision: Revision) -> Result<WatchEvent, StoreError> {
        self.keys.remove(current.key.as_str()).ctx("removing key")?;
        self.log
            .insert(
                revision,
                (
                    true,
                    current.key.as_str(),
                    current.value.as_slice(),
                    current.create_revision,
                    current.mod_revision,
                    current.value.as_slice(),
                ),
            )
            .ctx("appending to log")?;
        Ok(WatchEvent::Delete {
            kv: KeyValue {
                mod_revision: revision,
                ..current
            },
        })
    }

    fn compact(&mut self, revision: Revision) -> Outcome<Revision> {
        if revision > self.revision {
            return Ok(Err(StoreError::FutureRevision {
                requested: revision,
                current: self.revision,
            }));
        }
        if revision > self.compacted {
            self.log
                .retain_in(..=revision, |_, _| false)
                .ctx("compacting log")?;
            self.compacted = revision;
        }
        Ok(Ok(self.compacted))
    }
}
