//! The one conformance suite every `Store` backend must pass. Each case works under its own
//! key prefix, so the cases can share one store; `run_all` runs them in order, compaction last.
//! Revisions are only assumed to increase, never to be consecutive (etcd shares its counter).

use std::collections::HashSet;
use std::time::Duration;

use futures::StreamExt;

use super::{KeyValue, Revision, Store, StoreError, WatchEvent, WatchStream};

const EVENT_TIMEOUT: Duration = Duration::from_secs(10);
const QUIET_PERIOD: Duration = Duration::from_millis(300);
pub const CONCURRENT_CALLERS: usize = 64;
const CREATES_PER_CALLER: usize = 8;

/// Runs every case against `store`, which must not be written by anyone else meanwhile.
pub async fn run_all(store: &dyn Store) {
    create_and_get(store, "/conf/create/").await;
    create_existing_key(store, "/conf/exists/").await;
    update_checks_revision(store, "/conf/update/").await;
    delete_with_and_without_expected(store, "/conf/delete/").await;
    revisions_are_global_and_increasing(store, "/conf/revisions/").await;
    list_orders_keys_and_isolates_prefixes(store, "/conf/list/").await;
    list_at_old_revision(store, "/conf/history/").await;
    future_revision_is_refused(store, "/conf/future/").await;
    watch_replays_history_then_live(store, "/conf/watch/").await;
    watch_isolates_prefixes(store, "/conf/watchprefix/").await;
    concurrent_creates(store, "/conf/concurrent/").await;
    compaction(store, "/conf/compact/").await;
}

fn kv(key: &str, value: &[u8], create_revision: Revision, mod_revision: Revision) -> KeyValue {
    KeyValue {
        key: key.to_string(),
        value: value.to_vec(),
        create_revision,
        mod_revision,
    }
}

async fn next_event(watch: &mut WatchStream) -> WatchEvent {
    match tokio::time::timeout(EVENT_TIMEOUT, watch.next()).await {
        Ok(Some(Ok(event))) => event,
        Ok(Some(Err(e))) => panic!("watch failed: {e}"),
        Ok(None) => panic!("watch ended"),
        Err(_) => panic!("no watch event within {EVENT_TIMEOUT:?}"),
    }
}

async fn assert_quiet(watch: &mut WatchStream) {
    if let Ok(item) = tokio::time::timeout(QUIET_PERIOD, watch.next()).await {
        panic!("unexpected watch item: {item:?}");
    }
}

pub async fn create_and_get(store: &dyn Store, p: &str) {
    let key = format!("{p}a");
    let rev = store.create(&key, b"one".to_vec()).await.expect("create");
    assert!(rev > 0, "revision {rev} must be positive");
    let got = store.get(&key).await.expect("get");
    assert_eq!(got, Some(kv(&key, b"one", rev, rev)));
    let missing = store
        .get(&format!("{p}missing"))
        .await
        .expect("get missing");
    assert_eq!(missing, None);
}

pub async fn create_existing_key(store: &dyn Store, p: &str) {
    let key = format!("{p}a");
    let rev = store.create(&key, b"first".to_vec()).await.expect("create");
    let err = store.create(&key, b"second".to_vec()).await;
    assert_eq!(err, Err(StoreError::AlreadyExists { key: key.clone() }));
    let got = store.get(&key).await.expect("get");
    assert_eq!(got, Some(kv(&key, b"first", rev, rev)), "value unchanged");
}

pub async fn update_checks_revision(store: &dyn Store, p: &str) {
    let key = format!("{p}a");
    let created = store.create(&key, b"v1".to_vec()).await.expect("create");
    let updated = store
        .update(&key, b"v2".to_vec(), created)
        .await
        .expect("update with the right revision");
    assert!(updated > created);
    let got = store.get(&key).await.expect("get");
    assert_eq!(
        got,
        Some(kv(&key, b"v2", created, updated)),
        "create_revision is preserved"
    );

    let stale = store.update(&key, b"v3".to_vec(), created).await;
    assert_eq!(
        stale,
        Err(StoreError::Conflict {
            key: key.clone(),
            expected: created,
            actual: updated
        })
    );
    let got = store.get(&key).await.expect("get");
    assert_eq!(got, Some(kv(&key, b"v2", created, updated)), "unchanged");

    let missing = format!("{p}missing");
    let err = store.update(&missing, b"x".to_vec(), updated).await;
    assert_eq!(
        err,
        Err(StoreError::NotFound {
            key: missing.clone()
        })
    );
    // Expecting revision 0 must not create the key.
    let err = store.update(&missing, b"x".to_vec(), 0).await;
    assert_eq!(
        err,
        Err(StoreError::NotFound {
            key: missing.clone()
        })
    );
    assert_eq!(store.get(&missing).await.expect("get"), None);
}

