//! Rough write timings on a MongoDB-wire server (`ECHOSTATS_TEST_MONGO_URL`, a scratch
//! database dropped afterwards). Ignored by default; run in release:
//!
//! ```text
//! ECHOSTATS_TEST_MONGO_URL=mongodb://127.0.0.1:27018 \
//!   cargo test --release -p echostats-store-mongo --test perf -- --ignored --nocapture
//! ECHOSTATS_PERF_ENTRIES=20000 ... (fewer entries)
//! ```

use chrono::{Duration, TimeZone, Utc};
use echostats_core::model::{PlayKind, PlayOrigin, PlayRecord};
use echostats_core::rules::PlayRules;
use echostats_core::store::{AnalyticsStore, HistoryStore, ItemKind};
use echostats_store_mongo::MongoStore;
use std::time::Instant;

/// Extended-history-like records, ~2.5 minutes apart, 4,000 tracks of 400 artists.
fn records(n: usize) -> Vec<PlayRecord> {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let mut t = Utc.with_ymd_and_hms(2012, 1, 1, 0, 0, 0).unwrap();
    (0..n)
        .map(|_| {
            t += Duration::seconds(60 + (next() % 180) as i64);
            let track = next() % 4_000;
            let artist = track % 400;
            let ms = if next() % 6 == 0 { (next() % 30_000) as i64 } else { 30_000 + (next() % 300_000) as i64 };
            let mut r = PlayRecord::new(t, ms, PlayKind::Track, PlayOrigin::ExtendedHistory);
            r.uri = Some(format!("spotify:track:{track:022}"));
            r.track_name = Some(format!("Track number {track}"));
            r.artist_name = Some(format!("Artist {artist}"));
            r.album_name = Some(format!("Album {}", track / 10));
            r.platform = Some("Android OS 13 API 33 (Google, Pixel 7)".into());
            r.conn_country = Some("DE".into());
            r.reason_start = Some("trackdone".into());
            r.reason_end = Some(if ms < 30_000 { "fwdbtn" } else { "trackdone" }.into());
            r.shuffle = Some(next() % 3 == 0);
            r.skipped = Some(ms < 30_000);
            r.offline = Some(false);
            r.offline_timestamp = Some(t - Duration::milliseconds(ms));
            r.incognito = Some(false);
            r
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "timing; run in release with --ignored"]
async fn insert_100k_records_mongo() {
    let Some(base) = echostats_core::conformance::service_url("ECHOSTATS_TEST_MONGO_URL") else { return };
    let n: usize = std::env::var("ECHOSTATS_PERF_ENTRIES").ok().and_then(|v| v.parse().ok()).unwrap_or(100_000);
    let name = format!("perf_{}", std::process::id());
    let url = format!("{}/{name}", base.trim_end_matches('/'));
    let store = MongoStore::open(&url).await.unwrap();
    let rules = PlayRules::default();
    let recs = records(n);

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
