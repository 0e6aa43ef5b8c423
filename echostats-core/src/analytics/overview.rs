//! The overview: totals, uniques, top lists, distributions and streaks of a period.

use super::{hours, Period};
use crate::model::{AudioFeatures, RollupDay};
use crate::store::{ItemKind, RankedItem, Store, TimeWindow};
use crate::Result;
use chrono::{DateTime, Datelike, Duration, NaiveDate, Offset, TimeZone, Timelike, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// What to compute.
#[derive(Debug, Clone)]
pub struct OverviewRequest {
    /// The period.
    pub period: Period,
    /// Zone for hour of day, weekday and days (streaks).
    pub tz: Tz,
    /// "Now" (defaults to the current time); tests pin it.
    pub now: Option<DateTime<Utc>>,
    /// Length of the top lists.
    pub top_limit: usize,
}

impl OverviewRequest {
    /// Defaults: UTC, now, top 10.
    pub fn new(period: Period) -> Self {
        OverviewRequest { period, tz: Tz::UTC, now: None, top_limit: 10 }
    }
    /// The "now" used.
    pub fn now(&self) -> DateTime<Utc> {
        self.now.unwrap_or_else(Utc::now)
    }
}

/// One entry of a top list.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TopEntry {
    /// 1-based rank.
    pub rank: u32,
    /// Name.
    pub name: String,
    /// Counted plays.
    pub play_count: i64,
    /// Milliseconds.
    pub total_ms: i64,
    /// Spotify URI/id when known.
    pub spotify_id: Option<String>,
    /// Artist of a track or album.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub artist_name: Option<String>,
    /// Image when the catalog has one.
    pub image_url: Option<String>,
}

/// Plays in one hour of the day.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HourPoint {
    /// 0..=23 in the requested zone.
    pub hour: u32,
    /// Counted plays.
    pub plays: i64,
}

/// Plays on one weekday.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DayPoint {
    /// Monday..Sunday.
    pub day: String,
    /// Counted plays.
    pub plays: i64,
}

/// The EchoStats analytics overview.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Overview {
    /// Period name.
    pub period: Period,
    /// Zone used for hours, weekdays and days.
    pub timezone: String,
    /// Counted track plays.
    pub total_tracks_played: i64,
    /// Milliseconds of counted plays.
    pub total_ms_played: i64,
    /// Hours, one decimal.
    pub total_hours: f64,
    /// Distinct tracks.
    pub unique_tracks: u64,
    /// Distinct artists.
    pub unique_artists: u64,
    /// Distinct albums.
    pub unique_albums: u64,
    /// Distinct genres (from catalog artist metadata).
    pub unique_genres: u64,
    /// Longest run of consecutive days with a play inside the period.
    pub listening_streak_days: u32,
    /// Run of days with a play ending today or yesterday.
    pub current_streak_days: u32,
    /// Top artists.
    pub top_artists: Vec<TopEntry>,
    /// Top tracks.
    pub top_tracks: Vec<TopEntry>,
    /// Top albums.
    pub top_albums: Vec<TopEntry>,
    /// Top genres.
    pub top_genres: Vec<TopEntry>,
    /// 24 points, zero-filled.
    pub hourly_distribution: Vec<HourPoint>,
    /// 7 points, Monday..Sunday.
    pub daily_distribution: Vec<DayPoint>,
    /// Mean audio features of the period's plays; null when no track has features.
    pub avg_audio_features: Option<AudioFeatures>,
    /// When computed.
    pub computed_at: DateTime<Utc>,
}

/// Weekday names, Monday first.
pub const WEEKDAYS: [&str; 7] = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"];

/// Per-slot totals of a window, mapped to local time.
pub(crate) struct LocalTotals {
    pub plays: i64,
    pub ms: i64,
    pub by_hour: [i64; 24],
    pub by_weekday: [i64; 7],
    /// Local day → (plays, ms).
    pub by_day: BTreeMap<NaiveDate, (i64, i64)>,
}

