//! Request and response types with exactly the EchoStats JSON field names, and their
//! conversions from core types. Nothing here computes: values are copied, renamed or
//! reformatted (a Spotify URI becomes the bare id and an `open.spotify.com` link).

use crate::timestamp::Timestamp;
use chrono::NaiveDate;
use echostats::analytics;
use echostats::store::{HistoryPage, RankedItem, RollupStatus};
use echostats::{AudioFeatures, HistoryEntry, User};
use poem_openapi::types::MaybeUndefined;
use poem_openapi::{Enum, Object};

/// An analytics period: the last 7, 30, 90 or 365 days, or everything.
#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq)]
#[oai(rename_all = "snake_case")]
pub enum Period {
    /// The last 7 days.
    Week,
    /// The last 30 days.
    Month,
    /// The last 90 days.
    Quarter,
    /// The last 365 days.
    Year,
    /// Everything.
    AllTime,
}

impl Period {
    /// The EchoStats default.
    pub fn default_all_time() -> Period {
        Period::AllTime
    }
}

impl From<Period> for analytics::Period {
    fn from(p: Period) -> Self {
        match p {
            Period::Week => analytics::Period::Week,
            Period::Month => analytics::Period::Month,
            Period::Quarter => analytics::Period::Quarter,
            Period::Year => analytics::Period::Year,
            Period::AllTime => analytics::Period::AllTime,
        }
    }
}

impl From<analytics::Period> for Period {
    fn from(p: analytics::Period) -> Self {
        match p {
            analytics::Period::Week => Period::Week,
            analytics::Period::Month => Period::Month,
            analytics::Period::Quarter => Period::Quarter,
            analytics::Period::Year => Period::Year,
            analytics::Period::AllTime => Period::AllTime,
        }
    }
}

/// The bare Spotify id of a URI (`spotify:track:abc` → `abc`); ids pass through.
pub fn bare_spotify_id(id: &str) -> String {
    id.rsplit(':').next().unwrap_or(id).to_string()
}

/// The `id` of a ranked item: its bare Spotify id when known, else the core's grouping key
/// (normalised names) with the key separator shown as ` - `.
fn item_id(key: &str, spotify_id: Option<&str>) -> String {
    match spotify_id {
        Some(id) => bare_spotify_id(id),
        None => key.replace('\u{1f}', " - "),
    }
}

fn spotify_url(kind: &str, id: Option<&str>) -> Option<String> {
    id.map(|id| format!("https://open.spotify.com/{kind}/{}", bare_spotify_id(id)))
}

// ---------------------------------------------------------------------------------------
// Health

/// `GET /api/health`.
#[derive(Object, Debug)]
pub struct Health {
    /// `healthy`.
    pub status: String,
    /// `echostats-api`.
    pub service: String,
    /// Server version.
    pub version: String,
}

/// `GET /api/health/ready`.
#[derive(Object, Debug)]
pub struct Readiness {
    /// `ready` or `not_ready`.
    pub status: String,
    /// Why not ready.
    #[oai(skip_serializing_if_is_none)]
    pub reason: Option<String>,
}

/// `GET /api/health/update`.
#[derive(Object, Debug)]
pub struct UpdateInfo {
    /// This server's version.
    pub current_version: String,
    /// The latest published version; null until known (or when the check is off).
    pub latest_version: Option<String>,
    /// Whether the latest version is newer than this one.
    pub update_available: bool,
    /// The release page.
    pub release_url: Option<String>,
    /// The release notes.
    pub release_notes: Option<String>,
    /// When it was published.
    pub published_at: Option<String>,
}

// ---------------------------------------------------------------------------------------
// Auth

/// The signed-in user, as dev-login returns it.
#[derive(Object, Debug)]
pub struct LoginUser {
    /// Our user id.
    pub id: String,
    /// Spotify account id, when connected.
    pub spotify_id: Option<String>,
    /// Display name.
    pub display_name: Option<String>,
}

/// `/api/v1/auth/dev-login`.
#[derive(Object, Debug)]
pub struct DevLogin {
    /// `authenticated`.
    pub status: String,
    /// The user.
    pub user: LoginUser,
    /// The session token (also set as the `session` cookie).
    pub token: String,
}

