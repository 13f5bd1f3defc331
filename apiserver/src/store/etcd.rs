//! The etcd backend: every key lives under a fixed prefix, conditional writes are etcd
//! transactions, revisions are etcd's own (shared with anything else in the cluster).

use std::collections::VecDeque;
use std::time::Duration;

use etcd_client::{
    Client, CompactionOptions, Compare, CompareOp, ConnectOptions, EventType, GetOptions,
    GetResponse, Txn, TxnOp, TxnOpResponse, TxnResponse, WatchOptions, WatchResponse,
};
use futures::StreamExt;

use super::{KeyValue, ListResult, Revision, Store, StoreError, WatchEvent, WatchStream};

const BACKEND: &str = "etcd";
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long to wait for etcd to report its compaction point after a compacted error.
const COMPACTION_PROBE_TIMEOUT: Duration = Duration::from_secs(5);
// etcd reports these conditions only in the gRPC status message.
const COMPACTED_MESSAGE: &str = "required revision has been compacted";
const FUTURE_MESSAGE: &str = "required revision is a future revision";

pub struct EtcdStore {
    client: Client,
    prefix: String,
}

fn backend(doing: &str, error: impl std::fmt::Display) -> StoreError {
    StoreError::Backend {
        backend: BACKEND,
        message: format!("{doing}: {error}"),
    }
}

fn is_compacted(error: &etcd_client::Error) -> bool {
    error.to_string().contains(COMPACTED_MESSAGE)
}

fn is_future(error: &etcd_client::Error) -> bool {
    error.to_string().contains(FUTURE_MESSAGE)
}

fn header_revision(header: Option<&etcd_client::ResponseHeader>) -> Result<Revision, StoreError> {
    header
        .map(|h| h.revision())
        .ok_or_else(|| backend("reading response", "missing header"))
}

impl EtcdStore {
    /// Connects to the cluster; `prefix` is prepended to every key and stripped from results.
    pub async fn connect(endpoints: &[String], prefix: &str) -> Result<EtcdStore, StoreError> {
        let options = ConnectOptions::new().with_connect_timeout(CONNECT_TIMEOUT);
        let client = Client::connect(endpoints, Some(options))
            .await
            .map_err(|e| backend(&format!("connecting to {endpoints:?}"), e))?;
        Ok(EtcdStore {
            client,
            prefix: prefix.to_string(),
        })
    }

    fn full_key(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }

    fn key_value(&self, kv: &etcd_client::KeyValue) -> Result<KeyValue, StoreError> {
        let full = kv.key_str().map_err(|e| backend("decoding key", e))?;
        let key = full
            .strip_prefix(&self.prefix)
            .ok_or_else(|| backend("decoding key", format!("{full} is outside the prefix")))?;
        Ok(KeyValue {
            key: key.to_string(),
            value: kv.value().to_vec(),
            create_revision: kv.create_revision(),
            mod_revision: kv.mod_revision(),
        })
    }

    async fn range(
        &self,
        prefix: &str,
        options: GetOptions,
    ) -> Result<GetResponse, etcd_client::Error> {
        self.client
            .kv_client()
            .get(self.full_key(prefix), Some(options.with_prefix()))
            .await
    }

    async fn txn(&self, txn: Txn) -> Result<TxnResponse, StoreError> {
        self.client
            .kv_client()
            .txn(txn)
            .await
            .map_err(|e| backend("running transaction", e))
    }

    /// The value the failed branch of a transaction read with `TxnOp::get`.
    fn read_back(&self, response: &TxnResponse) -> Result<Option<KeyValue>, StoreError> {
        match response.op_responses().first() {
            Some(TxnOpResponse::Get(get)) => {
                get.kvs().first().map(|kv| self.key_value(kv)).transpose()
            }
            _ => Err(backend("reading transaction", "missing read-back")),
        }
    }

    /// A write guarded by "the key exists" and, if given, its mod revision; on a failed guard
    /// the key is read in the same transaction to tell `NotFound` from `Conflict`.
    async fn guarded(
        &self,
        key: &str,
        expected: Option<Revision>,
        write: TxnOp,
    ) -> Result<Revision, StoreError> {
        let full = self.full_key(key);
        let mut guards = vec![Compare::version(full.clone(), CompareOp::Greater, 0)];
        if let Some(expected) = expected {
            guards.push(Compare::mod_revision(
                full.clone(),
                CompareOp::Equal,
                expected,
            ));
        }
        let txn = Txn::new()
            .when(guards)
            .and_then([write])
            .or_else([TxnOp::get(full, None)]);
        let response = self.txn(txn).await?;
        if response.succeeded() {
            return header_revision(response.header());
        }
        match (self.read_back(&response)?, expected) {
            (None, _) => Err(StoreError::NotFound { key: key.into() }),
            (Some(current), Some(expected)) => Err(StoreError::Conflict {
                key: key.into(),
                expected,
                actual: current.mod_revision,
            }),
            (Some(_), None) => Err(backend("writing", "guard failed on an existing key")),
        }
    }