pub async fn delete_with_and_without_expected(store: &dyn Store, p: &str) {
    let key = format!("{p}a");
    let created = store.create(&key, b"v".to_vec()).await.expect("create");
    let stale = store.delete(&key, Some(created - 1)).await;
    assert_eq!(
        stale,
        Err(StoreError::Conflict {
            key: key.clone(),
            expected: created - 1,
            actual: created
        })
    );
    assert!(store.get(&key).await.expect("get").is_some(), "still there");
    let deleted = store.delete(&key, Some(created)).await.expect("delete");
    assert!(deleted > created);
    assert_eq!(store.get(&key).await.expect("get"), None);
    assert_eq!(
        store.delete(&key, None).await,
        Err(StoreError::NotFound { key: key.clone() })
    );
    assert_eq!(
        store.delete(&key, Some(deleted)).await,
        Err(StoreError::NotFound { key: key.clone() })
    );

    // Unconditional delete, and a re-create gets a fresh create_revision.
    let recreated = store.create(&key, b"again".to_vec()).await.expect("create");
    assert!(recreated > deleted);
    assert_eq!(
        store.get(&key).await.expect("get"),
        Some(kv(&key, b"again", recreated, recreated))
    );
    let deleted_again = store.delete(&key, None).await.expect("delete");
    assert!(deleted_again > recreated);
    assert_eq!(store.get(&key).await.expect("get"), None);
}

pub async fn revisions_are_global_and_increasing(store: &dyn Store, p: &str) {
    let before = store.current_revision().await.expect("current revision");
    let a = store
        .create(&format!("{p}a"), vec![])
        .await
        .expect("create a");
    let b = store
        .create(&format!("{p}b"), vec![])
        .await
        .expect("create b");
    let a2 = store
        .update(&format!("{p}a"), vec![1], a)
        .await
        .expect("update a");
    let b2 = store
        .delete(&format!("{p}b"), None)
        .await
        .expect("delete b");
    let revisions = [before, a, b, a2, b2];
    assert!(
        revisions.windows(2).all(|w| w[0] < w[1]),
        "revisions must strictly increase across keys: {revisions:?}"
    );
    let failed = store.create(&format!("{p}a"), vec![]).await;
    assert!(failed.is_err());
    assert_eq!(
        store.current_revision().await.expect("current revision"),
        b2,
        "a failed write does not bump the revision"
    );
}

pub async fn list_orders_keys_and_isolates_prefixes(store: &dyn Store, p: &str) {
    for key in ["a/2", "a/1", "a/3", "ab/1", "b", "a"] {
        store
            .create(&format!("{p}{key}"), key.as_bytes().to_vec())
            .await
            .expect("create");
    }
    let current = store.current_revision().await.expect("current revision");
    let listed = store.list(&format!("{p}a/"), 0).await.expect("list");
    let keys: Vec<_> = listed.items.iter().map(|kv| kv.key.clone()).collect();
    assert_eq!(
        keys,
        [format!("{p}a/1"), format!("{p}a/2"), format!("{p}a/3")]
    );
    assert_eq!(listed.items[0].value, b"a/1");
    assert_eq!(listed.revision, current);

    let listed = store.list(&format!("{p}ab/"), 0).await.expect("list");
    let keys: Vec<_> = listed.items.iter().map(|kv| kv.key.clone()).collect();
    assert_eq!(keys, [format!("{p}ab/1")]);

    let listed = store.list(p, 0).await.expect("list all");
    assert_eq!(listed.items.len(), 6);
    assert!(
        listed.items.windows(2).all(|w| w[0].key < w[1].key),
        "ordered by key"
    );
    let empty = store.list(&format!("{p}zzz/"), 0).await.expect("list");
    assert!(empty.items.is_empty());
}

