//! Unit tests: opening, batches, and a randomized comparison with the reference
//! `MemoryStore` (every read, after every batch).

use super::*;
use chrono::{Duration, NaiveDate, TimeZone, Utc};
use echostats_core::model::{HistoryEntry, PlayAnchor, PlayKind, PlayOrigin, PlayRecord};
use echostats_core::rules::PlayRules;
use echostats_core::store::*;
use sqlx::Row;

fn tmp_url(dir: &tempfile::TempDir, name: &str) -> String {
    format!("sqlite://{}", dir.path().join(name).display())
}

fn rec(secs: i64, ms: i64, origin: PlayOrigin, uri: Option<&str>, name: &str) -> PlayRecord {
    let mut r = PlayRecord::new(Utc.timestamp_opt(1_700_000_000 + secs, 0).unwrap(), ms, PlayKind::Track, origin);
    r.uri = uri.map(String::from);
    r.track_name = Some(name.into());
    r.artist_name = Some("Artist".into());
    r.album_name = Some("Album".into());
    r
}

#[tokio::test]
async fn the_log_is_checkpointed_off_the_writer_and_truncated_on_close() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("echo.db");
    let wal = dir.path().join("echo.db-wal");
    let store = SqlStore::open(&format!("sqlite://{}", path.display())).await.unwrap();
    let size = |p: &std::path::Path| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
    // Commits do not checkpoint themselves (that is the checkpointer's job)...
    let auto: i64 = sqlx::query("PRAGMA wal_autocheckpoint").fetch_one(store.pool()).await.unwrap().try_get(0).unwrap();
    assert_eq!(auto, 0);
    let mut batch = store.begin_batch("u", &PlayRules::default()).await.unwrap();
    let plays = (0..2_000)
        .map(|i| rec(i * 300, 200_000, PlayOrigin::ExtendedHistory, Some(&format!("spotify:track:{i}")), "Song"));
    batch.insert(plays.collect()).await.unwrap();
    let before = size(&path);
    batch.commit().await.unwrap();
    // ...the checkpointer, woken by the commit, copies the log into the database.
    let mut copied = false;
    for _ in 0..100 {
        if size(&path) > before + 100_000 {
            copied = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(copied, "database file still {} bytes (log {} bytes)", size(&path), size(&wal));
    assert!(size(&wal) > 0);
    // Closing leaves a complete database and an empty log.
    store.close().await;
    assert_eq!(size(&wal), 0);
    let reopened = SqlStore::open(&format!("sqlite://{}", path.display())).await.unwrap();
    let page = reopened.history("u", &HistoryQuery::default()).await.unwrap();
    assert_eq!(page.total, 2_000);
}

/// The end of an import: the last commit wakes the background checkpointer, and the
/// store is closed while it copies. The final TRUNCATE checkpoint once ran beside the
/// background one, was blocked, and left the log (hundreds of MB after a large import)
/// for the next process to copy back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closing_during_a_background_checkpoint_still_truncates_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let size = |p: &std::path::Path| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
    // Each round caught the bug about one time in three.
    for round in 0..6 {
        let path = dir.path().join(format!("echo{round}.db"));
        let store = SqlStore::open(&format!("sqlite://{}", path.display())).await.unwrap();
        // ~64 MB of log, so that copying it back takes a while.
        let fill = "CREATE TABLE filler (x BLOB); \
                    WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 4000) \
                    INSERT INTO filler SELECT randomblob(16000) FROM n";
        sqlx::raw_sql(fill).execute(store.pool()).await.unwrap();
        store.checkpoint_waker().unwrap().notify_one();
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        store.close().await;
        let wal = dir.path().join(format!("echo{round}.db-wal"));
        assert_eq!(size(&wal), 0, "round {round}: the log was left behind");
    }
}

#[tokio::test]
async fn open_creates_file_and_dirs_with_wal() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a/b/echo.db");
    let store = SqlStore::open(&format!("sqlite://{}", path.display())).await.unwrap();
    assert!(path.exists());
    assert_eq!(store.backend(), "sqlite");
    store.ping().await.unwrap();
    let mode: String = sqlx::query("PRAGMA journal_mode").fetch_one(store.pool()).await.unwrap().try_get(0).unwrap();
    assert_eq!(mode.to_lowercase(), "wal");
    // Reopening runs no migration twice.
    drop(store);
    let store = SqlStore::open(&format!("sqlite:{}", path.display())).await.unwrap();
    store.ping().await.unwrap();
}