/// The user in `/api/v1/auth/status`.
#[derive(Object, Debug)]
pub struct StatusUser {
    /// Our user id.
    pub id: String,
    /// Spotify account id, when connected.
    pub spotify_id: Option<String>,
    /// Display name.
    pub display_name: Option<String>,
    /// Avatar.
    pub image_url: Option<String>,
    /// `premium`, `free`, when known.
    pub product: Option<String>,
}

impl From<User> for StatusUser {
    fn from(u: User) -> Self {
        StatusUser {
            id: u.id,
            spotify_id: u.spotify_id,
            display_name: u.display_name,
            image_url: u.image_url,
            product: u.product,
        }
    }
}

/// `GET /api/v1/auth/status`: `{"authenticated": false}` or the user.
#[derive(Object, Debug)]
pub struct AuthStatus {
    /// Whether the request has a session.
    pub authenticated: bool,
    /// The user (absent when not authenticated).
    pub user: MaybeUndefined<StatusUser>,
    /// When the stored Spotify access token expires (absent when not authenticated,
    /// null when no Spotify account is connected).
    pub token_expires_at: MaybeUndefined<Timestamp>,
}

/// `{"status": "..."}`.
#[derive(Object, Debug)]
pub struct Status {
    /// e.g. `logged_out`.
    pub status: String,
}

// ---------------------------------------------------------------------------------------
// Analytics

/// One entry of an overview top list.
#[derive(Object, Debug)]
pub struct TopEntry {
    /// Name.
    pub name: String,
    /// Counted plays.
    pub play_count: i64,
    /// Milliseconds of those plays.
    pub total_ms: i64,
    /// Spotify id, when known.
    pub spotify_id: Option<String>,
    /// Artist of a track or album.
    #[oai(skip_serializing_if_is_none)]
    pub artist_name: Option<String>,
    /// Image, when the catalog has one.
    pub image_url: Option<String>,
    /// 1-based rank.
    pub rank: u32,
}

impl From<analytics::TopEntry> for TopEntry {
    fn from(t: analytics::TopEntry) -> Self {
        TopEntry {
            name: t.name,
            play_count: t.play_count,
            total_ms: t.total_ms,
            spotify_id: t.spotify_id.as_deref().map(bare_spotify_id),
            artist_name: t.artist_name,
            image_url: t.image_url,
            rank: t.rank,
        }
    }
}

/// Plays in one hour of the day.
#[derive(Object, Debug)]
pub struct HourPoint {
    /// 0..=23 in the requested time zone.
    pub hour: u32,
    /// Counted plays.
    pub plays: i64,
}

/// Plays on one weekday.
#[derive(Object, Debug)]
pub struct DayPoint {
    /// Monday..Sunday.
    pub day: String,
    /// Counted plays.
    pub plays: i64,
}

/// Mean audio features.
#[derive(Object, Debug)]
pub struct AvgAudioFeatures {
    /// 0..1.
    pub danceability: f64,
    /// 0..1.
    pub energy: f64,
    /// 0..1.
    pub valence: f64,
    /// 0..1.
    pub acousticness: f64,
    /// 0..1.
    pub instrumentalness: f64,
    /// 0..1.
    pub liveness: f64,
    /// 0..1.
    pub speechiness: f64,
    /// Beats per minute.
    pub tempo: f64,
}

impl From<AudioFeatures> for AvgAudioFeatures {
    fn from(f: AudioFeatures) -> Self {
        AvgAudioFeatures {
            danceability: f.danceability,
            energy: f.energy,
            valence: f.valence,
            acousticness: f.acousticness,
            instrumentalness: f.instrumentalness,
            liveness: f.liveness,
            speechiness: f.speechiness,
            tempo: f.tempo,
        }
    }
}

/// `GET /api/v1/analytics/overview`.
#[derive(Object, Debug)]
pub struct Overview {
    /// The period.
    pub period: Period,
    /// Time zone of hours, weekdays and days.
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
    /// Distinct genres.
    pub unique_genres: u64,
    /// Longest run of consecutive days with a play in the period.
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
    /// 24 points.
    pub hourly_distribution: Vec<HourPoint>,
    /// 7 points, Monday first.
    pub daily_distribution: Vec<DayPoint>,
    /// Mean audio features; null when no track has them.
    pub avg_audio_features: Option<AvgAudioFeatures>,
    /// When computed.
    pub computed_at: Timestamp,
}