pub async fn list_at_old_revision(store: &dyn Store, p: &str) {
    let (x1, x2, x3) = (format!("{p}x1"), format!("{p}x2"), format!("{p}x3"));
    let r1 = store.create(&x1, b"x1a".to_vec()).await.expect("create");
    let r2 = store.create(&x2, b"x2a".to_vec()).await.expect("create");
    let r3 = store
        .update(&x1, b"x1b".to_vec(), r1)
        .await
        .expect("update");
    let r4 = store.delete(&x2, Some(r2)).await.expect("delete");
    let r5 = store.create(&x3, b"x3a".to_vec()).await.expect("create");
    // A write elsewhere must not disturb the history of this prefix.
    store
        .create(&format!("{p}/other"), vec![])
        .await
        .expect("create");

    let at = |revision| async move { store.list(p, revision).await.expect("list") };
    let listed = at(r1 - 1).await;
    assert!(listed.items.is_empty(), "nothing before the first write");
    assert_eq!(listed.revision, r1 - 1);
    let listed = at(r2).await;
    assert_eq!(listed.revision, r2);
    assert_eq!(
        listed.items,
        [kv(&x1, b"x1a", r1, r1), kv(&x2, b"x2a", r2, r2)]
    );
    assert_eq!(
        at(r3).await.items,
        [kv(&x1, b"x1b", r1, r3), kv(&x2, b"x2a", r2, r2)]
    );
    assert_eq!(at(r4).await.items, [kv(&x1, b"x1b", r1, r3)]);
    assert_eq!(
        at(r5).await.items,
        [kv(&x1, b"x1b", r1, r3), kv(&x3, b"x3a", r5, r5)]
    );
}

pub async fn future_revision_is_refused(store: &dyn Store, p: &str) {
    store
        .create(&format!("{p}a"), vec![])
        .await
        .expect("create");
    let current = store.current_revision().await.expect("current revision");
    let err = store.list(p, current + 100).await;
    assert!(
        matches!(
            err,
            Err(StoreError::FutureRevision { requested, current: c })
                if requested == current + 100 && c >= current
        ),
        "{err:?}"
    );
    let err = store.compact(current + 100).await;
    assert!(
        matches!(err, Err(StoreError::FutureRevision { .. })),
        "{err:?}"
    );
}

pub async fn watch_replays_history_then_live(store: &dyn Store, p: &str) {
    let (a, b) = (format!("{p}a"), format!("{p}b"));
    let r1 = store.create(&a, b"a1".to_vec()).await.expect("create");
    let r2 = store.update(&a, b"a2".to_vec(), r1).await.expect("update");
    let r3 = store.delete(&a, None).await.expect("delete");
    store
        .create(&format!("/conf/elsewhere{p}"), vec![])
        .await
        .expect("create outside the prefix");
    let r4 = store.create(&b, b"b1".to_vec()).await.expect("create");

    let mut watch = store.watch(p, r1 - 1).await.expect("watch");
    let history = [
        WatchEvent::Put {
            kv: kv(&a, b"a1", r1, r1),
        },
        WatchEvent::Put {
            kv: kv(&a, b"a2", r1, r2),
        },
        WatchEvent::Delete {
            kv: kv(&a, b"a2", r1, r3),
        },
        WatchEvent::Put {
            kv: kv(&b, b"b1", r4, r4),
        },
    ];
    for expected in &history {
        assert_eq!(&next_event(&mut watch).await, expected);
    }

    let r5 = store.update(&b, b"b2".to_vec(), r4).await.expect("update");
    let r6 = store.delete(&b, Some(r5)).await.expect("delete");
    assert_eq!(
        next_event(&mut watch).await,
        WatchEvent::Put {
            kv: kv(&b, b"b2", r4, r5)
        }
    );
    assert_eq!(
        next_event(&mut watch).await,
        WatchEvent::Delete {
            kv: kv(&b, b"b2", r4, r6)
        }
    );
    assert_quiet(&mut watch).await;

    // Starting later skips what came before; starting at the head sees only live events.
    let mut from_r2 = store.watch(p, r2).await.expect("watch");
    assert_eq!(next_event(&mut from_r2).await.revision(), r3);
    assert_eq!(next_event(&mut from_r2).await.revision(), r4);
    let head = store.current_revision().await.expect("current revision");
    let mut live = store.watch(p, head).await.expect("watch");
    let r7 = store.create(&a, b"a3".to_vec()).await.expect("create");
    assert_eq!(
        next_event(&mut live).await,
        WatchEvent::Put {
            kv: kv(&a, b"a3", r7, r7)
        }
    );
    assert_quiet(&mut live).await;
}