#[tokio::test]
async fn open_memory_and_bad_urls() {
    let store = SqlStore::open("sqlite::memory:").await.unwrap();
    store.ping().await.unwrap();
    assert!(matches!(SqlStore::open("mysql://x/y").await, Err(echostats_core::Error::InvalidInput { .. })));
    // Nothing listens on port 1.
    let err = SqlStore::open("postgres://postgres@127.0.0.1:1/test").await.unwrap_err();
    assert!(matches!(err, echostats_core::Error::BackendUnavailable { backend: "postgres", .. }), "{err:?}");
}

#[test]
fn url_helpers() {
    let (u, s) = split_schema_param("postgres://u@h/db?sslmode=disable&schema=t_1").unwrap();
    assert_eq!((u.as_str(), s.as_deref()), ("postgres://u@h/db?sslmode=disable", Some("t_1")));
    let (u, s) = split_schema_param("postgres://u@h/db?schema=a%20b").unwrap();
    assert_eq!((u.as_str(), s.as_deref()), ("postgres://u@h/db", Some("a b")));
    assert_eq!(quote_ident("we\"ird").unwrap(), "\"we\"\"ird\"");
    assert_eq!(redact("postgres://u:secret@h/db"), "postgres://u:***@h/db");
}

#[tokio::test]
async fn batch_roundtrip_dedupe_and_replace() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqlStore::open(&tmp_url(&dir, "t.db")).await.unwrap();
    let rules = PlayRules::default();
    let mut b = store.begin_batch("u", &rules).await.unwrap();
    let out = b
        .insert(vec![
            rec(0, 40_000, PlayOrigin::AccountData, None, "Song"),
            rec(1_000, 40_000, PlayOrigin::AccountData, None, "Other"),
        ])
        .await
        .unwrap();
    assert_eq!(out, InsertOutcome { added: 2, replaced: 0, duplicates: 0 });
    b.commit().await.unwrap();
    let before = store.plays_in("u", None).await.unwrap();

    let mut b = store.begin_batch("u", &rules).await.unwrap();
    let out = b
        .insert(vec![
            rec(30, 41_000, PlayOrigin::ExtendedHistory, Some("spotify:track:a"), "Song"),
            rec(30, 41_000, PlayOrigin::ExtendedHistory, Some("spotify:track:a"), "Song"),
            rec(1_000, 40_000, PlayOrigin::AccountData, None, "Other"),
            rec(5_000, 10_000, PlayOrigin::ExtendedHistory, Some("spotify:track:b"), "Short"),
        ])
        .await
        .unwrap();
    assert_eq!(out, InsertOutcome { added: 1, replaced: 1, duplicates: 2 });
    b.commit().await.unwrap();

    let after = store.plays_in("u", None).await.unwrap();
    assert_eq!(after.len(), 3);
    assert_eq!(after[0].id, before[0].id, "replaced in place");
    assert_eq!(after[0].record.origin, PlayOrigin::ExtendedHistory);
    let tracks = store.item_ranking("u", ItemKind::Track, None, None).await.unwrap();
    assert_eq!(tracks.distinct, 2);
    let song = tracks.items.iter().find(|i| i.name == "Song").unwrap();
    assert_eq!((song.play_count, song.total_ms), (1, 41_000));
    assert_eq!(song.spotify_id.as_deref(), Some("spotify:track:a"));
    let status = store.rollup_status("u").await.unwrap();
    assert!(status.complete);
    assert_eq!(status.total_days, 1);
    let days = store.rollup_days("u", NaiveDate::MIN, NaiveDate::MAX).await.unwrap();
    assert_eq!(days[0].total_plays(), 2);
    assert_eq!(days[0].total_ms(), 81_000);
}