fn entries(v: Vec<analytics::TopEntry>) -> Vec<TopEntry> {
    v.into_iter().map(TopEntry::from).collect()
}

impl From<analytics::Overview> for Overview {
    fn from(o: analytics::Overview) -> Self {
        Overview {
            period: o.period.into(),
            timezone: o.timezone,
            total_tracks_played: o.total_tracks_played,
            total_ms_played: o.total_ms_played,
            total_hours: o.total_hours,
            unique_tracks: o.unique_tracks,
            unique_artists: o.unique_artists,
            unique_albums: o.unique_albums,
            unique_genres: o.unique_genres,
            listening_streak_days: o.listening_streak_days,
            current_streak_days: o.current_streak_days,
            top_artists: entries(o.top_artists),
            top_tracks: entries(o.top_tracks),
            top_albums: entries(o.top_albums),
            top_genres: entries(o.top_genres),
            hourly_distribution: o
                .hourly_distribution
                .into_iter()
                .map(|h| HourPoint { hour: h.hour, plays: h.plays })
                .collect(),
            daily_distribution: o
                .daily_distribution
                .into_iter()
                .map(|d| DayPoint { day: d.day, plays: d.plays })
                .collect(),
            avg_audio_features: o.avg_audio_features.map(Into::into),
            computed_at: o.computed_at.into(),
        }
    }
}

/// One trend point.
#[derive(Object, Debug)]
pub struct TrendPoint {
    /// `2025-01-15`, `2025-W03` or `2025-01`.
    pub label: String,
    /// Counted plays.
    pub plays: i64,
    /// Milliseconds.
    pub ms: i64,
    /// Hours, one decimal.
    pub hours: f64,
}

/// `GET /api/v1/analytics/trend`.
#[derive(Object, Debug)]
pub struct Trend {
    /// The period.
    pub period: Period,
    /// strftime pattern of the labels.
    pub granularity: String,
    /// Points, oldest first.
    pub points: Vec<TrendPoint>,
}

impl From<analytics::Trend> for Trend {
    fn from(t: analytics::Trend) -> Self {
        Trend {
            period: t.period.into(),
            granularity: t.granularity,
            points: t
                .points
                .into_iter()
                .map(|p| TrendPoint { label: p.label, plays: p.plays, ms: p.ms, hours: p.hours })
                .collect(),
        }
    }
}

/// `GET /api/v1/analytics/rollup-status`.
#[derive(Object, Debug)]
pub struct RollupStatusBody {
    /// Last UTC day with a rollup.
    pub last_date: Option<NaiveDate>,
    /// Days with rollups.
    pub total_days: u64,
    /// Whether the rollups account for every counted play.
    pub complete: bool,
    /// Percentage of counted plays the rollups account for.
    pub coverage: f64,
}

impl From<RollupStatus> for RollupStatusBody {
    fn from(s: RollupStatus) -> Self {
        RollupStatusBody {
            last_date: s.last_date,
            total_days: s.total_days,
            complete: s.complete,
            coverage: s.coverage,
        }
    }
}

/// `POST /api/v1/analytics/rollup-build`.
#[derive(Object, Debug)]
pub struct JobStarted {
    /// `started` or `already_running`.
    pub status: String,
    /// The job.
    pub job_id: String,
}

/// `POST /api/v1/analytics/refresh`.
#[derive(Object, Debug)]
pub struct Refreshed {
    /// `refreshed`.
    pub status: String,
    /// The periods refreshed.
    pub periods: Vec<Period>,
    /// When.
    pub computed_at: Timestamp,
}

// ---------------------------------------------------------------------------------------
// Tracks, artists, albums, genres

/// An artist of a track.
#[derive(Object, Debug)]
pub struct TrackArtist {
    /// Spotify id, when known.
    pub spotify_id: Option<String>,
    /// Name.
    pub name: String,
}

/// The album of a top track.
#[derive(Object, Debug)]
pub struct TrackAlbum {
    /// Spotify id, when known.
    pub spotify_id: Option<String>,
    /// Name.
    pub name: String,
    /// Cover.
    pub image_url: Option<String>,
}

/// Audio features of a top track.
#[derive(Object, Debug)]
pub struct TrackFeatures {
    /// 0..1.
    pub danceability: f64,
    /// 0..1.
    pub energy: f64,
    /// 0..1.
    pub valence: f64,
    /// Beats per minute.
    pub tempo: f64,
}

