//! Import a Spotify export into any store and print this year's top artists.
//!
//! ```sh
//! cargo run --example import_and_report -- sqlite://example.db tests/fixtures/sample_export
//! ```

use echostats::analytics::{overview, trend, OverviewRequest, Period};
use echostats::ingest::{import_paths, ImportOptions};
use std::path::PathBuf;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let url = args.next().unwrap_or_else(|| "memory://".into());
    let export: PathBuf = args.next().unwrap_or_else(|| "tests/fixtures/sample_export".into()).into();

    let store = echostats::open_store(&url).await?;
    let summary = import_paths(&*store, "me", &[export], &ImportOptions::default(), None).await?;
    println!(
        "imported {} entries: {} new plays, {} duplicates",
        summary.entries(),
        summary.outcome.added,
        summary.outcome.duplicates
    );
    for failed in summary.failed() {
        println!("  failed: {:?}", failed.status);
    }

    let tz = echostats::analytics::parse_tz("Europe/Berlin")?;
    let req = OverviewRequest { tz, ..OverviewRequest::new(Period::AllTime) };
    let o = overview(&*store, "me", &req).await?;
    println!("{} plays, {} h, longest streak {} days", o.total_tracks_played, o.total_hours, o.listening_streak_days);
    for a in &o.top_artists {
        println!("{:>3}. {} ({} plays)", a.rank, a.name, a.play_count);
    }
    let t = trend(&*store, "me", Period::Year, tz, req.now()).await?;
    for p in t.points.iter().rev().take(3) {
        println!("{}: {} plays, {} h", p.label, p.plays, p.hours);
    }
    // Finishes background work (SQLite: the log checkpoint) before the process ends.
    store.close().await;
    Ok(())
}