#[tokio::test]
async fn rollback_and_drop_leave_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqlStore::open(&tmp_url(&dir, "t.db")).await.unwrap();
    let rules = PlayRules::default();
    let mut b = store.begin_batch("u", &rules).await.unwrap();
    b.insert(vec![rec(0, 40_000, PlayOrigin::AccountData, None, "Song")]).await.unwrap();
    b.rollback().await.unwrap();
    let mut b = store.begin_batch("u", &rules).await.unwrap();
    b.insert(vec![rec(0, 40_000, PlayOrigin::AccountData, None, "Song")]).await.unwrap();
    drop(b);
    assert!(store.plays_in("u", None).await.unwrap().is_empty());
    assert_eq!(store.item_ranking("u", ItemKind::Track, None, None).await.unwrap(), ItemRanking::default());
    assert!(store.rollup_days("u", NaiveDate::MIN, NaiveDate::MAX).await.unwrap().is_empty());
    let status = store.rollup_status("u").await.unwrap();
    assert_eq!((status.total_days, status.complete, status.last_date), (0, true, None));
    // The next batch works (the dropped transaction was rolled back, not leaked).
    let mut b = store.begin_batch("u", &rules).await.unwrap();
    b.insert(vec![rec(0, 40_000, PlayOrigin::AccountData, None, "Song")]).await.unwrap();
    b.commit().await.unwrap();
    assert_eq!(store.plays_in("u", None).await.unwrap()[0].id, "1", "ids of rolled back rows are not used");
}

/// Batches hand the item ids they met to the next (an import's files share most items):
/// committed ids are reused, those of a rolled-back batch never are.
#[tokio::test]
async fn item_ids_pass_from_committed_batches_only() {
    let store = SqlStore::open("sqlite::memory:").await.unwrap();
    let rules = PlayRules::default();
    let song = |secs: i64, name: &str| rec(secs, 40_000, PlayOrigin::ExtendedHistory, None, name);
    let mut b = store.begin_batch("u", &rules).await.unwrap();
    b.insert(vec![song(0, "Kept")]).await.unwrap();
    b.commit().await.unwrap();
    let mut b = store.begin_batch("u", &rules).await.unwrap();
    b.insert(vec![song(1_000, "Kept"), song(2_000, "Rolled back")]).await.unwrap();
    // SQLite sends a chunk's writes while the next is planned: they have run after this.
    b.insert(vec![song(2_500, "Kept")]).await.unwrap();
    b.rollback().await.unwrap();
    let mut b = store.begin_batch("u", &rules).await.unwrap();
    b.insert(vec![song(3_000, "Kept"), song(4_000, "Rolled back")]).await.unwrap();
    b.commit().await.unwrap();
    let mut b = store.begin_batch("u", &rules).await.unwrap();
    b.insert(vec![song(5_000, "Kept"), song(6_000, "Rolled back")]).await.unwrap();
    b.commit().await.unwrap();

    let names: Vec<String> =
        store.plays_in("u", None).await.unwrap().into_iter().map(|e| e.record.track_name.unwrap()).collect();
    assert_eq!(names, ["Kept", "Kept", "Rolled back", "Kept", "Rolled back"], "every play keeps its item");
    let items: i64 = sqlx::query("SELECT COUNT(*) FROM play_items").fetch_one(store.pool()).await.unwrap().get(0);
    assert_eq!(items, 2);
}

#[tokio::test]
async fn catalog_and_users() {
    use echostats_core::model::{Artist, ArtistRef, AudioFeatures, Track, User};
    let store = SqlStore::open("sqlite::memory:").await.unwrap();
    let t = Track {
        spotify_id: "t1".into(),
        name: "Song".into(),
        artists: vec![ArtistRef { spotify_id: None, name: "A".into() }],
        album_name: Some("Al".into()),
        album_id: None,
        album_image_url: None,
        duration_ms: Some(1),
        explicit: Some(true),
        audio_features: Some(AudioFeatures {
            danceability: 0.1 + 0.2,
            tempo: 120.000_000_000_01,
            ..Default::default()
        }),
    };
    store.upsert_tracks(&[t.clone(), Track { audio_features: None, ..t.clone() }, t.clone()]).await.unwrap();
    assert_eq!(store.track("t1").await.unwrap(), t);
    assert!(matches!(store.track("nope").await, Err(echostats_core::Error::NotFound { .. })));
    let f = store.audio_features(&["spotify:track:t1".into(), "t1".into(), "spotify:track:x".into()]).await.unwrap();
    assert_eq!(f.len(), 2);
    let a = Artist {
        spotify_id: Some("a1".into()),
        name: "The  Band".into(),
        genres: vec!["rock".into()],
        image_url: None,
    };
    store.upsert_artists(std::slice::from_ref(&a)).await.unwrap();
    assert_eq!(store.artist("a1").await.unwrap(), a);
    let g = store.artist_genres(&["the band".into(), "x".into()]).await.unwrap();
    assert_eq!(g.get("the band"), Some(&vec!["rock".to_string()]));
    let u = User {
        id: "b".into(),
        spotify_id: None,
        display_name: Some("B".into()),
        image_url: None,
        product: None,
        created_at: Utc::now(),
    };
    store.upsert_user(&u).await.unwrap();
    store.upsert_user(&User { id: "a".into(), ..u.clone() }).await.unwrap();
    assert_eq!(store.user("b").await.unwrap(), u);
    assert_eq!(store.users().await.unwrap().iter().map(|u| u.id.as_str()).collect::<Vec<_>>(), ["a", "b"]);
    assert!(matches!(store.user("zz").await, Err(echostats_core::Error::NotFound { .. })));
}