/// Reads the rollup days covering `window` (everything when `None`) and maps each
/// quarter-hour slot inside it to local time in `tz`.
pub(crate) async fn local_totals(
    store: &dyn Store,
    user_id: &str,
    window: Option<TimeWindow>,
    tz: Tz,
) -> Result<LocalTotals> {
    let (from, to) = match window {
        Some(w) => (w.start.date_naive(), w.end.date_naive()),
        None => (NaiveDate::MIN, NaiveDate::MAX),
    };
    let days: Vec<RollupDay> = store.rollup_days(user_id, from, to).await?;
    let mut t = LocalTotals { plays: 0, ms: 0, by_hour: [0; 24], by_weekday: [0; 7], by_day: BTreeMap::new() };
    for day in &days {
        // A zone's offset changes at most at a transition: when it is the same at both
        // ends of the UTC day, plain arithmetic maps every slot (the common case).
        let first = day.slot_start(0);
        let offset_at = |t: DateTime<Utc>| tz.offset_from_utc_datetime(&t.naive_utc()).fix();
        let fixed = Some(offset_at(first)).filter(|o| *o == offset_at(first + Duration::seconds(86_399)));
        for slot in 0..day.plays.len() {
            let (plays, ms) = (day.plays[slot], day.ms[slot]);
            if plays == 0 && ms == 0 {
                continue;
            }
            let start = day.slot_start(slot);
            if window.is_some_and(|w| !w.contains(start)) {
                continue;
            }
            let local = match fixed {
                Some(offset) => start.naive_utc() + offset,
                None => start.with_timezone(&tz).naive_local(),
            };
            t.plays += plays;
            t.ms += ms;
            t.by_hour[local.hour() as usize] += plays;
            t.by_weekday[local.weekday().num_days_from_monday() as usize] += plays;
            let e = t.by_day.entry(local.date()).or_default();
            e.0 += plays;
            e.1 += ms;
        }
    }
    Ok(t)
}

/// Longest run of consecutive days, and the run ending `today` or the day before.
pub fn streaks(days: &BTreeSet<NaiveDate>, today: NaiveDate) -> (u32, u32) {
    let mut longest = 0u32;
    let mut run = 0u32;
    let mut prev: Option<NaiveDate> = None;
    for &d in days {
        run = if prev.is_some_and(|p| p + Duration::days(1) == d) { run + 1 } else { 1 };
        longest = longest.max(run);
        prev = Some(d);
    }
    let mut current = 0u32;
    let mut d = if days.contains(&today) { today } else { today - Duration::days(1) };
    while days.contains(&d) {
        current += 1;
        d -= Duration::days(1);
    }
    (longest, current)
}

fn top_entries(items: &[RankedItem], limit: usize) -> Vec<TopEntry> {
    items
        .iter()
        .take(limit)
        .enumerate()
        .map(|(i, it)| TopEntry {
            rank: i as u32 + 1,
            name: it.name.clone(),
            play_count: it.play_count,
            total_ms: it.total_ms,
            spotify_id: it.spotify_id.clone(),
            artist_name: it.artist_name.clone(),
            image_url: None,
        })
        .collect()
}

/// Genre ranking derived from an artist ranking and the catalog's artist genres: each
/// artist's plays and ms count for each of its genres. Returns the ranking (all genres).
pub async fn genre_ranking(store: &dyn Store, artists: &[RankedItem]) -> Result<Vec<RankedItem>> {
    let keys: Vec<String> = artists.iter().map(|a| a.key.clone()).collect();
    if keys.is_empty() {
        return Ok(Vec::new());
    }
    let genres = store.artist_genres(&keys).await?;
    let mut by_genre: HashMap<&str, (i64, i64)> = HashMap::new();
    for a in artists {
        for g in genres.get(&a.key).into_iter().flatten() {
            let e = by_genre.entry(g.as_str()).or_default();
            e.0 += a.play_count;
            e.1 += a.total_ms;
        }
    }
    let mut items: Vec<RankedItem> = by_genre
        .into_iter()
        .map(|(g, (plays, ms))| RankedItem {
            key: g.to_string(),
            name: g.to_string(),
            artist_name: None,
            spotify_id: None,
            play_count: plays,
            total_ms: ms,
        })
        .collect();
    crate::store::sort_ranking(&mut items);
    Ok(items)
}

async fn average_features(store: &dyn Store, tracks: &[RankedItem]) -> Result<Option<AudioFeatures>> {
    let uris: Vec<String> = tracks.iter().filter_map(|t| t.spotify_id.clone()).collect();
    if uris.is_empty() {
        return Ok(None);
    }
    let features = store.audio_features(&uris).await?;
    let mut sum = AudioFeatures::default();
    let mut weight = 0f64;
    for t in tracks {
        let Some(f) = t.spotify_id.as_ref().and_then(|u| features.get(u)) else { continue };
        let w = t.play_count as f64;
        weight += w;
        sum.danceability += f.danceability * w;
        sum.energy += f.energy * w;
        sum.valence += f.valence * w;
        sum.acousticness += f.acousticness * w;
        sum.instrumentalness += f.instrumentalness * w;
        sum.liveness += f.liveness * w;
        sum.speechiness += f.speechiness * w;
        sum.tempo += f.tempo * w;
    }
    if weight == 0.0 {
        return Ok(None);
    }
    let r = |x: f64| (x / weight * 1000.0).round() / 1000.0;
    Ok(Some(AudioFeatures {
        danceability: r(sum.danceability),
        energy: r(sum.energy),
        valence: r(sum.valence),
        acousticness: r(sum.acousticness),
        instrumentalness: r(sum.instrumentalness),
        liveness: r(sum.liveness),
        speechiness: r(sum.speechiness),
        tempo: r(sum.tempo),
    }))
}