/// One of the user's top tracks.
#[derive(Object, Debug)]
pub struct TopTrack {
    /// The Spotify id when known, else our grouping key of the track (`name - artist`).
    pub id: String,
    /// Spotify id, when known.
    pub spotify_id: Option<String>,
    /// Name.
    pub name: String,
    /// Artists.
    pub artists: Vec<TrackArtist>,
    /// Album, when known.
    pub album: Option<TrackAlbum>,
    /// Duration, when known.
    pub duration_ms: Option<i64>,
    /// Spotify popularity, when known.
    pub popularity: Option<i32>,
    /// Link to the track on Spotify, when its id is known.
    pub external_url: Option<String>,
    /// Audio features, when known.
    pub audio_features: Option<TrackFeatures>,
    /// Counted plays in the period.
    pub play_count: i64,
    /// 1-based rank.
    pub rank: u32,
}

impl TopTrack {
    /// A ranked track (rank = position + 1).
    pub fn ranked(position: usize, t: RankedItem) -> Self {
        TopTrack {
            id: item_id(&t.key, t.spotify_id.as_deref()),
            external_url: spotify_url("track", t.spotify_id.as_deref()),
            spotify_id: t.spotify_id.as_deref().map(bare_spotify_id),
            name: t.name,
            artists: t.artist_name.into_iter().map(|name| TrackArtist { spotify_id: None, name }).collect(),
            album: None,
            duration_ms: None,
            popularity: None,
            audio_features: None,
            play_count: t.play_count,
            rank: position as u32 + 1,
        }
    }
}

/// `GET /api/v1/tracks/top`.
#[derive(Object, Debug)]
pub struct TopTracks {
    /// Best first.
    pub items: Vec<TopTrack>,
    /// The period.
    pub period: Period,
    /// Distinct tracks played in the period.
    pub total: u64,
}

/// The album of a track.
#[derive(Object, Debug)]
pub struct TrackDetailAlbum {
    /// Spotify id, when known.
    pub spotify_id: Option<String>,
    /// Name.
    pub name: Option<String>,
    /// Cover.
    pub image_url: Option<String>,
    /// Release date, when known.
    pub release_date: Option<String>,
}

/// Audio features of a track.
#[derive(Object, Debug)]
pub struct TrackDetailFeatures {
    /// 0..1.
    pub danceability: f64,
    /// 0..1.
    pub energy: f64,
    /// 0..1.
    pub valence: f64,
    /// 0..1.
    pub acousticness: f64,
    /// 0..1.
    pub instrumentalness: f64,
    /// 0..1.
    pub liveness: f64,
    /// 0..1.
    pub speechiness: f64,
    /// Beats per minute.
    pub tempo: f64,
    /// Pitch class, when known.
    pub key: Option<i32>,
    /// Major (1) or minor (0), when known.
    pub mode: Option<i32>,
    /// Beats per bar, when known.
    pub time_signature: Option<i32>,
}

/// `GET /api/v1/tracks/{track_id}`.
#[derive(Object, Debug)]
pub struct TrackDetail {
    /// Our id (the Spotify id).
    pub id: String,
    /// Spotify id.
    pub spotify_id: String,
    /// Name.
    pub name: String,
    /// Artists.
    pub artists: Vec<TrackArtist>,
    /// Album.
    pub album: TrackDetailAlbum,
    /// Duration, when known.
    pub duration_ms: Option<i64>,
    /// Spotify popularity, when known.
    pub popularity: Option<i32>,
    /// Explicit lyrics, when known.
    pub explicit: Option<bool>,
    /// Link to the track on Spotify.
    pub external_url: String,
    /// Audio features, when known.
    pub audio_features: Option<TrackDetailFeatures>,
}

impl From<echostats::Track> for TrackDetail {
    fn from(t: echostats::Track) -> Self {
        TrackDetail {
            id: t.spotify_id.clone(),
            external_url: format!("https://open.spotify.com/track/{}", t.spotify_id),
            spotify_id: t.spotify_id,
            name: t.name,
            artists: t.artists.into_iter().map(|a| TrackArtist { spotify_id: a.spotify_id, name: a.name }).collect(),
            album: TrackDetailAlbum {
                spotify_id: t.album_id,
                name: t.album_name,
                image_url: t.album_image_url,
                release_date: None,
            },
            duration_ms: t.duration_ms,
            popularity: None,
            explicit: t.explicit,
            audio_features: t.audio_features.map(|f| TrackDetailFeatures {
                danceability: f.danceability,
                energy: f.energy,
                valence: f.valence,
                acousticness: f.acousticness,
                instrumentalness: f.instrumentalness,
                liveness: f.liveness,
                speechiness: f.speechiness,
                tempo: f.tempo,
                key: None,
                mode: None,
                time_signature: None,
            }),
        }
    }
}

