//! The revisioned key-value store behind the API server: one trait, backends for redb
//! (embedded), etcd and memory (the fake for tests), and one conformance suite for all.
//!
//! Revisions follow etcd: one global counter, bumped by every successful write; each key
//! carries the revision that created it and the one that last modified it. The API server
//! exposes `mod_revision` as `metadata.resourceVersion`.

use std::pin::Pin;

use futures::Stream;

pub mod compactor;
#[cfg(any(test, feature = "conformance"))]
pub mod conformance;
pub mod etcd;
pub mod memory;
pub mod redb;

/// A store revision; `0` means "latest" where a revision is an input.
pub type Revision = i64;

pub use compactor::spawn_compactor;

/// One stored key with its value and revisions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyValue {
    pub key: String,
    pub value: Vec<u8>,
    pub create_revision: Revision,
    pub mod_revision: Revision,
}

/// The result of a list: the items under a prefix, ordered by key, as of `revision`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListResult {
    pub items: Vec<KeyValue>,
    pub revision: Revision,
}

/// A change seen by a watch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WatchEvent {
    /// A create or update; `kv.mod_revision` is the write's revision and
    /// `kv.create_revision == kv.mod_revision` for a create.
    Put { kv: KeyValue },
    /// A delete; `kv` holds the last value, with `mod_revision` set to the delete's revision.
    Delete { kv: KeyValue },
}

impl WatchEvent {
    pub fn kv(&self) -> &KeyValue {
        match self {
            WatchEvent::Put { kv } | WatchEvent::Delete { kv } => kv,
        }
    }

    pub fn revision(&self) -> Revision {
        self.kv().mod_revision
    }
}

/// A watch: events in revision order; ends with an error if the store cannot go on.
pub type WatchStream = Pin<Box<dyn Stream<Item = Result<WatchEvent, StoreError>> + Send>>;

#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum StoreError {
    #[error("key {key} already exists")]
    AlreadyExists { key: String },
    #[error("key {key} not found")]
    NotFound { key: String },
    #[error("key {key} was modified: expected revision {expected}, found {actual}")]
    Conflict {
        key: String,
        expected: Revision,
        actual: Revision,
    },
    #[error("revision {requested} has been compacted, the oldest available is {compacted}")]
    Compacted {
        requested: Revision,
        compacted: Revision,
    },
    #[error("revision {requested} is newer than the current revision {current}")]
    FutureRevision {
        requested: Revision,
        current: Revision,
    },
    #[error("storage backend {backend}: {message}")]
    Backend {
        backend: &'static str,
        message: String,
    },
}

/// The storage seam of the API server.
#[async_trait::async_trait]
pub trait Store: Send + Sync + 'static {
    /// The latest value of `key`, if any.
    async fn get(&self, key: &str) -> Result<Option<KeyValue>, StoreError>;

    /// Every key starting with `prefix`, ordered by key, as of `revision` (`0` = latest).
    /// A compacted revision is `Compacted`; one in the future is `FutureRevision`.
    async fn list(&self, prefix: &str, revision: Revision) -> Result<ListResult, StoreError>;

    /// Creates `key`; `AlreadyExists` if present. Returns the write's revision. Durable when
    /// it returns (the embedded backend fsyncs before acknowledging).
    async fn create(&self, key: &str, value: Vec<u8>) -> Result<Revision, StoreError>;

    /// Replaces `key` if its `mod_revision` is `expected`; `Conflict` otherwise, `NotFound`
    /// when absent. Returns the write's revision.
    async fn update(
        &self,
        key: &str,
        value: Vec<u8>,
        expected: Revision,
    ) -> Result<Revision, StoreError>;

    /// Deletes `key`, if `expected` is given only when its `mod_revision` matches. Returns the
    /// delete's revision.
    async fn delete(&self, key: &str, expected: Option<Revision>) -> Result<Revision, StoreError>;

    /// Every change under `prefix` with a revision greater than `after`, then live changes.
    /// `Compacted` when `after` is older than the compacted revision.
    async fn watch(&self, prefix: &str, after: Revision) -> Result<WatchStream, StoreError>;

    /// Forgets history up to `revision`; later watches and lists before it are `Compacted`.
    async fn compact(&self, revision: Revision) -> Result<(), StoreError>;

    /// The current (latest) revision.
    async fn current_revision(&self) -> Result<Revision, StoreError>;
}
