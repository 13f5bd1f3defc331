//! Periodic compaction, so the history every backend keeps for watches stays bounded.

use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio::time::{Instant, MissedTickBehavior};

use super::{Revision, Store, StoreError};

/// Every `interval`, compacts `store` to `current_revision - keep`. Failures are logged and
/// retried on the next tick. Abort the returned handle to stop.
pub fn spawn_compactor(store: Arc<dyn Store>, interval: Duration, keep: i64) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval_at(Instant::now() + interval, interval);
        ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            if let Err(error) = compact_once(store.as_ref(), keep).await {
                tracing::warn!(%error, "store compaction failed");
            }
        }
    })
}

/// Compacts to `current_revision - keep`; returns the revision compacted to, if any.
pub async fn compact_once(store: &dyn Store, keep: i64) -> Result<Option<Revision>, StoreError> {
    let target = store.current_revision().await?.saturating_sub(keep);
    if target <= 0 {
        return Ok(None);
    }
    store.compact(target).await?;
    Ok(Some(target))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::memory::MemoryStore;

    async fn write(store: &dyn Store, count: usize) -> Revision {
        let mut last = 0;
        for _ in 0..count {
            let key = format!("/c/{}", uuid::Uuid::new_v4());
            last = store.create(&key, vec![]).await.expect("create");
        }
        last
    }

    #[tokio::test]
    async fn compact_once_keeps_the_newest_revisions() {
        let store = MemoryStore::new();
        assert_eq!(
            compact_once(&store, 5).await,
            Ok(None),
            "nothing to compact yet"
        );
        let head = write(&store, 10).await;
        assert_eq!(compact_once(&store, 3).await, Ok(Some(head - 3)));
        assert!(store.list("/c/", head - 3).await.is_ok());
        assert!(matches!(
            store.list("/c/", head - 4).await,
            Err(StoreError::Compacted { .. })
        ));
    }

    #[tokio::test]
    async fn compactor_runs_periodically() {
        let store = Arc::new(MemoryStore::new());
        let head = write(store.as_ref(), 10).await;
        let compactor = spawn_compactor(store.clone(), Duration::from_millis(20), 2);
        let deadline = Instant::now() + Duration::from_secs(5);
        while store.list("/c/", head - 3).await.is_ok() {
            assert!(Instant::now() < deadline, "no compaction within 5s");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(store.list("/c/", head - 2).await.is_ok());

        // Later writes move the compaction point along.
        let head = write(store.as_ref(), 5).await;
        while store.list("/c/", head - 3).await.is_ok() {
            assert!(Instant::now() < deadline, "no second compaction within 5s");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        compactor.abort();
    }
}
