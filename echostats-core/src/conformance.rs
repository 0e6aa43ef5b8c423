//! The storage conformance suite: one set of tests every backend must pass, written
//! once here and expanded per backend with [`conformance_tests!`](crate::conformance_tests).
//!
//! ```ignore
//! // in a store crate's tests/conformance.rs
//! async fn sqlite_store() -> Option<Box<dyn echostats_core::store::Store>> { ... }
//! mod sqlite { echostats_core::conformance_tests!(super::sqlite_store); }
//! ```
//! Each factory call must return a store in a fresh namespace (its own file, schema or
//! database), so tests run in parallel. A factory returns `None` to skip (service not
//! configured); use [`service_url`] so that CI, which sets `ECHOSTATS_REQUIRE_SERVICES=1`,
//! fails instead of skipping. Figures are checked against values computed here from the
//! raw records, not against another store.

use crate::analytics::{self, OverviewRequest, Period, WEEKDAYS};
use crate::ingest::{self, FileStatus, ImportOptions};
use crate::model::*;
use crate::rules::{normalize_name, PlayRules};
use crate::store::*;
use crate::Error;
use chrono::{DateTime, Datelike, Duration, NaiveDate, TimeZone, Timelike, Utc};
use chrono_tz::Tz;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// Expands the suite into `#[tokio::test]`s calling `$factory().await` for a store.
/// Put it in a `mod` named after the backend so `cargo test sqlite::` filters by store.
#[macro_export]
macro_rules! conformance_tests {
    ($factory:path) => {
        $crate::conformance_tests!(@each $factory;
            insert_and_dedupe, richer_record_wins, reimport_is_idempotent, account_data_after_extended_adds_nothing,
            runs_of_one_track_imported_again_add_nothing, a_narrower_window_still_meets_plays_stored_under_a_wider_one,
            export_imports_back_unchanged, failed_file_leaves_nothing, rollback_leaves_nothing, overview_matches_raw_for_every_period,
            trend_matches_raw, rollups_follow_inserts, rebuild_applies_new_rules, history_pagination_and_filters,
            plays_arrive_in_chunks, user_isolation, error_kinds, catalog_roundtrip, tokens_roundtrip, jobs_lifecycle,
            jobs_listing_and_stats, api_logs_filters_and_stats);
    };
    (@each $factory:path; $($name:ident),*) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                match $factory().await {
                    Some(store) => $crate::conformance::$name(&*store).await,
                    None => eprintln!("skipped {}: store not configured", stringify!($name)),
                }
            }
        )*
    };
}

/// Extended-history-like records for the stores' timing tests: ~2.5 minutes apart, 4,000
/// tracks of 400 artists, a sixth of them too short to count; the same for every call.
pub fn perf_records(n: usize) -> Vec<PlayRecord> {
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

/// Reads a service URL from `var` at run time. Unset: prints that the suite is skipped
/// and returns `None`, unless `ECHOSTATS_REQUIRE_SERVICES` is set (CI), where it panics.
pub fn service_url(var: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(v) if !v.is_empty() => Some(v),
        _ if std::env::var_os("ECHOSTATS_REQUIRE_SERVICES").is_some() => {
            panic!("{var} is not set but ECHOSTATS_REQUIRE_SERVICES is: this backend's conformance suite must run")
        }
        _ => {
            eprintln!("{var} is not set: skipping this backend's conformance tests");
            None
        }
    }
}

/// The fixed "now" of the suite.
pub fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 1, 12, 7, 30).unwrap()
}

const ARTISTS: [&str; 8] =
    ["Radiohead", "Björk", "Massive Attack", "Portishead", "Aphex Twin", "Boards of Canada", "Sigur Rós", "Can"];

/// A deterministic listening history ending before [`now`]: tracks of 8 artists over
/// ~14 months (gaps of days included), short skips, podcast episodes, null rows, with
/// consecutive entries at least 3 minutes apart so none are duplicates of each other.
pub fn generated_plays(seed: u64, n: usize) -> Vec<PlayRecord> {
    let mut rng = SmallRng::seed_from_u64(seed);
    let mut t = now() - Duration::days(420);
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        t += Duration::seconds(rng.gen_range(180..7_200));
        if rng.gen_bool(0.01) {
            t += Duration::days(rng.gen_range(1..4));
        }
        if t >= now() {
            break;
        }
        let roll: f64 = rng.gen();
        let mut r;
        if roll < 0.08 {
            r = PlayRecord::new(t, rng.gen_range(10_000..3_000_000), PlayKind::Episode, PlayOrigin::ExtendedHistory);
            let show = rng.gen_range(0..3);
            r.show_name = Some(["The Daily", "Song Exploder", "Radiolab"][show].into());
            r.episode_name = Some(format!("Episode {}", rng.gen_range(0..40)));
            r.uri = Some(format!("spotify:episode:e{show}{}", r.episode_name.as_ref().unwrap().len()));
        } else if roll < 0.09 {
            r = PlayRecord::new(t, rng.gen_range(0..100_000), PlayKind::Unknown, PlayOrigin::ExtendedHistory);
        } else {
            let artist = (rng.gen_range(0.0f64..1.0).powi(2) * ARTISTS.len() as f64) as usize;
            let track = rng.gen_range(0..6);
            let ms = if rng.gen_bool(0.15) { rng.gen_range(500..30_000) } else { rng.gen_range(30_000..420_000) };
            r = PlayRecord::new(t, ms, PlayKind::Track, PlayOrigin::ExtendedHistory);
            r.uri = Some(format!("spotify:track:a{artist}t{track}"));
            r.track_name = Some(format!("Song {track} of {}", ARTISTS[artist]));
            r.artist_name = Some(ARTISTS[artist].into());
            r.album_name = Some(format!("Album {}", track % 2));
            r.platform = Some("linux".into());
            r.reason_end = Some(if ms < 30_000 { "fwdbtn" } else { "trackdone" }.into());
            r.shuffle = Some(rng.gen_bool(0.3));
        }
        out.push(r);
    }
    out
}

async fn insert_all(store: &dyn Store, user: &str, plays: Vec<PlayRecord>, rules: &PlayRules) -> InsertOutcome {
    let mut total = InsertOutcome::default();
    for chunk in plays.chunks(700) {
        let mut batch = store.begin_batch(user, rules).await.expect("begin batch");
        total += batch.insert(chunk.to_vec()).await.expect("insert");
        batch.commit().await.expect("commit");
    }
    total
}

fn track(secs: i64, ms: i64, origin: PlayOrigin, uri: Option<&str>, name: &str, artist: &str) -> PlayRecord {
    let mut r = PlayRecord::new(now() - Duration::days(3) + Duration::seconds(secs), ms, PlayKind::Track, origin);
    r.uri = uri.map(String::from);
    r.track_name = Some(name.into());
    r.artist_name = Some(artist.into());
    if origin != PlayOrigin::AccountData {
        r.album_name = Some("Kid A".into());
    }
    r
}

async fn all_history(store: &dyn Store, user: &str) -> Vec<HistoryEntry> {
    store.plays_in(user, None).await.expect("plays_in")
}

