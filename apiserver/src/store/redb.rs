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
/// Committed batches kept for slow watchers before they fall back to the log (small under
/// test so the fallback is exercised).
const EVENT_BUFFER: usize = if cfg!(test) { 8 } else { 1024 };

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

    #[tokio::test]
    async fn reopening_resumes_data_revision_and_history() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("store.redb");
        let store = RedbStore::open(&path).expect("open");
        let r1 = store.create("/k/a", b"a1".to_vec()).await.expect("create");
        let r2 = store
            .update("/k/a", b"a2".to_vec(), r1)
            .await
            .expect("update");
        let r3 = store.create("/k/b", b"b1".to_vec()).await.expect("create");
        let r4 = store.delete("/k/b", None).await.expect("delete");
        store.compact(r2).await.expect("compact");
        drop(store);

        let store = RedbStore::open(&path).expect("reopen");
        assert_eq!(store.current_revision().await.expect("revision"), r4);
        let a = store.get("/k/a").await.expect("get").expect("a survives");
        assert_eq!((a.value.as_slice(), a.create_revision), (&b"a2"[..], r1));
        assert_eq!(store.get("/k/b").await.expect("get"), None);
        assert_eq!(
            store.list("/k/", r3).await.expect("list").items.len(),
            2,
            "history since the compaction point survives"
        );
        assert!(matches!(
            store.list("/k/", r1).await,
            Err(StoreError::Compacted { compacted, .. }) if compacted == r2
        ));
        let mut watch = store.watch("/k/", r2).await.expect("watch");
        assert_eq!(next(&mut watch).await.revision(), r3);
        assert_eq!(next(&mut watch).await.revision(), r4);
        let r5 = store.create("/k/c", vec![]).await.expect("create");
        assert_eq!(r5, r4 + 1, "the counter resumes");
        assert_eq!(next(&mut watch).await.revision(), r5);
    }

    async fn next(watch: &mut WatchStream) -> super::super::WatchEvent {
        use futures::StreamExt;
        let item = tokio::time::timeout(std::time::Duration::from_secs(10), watch.next()).await;
        item.expect("event in time")
            .expect("stream open")
            .expect("event")
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn refused_requests_do_not_fail_their_batch() {
        let (_dir, store) = temp_store();
        let store = Arc::new(store);
        let before = store.current_revision().await.expect("revision");
        let racers = (0..64).map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                // Everyone races for the same key and also creates one of its own.
                let shared = store.create("/race/shared", vec![i]).await;
                let own = store.create(&format!("/race/own/{i}"), vec![i]).await;
                (shared, own)
            })
        });
        let results = futures::future::join_all(racers).await;
        let mut winners = 0;
        for result in results {
            let (shared, own) = result.expect("task");
            match shared {
                Ok(_) => winners += 1,
                Err(e) => assert_eq!(
                    e,
                    StoreError::AlreadyExists {
                        key: "/race/shared".into()
                    }
                ),
            }
            own.expect("own key is created");
        }
        assert_eq!(winners, 1);
        let after = store.current_revision().await.expect("revision");
        assert_eq!(after - before, 65, "only successful writes take a revision");
    }

    #[tokio::test]
    async fn lagging_watcher_catches_up_from_the_log() {
        let (_dir, store) = temp_store();
        let mut watch = store.watch("/lag/", 0).await.expect("watch");
        let writes = EVENT_BUFFER * 4;
        let mut revisions = Vec::new();
        for i in 0..writes {
            revisions.push(
                store
                    .create(&format!("/lag/{i}"), vec![])
                    .await
                    .expect("create"),
            );
        }
        for expected in revisions {
            assert_eq!(next(&mut watch).await.revision(), expected);
        }
    }

    #[tokio::test]
    async fn lagging_watcher_past_compaction_gets_compacted() {
        use futures::StreamExt;
        let (_dir, store) = temp_store();
        let mut watch = store.watch("/lag/", 0).await.expect("watch");
        for i in 0..EVENT_BUFFER * 2 {
            store
                .create(&format!("/lag/{i}"), vec![])
                .await
                .expect("create");
        }
        let head = store.current_revision().await.expect("revision");
        store.compact(head).await.expect("compact");
        let item = watch.next().await.expect("an item");
        assert!(
            matches!(item, Err(StoreError::Compacted { .. })),
            "{item:?}"
        );
        assert!(
            watch.next().await.is_none(),
            "the stream ends after the error"
        );
    }

    /// Durable creates per second with 64 concurrent callers; run with
    /// `cargo test -p rkube-apiserver --release -- --ignored --nocapture redb_create_throughput`.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[ignore = "benchmark"]
    async fn redb_create_throughput() {
        let (_dir, store) = temp_store();
        let rate = conformance::create_throughput(std::sync::Arc::new(store), 500).await;
        println!("redb: durable creates, 64 callers: {rate:.0} creates/s");
    }
}