    /// The compaction point, which etcd only reveals to a watch started before it.
    async fn compacted_revision(&self) -> Result<Revision, StoreError> {
        let options = WatchOptions::new().with_prefix().with_start_revision(1);
        let mut stream = self
            .client
            .watch_client()
            .watch(self.prefix.clone(), Some(options))
            .await
            .map_err(|e| backend("probing compaction", e))?;
        let probe = async {
            while let Some(response) = stream
                .message()
                .await
                .map_err(|e| backend("probing compaction", e))?
            {
                if response.compact_revision() > 0 {
                    return Ok(response.compact_revision());
                }
                if response.canceled() {
                    break;
                }
            }
            Err(backend(
                "probing compaction",
                "no compaction revision reported",
            ))
        };
        tokio::time::timeout(COMPACTION_PROBE_TIMEOUT, probe)
            .await
            .map_err(|_| backend("probing compaction", "timed out"))?
    }

    async fn compacted_error(&self, requested: Revision) -> StoreError {
        match self.compacted_revision().await {
            Ok(compacted) => StoreError::Compacted {
                requested,
                compacted,
            },
            Err(e) => e,
        }
    }

    async fn future_error(&self, requested: Revision) -> StoreError {
        match self.current_revision().await {
            Ok(current) => StoreError::FutureRevision { requested, current },
            Err(e) => e,
        }
    }
}

#[async_trait::async_trait]
impl Store for EtcdStore {
    async fn get(&self, key: &str) -> Result<Option<KeyValue>, StoreError> {
        let response = self
            .client
            .kv_client()
            .get(self.full_key(key), None)
            .await
            .map_err(|e| backend("reading key", e))?;
        response
            .kvs()
            .first()
            .map(|kv| self.key_value(kv))
            .transpose()
    }

    async fn list(&self, prefix: &str, revision: Revision) -> Result<ListResult, StoreError> {
        let response = match self
            .range(prefix, GetOptions::new().with_revision(revision))
            .await
        {
            Ok(response) => response,
            Err(e) if is_compacted(&e) => return Err(self.compacted_error(revision).await),
            Err(e) if is_future(&e) => return Err(self.future_error(revision).await),
            Err(e) => return Err(backend("listing", e)),
        };
        let items = response
            .kvs()
            .iter()
            .map(|kv| self.key_value(kv))
            .collect::<Result<_, _>>()?;
        let revision = if revision == 0 {
            header_revision(response.header())?
        } else {
            revision
        };
        Ok(ListResult { items, revision })
    }

    async fn create(&self, key: &str, value: Vec<u8>) -> Result<Revision, StoreError> {
        let full = self.full_key(key);
        let txn = Txn::new()
            .when([Compare::create_revision(full.clone(), CompareOp::Equal, 0)])
            .and_then([TxnOp::put(full, value, None)]);
        let response = self.txn(txn).await?;
        if !response.succeeded() {
            return Err(StoreError::AlreadyExists { key: key.into() });
        }
        header_revision(response.header())
    }

    async fn update(
        &self,
        key: &str,
        value: Vec<u8>,
        expected: Revision,
    ) -> Result<Revision, StoreError> {
        let put = TxnOp::put(self.full_key(key), value, None);
        self.guarded(key, Some(expected), put).await
    }

    async fn delete(&self, key: &str, expected: Option<Revision>) -> Result<Revision, StoreError> {
        let delete = TxnOp::delete(self.full_key(key), None);
        self.guarded(key, expected, delete).await
    }

    async fn watch(&self, prefix: &str, after: Revision) -> Result<WatchStream, StoreError> {
        // A watch below the compaction point is only refused asynchronously; a read at `after`
        // refuses it now, with the same boundary as the other backends.
        let probe = GetOptions::new()
            .with_revision(after.max(1))
            .with_count_only();
        match self.range(prefix, probe).await {
            Ok(_) => {}
            Err(e) if is_compacted(&e) => return Err(self.compacted_error(after).await),
            Err(e) if is_future(&e) => {}
            Err(e) => return Err(backend("watching", e)),
        }
        let options = WatchOptions::new()
            .with_prefix()
            .with_start_revision(after + 1)
            .with_prev_key();
        let stream = self
            .client
            .watch_client()
            .watch(self.full_key(prefix), Some(options))
            .await
            .map_err(|e| backend("watching", e))?;
        let state = WatchState {
            stream,
            prefix: self.prefix.clone(),
            after,
            pending: VecDeque::new(),
            done: false,
        };
        Ok(Box::pin(futures::stream::unfold(state, next_event)))
    }

