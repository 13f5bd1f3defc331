//! The embedded backend: a redb file, written by one group-committing thread, fsynced before
//! any write is acknowledged.

mod tables;
mod watch;
mod writer;

use std::path::Path;
use std::sync::Arc;
use std::thread::JoinHandle;

use ::redb::{Database, ReadTransaction, ReadableDatabase};
use tokio::sync::{broadcast, mpsc, oneshot};

use super::{KeyValue, ListResult, Revision, Store, StoreError, WatchStream};
use tables::{BACKEND, Context, KEYS, LOG, META};
use writer::{EventBatch, Op, Request, Write};

/// Queued write requests; callers beyond this wait, which bounds memory under overload.
const WRITE_QUEUE: usize = 4096;
/// Committed batches kept for slow watchers before they fall back to the log.
const EVENT_BUFFER: usize = 1024;

pub struct RedbStore {
    db: Arc<Database>,
    events: broadcast::Sender<EventBatch>,
    writer: Writer,
}

/// The writer thread and its queue; dropping closes the queue and joins the thread, so the
/// file is released when the store is dropped.
struct Writer {
    requests: Option<mpsc::Sender<Request>>,
    thread: Option<JoinHandle<()>>,
}

impl Drop for Writer {
    fn drop(&mut self) {
        self.requests.take();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl RedbStore {
    /// Opens (or creates) the store file, resuming its revision counter and data.
    pub fn open(path: &Path) -> Result<RedbStore, StoreError> {
        let db = Database::create(path).map_err(|e| StoreError::Backend {
            backend: BACKEND,
            message: format!("opening {}: {e}", path.display()),
        })?;
        let txn = db.begin_write().ctx("beginning write transaction")?;
        // Create the tables up front so read transactions can always open them.
        txn.open_table(KEYS).ctx("creating keys table")?;
        txn.open_table(LOG).ctx("creating log table")?;
        txn.open_table(META).ctx("creating meta table")?;
        txn.commit().ctx("committing table creation")?;

        let db = Arc::new(db);
        let (events, _) = broadcast::channel(EVENT_BUFFER);
        let (requests, receiver) = mpsc::channel(WRITE_QUEUE);
        let thread = std::thread::Builder::new()
            .name("rkube-redb-writer".into())
            .spawn({
                let db = db.clone();
                let events = events.clone();
                move || writer::run(db, receiver, events)
            })
            .map_err(|e| StoreError::Backend {
                backend: BACKEND,
                message: format!("starting writer thread: {e}"),
            })?;
        Ok(RedbStore {
            db,
            events,
            writer: Writer {
                requests: Some(requests),
                thread: Some(thread),
            },
        })
    }

    async fn submit(&self, op: Op) -> Result<Revision, StoreError> {
        let stopped = || StoreError::Backend {
            backend: BACKEND,
            message: "writer thread stopped".into(),
        };
        let requests = self.writer.requests.as_ref().ok_or_else(stopped)?;
        let (reply, answer) = oneshot::channel();
        requests
            .send(Request { op, reply })
            .await
            .map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }

    async fn write(&self, write: Write) -> Result<Revision, StoreError> {
        self.submit(Op::Write(write)).await
    }

    /// Runs a read transaction off the async runtime.
    async fn read<T: Send + 'static>(
        &self,
        read: impl FnOnce(&ReadTransaction) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let db = self.db.clone();
        tokio::task::spawn_blocking(move || {
            let txn = db.begin_read().ctx("beginning read transaction")?;
            read(&txn)
        })
        .await
        .map_err(|e| StoreError::Backend {
            backend: BACKEND,
            message: format!("read task failed: {e}"),
        })?
    }
}

#[async_trait::async_trait]
impl Store for RedbStore {
    async fn get(&self, key: &str) -> Result<Option<KeyValue>, StoreError> {
        let key = key.to_string();
        self.read(move |txn| tables::get(txn, &key)).await
    }

    async fn list(&self, prefix: &str, revision: Revision) -> Result<ListResult, StoreError> {
        let prefix = prefix.to_string();
        self.read(move |txn| tables::list(txn, &prefix, revision))
            .await
    }

    async fn create(&self, key: &str, value: Vec<u8>) -> Result<Revision, StoreError> {
        self.write(Write::Create {
            key: key.to_string(),
            value,
        })
        .await
    }

    async fn update(
        &self,
        key: &str,
        value: Vec<u8>,
        expected: Revision,
    ) -> Result<Revision, StoreError> {
        self.write(Write::Update {
            key: key.to_string(),
            value,
            expected,
        })
        .await
    }

    async fn delete(&self, key: &str, expected: Option<Revision>) -> Result<Revision, StoreError> {
        self.write(Write::Delete {
            key: key.to_string(),
            expected,
        })
        .await
    }

    async fn watch(&self, prefix: &str, after: Revision) -> Result<WatchStream, StoreError> {
        watch::watch(self.db.clone(), &self.events, prefix, after).await
    }

    async fn compact(&self, revision: Revision) -> Result<(), StoreError> {
        self.submit(Op::Compact { revision }).await.map(|_| ())
    }

    async fn current_revision(&self) -> Result<Revision, StoreError> {
        self.read(|txn| Ok(tables::read_meta(txn)?.current)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::conformance;

    fn temp_store() -> (tempfile::TempDir, RedbStore) {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = RedbStore::open(&dir.path().join("store.redb")).expect("open");
        (dir, store)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn passes_conformance() {
        let (_dir, store) = temp_store();
        conformance::run_all(&store).await;
    }
}