// ---------------------------------------------------------------------------------------
// Randomized comparison with the reference store

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn pick<'a>(&mut self, xs: &[&'a str]) -> &'a str {
        xs[self.below(xs.len() as u64) as usize]
    }
    fn maybe(&mut self, p: u64, xs: &[&str]) -> Option<String> {
        (self.below(100) < p).then(|| self.pick(xs).to_string())
    }
}

const T0: i64 = 1_700_000_000_000;
const DAYS4: u64 = 4 * 86_400_000;
const HOURS2: u64 = 2 * 3_600_000;

fn random_record(rng: &mut Rng, span_ms: u64) -> PlayRecord {
    let at = Utc.timestamp_millis_opt(T0 + rng.below(span_ms) as i64 / 1000 * 1000 + rng.below(3) as i64).unwrap();
    let kind = match rng.below(20) {
        0..=14 => PlayKind::Track,
        15..=17 => PlayKind::Episode,
        18 => PlayKind::Audiobook,
        _ => PlayKind::Unknown,
    };
    let origin = match rng.below(3) {
        0 => PlayOrigin::AccountData,
        1 => PlayOrigin::Api,
        _ => PlayOrigin::ExtendedHistory,
    };
    let ms = [0, 29_999, 30_000, 31_000, 45_000, 200_000][rng.below(6) as usize];
    let mut r = PlayRecord::new(at, ms, kind, origin);
    match kind {
        PlayKind::Track => {
            r.track_name = rng.maybe(95, &["Song", "song", " Song ", "Other", "Third", "", "Zed"]);
            r.artist_name = rng.maybe(95, &["Band", "band", "The  Band", "Solo", " "]);
            r.album_name = rng.maybe(80, &["LP", "lp", "EP", ""]);
            r.uri = rng.maybe(60, &["spotify:track:1", "spotify:track:2", "spotify:track:3"]);
            r.artist_id = rng.maybe(30, &["ar1", "ar2"]);
        }
        PlayKind::Episode => {
            r.episode_name = rng.maybe(90, &["Ep 1", "Ep 2"]);
            r.show_name = rng.maybe(90, &["Show", "show", "Talk", ""]);
            r.uri = rng.maybe(50, &["spotify:episode:1", "spotify:episode:2"]);
            r.track_name = rng.maybe(5, &["Song"]);
            r.artist_name = rng.maybe(5, &["Band"]);
        }
        PlayKind::Audiobook => {
            r.audiobook_title = rng.maybe(90, &["Book"]);
            r.audiobook_chapter_title = rng.maybe(90, &["Ch 1", "Ch 2"]);
            r.audiobook_uri = rng.maybe(50, &["spotify:audiobook:1"]);
        }
        PlayKind::Unknown => {}
    }
    r.platform = rng.maybe(50, &["android", "ios"]);
    r.shuffle = (rng.below(2) == 0).then(|| rng.below(2) == 0);
    r.offline_timestamp = (rng.below(4) == 0).then_some(at);
    r
}

fn strip_ids(v: &[HistoryEntry]) -> Vec<(String, PlayRecord, Option<PlayAnchor>)> {
    v.iter().map(|e| (e.user_id.clone(), e.record.clone(), e.anchor)).collect()
}