pub async fn watch_isolates_prefixes(store: &dyn Store, p: &str) {
    let head = store.current_revision().await.expect("current revision");
    let mut watch_a = store.watch(&format!("{p}a/"), head).await.expect("watch");
    let mut watch_ab = store.watch(&format!("{p}ab/"), head).await.expect("watch");
    let ab = store
        .create(&format!("{p}ab/1"), vec![])
        .await
        .expect("create");
    let a = store
        .create(&format!("{p}a/1"), vec![])
        .await
        .expect("create");
    assert_eq!(next_event(&mut watch_a).await.revision(), a);
    assert_eq!(next_event(&mut watch_ab).await.revision(), ab);
    assert_quiet(&mut watch_a).await;
    assert_quiet(&mut watch_ab).await;
}

pub async fn concurrent_creates(store: &dyn Store, p: &str) {
    let callers = (0..CONCURRENT_CALLERS).map(|caller| async move {
        let mut revisions = Vec::new();
        for i in 0..CREATES_PER_CALLER {
            let key = format!("{p}{caller:02}/{i}");
            revisions.push(store.create(&key, vec![0; 64]).await.expect("create"));
        }
        revisions
    });
    let revisions: Vec<Revision> = futures::future::join_all(callers)
        .await
        .into_iter()
        .flatten()
        .collect();
    let distinct: HashSet<_> = revisions.iter().collect();
    assert_eq!(distinct.len(), CONCURRENT_CALLERS * CREATES_PER_CALLER);
    let listed = store.list(p, 0).await.expect("list");
    assert_eq!(listed.items.len(), CONCURRENT_CALLERS * CREATES_PER_CALLER);
}

pub async fn compaction(store: &dyn Store, p: &str) {
    let key = format!("{p}a");
    let r1 = store.create(&key, b"1".to_vec()).await.expect("create");
    let r2 = store.update(&key, b"2".to_vec(), r1).await.expect("update");
    let r3 = store.update(&key, b"3".to_vec(), r2).await.expect("update");
    store.compact(r2).await.expect("compact");

    let err = store.list(p, r1).await;
    assert_eq!(
        err,
        Err(StoreError::Compacted {
            requested: r1,
            compacted: r2
        })
    );
    let at_r2 = store
        .list(p, r2)
        .await
        .expect("list at the compacted revision");
    assert_eq!(at_r2.items, [kv(&key, b"2", r1, r2)]);
    let latest = store.list(p, 0).await.expect("list latest");
    assert_eq!(latest.items, [kv(&key, b"3", r1, r3)]);

    match store.watch(p, r1 - 1).await {
        Err(StoreError::Compacted {
            requested,
            compacted,
        }) => {
            assert_eq!(requested, r1 - 1);
            assert_eq!(compacted, r2);
        }
        Err(e) => panic!("expected Compacted, got {e}"),
        Ok(_) => panic!("expected Compacted, got a watch"),
    }
    let mut watch = store
        .watch(p, r2)
        .await
        .expect("watch after the compaction point");
    assert_eq!(
        next_event(&mut watch).await,
        WatchEvent::Put {
            kv: kv(&key, b"3", r1, r3)
        }
    );

    store
        .compact(r1)
        .await
        .expect("compacting an older revision is a no-op");
    assert!(matches!(
        store.list(p, r1).await,
        Err(StoreError::Compacted { .. })
    ));
}

/// Durable creates per second from [`CONCURRENT_CALLERS`] spawned tasks, `per_caller` each
/// (a quick figure for the ignored throughput tests of each backend).
pub async fn create_throughput(store: std::sync::Arc<dyn Store>, per_caller: usize) -> f64 {
    let started = std::time::Instant::now();
    let callers = (0..CONCURRENT_CALLERS).map(|caller| {
        let store = store.clone();
        tokio::spawn(async move {
            for i in 0..per_caller {
                let key = format!("/bench/{caller}/{i}");
                store.create(&key, vec![7; 256]).await.expect("create");
            }
        })
    });
    for caller in futures::future::join_all(callers).await {
        caller.expect("caller");
    }
    (CONCURRENT_CALLERS * per_caller) as f64 / started.elapsed().as_secs_f64()
}