/// Insert, exact and near duplicates, distinct items at the same time.
pub async fn insert_and_dedupe(store: &dyn Store) {
    let rules = PlayRules::default();
    let first = vec![
        track(0, 200_000, PlayOrigin::ExtendedHistory, Some("spotify:track:1"), "Idioteque", "Radiohead"),
        track(600, 200_000, PlayOrigin::ExtendedHistory, Some("spotify:track:2"), "Airbag", "Radiohead"),
        track(1200, 10_000, PlayOrigin::ExtendedHistory, Some("spotify:track:3"), "Lucky", "Radiohead"),
    ];
    assert_eq!(
        insert_all(store, "u", first.clone(), &rules).await,
        InsertOutcome { added: 3, replaced: 0, duplicates: 0 }
    );
    assert_eq!(
        insert_all(store, "u", first.clone(), &rules).await,
        InsertOutcome { added: 0, replaced: 0, duplicates: 3 }
    );
    let mut near = first[0].clone();
    near.played_at += Duration::seconds(45);
    let mut other = first[0].clone();
    other.uri = Some("spotify:track:9".into());
    other.track_name = Some("Other".into());
    let mut later = first[0].clone();
    later.played_at += Duration::seconds(61);
    let out = insert_all(store, "u", vec![near, other, later], &rules).await;
    assert_eq!(out, InsertOutcome { added: 2, replaced: 0, duplicates: 1 });
    assert_eq!(all_history(store, "u").await.len(), 5);
}

/// Account data first, extended history later: the extended record replaces it in place.
pub async fn richer_record_wins(store: &dyn Store) {
    let rules = PlayRules::default();
    let acc = track(0, 180_000, PlayOrigin::AccountData, None, "Idioteque", "Radiohead");
    insert_all(store, "u", vec![acc], &rules).await;
    let before = all_history(store, "u").await;
    let ext = track(40, 181_000, PlayOrigin::ExtendedHistory, Some("spotify:track:1"), "idioteque ", "RADIOHEAD");
    let out = insert_all(store, "u", vec![ext.clone()], &rules).await;
    assert_eq!(out, InsertOutcome { added: 0, replaced: 1, duplicates: 0 });
    let after = all_history(store, "u").await;
    assert_eq!(after.len(), 1);
    assert_eq!(after[0].id, before[0].id, "replaced in place");
    assert_eq!(after[0].record, ext);
    // And the poorer record arriving again changes nothing.
    let out = insert_all(store, "u", vec![before[0].record.clone()], &rules).await;
    assert_eq!(out.duplicates, 1);
    let status = store.rollup_status("u").await.unwrap();
    assert!(status.complete);
    let o =
        analytics::overview(store, "u", &OverviewRequest { now: Some(now()), ..OverviewRequest::new(Period::Week) })
            .await
            .unwrap();
    assert_eq!((o.total_tracks_played, o.total_ms_played), (1, 181_000));
}

fn sample_export(entries: usize) -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    let opts =
        crate::sample::SampleOptions { extended_entries: entries, years: 2, ..crate::sample::SampleOptions::small() };
    crate::sample::generate_export(dir.path(), &opts).expect("generate sample export");
    let root = dir.path().to_path_buf();
    (dir, root)
}

fn find_dir(root: &std::path::Path, name: &str) -> std::path::PathBuf {
    let p = root.join(name);
    assert!(p.is_dir(), "sample export has no {name}/");
    p
}

/// Importing the same export twice adds nothing the second time.
pub async fn reimport_is_idempotent(store: &dyn Store) {
    let (_tmp, root) = sample_export(3_000);
    let opts = ImportOptions { chunk_size: 700, ..ImportOptions::default() };
    let first = ingest::import_paths(store, "u", std::slice::from_ref(&root), &opts, None).await.expect("import");
    assert!(first.outcome.added > 2_000, "{first:?}");
    assert_eq!(first.failed().count(), 0, "{:?}", first.files);
    let count = all_history(store, "u").await.len() as u64;
    let second = ingest::import_paths(store, "u", &[root], &opts, None).await.expect("import");
    assert_eq!(second.outcome.added, 0);
    assert_eq!(second.outcome.replaced, 0);
    assert_eq!(all_history(store, "u").await.len() as u64, count);
}

/// The one-year account data describes plays already in the extended history: in
/// either order, the store ends with the extended records only.
pub async fn account_data_after_extended_adds_nothing(store: &dyn Store) {
    let (_tmp, root) = sample_export(3_000);
    let ext = find_dir(&root, "Spotify Extended Streaming History");
    let acc = find_dir(&root, "Spotify Account Data");
    let opts = ImportOptions::default();
    ingest::import_paths(store, "ext", std::slice::from_ref(&ext), &opts, None).await.unwrap();
    ingest::import_paths(store, "ext_then_acc", std::slice::from_ref(&ext), &opts, None).await.unwrap();
    let s = ingest::import_paths(store, "ext_then_acc", std::slice::from_ref(&acc), &opts, None).await.unwrap();
    assert_eq!(s.outcome.added, 0, "account data after extended added plays: {s:?}");
    assert!(s.entries() > 0);
    ingest::import_paths(store, "acc_then_ext", &[acc], &opts, None).await.unwrap();
    ingest::import_paths(store, "acc_then_ext", &[ext], &opts, None).await.unwrap();
    let base = all_history(store, "ext").await;
    for user in ["ext_then_acc", "acc_then_ext"] {
        let got = all_history(store, user).await;
        assert_eq!(got.len(), base.len(), "{user}");
        assert!(got.iter().all(|e| e.record.origin == PlayOrigin::ExtendedHistory), "{user}: a poorer record survived");
    }
}

/// Inserts each batch in its own committed transaction.
async fn insert_batches(store: &dyn Store, user: &str, batches: Vec<Vec<PlayRecord>>) -> InsertOutcome {
    let mut total = InsertOutcome::default();
    for plays in batches {
        let mut batch = store.begin_batch(user, &PlayRules::default()).await.expect("begin batch");
        total += batch.insert(plays).await.expect("insert");
        batch.commit().await.expect("commit");
    }
    total
}

/// `entries` in a shuffled order, cut into batches of 1 to `max_batch` entries.
fn shuffled_batches(entries: &[PlayRecord], rng: &mut SmallRng, max_batch: usize) -> Vec<Vec<PlayRecord>> {
    use rand::seq::SliceRandom;
    let mut order = entries.to_vec();
    order.shuffle(rng);
    let mut batches = Vec::new();
    while !order.is_empty() {
        let n = rng.gen_range(1..=max_batch).min(order.len());
        batches.push(order.drain(..n).collect());
    }
    batches
}

/// The account-data row Spotify writes for the same play: names only, the end time cut
/// to the minute.
fn account_copy(r: &PlayRecord) -> PlayRecord {
    let secs = r.played_at.timestamp();
    let minute = DateTime::from_timestamp(secs - secs.rem_euclid(60), 0).expect("in range");
    let mut copy = PlayRecord::new(minute, r.ms_played, r.kind, PlayOrigin::AccountData);
    copy.track_name = r.track_name.clone();
    copy.artist_name = r.artist_name.clone();
    copy
}

/// Imports `entries` for `user` in `first` batches, then checks that importing them
/// again in `again` batches, and then their account-data copies, adds and changes
/// nothing.
async fn check_imported_again(
    store: &dyn Store,
    user: &str,
    first: Vec<Vec<PlayRecord>>,
    again: Vec<Vec<PlayRecord>>,
) -> Vec<HistoryEntry> {
    let copies: Vec<PlayRecord> = first
        .iter()
        .flatten()
        .filter(|r| r.origin != PlayOrigin::AccountData && r.track_name.is_some())
        .map(account_copy)
        .collect();
    insert_batches(store, user, first).await;
    let stored = all_history(store, user).await;
    let out = insert_batches(store, user, again).await;
    assert_eq!((out.added, out.replaced), (0, 0), "{user}: imported again, {out:?}");
    assert_eq!(all_history(store, user).await, stored, "{user}: imported again");
    let out = insert_batches(store, user, vec![copies]).await;
    assert_eq!((out.added, out.replaced), (0, 0), "{user}: account data after, {out:?}");
    assert_eq!(all_history(store, user).await, stored, "{user}: account data after");
    stored
}