async fn assert_same(mem: &MemoryStore, sql: &SqlStore, user: &str, exact_ids: bool, ctx: &str) {
    let eq_entries = |a: &[HistoryEntry], b: &[HistoryEntry], what: &str| {
        if exact_ids {
            assert_eq!(a, b, "{ctx}: {what}");
        } else {
            assert_eq!(strip_ids(a), strip_ids(b), "{ctx}: {what}");
        }
    };
    let t = |h: i64| Utc.timestamp_millis_opt(T0 + h * 3_600_000 + 1).unwrap() + Duration::nanoseconds(500);
    let windows: Vec<Option<TimeWindow>> = vec![
        None,
        Some(TimeWindow { start: t(0), end: t(100) }),
        Some(TimeWindow { start: t(13), end: t(40) }),
        Some(TimeWindow { start: t(50), end: t(51) }),
        Some(TimeWindow { start: t(0) + Duration::minutes(20), end: t(1) + Duration::minutes(10) }),
    ];
    for w in &windows {
        let (a, b) = (mem.plays_in(user, *w).await.unwrap(), sql.plays_in(user, *w).await.unwrap());
        eq_entries(&a, &b, &format!("plays_in {w:?}"));
        for kind in [ItemKind::Track, ItemKind::Artist, ItemKind::Album] {
            for limit in [None, Some(0), Some(2)] {
                let a = mem.item_ranking(user, kind, *w, limit).await.unwrap();
                let b = sql.item_ranking(user, kind, *w, limit).await.unwrap();
                assert_eq!(a, b, "{ctx}: item_ranking {kind:?} {w:?} {limit:?}");
            }
        }
        for limit in [0, 1, 100] {
            let a = mem.show_ranking(user, *w, limit).await.unwrap();
            let b = sql.show_ranking(user, *w, limit).await.unwrap();
            assert_eq!(a, b, "{ctx}: show_ranking {w:?} {limit}");
        }
    }
    let queries = [
        HistoryQuery::default(),
        HistoryQuery { page: 2, limit: 7, ..Default::default() },
        HistoryQuery { artist: Some("THE BAND".into()), ..Default::default() },
        HistoryQuery { artist: Some("".into()), ..Default::default() },
        HistoryQuery { track: Some("song".into()), kind: Some(PlayKind::Track), ..Default::default() },
        HistoryQuery { start: Some(t(10)), end: Some(t(30)), limit: 100, ..Default::default() },
        HistoryQuery { kind: Some(PlayKind::Episode), page: 1, limit: 3, ..Default::default() },
    ];
    for q in &queries {
        let (a, b) = (mem.history(user, q).await.unwrap(), sql.history(user, q).await.unwrap());
        assert_eq!(a.total, b.total, "{ctx}: history total {q:?}");
        eq_entries(&a.items, &b.items, &format!("history {q:?}"));
    }
    let bad = HistoryQuery { limit: 0, ..Default::default() };
    assert!(matches!(sql.history(user, &bad).await, Err(echostats_core::Error::InvalidInput { .. })));
    let from = NaiveDate::from_ymd_opt(2023, 11, 15).unwrap();
    for (f, to) in [(NaiveDate::MIN, NaiveDate::MAX), (from, from + Duration::days(1))] {
        let (a, b) = (mem.rollup_days(user, f, to).await.unwrap(), sql.rollup_days(user, f, to).await.unwrap());
        assert_eq!(a, b, "{ctx}: rollup_days {f}..{to}");
    }
    assert_eq!(mem.rollup_status(user).await.unwrap(), sql.rollup_status(user).await.unwrap(), "{ctx}: status");
}

