//! Cross-crate: the same export imported into SQLite (the embedded default) and into
//! the in-memory reference store gives identical analytics for every period.

use echostats::analytics::{overview, trend, OverviewRequest, Period};
use echostats::ingest::{import_paths, ImportOptions};
use std::path::Path;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_and_reference_store_give_the_same_figures() {
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/sample_export");
    let dir = tempfile::tempdir().unwrap();
    let sqlite = echostats::open_store(&format!("sqlite://{}", dir.path().join("e.db").display())).await.unwrap();
    let memory = echostats::open_store("memory://").await.unwrap();
    for store in [&sqlite, &memory] {
        import_paths(&**store, "local", std::slice::from_ref(&fixture), &ImportOptions::default(), None).await.unwrap();
    }
    let now = chrono::DateTime::parse_from_rfc3339("2026-10-20T18:00:00Z").unwrap().to_utc();
    let tz: chrono_tz::Tz = "America/New_York".parse().unwrap();
    for period in Period::ALL {
        let req = OverviewRequest { period, tz, now: Some(now), top_limit: 10 };
        let mut a = overview(&*sqlite, "local", &req).await.unwrap();
        let b = overview(&*memory, "local", &req).await.unwrap();
        a.computed_at = b.computed_at;
        assert_eq!(a, b, "{period}");
        assert!(a.total_tracks_played > 0, "{period}: the sample has plays in every period");
        assert_eq!(
            trend(&*sqlite, "local", period, tz, now).await.unwrap(),
            trend(&*memory, "local", period, tz, now).await.unwrap()
        );
    }
}