    async fn compact(&self, revision: Revision) -> Result<(), StoreError> {
        let options = CompactionOptions::new().with_physical();
        match self
            .client
            .kv_client()
            .compact(revision, Some(options))
            .await
        {
            Ok(_) => Ok(()),
            // Already compacted at or past `revision`: nothing to do.
            Err(e) if is_compacted(&e) => Ok(()),
            Err(e) if is_future(&e) => Err(self.future_error(revision).await),
            Err(e) => Err(backend("compacting", e)),
        }
    }

    async fn current_revision(&self) -> Result<Revision, StoreError> {
        let response = self
            .range("", GetOptions::new().with_count_only())
            .await
            .map_err(|e| backend("reading current revision", e))?;
        header_revision(response.header())
    }
}

struct WatchState {
    stream: etcd_client::WatchStream,
    prefix: String,
    after: Revision,
    pending: VecDeque<Result<WatchEvent, StoreError>>,
    done: bool,
}

async fn next_event(mut state: WatchState) -> Option<(Result<WatchEvent, StoreError>, WatchState)> {
    loop {
        if let Some(item) = state.pending.pop_front() {
            return Some((item, state));
        }
        if state.done {
            return None;
        }
        match state.stream.next().await {
            Some(Ok(response)) => state.absorb(&response),
            Some(Err(e)) => {
                state.done = true;
                state.pending.push_back(Err(backend("watch stream", e)));
            }
            None => state.done = true,
        }
    }
}

impl WatchState {
    fn absorb(&mut self, response: &WatchResponse) {
        if response.canceled() {
            self.done = true;
            let error = if response.compact_revision() > 0 {
                StoreError::Compacted {
                    requested: self.after,
                    compacted: response.compact_revision(),
                }
            } else {
                backend("watch canceled", response.cancel_reason())
            };
            self.pending.push_back(Err(error));
            return;
        }
        for event in response.events() {
            let item = self.event(event);
            if let Ok(event) = &item {
                self.after = event.revision();
            }
            self.pending.push_back(item);
        }
    }

    fn event(&self, event: &etcd_client::Event) -> Result<WatchEvent, StoreError> {
        let kv = event
            .kv()
            .ok_or_else(|| backend("watch event", "missing key-value"))?;
        let full = kv.key_str().map_err(|e| backend("decoding key", e))?;
        let key = full
            .strip_prefix(&self.prefix)
            .ok_or_else(|| backend("decoding key", format!("{full} is outside the prefix")))?
            .to_string();
        Ok(match event.event_type() {
            EventType::Put => WatchEvent::Put {
                kv: KeyValue {
                    key,
                    value: kv.value().to_vec(),
                    create_revision: kv.create_revision(),
                    mod_revision: kv.mod_revision(),
                },
            },
            // A delete carries only the key; the last value comes from `prev_kv`, which etcd
            // omits when it has been compacted away.
            EventType::Delete => {
                let prev = event.prev_kv();
                WatchEvent::Delete {
                    kv: KeyValue {
                        key,
                        value: prev.map(|p| p.value().to_vec()).unwrap_or_default(),
                        create_revision: prev.map_or(0, |p| p.create_revision()),
                        mod_revision: kv.mod_revision(),
                    },
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::conformance;

    async fn start() -> (rkube_harness::Etcd, EtcdStore) {
        let etcd = rkube_harness::Etcd::start()
            .expect("a real etcd is required (apt-get install etcd-server)");
        let store = EtcdStore::connect(&[etcd.endpoint()], "/rkube-test")
            .await
            .expect("connect");
        (etcd, store)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn passes_conformance() {
        let (_etcd, store) = start().await;
        conformance::run_all(&store).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn keys_stay_under_the_prefix() {
        let (etcd, store) = start().await;
        let other = EtcdStore::connect(&[etcd.endpoint()], "/other")
            .await
            .expect("connect");
        store.create("/a", b"mine".to_vec()).await.expect("create");
        other
            .create("/a", b"theirs".to_vec())
            .await
            .expect("create");
        let mine = store.list("/", 0).await.expect("list");
        assert_eq!(mine.items.len(), 1);
        assert_eq!(mine.items[0].key, "/a");
        assert_eq!(mine.items[0].value, b"mine");
        let raw = EtcdStore::connect(&[etcd.endpoint()], "")
            .await
            .expect("connect");
        let stored = raw.get("/rkube-test/a").await.expect("get");
        assert_eq!(stored.map(|kv| kv.value), Some(b"mine".to_vec()));
    }

    /// Durable creates per second with 64 concurrent callers; run with
    /// `cargo test -p rkube-apiserver --release -- --ignored --nocapture etcd_create_throughput`.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[ignore = "benchmark"]
    async fn etcd_create_throughput() {
        let (_etcd, store) = start().await;
        let rate = conformance::create_throughput(std::sync::Arc::new(store), 200).await;
        println!("etcd: durable creates, 64 callers: {rate:.0} creates/s");
    }
}