async fn differential(sql: SqlStore, exact_ids: bool, seed: u64, span_ms: u64) {
    let mem = MemoryStore::new();
    let mut rng = Rng(seed);
    let users = ["alice", "bob"];
    let mut rules = PlayRules::default();
    let mut total = InsertOutcome::default();
    let mut rolled_back_parts = 0;
    for round in 0..14 {
        let user = users[rng.below(2) as usize];
        if round == 9 {
            rules = PlayRules { min_play_ms: 31_000, duplicate_window: Duration::seconds(90) };
        }
        if round == 11 {
            let r = PlayRules { min_play_ms: 1, ..PlayRules::default() };
            mem.rebuild_rollups(user, &r).await.unwrap();
            sql.rebuild_rollups(user, &r).await.unwrap();
            assert_same(&mem, &sql, user, exact_ids, &format!("seed {seed} rebuild")).await;
        }
        let mut mb = mem.begin_batch(user, &rules).await.unwrap();
        let mut sb = sql.begin_batch(user, &rules).await.unwrap();
        for part in 0..1 + rng.below(3) {
            // Parts behind a savepoint (like the files of an import), kept or rolled back;
            // pending aggregates are flushed inside them (FLUSH_ITEMS is small in tests).
            let savepoint = rng.below(3) != 0;
            if savepoint {
                assert!(mb.savepoint().await.unwrap() && sb.savepoint().await.unwrap());
            }
            for _ in 0..1 + rng.below(2) {
                // One round of inserts large enough for several statements per insert
                // (the writer binds the next while SQLite runs the current one).
                let n = if round == 5 { 2_100 } else { rng.below(120) as usize };
                let plays: Vec<PlayRecord> = (0..n).map(|_| random_record(&mut rng, span_ms)).collect();
                let a = mb.insert(plays.clone()).await.unwrap();
                let b = sb.insert(plays).await.unwrap();
                assert_eq!(a, b, "seed {seed} round {round} part {part}: outcome");
                total += a;
            }
            if savepoint && rng.below(3) == 0 {
                mb.rollback_to_savepoint().await.unwrap();
                sb.rollback_to_savepoint().await.unwrap();
                rolled_back_parts += 1;
            } else if savepoint {
                mb.release_savepoint().await.unwrap();
                sb.release_savepoint().await.unwrap();
            }
        }
        if rng.below(5) == 0 {
            mb.rollback().await.unwrap();
            sb.rollback().await.unwrap();
        } else {
            mb.commit().await.unwrap();
            sb.commit().await.unwrap();
        }
        for u in users {
            assert_same(&mem, &sql, u, exact_ids, &format!("seed {seed} round {round} user {u}")).await;
        }
    }
    let mut anchored = 0;
    for u in users {
        anchored += mem.plays_in(u, None).await.unwrap().iter().filter(|e| e.anchor.is_some()).count();
    }
    eprintln!("seed {seed} span {span_ms}: {total:?}, {rolled_back_parts} parts rolled back, {anchored} anchored");
    assert!(total.replaced > 0 && total.duplicates > 0 && rolled_back_parts > 0 && anchored > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn same_answers_as_memory_store_sqlite() {
    for (seed, span_ms) in [(1u64, DAYS4), (7, DAYS4), (42, DAYS4), (5, HOURS2), (2024, HOURS2), (99_991, HOURS2)] {
        let dir = tempfile::tempdir().unwrap();
        let store = SqlStore::open(&tmp_url(&dir, "diff.db")).await.unwrap();
        differential(store, true, seed, span_ms).await;
    }
}

/// A store in a fresh schema of the PostgreSQL at `ECHOSTATS_TEST_POSTGRES_URL`.
pub(crate) async fn pg_store() -> Option<(SqlStore, String)> {
    let url = std::env::var("ECHOSTATS_TEST_POSTGRES_URL").ok()?;
    static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let schema = format!(
        "t_unit_{}_{}_{}",
        std::process::id(),
        N.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
        Utc::now().timestamp_micros()
    );
    Some((SqlStore::open_postgres_schema(&url, &schema).await.unwrap(), schema))
}

async fn drop_schema(store: SqlStore, schema: &str) {
    sqlx::query(&format!("DROP SCHEMA \"{schema}\" CASCADE")).execute(store.pool()).await.unwrap();
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn same_answers_as_memory_store_postgres() {
    for (seed, span_ms) in [(3u64, DAYS4), (42, HOURS2)] {
        let Some((store, schema)) = pg_store().await else {
            eprintln!("skipped: ECHOSTATS_TEST_POSTGRES_URL not set");
            return;
        };
        differential(store.clone(), false, seed, span_ms).await;
        drop_schema(store, &schema).await;
    }
}

#[tokio::test]
async fn postgres_basics() {
    let Some((store, schema)) = pg_store().await else { return };
    assert_eq!(store.backend(), "postgres");
    store.ping().await.unwrap();
    let rules = PlayRules::default();
    let mut b = store.begin_batch("u", &rules).await.unwrap();
    b.insert(vec![rec(0, 40_000, PlayOrigin::AccountData, None, "Song")]).await.unwrap();
    b.rollback().await.unwrap();
    assert!(store.plays_in("u", None).await.unwrap().is_empty());
    // A dropped batch releases the user's lock: the next batch does not wait for it.
    let mut b = store.begin_batch("u", &rules).await.unwrap();
    b.insert(vec![rec(0, 40_000, PlayOrigin::AccountData, None, "Song")]).await.unwrap();
    drop(b);
    let next = tokio::time::timeout(std::time::Duration::from_secs(10), store.begin_batch("u", &rules)).await;
    let mut b = next.expect("lock released").unwrap();
    b.insert(vec![rec(0, 40_000, PlayOrigin::AccountData, None, "Song")]).await.unwrap();
    b.commit().await.unwrap();
    assert_eq!(store.plays_in("u", None).await.unwrap().len(), 1);
    drop_schema(store, &schema).await;
}

/// The plays table as migrations 1 and 2 left it: every field and key on each play.
const WIDE_PLAY_COLS: &[&str] = &[
    "id",
    "user_id",
    "played_at",
    "ms_played",
    "kind",
    "origin",
    "counted",
    "uri",
    "track_name",
    "artist_name",
    "album_name",
    "artist_id",
    "episode_name",
    "show_name",
    "audiobook_title",
    "audiobook_uri",
    "audiobook_chapter_title",
    "platform",
    "conn_country",
    "reason_start",
    "reason_end",
    "shuffle",
    "skipped",
    "offline",
    "offline_timestamp",
    "incognito",
    "context_type",
    "context_uri",
    "track_key",
    "artist_key",
    "album_key",
    "artist_norm",
    "track_norm",
    "show_key",
];

/// Writes `entries` into a database of the layout before migration 3, as that version
/// wrote them (ids, derived keys).
async fn migrate_wide(pool: sqlx::AnyPool, dialect: Dialect, entries: &[HistoryEntry], rules: &PlayRules) {
    let before: &[(i64, &str, &str)] = match dialect {
        Dialect::Sqlite => &SQLITE_MIGRATIONS[..2],
        Dialect::Postgres => &POSTGRES_MIGRATIONS[..2],
    };
    Migrator::new(Embedded(before)).await.unwrap().run(&pool).await.unwrap();
    let sql = format!(
        "INSERT INTO plays ({}) VALUES ({})",
        WIDE_PLAY_COLS.join(", "),
        codec::Ph::new(dialect).list(WIDE_PLAY_COLS.len())
    );
    for e in entries {
        let r = &e.record;
        let d = codec::Derived::of(r, rules);
        let flag = |b: Option<bool>| b.map(i64::from);
        sqlx::query(&sql)
            .bind(e.id.parse::<i64>().unwrap())
            .bind(e.user_id.as_str())
            .bind(r.played_at.timestamp_millis())
            .bind(r.ms_played)
            .bind(r.kind.code() as i64)
            .bind(r.origin.code() as i64)
            .bind(d.counted as i64)
            .bind(r.uri.as_deref())
            .bind(r.track_name.as_deref())
            .bind(r.artist_name.as_deref())
            .bind(r.album_name.as_deref())
            .bind(r.artist_id.as_deref())
            .bind(r.episode_name.as_deref())
            .bind(r.show_name.as_deref())
            .bind(r.audiobook_title.as_deref())
            .bind(r.audiobook_uri.as_deref())
            .bind(r.audiobook_chapter_title.as_deref())
            .bind(r.platform.as_deref())
            .bind(r.conn_country.as_deref())
            .bind(r.reason_start.as_deref())
            .bind(r.reason_end.as_deref())
            .bind(flag(r.shuffle))
            .bind(flag(r.skipped))
            .bind(flag(r.offline))
            .bind(r.offline_timestamp.map(|t| t.timestamp_millis()))
            .bind(flag(r.incognito))
            .bind(r.context_type.as_deref())
            .bind(r.context_uri.as_deref())
            .bind(d.track_key.as_deref())
            .bind(d.artist_key.as_deref())
            .bind(d.album_key.as_deref())
            .bind(d.artist_norm.as_deref())
            .bind(d.track_norm.as_deref())
            .bind(d.show_key.as_deref())
            .execute(&pool)
            .await
            .unwrap();
    }
    pool.close().await;
}

/// The history of two users in the reference store, and what makes more records.
async fn wide_fixture() -> (MemoryStore, Vec<HistoryEntry>, Rng) {
    let (mem, rules) = (MemoryStore::new(), PlayRules::default());
    let mut rng = Rng(17);
    for user in ["alice", "bob"] {
        // No two entries within a few minutes of each other: the version before
        // migration 3 kept no anchors (migration 5), so none of its plays may have one.
        let mut records: Vec<PlayRecord> = Vec::new();
        while records.len() < 400 {
            let r = random_record(&mut rng, DAYS4);
            if records.iter().all(|o| (o.played_at - r.played_at).abs() > Duration::minutes(5)) {
                records.push(r);
            }
        }
        let mut b = mem.begin_batch(user, &rules).await.unwrap();
        b.insert(records).await.unwrap();
        b.commit().await.unwrap();
    }
    let stored = [mem.plays_in("alice", None).await.unwrap(), mem.plays_in("bob", None).await.unwrap()].concat();
    assert!(stored.iter().all(|e| e.anchor.is_none()));
    (mem, stored, rng)
}

/// Distinct item identities of the reference store's plays.
async fn item_idents(mem: &MemoryStore) -> usize {
    let all = [mem.plays_in("alice", None).await.unwrap(), mem.plays_in("bob", None).await.unwrap()].concat();
    all.iter().map(|e| codec::item_ident(&e.record)).collect::<std::collections::HashSet<_>>().len()
}

async fn stored_items(sql: &SqlStore) -> usize {
    let n: i64 = sqlx::query("SELECT COUNT(*) FROM play_items").fetch_one(sql.pool()).await.unwrap().get(0);
    n as usize
}

/// A history stored before migration 3 (`stored`, from `mem`) reads back the same after
/// it: every play with its id and fields, the keys of its item, every listing and
/// ranking; the next import dedupes against it, adds no item twice and its plays get
/// new ids.
async fn wide_history_survives_migration(sql: SqlStore, (mem, stored, mut rng): (MemoryStore, Vec<HistoryEntry>, Rng)) {
    let rules = PlayRules::default();
    let exact_ids = sql.dialect() == Dialect::Sqlite;
    let rows = sqlx::query(&format!("SELECT {} FROM play_rows ORDER BY id", codec::PLAY_READ_COLS_DERIVED))
        .fetch_all(sql.pool())
        .await
        .unwrap();
    assert_eq!(rows.len(), stored.len(), "plays after the migration");
    for row in &rows {
        let (_, entry) = codec::entry_from_row(row).unwrap();
        let (derived, _) = codec::derived_from_row(row).unwrap();
        assert_eq!(derived, codec::Derived::of(&entry.record, &rules), "derived columns of play {}", entry.id);
    }
    assert_eq!(stored_items(&sql).await, item_idents(&mem).await, "one item per distinct identity");
    for user in ["alice", "bob"] {
        // Rollups and item totals were stored by the old version too: rebuilt here.
        sql.rebuild_rollups(user, &rules).await.unwrap();
        assert_same(&mem, &sql, user, exact_ids, "migrated").await;
    }
    // The next import: the same entries again, and new ones.
    let mut again: Vec<PlayRecord> = stored.iter().filter(|e| e.user_id == "alice").map(|e| e.record.clone()).collect();
    again.extend((0..200).map(|_| random_record(&mut rng, DAYS4)));
    let mut mb = mem.begin_batch("alice", &rules).await.unwrap();
    let mut sb = sql.begin_batch("alice", &rules).await.unwrap();
    assert_eq!(mb.insert(again.clone()).await.unwrap(), sb.insert(again).await.unwrap());
    mb.commit().await.unwrap();
    sb.commit().await.unwrap();
    assert_same(&mem, &sql, "alice", exact_ids, "imported after the migration").await;
    // Items of replaced plays stay (unreferenced), so there may be more than the plays use.
    let twice: i64 = sqlx::query("SELECT COUNT(*) - COUNT(DISTINCT ident) FROM play_items")
        .fetch_one(sql.pool())
        .await
        .unwrap()
        .get(0);
    assert_eq!(twice, 0, "no item added twice");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wide_sqlite_history_is_migrated_to_items() {
    let dir = tempfile::tempdir().unwrap();
    let url = tmp_url(&dir, "wide.db");
    let fixture = wide_fixture().await;
    migrate_wide(sqlite_pool(&url).await.unwrap().0, Dialect::Sqlite, &fixture.1, &PlayRules::default()).await;
    let sql = SqlStore::open(&url).await.unwrap();
    // The pages of the wide table went back to the file system.
    let free: i64 = sqlx::query("PRAGMA freelist_count").fetch_one(sql.pool()).await.unwrap().get(0);
    assert_eq!(free, 0, "free pages after the migration");
    wide_history_survives_migration(sql, fixture).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wide_postgres_history_is_migrated_to_items() {
    let Some((store, schema)) = pg_store().await else { return };
    let url = std::env::var("ECHOSTATS_TEST_POSTGRES_URL").unwrap();
    drop_schema(store, &schema).await;
    let fixture = wide_fixture().await;
    let pool = postgres_pool(&url, Some(schema.clone())).await.unwrap().0;
    migrate_wide(pool, Dialect::Postgres, &fixture.1, &PlayRules::default()).await;
    let sql = SqlStore::open_postgres_schema(&url, &schema).await.unwrap();
    wide_history_survives_migration(sql.clone(), fixture).await;
    drop_schema(sql, &schema).await;
}