/// An artist (top list entry or `GET /api/v1/artists/{artist_id}`).
#[derive(Object, Debug)]
pub struct ArtistBody {
    /// Our id: the Spotify id when known, else the artist's grouping key.
    pub id: String,
    /// Spotify id, when known.
    pub spotify_id: Option<String>,
    /// Name.
    pub name: String,
    /// Image, when known.
    pub image_url: Option<String>,
    /// Genres (from Spotify artist metadata).
    pub genres: Vec<String>,
    /// Spotify popularity, when known.
    pub popularity: Option<i32>,
    /// Followers, when known.
    pub followers: Option<i64>,
    /// Link to the artist on Spotify, when the id is known.
    pub external_url: Option<String>,
    /// Counted plays in the period (top lists only).
    #[oai(skip_serializing_if_is_none)]
    pub play_count: Option<i64>,
    /// 1-based rank (top lists only).
    #[oai(skip_serializing_if_is_none)]
    pub rank: Option<u32>,
}

impl ArtistBody {
    /// A ranked artist with its catalog genres.
    pub fn ranked(position: usize, a: RankedItem, genres: Vec<String>) -> Self {
        ArtistBody {
            id: item_id(&a.key, a.spotify_id.as_deref()),
            external_url: spotify_url("artist", a.spotify_id.as_deref()),
            spotify_id: a.spotify_id.as_deref().map(bare_spotify_id),
            name: a.name,
            image_url: None,
            genres,
            popularity: None,
            followers: None,
            play_count: Some(a.play_count),
            rank: Some(position as u32 + 1),
        }
    }
}

impl From<echostats::Artist> for ArtistBody {
    fn from(a: echostats::Artist) -> Self {
        ArtistBody {
            id: a.spotify_id.clone().unwrap_or_else(|| echostats::rules::normalize_name(&a.name)),
            external_url: spotify_url("artist", a.spotify_id.as_deref()),
            spotify_id: a.spotify_id,
            name: a.name,
            image_url: a.image_url,
            genres: a.genres,
            popularity: None,
            followers: None,
            play_count: None,
            rank: None,
        }
    }
}

/// `GET /api/v1/artists/top`.
#[derive(Object, Debug)]
pub struct TopArtists {
    /// Best first.
    pub items: Vec<ArtistBody>,
    /// The period.
    pub period: Period,
    /// Distinct artists played in the period.
    pub total: u64,
}

/// One of the user's top albums.
#[derive(Object, Debug)]
pub struct TopAlbum {
    /// The Spotify id when known, else our grouping key of the album (`name - artist`).
    pub id: String,
    /// Spotify id, when known.
    pub spotify_id: Option<String>,
    /// Name.
    pub name: String,
    /// Artist names.
    pub artists: Vec<String>,
    /// Cover, when known.
    pub image_url: Option<String>,
    /// Release date, when known.
    pub release_date: Option<String>,
    /// Track count, when known.
    pub total_tracks: Option<i32>,
    /// `album`, `single`, `compilation`, when known.
    #[oai(rename = "type")]
    pub album_type: Option<String>,
    /// Link to the album on Spotify, when its id is known.
    pub external_url: Option<String>,
    /// Counted plays in the period.
    pub play_count: i64,
    /// 1-based rank.
    pub rank: u32,
}

impl TopAlbum {
    /// A ranked album.
    pub fn ranked(position: usize, a: RankedItem) -> Self {
        TopAlbum {
            id: item_id(&a.key, a.spotify_id.as_deref()),
            external_url: spotify_url("album", a.spotify_id.as_deref()),
            spotify_id: a.spotify_id.as_deref().map(bare_spotify_id),
            name: a.name,
            artists: a.artist_name.into_iter().collect(),
            image_url: None,
            release_date: None,
            total_tracks: None,
            album_type: None,
            play_count: a.play_count,
            rank: position as u32 + 1,
        }
    }
}

