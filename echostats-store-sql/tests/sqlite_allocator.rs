//! `sqlite_allocator::use_mimalloc` in a process of its own (SQLite takes an allocator only
//! before it first initialises, so this cannot share a process with the other tests).

use echostats_core::model::{PlayKind, PlayOrigin, PlayRecord};
use echostats_core::rules::PlayRules;
use echostats_core::store::HistoryStore;
use echostats_store_sql::{sqlite_allocator, SqlStore};

#[tokio::test]
async fn sqlite_allocates_from_mimalloc_and_a_store_works_on_it() {
    assert!(sqlite_allocator::use_mimalloc(), "SQLite was not initialised yet: the change must take");
    assert!(sqlite_allocator::use_mimalloc(), "a second call answers the same");
    // SAFETY: a block from sqlite3_malloc, checked and handed back with sqlite3_free.
    unsafe {
        let p = libsqlite3_sys::sqlite3_malloc(1000);
        assert!(!p.is_null());
        assert!(libmimalloc_sys::mi_is_in_heap_region(p), "SQLite's memory comes from mimalloc");
        libsqlite3_sys::sqlite3_free(p);
    }

    let dir = tempfile::tempdir().unwrap();
    let store = SqlStore::open(&format!("sqlite://{}", dir.path().join("a.db").display())).await.unwrap();
    let rules = PlayRules::default();
    let mut batch = store.begin_batch("u", &rules).await.unwrap();
    let plays: Vec<PlayRecord> = (0..2_000)
        .map(|i| {
            let at = chrono::DateTime::from_timestamp(1_700_000_000 + i * 300, 0).unwrap();
            let mut r = PlayRecord::new(at, 200_000, PlayKind::Track, PlayOrigin::ExtendedHistory);
            r.uri = Some(format!("spotify:track:{}", i % 97));
            r.track_name = Some(format!("Track {}", i % 97));
            r.artist_name = Some(format!("Artist {}", i % 13));
            r
        })
        .collect();
    assert_eq!(batch.insert(plays.clone()).await.unwrap().added, 2_000);
    batch.commit().await.unwrap();
    let read = store.plays_in("u", None).await.unwrap();
    assert_eq!(read.into_iter().map(|e| e.record).collect::<Vec<_>>(), plays);
}