/// Computes the overview of `req.period` for `user_id`.
pub async fn overview(store: &dyn Store, user_id: &str, req: &OverviewRequest) -> Result<Overview> {
    let now = req.now();
    let window = req.period.window(now);
    // Independent reads, run concurrently (stores with a connection pool serve them in
    // parallel). All artists are needed for genres; tracks only for the top list and
    // the audio features.
    let (totals, artists, tracks, albums) = tokio::join!(
        local_totals(store, user_id, window, req.tz),
        store.item_ranking(user_id, ItemKind::Artist, window, None),
        store.item_ranking(user_id, ItemKind::Track, window, Some(req.top_limit.max(50))),
        store.item_ranking(user_id, ItemKind::Album, window, Some(req.top_limit)),
    );
    let (totals, artists, tracks, albums) = (totals?, artists?, tracks?, albums?);
    let genres = genre_ranking(store, &artists.items).await?;
    let active: BTreeSet<NaiveDate> = totals.by_day.iter().filter(|(_, (p, _))| *p > 0).map(|(d, _)| *d).collect();
    let (longest, current) = streaks(&active, now.with_timezone(&req.tz).date_naive());
    Ok(Overview {
        period: req.period,
        timezone: req.tz.name().to_string(),
        total_tracks_played: totals.plays,
        total_ms_played: totals.ms,
        total_hours: hours(totals.ms),
        unique_tracks: tracks.distinct,
        unique_artists: artists.distinct,
        unique_albums: albums.distinct,
        unique_genres: genres.len() as u64,
        listening_streak_days: longest,
        current_streak_days: current,
        top_artists: top_entries(&artists.items, req.top_limit),
        top_tracks: top_entries(&tracks.items, req.top_limit),
        top_albums: top_entries(&albums.items, req.top_limit),
        top_genres: top_entries(&genres, req.top_limit),
        hourly_distribution: (0..24).map(|h| HourPoint { hour: h, plays: totals.by_hour[h as usize] }).collect(),
        daily_distribution: WEEKDAYS
            .iter()
            .enumerate()
            .map(|(i, d)| DayPoint { day: d.to_string(), plays: totals.by_weekday[i] })
            .collect(),
        avg_audio_features: average_features(store, &tracks.items).await?,
        computed_at: Utc::now(),
    })
}

/// A genre's share of the period's plays.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GenreShare {
    /// Genre.
    pub name: String,
    /// Plays of artists with this genre.
    pub play_count: i64,
    /// Share of all genre-attributed plays, percent, one decimal.
    pub percentage: f64,
}

/// The EchoStats genre distribution.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GenreDistribution {
    /// Genres by plays.
    pub genres: Vec<GenreShare>,
    /// Period.
    pub period: Period,
    /// Number of genres.
    pub total_genres: u64,
}

/// Genre distribution of a period.
pub async fn genre_distribution(
    store: &dyn Store,
    user_id: &str,
    period: Period,
    now: DateTime<Utc>,
) -> Result<GenreDistribution> {
    let artists = store.item_ranking(user_id, ItemKind::Artist, period.window(now), None).await?;
    let genres = genre_ranking(store, &artists.items).await?;
    let sum: i64 = genres.iter().map(|g| g.play_count).sum();
    Ok(GenreDistribution {
        total_genres: genres.len() as u64,
        genres: genres
            .into_iter()
            .map(|g| GenreShare {
                percentage: if sum > 0 { (g.play_count as f64 * 1000.0 / sum as f64).round() / 10.0 } else { 0.0 },
                name: g.name,
                play_count: g.play_count,
            })
            .collect(),
        period,
    })
}

/// Top items of one kind in a period, with the distinct count.
pub async fn top_items(
    store: &dyn Store,
    user_id: &str,
    kind: ItemKind,
    period: Period,
    now: DateTime<Utc>,
    limit: usize,
) -> Result<crate::store::ItemRanking> {
    store.item_ranking(user_id, kind, period.window(now), Some(limit)).await
}

/// Podcast shows by listening time in a period.
pub async fn top_shows(
    store: &dyn Store,
    user_id: &str,
    period: Period,
    now: DateTime<Utc>,
    limit: usize,
) -> Result<Vec<TopEntry>> {
    let shows = store.show_ranking(user_id, period.window(now), limit).await?;
    Ok(top_entries(&shows, limit))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streaks_find_longest_and_current_run() {
        let d = |s: &str| NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap();
        let days: BTreeSet<NaiveDate> =
            ["2026-01-01", "2026-01-02", "2026-01-03", "2026-01-05", "2026-01-06"].into_iter().map(d).collect();
        assert_eq!(streaks(&days, d("2026-01-06")), (3, 2));
        assert_eq!(streaks(&days, d("2026-01-07")), (3, 2), "yesterday still counts");
        assert_eq!(streaks(&days, d("2026-01-08")), (3, 0));
        assert_eq!(streaks(&BTreeSet::new(), d("2026-01-08")), (0, 0));
    }
}