/// `GET /api/v1/albums/top`.
#[derive(Object, Debug)]
pub struct TopAlbums {
    /// Best first.
    pub items: Vec<TopAlbum>,
    /// The period.
    pub period: Period,
    /// Distinct albums played in the period.
    pub total: u64,
}

/// A genre's share of the period's plays.
#[derive(Object, Debug)]
pub struct GenreShare {
    /// Genre.
    pub name: String,
    /// Plays of artists with this genre.
    pub play_count: i64,
    /// Percent of all genre-attributed plays, one decimal.
    pub percentage: f64,
}

/// `GET /api/v1/genres/distribution`.
#[derive(Object, Debug)]
pub struct GenreDistribution {
    /// Genres by plays.
    pub genres: Vec<GenreShare>,
    /// The period.
    pub period: Period,
    /// Number of genres.
    pub total_genres: u64,
}

impl From<analytics::GenreDistribution> for GenreDistribution {
    fn from(g: analytics::GenreDistribution) -> Self {
        GenreDistribution {
            genres: g
                .genres
                .into_iter()
                .map(|s| GenreShare { name: s.name, play_count: s.play_count, percentage: s.percentage })
                .collect(),
            period: g.period.into(),
            total_genres: g.total_genres,
        }
    }
}

// ---------------------------------------------------------------------------------------
// History

/// The track of a history entry.
#[derive(Object, Debug)]
pub struct HistoryTrack {
    /// Spotify id, when known.
    pub spotify_id: Option<String>,
    /// Track name.
    pub name: Option<String>,
    /// Artist name.
    pub artist_name: Option<String>,
    /// Album name.
    pub album_name: Option<String>,
    /// Album cover, when known.
    pub album_image_url: Option<String>,
    /// Duration, when known.
    pub duration_ms: Option<i64>,
}

/// One listening history entry.
#[derive(Object, Debug)]
pub struct HistoryItem {
    /// Entry id.
    pub id: String,
    /// Owner.
    pub user_id: String,
    /// The track.
    pub track: HistoryTrack,
    /// When the stream ended, UTC.
    pub played_at: Timestamp,
    /// How long it was listened to.
    pub ms_played: i64,
    /// `import` or `api`.
    pub source: String,
    /// Playback context type (API sync), when known.
    pub context_type: Option<String>,
    /// Playback context URI (API sync), when known.
    pub context_uri: Option<String>,
}

impl From<HistoryEntry> for HistoryItem {
    fn from(e: HistoryEntry) -> Self {
        let r = e.record;
        HistoryItem {
            id: e.id,
            user_id: e.user_id,
            track: HistoryTrack {
                spotify_id: r.uri.as_deref().map(bare_spotify_id),
                name: r.track_name,
                artist_name: r.artist_name,
                album_name: r.album_name,
                album_image_url: None,
                duration_ms: None,
            },
            played_at: r.played_at.into(),
            ms_played: r.ms_played,
            source: r.origin.source().to_string(),
            context_type: r.context_type,
            context_uri: r.context_uri,
        }
    }
}

/// `GET /api/v1/history`.
#[derive(Object, Debug)]
pub struct HistoryList {
    /// Entries, newest first.
    pub items: Vec<HistoryItem>,
    /// All matching entries.
    pub total: u64,
    /// This page (1-based).
    pub page: u32,
    /// Page size.
    pub limit: u32,
    /// Number of pages.
    pub pages: u64,
}

impl HistoryList {
    /// A page of history as EchoStats lists it.
    pub fn new(p: HistoryPage, page: u32, limit: u32) -> Self {
        HistoryList {
            items: p.items.into_iter().map(Into::into).collect(),
            total: p.total,
            page,
            limit,
            pages: p.total.div_ceil(limit.max(1) as u64),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spotify_uris_become_bare_ids_and_links() {
        assert_eq!(bare_spotify_id("spotify:track:abc"), "abc");
        assert_eq!(bare_spotify_id("abc"), "abc");
        assert_eq!(
            spotify_url("track", Some("spotify:track:abc")).as_deref(),
            Some("https://open.spotify.com/track/abc")
        );
        assert_eq!(spotify_url("track", None), None);
        assert_eq!(item_id("a\u{1f}b", None), "a - b");
        assert_eq!(item_id("a\u{1f}b", Some("spotify:track:x")), "x");
    }
}
