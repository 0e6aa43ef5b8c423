//! Rough write timings on a MongoDB-wire server (`ECHOSTATS_TEST_MONGO_URL`, a scratch
//! database dropped afterwards). Ignored by default; run in release:
//!
//! ```text
//! ECHOSTATS_TEST_MONGO_URL=mongodb://127.0.0.1:27018 \
//!   cargo test --release -p echostats-store-mongo --test perf -- --ignored --nocapture
//! ECHOSTATS_PERF_ENTRIES=20000 ... (fewer entries)
//! ```

use echostats_core::rules::PlayRules;
use echostats_core::store::{AnalyticsStore, HistoryStore, ItemKind};
use echostats_store_mongo::MongoStore;
use std::time::Instant;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "timing; run in release with --ignored"]
async fn insert_100k_records_mongo() {
    let Some(base) = echostats_core::conformance::service_url("ECHOSTATS_TEST_MONGO_URL") else { return };
    let n: usize = std::env::var("ECHOSTATS_PERF_ENTRIES").ok().and_then(|v| v.parse().ok()).unwrap_or(100_000);
    let name = format!("perf_{}", std::process::id());
    let url = format!("{}/{name}", base.trim_end_matches('/'));
    let store = MongoStore::open(&url).await.unwrap();
    let rules = PlayRules::default();
    let recs = echostats_core::conformance::perf_records(n);

    let started = Instant::now();
    let mut batch = store.begin_batch("perf", &rules).await.unwrap();
    let mut added = 0;
    for chunk in recs.chunks(5_000) {
        added += batch.insert(chunk.to_vec()).await.unwrap().added;
    }
    batch.commit().await.unwrap();
    let first = started.elapsed();
    assert_eq!(added, n as u64);
    println!("mongodb: first import of {n} records: {first:.2?}");

    let started = Instant::now();
    let mut batch = store.begin_batch("perf", &rules).await.unwrap();
    let mut duplicates = 0;
    for chunk in recs.chunks(5_000) {
        duplicates += batch.insert(chunk.to_vec()).await.unwrap().duplicates;
    }
    batch.commit().await.unwrap();
    println!("mongodb: re-import (all duplicates): {:.2?}", started.elapsed());
    assert_eq!(duplicates, n as u64);

    let started = Instant::now();
    let top = store.item_ranking("perf", ItemKind::Track, None, Some(10)).await.unwrap();
    println!("mongodb: all-time track ranking ({} items): {:.2?}", top.distinct, started.elapsed());
    store.database().drop().await.unwrap();
}