/// Runs of one track's entries, each within the duplicate window of the one before
/// (skips, a short track on repeat), from every source: imported again in any order
/// and any batches, they add and change nothing, and neither do their account-data
/// copies (README, "Play rules").
pub async fn runs_of_one_track_imported_again_add_nothing(store: &dyn Store) {
    use PlayOrigin::{AccountData, Api, ExtendedHistory};
    let uri = Some("spotify:track:run");
    // Found in a sample export: stored at the richest entry's end, 12:28:22, the play
    // left the 12:26:29 entry 113 s behind, and a second import added it.
    let found = vec![
        track(0, 843, ExtendedHistory, uri, "Idioteque", "Radiohead"),
        track(53, 932, ExtendedHistory, uri, "Idioteque", "Radiohead"),
        track(113, 32_000, ExtendedHistory, uri, "Idioteque", "Radiohead"),
    ];
    let stored = check_imported_again(
        store,
        "found",
        vec![found.clone()],
        found.iter().rev().map(|r| vec![r.clone()]).collect(),
    )
    .await;
    assert_eq!(stored.len(), 2, "{stored:?}");
    // A skip 55 s before the play it joined: its account-data row, cut to the minute,
    // ends 100 s before that play but within a minute of the skip's minute.
    let before = vec![
        track(130, 200_000, ExtendedHistory, uri, "Idioteque", "Radiohead"),
        track(75, 1_000, ExtendedHistory, uri, "Idioteque", "Radiohead"),
    ];
    let stored = check_imported_again(store, "before", vec![before.clone()], vec![before]).await;
    assert_eq!(stored.len(), 1, "{stored:?}");

    for seed in 0..6 {
        let mut rng = SmallRng::seed_from_u64(seed);
        let mut t = 0;
        let entries: Vec<PlayRecord> = (0..120)
            .map(|_| {
                t += rng.gen_range(3..100);
                let origin = [ExtendedHistory, ExtendedHistory, Api, AccountData][rng.gen_range(0..4)];
                let song = rng.gen_range(0..2);
                let ms = if rng.gen_bool(0.5) { rng.gen_range(200..30_000) } else { rng.gen_range(30_000..90_000) };
                let uri = format!("spotify:track:run{song}");
                let mut r = track(t, ms, origin, Some(&uri), ["Idioteque", "Airbag"][song], "Radiohead");
                if origin == AccountData {
                    r = account_copy(&r);
                }
                r
            })
            .collect();
        let user = format!("seed{seed}");
        let first = shuffled_batches(&entries, &mut rng, 40);
        let again = shuffled_batches(&entries, &mut rng, 40);
        check_imported_again(store, &user, first, again).await;
    }
}

/// A play stored under a wide duplicate window can end further from its anchor than a
/// narrower window reaches: imports under the narrower window, in later batches and
/// after a rebuild, must still meet it, or they add its entries again.
pub async fn a_narrower_window_still_meets_plays_stored_under_a_wider_one(store: &dyn Store) {
    use PlayOrigin::ExtendedHistory;
    let uri = Some("spotify:track:wide");
    let wide = PlayRules { duplicate_window: Duration::seconds(300), ..PlayRules::default() };
    // Anchored at 0 s, the play's record ends at 290 s once the richer entry replaces it.
    insert_all(store, "u", vec![track(0, 40_000, ExtendedHistory, uri, "Airbag", "Radiohead")], &wide).await;
    let out =
        insert_all(store, "u", vec![track(290, 200_000, ExtendedHistory, uri, "Airbag", "Radiohead")], &wide).await;
    assert_eq!((out.added, out.replaced), (0, 1), "{out:?}");
    let stored = all_history(store, "u").await;
    assert_eq!(stored.len(), 1, "{stored:?}");

    // Entries within the default 60 s of the anchor, 340 s and more before the record:
    // the same play, which is richer. The third batch changes the minimum play length
    // too, so the store rebuilds its aggregates first.
    let narrow = PlayRules::default();
    let rebuilt = PlayRules { min_play_ms: 20_000, ..PlayRules::default() };
    for (secs, rules) in [(-50, &narrow), (-45, &narrow), (-55, &rebuilt)] {
        let entry = track(secs, 35_000, ExtendedHistory, uri, "Airbag", "Radiohead");
        let out = insert_all(store, "u", vec![entry], rules).await;
        assert_eq!((out.added, out.replaced, out.duplicates), (0, 0, 1), "entry at {secs} s: {out:?}");
        assert_eq!(all_history(store, "u").await, stored, "entry at {secs} s");
    }
}

/// An export (`crate::export`) imported into another user gives back every stored record,
/// field for field, and the same figures; imported into the user it came from, nothing.
pub async fn export_imports_back_unchanged(store: &dyn Store) {
    let (_tmp, root) = sample_export(1_500);
    let opts = ImportOptions::default();
    ingest::import_paths(store, "a", std::slice::from_ref(&root), &opts, None).await.expect("import");
    // Plays synced from the Web API: millisecond times, artist id and playback context.
    let mut synced = track(10, 200_123, PlayOrigin::Api, Some("spotify:track:synced1"), "Idioteque", "Radiohead");
    synced.played_at += Duration::milliseconds(456);
    synced.artist_id = Some("4Z8W4fKeB5YxbusRsdQVPb".into());
    synced.context_type = Some("playlist".into());
    synced.context_uri = Some("spotify:playlist:37i9dQZF1DXcBWIGoYBM5M".into());
    synced.offline_timestamp = Some(synced.played_at - Duration::milliseconds(200_123));
    // What only the account data has: names, minute precision, no URI.
    let local = track(3_600, 95_000, PlayOrigin::AccountData, None, "A Local File", "Nobody Famous");
    let mut episode =
        PlayRecord::new(local.played_at + Duration::hours(1), 1_200_000, PlayKind::Episode, PlayOrigin::AccountData);
    episode.episode_name = Some("Morning News".into());
    episode.show_name = Some("The Daily".into());
    insert_all(store, "a", vec![synced, local, episode], &PlayRules::default()).await;
    // A run of one track: two plays whose records end 60 s apart, the first anchored
    // 53 s before its record. Without the anchor, they would come back as one play.
    let uri = Some("spotify:track:run");
    let run = vec![
        track(7_200, 843, PlayOrigin::ExtendedHistory, uri, "Idioteque", "Radiohead"),
        track(7_253, 932, PlayOrigin::ExtendedHistory, uri, "Idioteque", "Radiohead"),
        track(7_313, 32_000, PlayOrigin::ExtendedHistory, uri, "Idioteque", "Radiohead"),
    ];
    insert_all(store, "a", run, &PlayRules::default()).await;

    let out = tempfile::tempdir().expect("tempdir");
    let summary = crate::export::write_extended_history(store, "a", None, out.path()).await.expect("export");
    let plays = |entries: Vec<HistoryEntry>| -> Vec<(PlayRecord, Option<PlayAnchor>)> {
        entries.into_iter().map(|e| (e.record, e.anchor)).collect()
    };
    let original = plays(all_history(store, "a").await);
    assert_eq!(summary.plays, original.len() as u64);
    assert!(original.iter().any(|(_, anchor)| anchor.is_some()));

    let paths = [out.path().to_path_buf()];
    let into_b = ingest::import_paths(store, "b", &paths, &opts, None).await.expect("import the export");
    assert_eq!((into_b.outcome.added, into_b.failed().count()), (original.len() as u64, 0), "{:?}", into_b.files);
    assert_eq!(plays(all_history(store, "b").await), original);
    for period in Period::ALL {
        let req = OverviewRequest { now: Some(now()), ..OverviewRequest::new(period) };
        let (mut a, mut b) = (
            analytics::overview(store, "a", &req).await.expect("overview"),
            analytics::overview(store, "b", &req).await.expect("overview"),
        );
        (a.computed_at, b.computed_at) = (now(), now());
        assert_eq!(a, b, "{period:?}");
    }
    let back = ingest::import_paths(store, "a", &paths, &opts, None).await.expect("import into a");
    assert_eq!((back.outcome.added, back.outcome.replaced), (0, 0));
}

