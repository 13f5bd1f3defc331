//! The on-disk layout and the read paths over it.
//!
//! `keys` holds the latest version of every live key; `log` holds one record per revision
//! since the compacted revision. Each log record carries the version it replaced, so any
//! revision since the compaction point can be rebuilt by undoing newer records.

use std::collections::BTreeMap;

use ::redb::{ReadTransaction, TableDefinition};

use super::super::{KeyValue, ListResult, Revision, StoreError, WatchEvent};

pub(super) const BACKEND: &str = "redb";

/// (value, create_revision, mod_revision)
pub(super) type KeyRow = (&'static [u8], i64, i64);
/// (is_delete, key, value, create_revision, prev_mod_revision, prev_value);
/// `prev_mod_revision == 0` when the key did not exist before the write.
pub(super) type LogRow = (bool, &'static str, &'static [u8], i64, i64, &'static [u8]);

/// key -> `KeyRow`
pub(super) const KEYS: TableDefinition<&str, KeyRow> = TableDefinition::new("keys");
/// revision -> `LogRow`
pub(super) const LOG: TableDefinition<i64, LogRow> = TableDefinition::new("log");
pub(super) const META: TableDefinition<&str, i64> = TableDefinition::new("meta");
pub(super) const META_REVISION: &str = "revision";
pub(super) const META_COMPACTED: &str = "compacted";

/// Maps any redb error to a backend error that says what was being done.
pub(super) trait Context<T> {
    fn ctx(self, doing: &str) -> Result<T, StoreError>;
}

impl<T, E: Into<::redb::Error>> Context<T> for Result<T, E> {
    fn ctx(self, doing: &str) -> Result<T, StoreError> {
        self.map_err(|e| StoreError::Backend {
            backend: BACKEND,
            message: format!("{doing}: {}", e.into()),
        })
    }
}

/// An owned log record.
#[derive(Debug, Clone)]
pub(super) struct LogRecord {
    pub revision: Revision,
    pub is_delete: bool,
    pub key: String,
    pub value: Vec<u8>,
    pub create_revision: Revision,
    pub prev_mod_revision: Revision,
    pub prev_value: Vec<u8>,
}

impl LogRecord {
    pub fn event(&self) -> WatchEvent {
        let kv = KeyValue {
            key: self.key.clone(),
            value: self.value.clone(),
            create_revision: self.create_revision,
            mod_revision: self.revision,
        };
        if self.is_delete {
            WatchEvent::Delete { kv }
        } else {
            WatchEvent::Put { kv }
        }
    }

    /// The version this write replaced, if the key existed before it.
    fn previous(&self) -> Option<KeyValue> {
        (self.prev_mod_revision != 0).then(|| KeyValue {
            key: self.key.clone(),
            value: self.prev_value.clone(),
            create_revision: self.create_revision,
            mod_revision: self.prev_mod_revision,
        })
    }
}

/// Current and compacted revisions as seen by one transaction.
#[derive(Debug, Clone, Copy)]
pub(super) struct Meta {
    pub current: Revision,
    pub compacted: Revision,
}

pub(super) fn read_meta(txn: &ReadTransaction) -> Result<Meta, StoreError> {
    let meta = txn.open_table(META).ctx("opening meta table")?;
    let read = |name: &str| -> Result<Revision, StoreError> {
        Ok(meta
            .get(name)
            .ctx("reading meta")?
            .map(|v| v.value())
            .unwrap_or(0))
    };
    Ok(Meta {
        current: read(META_REVISION)?,
        compacted: read(META_COMPACTED)?,
    })
}

pub(super) fn get(txn: &ReadTransaction, key: &str) -> Result<Option<KeyValue>, StoreError> {
    let keys = txn.open_table(KEYS).ctx("opening keys table")?;
    let found = keys.get(key).ctx("reading key")?;
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

pub(super) fn list(
    txn: &ReadTransaction,
    prefix: &str,
    revision: Revision,
) -> Result<ListResult, StoreError> {
    let meta = read_meta(txn)?;
    let at = if revision == 0 {
        meta.current
    } else {
        revision
    };
    if at > meta.current {
        return Err(StoreError::FutureRevision {
            requested: at,
            current: meta.current,
        });
    }
    if at < meta.compacted {
        return Err(StoreError::Compacted {
            requested: at,
            compacted: meta.compacted,
        });
    }
    let keys = txn.open_table(KEYS).ctx("opening keys table")?;
    let mut items = BTreeMap::new();
    for entry in keys.range::<&str>(prefix..).ctx("scanning keys")? {
        let (key, value) = entry.ctx("scanning keys")?;
        let key = key.value();
        if !key.starts_with(prefix) {
            break;
        }
        let (value, create_revision, mod_revision) = value.value();
        items.insert(
            key.to_string(),
            KeyValue {
                key: key.to_string(),
                value: value.to_vec(),
                create_revision,
                mod_revision,
            },
        );
    }
    // Undo every write after `at`, newest first, to get back to the state at `at`.
    for record in records_after(txn, prefix, at)?.iter().rev() {
        match record.previous() {
            Some(kv) => items.insert(record.key.clone(), kv),
            None => items.remove(&record.key),
        };
    }
    Ok(ListResult {
        items: items.into_values().collect(),
        revision: at,
    })
}

/// The events under `prefix` after `after`, with the revision they run up to. `Compacted`
/// when records after `after` have been forgotten.
pub(super) fn history(
    txn: &ReadTransaction,
    prefix: &str,
    after: Revision,
) -> Result<(Vec<WatchEvent>, Revision), StoreError> {
    let meta = read_meta(txn)?;
    if after < meta.compacted {
        return Err(StoreError::Compacted {
            requested: after,
            compacted: meta.compacted,
        });
    }
    let events = records_after(txn, prefix, after)?
        .iter()
        .map(LogRecord::event)
        .collect();
    Ok((events, meta.current))
}

/// The log records for keys under `prefix` after revision `after`, oldest first.
fn records_after(
    txn: &ReadTransaction,
    prefix: &str,
    after: Revision,
) -> Result<Vec<LogRecord>, StoreError> {
    let log = txn.open_table(LOG).ctx("opening log table")?;
    let mut records = Vec::new();
    for entry in log.range(after.saturating_add(1)..).ctx("scanning log")? {
        let (revision, record) = entry.ctx("scanning log")?;
        let (is_delete, key, value, create_revision, prev_mod_revision, prev_value) =
            record.value();
        if !key.starts_with(prefix) {
            continue;
        }
        records.push(LogRecord {
            revision: revision.value(),
            is_delete,
            key: key.to_string(),
            value: value.to_vec(),
            create_revision,
            prev_mod_revision,
            prev_value: prev_value.to_vec(),
        });
    }
    Ok(records)
}
