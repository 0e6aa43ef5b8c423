//! Rough write timings on SQLite. Ignored by default; run in release:
//!
//! ```text
//! cargo test --release -p echostats-store-sql --test perf -- --ignored --nocapture
//! ECHOSTATS_PERF_ENTRIES=1000000 cargo test --release -p echostats-store-sql --test perf import_export -- --ignored --nocapture
//! ```

use echostats_core::rules::PlayRules;
use echostats_core::store::{AnalyticsStore, HistoryStore, ItemKind};
use echostats_store_sql::SqlStore;
use std::time::Instant;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "timing; run in release with --ignored"]
async fn insert_100k_records_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqlStore::open(&format!("sqlite://{}", dir.path().join("perf.db").display())).await.unwrap();
    insert_timing(&store).await;
}

/// The same on PostgreSQL (`ECHOSTATS_TEST_POSTGRES_URL`, a scratch schema).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "timing; run in release with --ignored"]
async fn insert_100k_records_postgres() {
    let Ok(url) = std::env::var("ECHOSTATS_TEST_POSTGRES_URL") else { return };
    let schema = format!("t_perf_{}", std::process::id());
    let store = SqlStore::open_postgres_schema(&url, &schema).await.unwrap();
    insert_timing(&store).await;
    sqlx::query(&format!("DROP SCHEMA \"{schema}\" CASCADE")).execute(store.pool()).await.unwrap();
}

async fn insert_timing(store: &SqlStore) {
    let n: usize = std::env::var("ECHOSTATS_PERF_RECORDS").ok().and_then(|v| v.parse().ok()).unwrap_or(100_000);
    let plays = echostats_core::conformance::perf_records(n);
    let rules = PlayRules::default();
    let started = Instant::now();
    // Like an import: ~15,000-entry files behind savepoints, inserts of 5,000, a commit
    // every 90,000 entries (about two seconds of an import).
    for files in plays.chunks(90_000) {
        let mut batch = store.begin_batch("u", &rules).await.unwrap();
        for file in files.chunks(15_000) {
            assert!(batch.savepoint().await.unwrap());
            for chunk in file.chunks(5_000) {
                batch.insert(chunk.to_vec()).await.unwrap();
            }
            batch.release_savepoint().await.unwrap();
        }
        batch.commit().await.unwrap();
    }
    let insert = started.elapsed();
    if std::env::var_os("ECHOSTATS_PERF_INSERT_ONLY").is_some() {
        eprintln!("{n} records: insert {insert:.2?} ({:.0} records/s)", n as f64 / insert.as_secs_f64());
        return;
    }
    let started = Instant::now();
    let mut again = store.begin_batch("u", &rules).await.unwrap();
    for chunk in plays[..15_000.min(n)].chunks(5_000) {
        assert_eq!(again.insert(chunk.to_vec()).await.unwrap().added, 0);
    }
    again.rollback().await.unwrap();
    let reinsert = started.elapsed();
    let started = Instant::now();
    let top = store.item_ranking("u", ItemKind::Track, None, Some(50)).await.unwrap();
    let ranking = started.elapsed();
    let started = Instant::now();
    store.rebuild_rollups("u", &rules).await.unwrap();
    let rebuild = started.elapsed();
    assert!(store.rollup_status("u").await.unwrap().complete);
    eprintln!(
        "{}: {n} records: insert {insert:.2?} ({:.0} records/s); re-insert of 15,000 duplicates {reinsert:.2?}; \
         all-time top 50 of {} tracks {ranking:.2?}; rebuild {rebuild:.2?}",
        echostats_core::store::StoreHealth::backend(store),
        n as f64 / insert.as_secs_f64(),
        top.distinct
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "timing; run in release with --ignored"]
async fn import_export_sqlite() {
    let n: usize = std::env::var("ECHOSTATS_PERF_ENTRIES").ok().and_then(|v| v.parse().ok()).unwrap_or(100_000);
    let dir = tempfile::tempdir().unwrap();
    let export = dir.path().join("export");
    let opts = echostats_core::sample::SampleOptions {
        account_data: false,
        ..echostats_core::sample::SampleOptions::with_entries(n)
    };
    echostats_core::sample::generate_export(&export, &opts).unwrap();
    // ECHOSTATS_PERF_DB=path keeps the database for inspection.
    let db = std::env::var("ECHOSTATS_PERF_DB").unwrap_or_else(|_| dir.path().join("perf.db").display().to_string());
    let store = SqlStore::open(&format!("sqlite://{db}")).await.unwrap();
    // The parser alone, for reference (it runs on its own thread during the import).
    let started = Instant::now();
    let mut parsed = 0usize;
    echostats_core::import::parse_inputs(
        std::slice::from_ref(&export),
        &echostats_core::import::ImportLimits::default(),
        5_000,
        &mut |ev| {
            if let echostats_core::import::ParseEvent::Chunk { records, .. } = ev {
                parsed += records.len();
            }
            true
        },
    )
    .unwrap();
    let parse = started.elapsed();
    let started = Instant::now();
    let summary = echostats_core::ingest::import_paths(
        &store,
        "local",
        &[export],
        &echostats_core::ingest::ImportOptions::default(),
        None,
    )
    .await
    .unwrap();
    let elapsed = started.elapsed();
    eprintln!(
        "import of {} entries in {} files: {elapsed:.2?} ({:.0} entries/s), {:?}; parsing alone ({parsed} records): {parse:.2?}",
        summary.entries(),
        summary.files.len(),
        summary.entries() as f64 / elapsed.as_secs_f64(),
        summary.outcome
    );
}