/// A file that fails half-way is rolled back; the other files land, before and after
/// it, with their rollups and item totals; the summary says which failed.
pub async fn failed_file_leaves_nothing(store: &dyn Store) {
    let dir = tempfile::tempdir().unwrap();
    let row = |day: u32, i: usize| {
        format!(
            r#"{{"ts":"2026-01-{day:02}T{:02}:{:02}:00Z","ms_played":200000,"master_metadata_track_name":"T{i}","master_metadata_album_artist_name":"A","master_metadata_album_album_name":"B","spotify_track_uri":"spotify:track:{i}"}}"#,
            (i / 60) % 24,
            i % 60
        )
    };
    let write = |name: &str, rows: Vec<String>| {
        std::fs::write(dir.path().join(name), format!("[{}]", rows.join(","))).unwrap();
    };
    write("a_good.json", (0..50).map(|i| row(1, i)).collect());
    // Three chunks of this file are inserted before its bad entry.
    let mut bad: Vec<String> = (200..230).map(|i| row(3, i)).collect();
    bad.push(r#"{"ts":"2026-01-02T00:00:00Z","ms_played":"lots"}"#.into());
    write("b_bad.json", bad);
    // After the failed file: duplicates of the first file, and the failed file's plays,
    // which are new again.
    write("c_good.json", (40..50).map(|i| row(1, i)).chain((200..220).map(|i| row(3, i))).collect());
    // Fails at its first entry, before anything of it is inserted.
    write(
        "d_bad.json",
        vec![r#"{"ts":"2026-01-04T00:00:00Z","ms_played":-1,"spotify_track_uri":"spotify:track:9"}"#.into()],
    );
    let opts = ImportOptions { chunk_size: 10, ..ImportOptions::default() };
    let s = ingest::import_paths(store, "u", &[dir.path().to_path_buf()], &opts, None).await.unwrap();
    let failed: Vec<_> = s.failed().map(|f| f.file.rsplit(['/', '\\']).next().unwrap()).collect();
    assert_eq!(failed, ["b_bad.json", "d_bad.json"]);
    let FileStatus::Failed { error } = &s.failed().next().unwrap().status else { unreachable!() };
    assert!(error.contains("entry 30"), "error should name the entry: {error}");
    assert_eq!((s.outcome.added, s.outcome.duplicates), (70, 10));
    assert_eq!(all_history(store, "u").await.len(), 70);
    let ymd = |y, m, d| NaiveDate::from_ymd_opt(y, m, d).unwrap();
    let days = store.rollup_days("u", ymd(2026, 1, 1), ymd(2026, 1, 4)).await.unwrap();
    let days: Vec<_> =
        days.iter().map(|d| (d.day, d.plays.iter().sum::<i64>())).filter(|(_, plays)| *plays > 0).collect();
    assert_eq!(days, [(ymd(2026, 1, 1), 50), (ymd(2026, 1, 3), 20)]);
    let artists = store.item_ranking("u", ItemKind::Artist, None, None).await.unwrap();
    let artists: Vec<_> = artists.items.iter().map(|a| (a.name.as_str(), a.play_count, a.total_ms)).collect();
    assert_eq!(artists, [("A", 70, 70 * 200_000)]);
    assert_eq!(store.item_ranking("u", ItemKind::Track, None, None).await.unwrap().distinct, 70);
}

/// Rolled back and dropped batches leave no plays and no rollups.
pub async fn rollback_leaves_nothing(store: &dyn Store) {
    let rules = PlayRules::default();
    let plays = generated_plays(7, 300);
    let mut batch = store.begin_batch("u", &rules).await.unwrap();
    batch.insert(plays.clone()).await.unwrap();
    batch.rollback().await.unwrap();
    {
        let mut batch = store.begin_batch("u", &rules).await.unwrap();
        batch.insert(plays).await.unwrap();
        drop(batch);
    }
    assert!(all_history(store, "u").await.is_empty());
    assert_eq!(store.rollup_status("u").await.unwrap().total_days, 0);
    assert_eq!(store.item_ranking("u", ItemKind::Artist, None, None).await.unwrap().distinct, 0);
}

struct Expected {
    plays: i64,
    ms: i64,
    tracks: BTreeMap<String, (i64, i64, String)>,
    artists: BTreeMap<String, (i64, i64, String)>,
    albums: BTreeMap<String, (i64, i64, String)>,
    hours: [i64; 24],
    weekdays: [i64; 7],
    days: BTreeMap<NaiveDate, (i64, i64)>,
}

fn expected(plays: &[PlayRecord], window: Option<TimeWindow>, tz: Tz, min_ms: i64) -> Expected {
    let mut e = Expected {
        plays: 0,
        ms: 0,
        tracks: BTreeMap::new(),
        artists: BTreeMap::new(),
        albums: BTreeMap::new(),
        hours: [0; 24],
        weekdays: [0; 7],
        days: BTreeMap::new(),
    };
    for r in plays {
        if r.kind != PlayKind::Track
            || r.ms_played < min_ms
            || window.is_some_and(|w| r.played_at < w.start || r.played_at >= w.end)
        {
            continue;
        }
        let (track, artist, album) =
            (r.track_name.clone().unwrap(), r.artist_name.clone().unwrap(), r.album_name.clone().unwrap());
        e.plays += 1;
        e.ms += r.ms_played;
        for (map, key, name) in [
            (&mut e.tracks, format!("{}|{}", normalize_name(&track), normalize_name(&artist)), track.clone()),
            (&mut e.artists, normalize_name(&artist), artist.clone()),
            (&mut e.albums, format!("{}|{}", normalize_name(&album), normalize_name(&artist)), album.clone()),
        ] {
            let v = map.entry(key).or_insert((0, 0, name));
            v.0 += 1;
            v.1 += r.ms_played;
        }
        let local = r.played_at.with_timezone(&tz);
        e.hours[local.hour() as usize] += 1;
        e.weekdays[local.weekday().num_days_from_monday() as usize] += 1;
        let d = e.days.entry(local.date_naive()).or_default();
        d.0 += 1;
        d.1 += r.ms_played;
    }
    e
}

fn top(map: &BTreeMap<String, (i64, i64, String)>, n: usize) -> Vec<(String, i64, i64)> {
    let mut v: Vec<(String, i64, i64)> = map.values().map(|(p, ms, name)| (name.clone(), *p, *ms)).collect();
    v.sort_by(|a, b| b.1.cmp(&a.1).then(b.2.cmp(&a.2)).then(a.0.cmp(&b.0)));
    v.truncate(n);
    v
}

fn longest_run(days: &BTreeSet<NaiveDate>) -> u32 {
    let (mut best, mut run, mut prev) = (0, 0, None::<NaiveDate>);
    for &d in days {
        run = if prev == Some(d - Duration::days(1)) { run + 1 } else { 1 };
        best = best.max(run);
        prev = Some(d);
    }
    best
}

/// Every overview figure, for every period, in UTC and in a +05:45 zone, against values
/// computed here from the raw records.
pub async fn overview_matches_raw_for_every_period(store: &dyn Store) {
    let rules = PlayRules::default();
    let plays = generated_plays(42, 2_500);
    insert_all(store, "u", plays.clone(), &rules).await;
    store
        .upsert_artists(&[
            Artist {
                spotify_id: Some("rh".into()),
                name: "Radiohead".into(),
                genres: vec!["art rock".into(), "alternative rock".into()],
                image_url: None,
            },
            Artist {
                spotify_id: Some("bj".into()),
                name: "Björk".into(),
                genres: vec!["art pop".into(), "art rock".into()],
                image_url: None,
            },
        ])
        .await
        .unwrap();
    for tz in [Tz::UTC, Tz::Asia__Kathmandu, Tz::America__Los_Angeles] {
        for period in Period::ALL {
            let req = OverviewRequest { period, tz, now: Some(now()), top_limit: 5 };
            let o = analytics::overview(store, "u", &req).await.unwrap();
            let e = expected(&plays, period.window(now()), tz, rules.min_play_ms);
            let ctx = format!("{period} in {tz}");
            assert_eq!(o.total_tracks_played, e.plays, "{ctx}");
            assert_eq!(o.total_ms_played, e.ms, "{ctx}");
            assert_eq!(o.total_hours, (e.ms as f64 / 360_000.0).round() / 10.0, "{ctx}");
            assert_eq!(o.unique_tracks, e.tracks.len() as u64, "{ctx}");
            assert_eq!(o.unique_artists, e.artists.len() as u64, "{ctx}");
            assert_eq!(o.unique_albums, e.albums.len() as u64, "{ctx}");
            for (got, want) in [
                (&o.top_tracks, top(&e.tracks, 5)),
                (&o.top_artists, top(&e.artists, 5)),
                (&o.top_albums, top(&e.albums, 5)),
            ] {
                let got: Vec<(String, i64, i64)> =
                    got.iter().map(|t| (t.name.clone(), t.play_count, t.total_ms)).collect();
                assert_eq!(got, want, "{ctx}");
            }
            assert!(o.top_artists.iter().enumerate().all(|(i, t)| t.rank == i as u32 + 1));
            let hours: Vec<i64> = o.hourly_distribution.iter().map(|h| h.plays).collect();
            assert_eq!(hours, e.hours.to_vec(), "{ctx}");
            assert_eq!(o.daily_distribution.iter().map(|d| d.day.as_str()).collect::<Vec<_>>(), WEEKDAYS.to_vec());
            assert_eq!(o.daily_distribution.iter().map(|d| d.plays).collect::<Vec<_>>(), e.weekdays.to_vec(), "{ctx}");
            let active: BTreeSet<NaiveDate> = e.days.keys().copied().collect();
            assert_eq!(o.listening_streak_days, longest_run(&active), "{ctx}");
            let today = now().with_timezone(&tz).date_naive();
            let mut cur = 0;
            let mut d = if active.contains(&today) { today } else { today - Duration::days(1) };
            while active.contains(&d) {
                cur += 1;
                d -= Duration::days(1);
            }
            assert_eq!(o.current_streak_days, cur, "{ctx}");
            // Genres: Radiohead's plays count for art rock and alternative rock, Björk's for art pop and art rock.
            let a = |name: &str| e.artists.get(&normalize_name(name)).map(|v| v.0).unwrap_or(0);
            let mut genres: Vec<(String, i64)> = vec![
                ("art rock".into(), a("Radiohead") + a("Björk")),
                ("alternative rock".into(), a("Radiohead")),
                ("art pop".into(), a("Björk")),
            ];
            genres.retain(|g| g.1 > 0);
            genres.sort_by(|x, y| y.1.cmp(&x.1).then(x.0.cmp(&y.0)));
            let got: Vec<(String, i64)> = o.top_genres.iter().map(|g| (g.name.clone(), g.play_count)).collect();
            // Genres tied on plays are ordered by ms, which differs; compare as sets plus the count.
            assert_eq!(o.unique_genres as usize, genres.len(), "{ctx}");
            let mut got_sorted = got.clone();
            got_sorted.sort();
            genres.sort();
            assert_eq!(got_sorted, genres, "{ctx}");
            assert_eq!(o.avg_audio_features, None);
        }
    }
    let shows = analytics::top_shows(store, "u", Period::AllTime, now(), 10).await.unwrap();
    let mut want: HashMap<String, i64> = HashMap::new();
    for r in plays.iter().filter(|r| r.kind == PlayKind::Episode) {
        *want.entry(r.show_name.clone().unwrap()).or_default() += r.ms_played;
    }
    assert_eq!(shows.len(), want.len());
    assert!(shows.windows(2).all(|w| w[0].total_ms >= w[1].total_ms));
    assert!(shows.iter().all(|s| want[&s.name] == s.total_ms));
}

/// Trend buckets, labels and zero-filling against raw values.
pub async fn trend_matches_raw(store: &dyn Store) {
    let rules = PlayRules::default();
    let plays = generated_plays(3, 2_000);
    insert_all(store, "u", plays.clone(), &rules).await;
    let tz = Tz::Europe__Berlin;
    for period in Period::ALL {
        let t = analytics::trend(store, "u", period, tz, now()).await.unwrap();
        let e = expected(&plays, period.window(now()), tz, rules.min_play_ms);
        let fmt = analytics::granularity(period);
        let mut want: BTreeMap<String, (i64, i64)> = BTreeMap::new();
        for (d, (p, ms)) in &e.days {
            let v = want.entry(d.format(fmt).to_string()).or_default();
            v.0 += p;
            v.1 += ms;
        }
        for p in &t.points {
            let w = want.get(&p.label).copied().unwrap_or((0, 0));
            assert_eq!((p.plays, p.ms), w, "{period} {}", p.label);
        }
        let labels: BTreeSet<&String> = t.points.iter().map(|p| &p.label).collect();
        assert_eq!(labels.len(), t.points.len(), "{period}: labels unique");
        assert!(want.keys().all(|k| labels.contains(k)), "{period}: every active bucket present");
        match period {
            Period::Week => assert!(t.points.len() == 7 || t.points.len() == 8, "{}", t.points.len()),
            Period::Month => assert!((30..=31).contains(&t.points.len())),
            Period::Quarter => assert!((13..=15).contains(&t.points.len())),
            Period::Year => assert!((12..=13).contains(&t.points.len())),
            Period::AllTime => assert_eq!(t.points.first().map(|p| p.label.clone()), want.keys().next().cloned()),
        }
    }
}

/// Rollups account for every counted play after inserts and replacements.
pub async fn rollups_follow_inserts(store: &dyn Store) {
    let rules = PlayRules::default();
    let plays = generated_plays(11, 1_500);
    insert_all(store, "u", plays.clone(), &rules).await;
    let status = store.rollup_status("u").await.unwrap();
    let counted: Vec<&PlayRecord> = plays.iter().filter(|r| r.keys(&rules).counted).collect();
    let days: BTreeSet<NaiveDate> = counted.iter().map(|r| r.played_at.date_naive()).collect();
    assert!(status.complete);
    assert_eq!(status.coverage, 100.0);
    assert_eq!(status.total_days, days.len() as u64);
    assert_eq!(status.last_date, days.last().copied());
    let rollups = store.rollup_days("u", NaiveDate::MIN, NaiveDate::MAX).await.unwrap();
    assert_eq!(rollups.iter().map(|d| d.total_plays()).sum::<i64>(), counted.len() as i64);
    assert_eq!(rollups.iter().map(|d| d.total_ms()).sum::<i64>(), counted.iter().map(|r| r.ms_played).sum::<i64>());
    let all = store.item_ranking("u", ItemKind::Artist, None, None).await.unwrap();
    assert_eq!(all.items.iter().map(|i| i.play_count).sum::<i64>(), counted.len() as i64);
}

/// Rebuilding under a higher threshold recounts everything.
pub async fn rebuild_applies_new_rules(store: &dyn Store) {
    let plays = generated_plays(5, 1_000);
    insert_all(store, "u", plays.clone(), &PlayRules::default()).await;
    let strict = PlayRules { min_play_ms: 120_000, ..PlayRules::default() };
    store.rebuild_rollups("u", &strict).await.unwrap();
    let o =
        analytics::overview(store, "u", &OverviewRequest { now: Some(now()), ..OverviewRequest::new(Period::AllTime) })
            .await
            .unwrap();
    let e = expected(&plays, None, Tz::UTC, strict.min_play_ms);
    assert_eq!((o.total_tracks_played, o.total_ms_played, o.unique_tracks), (e.plays, e.ms, e.tracks.len() as u64));
    assert!(store.rollup_status("u").await.unwrap().complete);
}

/// Pages, ordering and every filter of the history listing.
pub async fn history_pagination_and_filters(store: &dyn Store) {
    let plays = generated_plays(9, 400);
    insert_all(store, "u", plays.clone(), &PlayRules::default()).await;
    let mut newest_first = plays.clone();
    newest_first.sort_by_key(|r| std::cmp::Reverse(r.played_at));
    let mut seen = Vec::new();
    for page in 1..=9 {
        let p = store.history("u", &HistoryQuery { page, limit: 50, ..HistoryQuery::default() }).await.unwrap();
        assert_eq!(p.total, plays.len() as u64);
        seen.extend(p.items.into_iter().map(|e| e.record));
    }
    assert_eq!(seen, newest_first);
    let q = HistoryQuery { artist: Some("  radiohead".into()), limit: 100, ..HistoryQuery::default() };
    let p = store.history("u", &q).await.unwrap();
    let want = plays.iter().filter(|r| r.artist_name.as_deref() == Some("Radiohead")).count() as u64;
    assert_eq!(p.total, want);
    assert!(want > 0 && p.items.iter().all(|e| e.record.artist_name.as_deref() == Some("Radiohead")));
    let q = HistoryQuery { track: Some("SONG 2 OF BJÖRK".into()), ..HistoryQuery::default() };
    let want = plays.iter().filter(|r| r.track_name.as_deref() == Some("Song 2 of Björk")).count() as u64;
    assert_eq!(store.history("u", &q).await.unwrap().total, want);
    let (start, end) = (now() - Duration::days(30), now() - Duration::days(10));
    let q = HistoryQuery {
        start: Some(start),
        end: Some(end),
        kind: Some(PlayKind::Episode),
        limit: 100,
        ..HistoryQuery::default()
    };
    let p = store.history("u", &q).await.unwrap();
    let want = plays.iter().filter(|r| r.kind == PlayKind::Episode && r.played_at >= start && r.played_at < end).count()
        as u64;
    assert_eq!(p.total, want);
    let beyond = store.history("u", &HistoryQuery { page: 100, ..HistoryQuery::default() }).await.unwrap();
    assert!(beyond.items.is_empty());
    assert_eq!(beyond.total, plays.len() as u64);
}

/// `plays_chunked` hands over every entry of the window, oldest first, in chunks of at
/// most the asked size; the sink's error stops the reading and comes back.
pub async fn plays_arrive_in_chunks(store: &dyn Store) {
    let plays = generated_plays(4, 250);
    insert_all(store, "u", plays.clone(), &PlayRules::default()).await;
    insert_all(store, "other", generated_plays(5, 50), &PlayRules::default()).await;
    let mut oldest_first = plays.clone();
    oldest_first.sort_by_key(|r| r.played_at);
    let all = all_history(store, "u").await;
    assert_eq!(all.iter().map(|e| e.record.clone()).collect::<Vec<_>>(), oldest_first);

    let chunked = |window: Option<TimeWindow>, size: usize| async move {
        let mut chunks: Vec<Vec<HistoryEntry>> = Vec::new();
        store
            .plays_chunked("u", window, size, &mut |c| {
                chunks.push(c);
                Ok(())
            })
            .await
            .expect("plays_chunked");
        chunks
    };
    let chunks = chunked(None, 64).await;
    assert_eq!(chunks.iter().map(Vec::len).collect::<Vec<_>>(), [64, 64, 64, 58]);
    assert_eq!(chunks.concat(), all);
    // A size of 0 means 1.
    assert!(chunked(None, 0).await.iter().all(|c| c.len() == 1));
    let w = TimeWindow { start: all[50].record.played_at, end: all[150].record.played_at };
    let want = all[50..150].to_vec();
    assert!(want.iter().all(|e| w.contains(e.record.played_at)));
    assert_eq!(chunked(Some(w), 1000).await.concat(), want);
    // A window open on one side reaches as far as a timestamp can.
    let from = TimeWindow { start: all[150].record.played_at, end: DateTime::<Utc>::MAX_UTC };
    assert_eq!(chunked(Some(from), 1000).await.concat(), all[150..]);
    let until = TimeWindow { start: DateTime::<Utc>::MIN_UTC, end: all[50].record.played_at };
    assert_eq!(chunked(Some(until), 1000).await.concat(), all[..50]);
    assert!(chunked(None, 10).await.iter().flatten().all(|e| e.user_id == "u"));

    let mut calls = 0;
    let stopped = store
        .plays_chunked("u", None, 10, &mut |_| {
            calls += 1;
            Err(Error::invalid("the reader had enough"))
        })
        .await;
    assert!(matches!(&stopped, Err(Error::InvalidInput { message }) if message.contains("had enough")), "{stopped:?}");
    assert_eq!(calls, 1);
}

/// User A never sees user B's plays, rollups or rankings.
pub async fn user_isolation(store: &dyn Store) {
    let rules = PlayRules::default();
    insert_all(store, "alice", generated_plays(1, 300), &rules).await;
    let bob_plays = generated_plays(2, 200);
    insert_all(store, "bob", bob_plays.clone(), &rules).await;
    let bob = store.history("bob", &HistoryQuery { limit: 100, ..HistoryQuery::default() }).await.unwrap();
    assert_eq!(bob.total, bob_plays.len() as u64);
    assert!(bob.items.iter().all(|e| e.user_id == "bob"));
    let o = analytics::overview(
        store,
        "bob",
        &OverviewRequest { now: Some(now()), ..OverviewRequest::new(Period::AllTime) },
    )
    .await
    .unwrap();
    assert_eq!(o.total_tracks_played, expected(&bob_plays, None, Tz::UTC, 30_000).plays);
    assert_eq!(store.history("carol", &HistoryQuery::default()).await.unwrap().total, 0);
    assert_eq!(store.rollup_status("carol").await.unwrap().total_days, 0);
    // The same play for two users is two plays.
    let p = generated_plays(1, 1);
    assert_eq!(insert_all(store, "bob", p, &rules).await.added, 1);
}

/// Errors come back as their kinds.
pub async fn error_kinds(store: &dyn Store) {
    assert!(matches!(store.user("nobody").await, Err(Error::NotFound { .. })));
    assert!(matches!(store.track("nothing").await, Err(Error::NotFound { .. })));
    assert!(matches!(store.artist("nothing").await, Err(Error::NotFound { .. })));
    for bad in [
        HistoryQuery { limit: 0, ..HistoryQuery::default() },
        HistoryQuery { limit: 101, ..HistoryQuery::default() },
        HistoryQuery { page: 0, ..HistoryQuery::default() },
    ] {
        assert!(matches!(store.history("u", &bad).await, Err(Error::InvalidInput { .. })));
    }
    store.ping().await.unwrap();
}

/// Users, tracks and artists round-trip.
pub async fn catalog_roundtrip(store: &dyn Store) {
    let user = User {
        id: "u1".into(),
        spotify_id: Some("atul123".into()),
        display_name: Some("Atul".into()),
        image_url: None,
        product: Some("premium".into()),
        created_at: Utc.with_ymd_and_hms(2025, 1, 1, 0, 0, 0).unwrap(),
    };
    store.upsert_user(&user).await.unwrap();
    assert_eq!(store.user("u1").await.unwrap(), user);
    let renamed = User { display_name: Some("A.".into()), ..user };
    store.upsert_user(&renamed).await.unwrap();
    assert_eq!(store.users().await.unwrap(), vec![renamed]);
    let features =
        AudioFeatures { danceability: 0.45, energy: 0.63, valence: 0.22, tempo: 156.1, ..AudioFeatures::default() };
    let t = Track {
        spotify_id: "2kRFrWaLWifQkBFasAWgMo".into(),
        name: "Everything In Its Right Place".into(),
        artists: vec![ArtistRef { spotify_id: Some("4Z8W4fKeB5YxbusRsdQVPb".into()), name: "Radiohead".into() }],
        album_name: Some("Kid A".into()),
        album_id: None,
        album_image_url: None,
        duration_ms: Some(250_000),
        explicit: Some(false),
        audio_features: Some(features.clone()),
    };
    store.upsert_tracks(std::slice::from_ref(&t)).await.unwrap();
    assert_eq!(store.track(&t.spotify_id).await.unwrap(), t);
    let f =
        store.audio_features(&["spotify:track:2kRFrWaLWifQkBFasAWgMo".into(), "spotify:track:x".into()]).await.unwrap();
    assert_eq!(f.len(), 1);
    assert_eq!(f["spotify:track:2kRFrWaLWifQkBFasAWgMo"], features);
    let a = Artist {
        spotify_id: Some("4Z8W4fKeB5YxbusRsdQVPb".into()),
        name: "Radiohead".into(),
        genres: vec!["art rock".into()],
        image_url: None,
    };
    store.upsert_artists(std::slice::from_ref(&a)).await.unwrap();
    assert_eq!(store.artist("4Z8W4fKeB5YxbusRsdQVPb").await.unwrap(), a);
    let g = store.artist_genres(&["radiohead".into(), "unknown".into()]).await.unwrap();
    assert_eq!(g.len(), 1);
    // A play of a track with features gives the overview an average.
    let mut r = track(
        0,
        200_000,
        PlayOrigin::ExtendedHistory,
        Some("spotify:track:2kRFrWaLWifQkBFasAWgMo"),
        "Everything In Its Right Place",
        "Radiohead",
    );
    r.played_at = now() - Duration::hours(1);
    insert_all(store, "u1", vec![r], &PlayRules::default()).await;
    let o =
        analytics::overview(store, "u1", &OverviewRequest { now: Some(now()), ..OverviewRequest::new(Period::Week) })
            .await
            .unwrap();
    assert_eq!(o.avg_audio_features.map(|f| f.tempo), Some(156.1));
}

/// Sealed tokens are stored per existing user and can be removed.
pub async fn tokens_roundtrip(store: &dyn Store) {
    let sealed = EncryptedTokens {
        ciphertext: vec![0, 1, 2, 250, 255, 7],
        expires_at: Utc.with_ymd_and_hms(2026, 11, 1, 13, 0, 0).unwrap(),
    };
    assert!(matches!(store.set_tokens("ghost", Some(&sealed)).await, Err(Error::NotFound { .. })));
    assert!(matches!(store.tokens("ghost").await, Err(Error::NotFound { .. })));
    for id in ["t1", "t2"] {
        let user = User {
            id: id.into(),
            spotify_id: None,
            display_name: None,
            image_url: None,
            product: None,
            created_at: now(),
        };
        store.upsert_user(&user).await.unwrap();
    }
    assert_eq!(store.tokens("t1").await.unwrap(), None);
    store.set_tokens("t1", Some(&sealed)).await.unwrap();
    assert_eq!(store.tokens("t1").await.unwrap(), Some(sealed.clone()));
    assert_eq!(store.tokens("t2").await.unwrap(), None, "tokens are per user");
    // Updating the user keeps the tokens.
    let u = store.user("t1").await.unwrap();
    store.upsert_user(&User { display_name: Some("T".into()), ..u }).await.unwrap();
    assert_eq!(store.tokens("t1").await.unwrap(), Some(sealed.clone()));
    let newer = EncryptedTokens { ciphertext: vec![9; 64], expires_at: sealed.expires_at + Duration::hours(1) };
    store.set_tokens("t1", Some(&newer)).await.unwrap();
    assert_eq!(store.tokens("t1").await.unwrap(), Some(newer));
    store.set_tokens("t1", None).await.unwrap();
    assert_eq!(store.tokens("t1").await.unwrap(), None);
}

fn job(id: &str, user: &str, job_type: JobType, status: JobStatus, created_at: DateTime<Utc>) -> SyncJob {
    SyncJob {
        id: id.into(),
        user_id: user.into(),
        job_type,
        status,
        items_processed: 0,
        items_total: 0,
        error_message: None,
        steps: vec![],
        created_at,
        started_at: None,
        completed_at: None,
    }
}

/// Exclusive creation, progress updates, visibility, restart recovery and expiry.
pub async fn jobs_lifecycle(store: &dyn Store) {
    let t0 = now() - Duration::days(40);
    let mut sync = job("j1", "alice", JobType::Periodic, JobStatus::Pending, t0);
    store.create_job(&sync, true).await.unwrap();
    let again = job("j2", "alice", JobType::Periodic, JobStatus::Pending, t0);
    assert!(matches!(store.create_job(&again, true).await, Err(Error::AlreadyExists { .. })), "one active sync");
    assert!(matches!(store.create_job(&sync, false).await, Err(Error::AlreadyExists { .. })), "id taken");
    // Other types, other users and non-exclusive jobs are not blocked.
    store.create_job(&job("j3", "alice", JobType::Import, JobStatus::Pending, t0), true).await.unwrap();
    store.create_job(&job("j4", "bob", JobType::Periodic, JobStatus::Running, t0), true).await.unwrap();
    store.create_job(&job("j5", "alice", JobType::Periodic, JobStatus::Pending, t0), false).await.unwrap();

    sync.status = JobStatus::Running;
    sync.started_at = Some(t0 + Duration::seconds(1));
    sync.items_total = 50;
    sync.items_processed = 20;
    sync.steps.push(JobStep {
        action: "recently_played".into(),
        status: JobStatus::Completed,
        detail: Some("Fetched 50 recent tracks".into()),
        items: 50,
        error: None,
    });
    store.update_job(&sync).await.unwrap();
    assert_eq!(store.job("alice", "j1").await.unwrap(), sync);
    assert!(matches!(store.job("bob", "j1").await, Err(Error::NotFound { .. })), "another user's job");
    let mut stolen = sync.clone();
    stolen.user_id = "bob".into();
    assert!(matches!(store.update_job(&stolen).await, Err(Error::NotFound { .. })));
    let ghost = job("nope", "alice", JobType::Periodic, JobStatus::Running, t0);
    assert!(matches!(store.update_job(&ghost).await, Err(Error::NotFound { .. })));
    assert!(matches!(store.create_job(&again, true).await, Err(Error::AlreadyExists { .. })), "still running");

    sync.status = JobStatus::Completed;
    sync.items_processed = 50;
    sync.completed_at = Some(t0 + Duration::seconds(12));
    store.update_job(&sync).await.unwrap();
    assert_eq!(store.job("alice", "j1").await.unwrap(), sync);
    store.create_job(&again, true).await.expect("a finished job no longer blocks");

    // A restart fails what was left active: j2, j3, j4, j5.
    assert_eq!(store.fail_unfinished_jobs("interrupted by a restart").await.unwrap(), 4);
    let j4 = store.job("bob", "j4").await.unwrap();
    assert_eq!((j4.status, j4.error_message.as_deref()), (JobStatus::Failed, Some("interrupted by a restart")));
    store.create_job(&job("j6", "bob", JobType::Periodic, JobStatus::Pending, now()), true).await.unwrap();

    // Expiry: finished jobs created before the cut go, active and newer ones stay.
    store.create_job(&job("j7", "bob", JobType::Import, JobStatus::Running, t0), true).await.unwrap();
    assert_eq!(store.delete_jobs_before(now() - Duration::days(30)).await.unwrap(), 5);
    let left: Vec<String> =
        store.jobs("bob", &JobQuery::default()).await.unwrap().items.into_iter().map(|j| j.id).collect();
    assert_eq!(left, ["j6", "j7"]);
    assert_eq!(store.jobs("alice", &JobQuery::default()).await.unwrap().total, 0);
}

/// Listing order, pagination, filters and the counts of `/sync-jobs/stats`.
pub async fn jobs_listing_and_stats(store: &dyn Store) {
    let mut rng = SmallRng::seed_from_u64(7);
    let mut all = Vec::new();
    for i in 0..45 {
        let job_type = JobType::ALL[rng.gen_range(0..JobType::ALL.len())];
        let status = JobStatus::ALL[rng.gen_range(0..JobStatus::ALL.len())];
        // Some jobs share a creation time: ties go by id, descending.
        let created = now() - Duration::minutes(15 * (i / 2) as i64);
        let mut j = job(&format!("job-{i:02}"), "alice", job_type, status, created);
        j.items_processed = rng.gen_range(0..100);
        if status == JobStatus::Completed {
            j.completed_at = Some(created + Duration::seconds(rng.gen_range(1..600)));
        }
        store.create_job(&j, false).await.unwrap();
        all.push(j);
    }
    store.create_job(&job("other", "bob", JobType::Periodic, JobStatus::Completed, now()), false).await.unwrap();
    all.sort_by(|a, b| (b.created_at, &b.id).cmp(&(a.created_at, &a.id)));

    let filters = [(None, None), (Some(JobStatus::Completed), None), (None, Some(JobType::Import))];
    for (status, job_type) in filters {
        let expected: Vec<&SyncJob> = all
            .iter()
            .filter(|j| status.is_none_or(|s| j.status == s) && job_type.is_none_or(|t| j.job_type == t))
            .collect();
        let mut got = Vec::new();
        for page in 1..=8 {
            let q = JobQuery { page, limit: 7, status, job_type };
            let p = store.jobs("alice", &q).await.unwrap();
            assert_eq!(p.total, expected.len() as u64);
            got.extend(p.items);
        }
        assert_eq!(got.iter().collect::<Vec<_>>(), expected, "{status:?} {job_type:?}");
    }

    let mut stats = JobStats::default();
    for j in &all {
        stats.total_jobs += 1;
        match j.status {
            JobStatus::Pending => stats.pending += 1,
            JobStatus::Running => stats.running += 1,
            JobStatus::Failed => stats.failed += 1,
            JobStatus::Completed => {
                stats.completed += 1;
                stats.total_items_synced += j.items_processed;
                stats.last_sync_at = stats.last_sync_at.max(j.completed_at);
            }
        }
    }
    assert_eq!(store.job_stats("alice").await.unwrap(), stats);
    assert_eq!(store.job_stats("carol").await.unwrap(), JobStats::default());
    for bad in [JobQuery { limit: 0, ..JobQuery::default() }, JobQuery { page: 0, ..JobQuery::default() }] {
        assert!(matches!(store.jobs("alice", &bad).await, Err(Error::InvalidInput { .. })));
    }
}

/// Every filter of `/api-logs` against the reference predicate, pagination, the
/// aggregates of `/api-logs/stats`, atomic appends and expiry.
pub async fn api_logs_filters_and_stats(store: &dyn Store) {
    let mut rng = SmallRng::seed_from_u64(11);
    let endpoints = ["/v1/me/player/recently-played", "/v1/tracks/abc", "/v1/artists/x%_y", "/v1/me/playlists"];
    let statuses = [200, 200, 200, 201, 204, 304, 401, 404, 429, 500, 503, 0];
    let mut alice = Vec::new();
    for i in 0..120 {
        let status_code = statuses[rng.gen_range(0..statuses.len())];
        let log = ApiCallLog {
            id: format!("log-{i:03}"),
            user_id: Some(if i % 10 == 9 { "bob" } else { "alice" }.into()),
            service: if i % 7 == 0 { "spotify-accounts" } else { "spotify" }.into(),
            method: if i % 5 == 0 { "POST" } else { "GET" }.into(),
            endpoint: endpoints[rng.gen_range(0..endpoints.len())].into(),
            status_code,
            latency_ms: rng.gen_range(0..4000) as f64 / 8.0,
            error: (status_code >= 400 || status_code == 0).then(|| format!("HTTP {status_code}")),
            timestamp: now() - Duration::seconds(30 * (i / 3) as i64),
        };
        alice.push(log);
    }
    for chunk in alice.chunks(50) {
        store.log_api_calls(chunk).await.unwrap();
    }
    let app_call = ApiCallLog { id: "app".into(), user_id: None, ..alice[0].clone() };
    store.log_api_calls(std::slice::from_ref(&app_call)).await.unwrap();
    // A taken id refuses the whole slice.
    let fresh = ApiCallLog { id: "fresh".into(), ..alice[1].clone() };
    let taken = [fresh.clone(), alice[2].clone()];
    assert!(matches!(store.log_api_calls(&taken).await, Err(Error::AlreadyExists { .. })));
    alice.retain(|l| l.user_id.as_deref() == Some("alice"));
    alice.sort_by(|a, b| (b.timestamp, &b.id).cmp(&(a.timestamp, &a.id)));

    let queries = [
        ApiLogQuery::default(),
        ApiLogQuery { service: Some("spotify".into()), ..Default::default() },
        ApiLogQuery { status_min: Some(400), ..Default::default() },
        ApiLogQuery { status_min: Some(200), status_max: Some(299), ..Default::default() },
        ApiLogQuery { method: Some("post".into()), ..Default::default() },
        ApiLogQuery { endpoint_contains: Some("me/".into()), ..Default::default() },
        ApiLogQuery { endpoint_contains: Some("%_".into()), ..Default::default() },
        ApiLogQuery { endpoint_contains: Some("ME/".into()), ..Default::default() },
        ApiLogQuery { endpoint_contains: Some(".*".into()), ..Default::default() },
    ];
    for q in queries {
        let expected: Vec<&ApiCallLog> = alice.iter().filter(|l| q.matches(l)).collect();
        let mut got = Vec::new();
        for page in 1..=3 {
            let p = store.api_logs("alice", &ApiLogQuery { page, limit: 40, ..q.clone() }).await.unwrap();
            assert_eq!(p.total, expected.len() as u64, "{q:?}");
            got.extend(p.items);
        }
        assert_eq!(got.iter().collect::<Vec<_>>(), expected, "{q:?}");
    }

    let mut by_status: BTreeMap<i32, u64> = BTreeMap::new();
    let mut by_endpoint: BTreeMap<String, u64> = BTreeMap::new();
    for l in &alice {
        *by_status.entry(l.status_code).or_default() += 1;
        *by_endpoint.entry(format!("{} {}", l.method, l.endpoint)).or_default() += 1;
    }
    let latency: f64 = alice.iter().map(|l| l.latency_ms).sum();
    let by_status: Vec<(i32, u64)> = by_status.into_iter().collect();
    let expected = ApiLogStats::from_groups(&by_status, latency, by_endpoint.into_iter().collect());
    assert_eq!(store.api_log_stats("alice").await.unwrap(), expected);
    assert_eq!(store.api_log_stats("carol").await.unwrap(), ApiLogStats::from_groups(&[], 0.0, vec![]));
    assert!(matches!(
        store.api_logs("alice", &ApiLogQuery { limit: 201, ..Default::default() }).await,
        Err(Error::InvalidInput { .. })
    ));

    let cut = now() - Duration::seconds(30 * 20);
    let old = alice.iter().filter(|l| l.timestamp < cut).count() as u64;
    let old_bob = (0..120).filter(|i| i % 10 == 9 && now() - Duration::seconds(30 * (i / 3)) < cut).count();
    assert_eq!(store.delete_api_logs_before(cut).await.unwrap(), old + old_bob as u64);
    let left = store.api_logs("alice", &ApiLogQuery::default()).await.unwrap().total;
    assert_eq!(left, alice.len() as u64 - old);
}
