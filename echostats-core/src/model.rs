//! The domain model: what EchoStats knows about a user's listening.

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

/// What kind of item a history entry is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum PlayKind {
    /// A music track (`spotify:track:` URI, or account data with track and artist names).
    Track,
    /// A podcast episode.
    Episode,
    /// An audiobook chapter.
    Audiobook,
    /// An entry whose metadata is all null (unavailable item).
    Unknown,
}

impl PlayKind {
    /// Stable small integer used by stores.
    pub fn code(self) -> i32 {
        match self {
            PlayKind::Track => 0,
            PlayKind::Episode => 1,
            PlayKind::Audiobook => 2,
            PlayKind::Unknown => 3,
        }
    }
    /// Inverse of [`PlayKind::code`].
    pub fn from_code(code: i32) -> Option<Self> {
        Some(match code {
            0 => PlayKind::Track,
            1 => PlayKind::Episode,
            2 => PlayKind::Audiobook,
            3 => PlayKind::Unknown,
            _ => return None,
        })
    }
    /// Lower-case name, as in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            PlayKind::Track => "track",
            PlayKind::Episode => "episode",
            PlayKind::Audiobook => "audiobook",
            PlayKind::Unknown => "unknown",
        }
    }
}

/// Where a history entry came from. The order is the richness order used when two
/// records describe the same play: the richer one is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum PlayOrigin {
    /// One-year account data (`StreamingHistory*.json`): names only, minute precision.
    AccountData,
    /// Spotify Web API recently-played sync.
    Api,
    /// Extended streaming history (`endsong_*.json`, `Streaming_History_Audio_*.json`).
    ExtendedHistory,
}

impl PlayOrigin {
    /// Whether end times of this origin are given to the minute (account data).
    pub fn to_the_minute(self) -> bool {
        self == PlayOrigin::AccountData
    }

    /// Every origin, poorest first.
    pub const ALL: [PlayOrigin; 3] = [PlayOrigin::AccountData, PlayOrigin::Api, PlayOrigin::ExtendedHistory];

    /// Snake-case name, as in JSON (`account_data`, `api`, `extended_history`).
    pub fn as_str(self) -> &'static str {
        match self {
            PlayOrigin::AccountData => "account_data",
            PlayOrigin::Api => "api",
            PlayOrigin::ExtendedHistory => "extended_history",
        }
    }

    /// Stable small integer used by stores (higher = richer).
    pub fn code(self) -> i32 {
        match self {
            PlayOrigin::AccountData => 1,
            PlayOrigin::Api => 2,
            PlayOrigin::ExtendedHistory => 3,
        }
    }
    /// Inverse of [`PlayOrigin::code`].
    pub fn from_code(code: i32) -> Option<Self> {
        Some(match code {
            1 => PlayOrigin::AccountData,
            2 => PlayOrigin::Api,
            3 => PlayOrigin::ExtendedHistory,
            _ => return None,
        })
    }
    /// The EchoStats `source` field: `import` or `api`.
    pub fn source(self) -> &'static str {
        match self {
            PlayOrigin::Api => "api",
            _ => "import",
        }
    }
}

/// One history entry as the export or the API gives it. IP addresses and user agents
/// are deliberately not part of it: they are dropped at parse time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlayRecord {
    /// When the stream stopped (the export's `ts`), UTC.
    pub played_at: DateTime<Utc>,
    /// How long it was listened to.
    pub ms_played: i64,
    /// Track, episode, audiobook chapter or unknown.
    pub kind: PlayKind,
    /// Where the record came from.
    pub origin: PlayOrigin,
    /// `spotify:track:`, `spotify:episode:` or audiobook chapter URI.
    pub uri: Option<String>,
    /// Track name.
    pub track_name: Option<String>,
    /// Album artist name (export) or first artist name (API).
    pub artist_name: Option<String>,
    /// Album name.
    pub album_name: Option<String>,
    /// Spotify artist id, when synced from the API.
    pub artist_id: Option<String>,
    /// Episode name.
    pub episode_name: Option<String>,
    /// Show name.
    pub show_name: Option<String>,
    /// Audiobook title.
    pub audiobook_title: Option<String>,
    /// Audiobook URI.
    pub audiobook_uri: Option<String>,
    /// Audiobook chapter title.
    pub audiobook_chapter_title: Option<String>,
    /// Platform string.
    pub platform: Option<String>,
    /// Connection country (ISO code).
    pub conn_country: Option<String>,
    /// Why the stream started.
    pub reason_start: Option<String>,
    /// Why the stream ended.
    pub reason_end: Option<String>,
    /// Shuffle on.
    pub shuffle: Option<bool>,
    /// Skipped (unreliable in some years).
    pub skipped: Option<bool>,
    /// Played offline.
    pub offline: Option<bool>,
    /// When an offline play happened (normalised from seconds or milliseconds).
    pub offline_timestamp: Option<DateTime<Utc>>,
    /// Incognito (private session).
    pub incognito: Option<bool>,
    /// Playback context type (API sync: album, playlist, artist).
    pub context_type: Option<String>,
    /// Playback context URI (API sync).
    pub context_uri: Option<String>,
}

impl PlayRecord {
    /// A record with only the required fields set; the rest is `None`.
    pub fn new(played_at: DateTime<Utc>, ms_played: i64, kind: PlayKind, origin: PlayOrigin) -> Self {
        PlayRecord {
            played_at,
            ms_played,
            kind,
            origin,
            uri: None,
            track_name: None,
            artist_name: None,
            album_name: None,
            artist_id: None,
            episode_name: None,
            show_name: None,
            audiobook_title: None,
            audiobook_uri: None,
            audiobook_chapter_title: None,
            platform: None,
            conn_country: None,
            reason_start: None,
            reason_end: None,
            shuffle: None,
            skipped: None,
            offline: None,
            offline_timestamp: None,
            incognito: None,
            context_type: None,
            context_uri: None,
        }
    }
}

/// A stored history entry: a record with its id and owner.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HistoryEntry {
    /// Store-assigned id (opaque string).
    pub id: String,
    /// Owner.
    pub user_id: String,
    /// The play itself.
    #[serde(flatten)]
    pub record: PlayRecord,
    /// Where the duplicate rule measures from when an import meets this play again;
    /// `None` when that is the record itself ([`PlayAnchor::of`]). Bookkeeping of the
    /// stores, not part of the play: never serialised.
    #[serde(skip)]
    pub anchor: Option<PlayAnchor>,
}

impl HistoryEntry {
    /// The play's anchor, set or implied.
    pub fn play_anchor(&self) -> PlayAnchor {
        self.anchor.unwrap_or_else(|| PlayAnchor::of(&self.record))
    }
}

/// Where the duplicate rule measures from when an import meets a play again
/// ([`PlayRecord::anchor_distance_ms`]): the end time of the entry that first stored the
/// play, which stays when a richer entry replaces the record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlayAnchor {
    /// The end time.
    pub at: DateTime<Utc>,
    /// Given to the minute (account data): it stands for any instant of that minute.
    pub to_the_minute: bool,
}

impl PlayAnchor {
    /// The anchor of a play first stored from `record`.
    pub fn of(record: &PlayRecord) -> Self {
        PlayAnchor { at: record.played_at, to_the_minute: record.origin.to_the_minute() }
    }
}

/// A user of this EchoStats instance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct User {
    /// Our id (for the CLI default user: `local`).
    pub id: String,
    /// Spotify account id, when connected.
    pub spotify_id: Option<String>,
    /// Display name.
    pub display_name: Option<String>,
    /// Avatar.
    pub image_url: Option<String>,
    /// Spotify product (premium/free), when known.
    pub product: Option<String>,
    /// Creation time.
    pub created_at: DateTime<Utc>,
}

/// Spotify tokens, encrypted by the caller before they reach a store.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EncryptedTokens {
    /// AES-GCM sealed access + refresh token.
    pub ciphertext: Vec<u8>,
    /// When the access token expires.
    pub expires_at: DateTime<Utc>,
}

/// Audio features (withdrawn from the Web API for new apps in Nov 2024; kept when known).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[allow(missing_docs)]
pub struct AudioFeatures {
    pub danceability: f64,
    pub energy: f64,
    pub valence: f64,
    pub acousticness: f64,
    pub instrumentalness: f64,
    pub liveness: f64,
    pub speechiness: f64,
    pub tempo: f64,
}

/// A track in the catalog.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Track {
    /// Spotify id (the part after `spotify:track:`).
    pub spotify_id: String,
    /// Name.
    pub name: String,
    /// Artists (id may be unknown for imported tracks).
    pub artists: Vec<ArtistRef>,
    /// Album name.
    pub album_name: Option<String>,
    /// Album id.
    pub album_id: Option<String>,
    /// Cover image.
    pub album_image_url: Option<String>,
    /// Duration.
    pub duration_ms: Option<i64>,
    /// Explicit flag.
    pub explicit: Option<bool>,
    /// Audio features, when known.
    pub audio_features: Option<AudioFeatures>,
}

/// A reference to an artist from a track.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ArtistRef {
    /// Spotify id, when known.
    pub spotify_id: Option<String>,
    /// Name.
    pub name: String,
}

/// An artist in the catalog.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Artist {
    /// Spotify id, when known.
    pub spotify_id: Option<String>,
    /// Name.
    pub name: String,
    /// Genres (from Spotify artist metadata).
    pub genres: Vec<String>,
    /// Image.
    pub image_url: Option<String>,
}

/// An album in the catalog.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Album {
    /// Spotify id.
    pub spotify_id: Option<String>,
    /// Name.
    pub name: String,
    /// Artist names.
    pub artists: Vec<String>,
    /// Cover.
    pub image_url: Option<String>,
    /// Release date as Spotify gives it (`2000`, `2000-10`, `2000-10-02`).
    pub release_date: Option<String>,
    /// Track count.
    pub total_tracks: Option<i32>,
    /// album, single, compilation.
    pub album_type: Option<String>,
}

/// A podcast show.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Show {
    /// Spotify id, when known.
    pub spotify_id: Option<String>,
    /// Name.
    pub name: String,
    /// Publisher.
    pub publisher: Option<String>,
}

/// A podcast episode.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Episode {
    /// Spotify id, when known.
    pub spotify_id: Option<String>,
    /// Name.
    pub name: String,
    /// Show name.
    pub show_name: String,
    /// Duration.
    pub duration_ms: Option<i64>,
}

/// A playlist of the user.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Playlist {
    /// Spotify id.
    pub spotify_id: String,
    /// Owner (our user id).
    pub user_id: String,
    /// Name.
    pub name: String,
    /// Description.
    pub description: Option<String>,
    /// Cover.
    pub image_url: Option<String>,
    /// Number of items.
    pub tracks_total: i64,
    /// Owner display name.
    pub owner: Option<String>,
    /// Public.
    pub public: Option<bool>,
    /// Collaborative.
    pub collaborative: bool,
}

/// State of a sync or import job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[allow(missing_docs)]
pub enum JobStatus {
    Pending,
    Running,
    Completed,
    Failed,
}

/// What a job does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[allow(missing_docs)]
pub enum JobType {
    Periodic,
    RollupBuild,
    Import,
    Initial,
}

/// Implements `as_str`, `ALL`, `Display` and `FromStr` (the serde snake_case names) for
/// a plain enum, so stores and query parsers share one spelling.
macro_rules! named_enum {
    ($ty:ident, $what:literal, { $($variant:ident => $name:literal),* $(,)? }) => {
        impl $ty {
            /// Every value.
            pub const ALL: &'static [$ty] = &[$($ty::$variant),*];
            /// The stored and serialized name.
            pub fn as_str(self) -> &'static str {
                match self { $($ty::$variant => $name),* }
            }
        }
        impl std::fmt::Display for $ty {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
        impl std::str::FromStr for $ty {
            type Err = crate::Error;
            fn from_str(s: &str) -> crate::Result<$ty> {
                $ty::ALL.iter().copied().find(|v| v.as_str() == s).ok_or_else(|| {
                    let names: Vec<&str> = $ty::ALL.iter().map(|v| v.as_str()).collect();
                    crate::Error::invalid(format!(concat!("unknown ", $what, " {:?}: expected one of {}"), s, names.join(", ")))
                })
            }
        }
    };
}

named_enum!(JobStatus, "job status", { Pending => "pending", Running => "running", Completed => "completed", Failed => "failed" });
named_enum!(JobType, "job type", { Periodic => "periodic", RollupBuild => "rollup_build", Import => "import", Initial => "initial" });

impl JobStatus {
    /// Pending or running.
    pub fn is_active(self) -> bool {
        matches!(self, JobStatus::Pending | JobStatus::Running)
    }
}

/// One step of a job (EchoStats `steps[]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobStep {
    /// e.g. `recently_played`.
    pub action: String,
    /// Step status.
    pub status: JobStatus,
    /// Human detail.
    pub detail: Option<String>,
    /// Items handled.
    pub items: i64,
    /// Error, if failed.
    pub error: Option<String>,
}

/// A sync, import or rollup job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SyncJob {
    /// Id.
    pub id: String,
    /// Owner.
    pub user_id: String,
    /// Type.
    pub job_type: JobType,
    /// Status.
    pub status: JobStatus,
    /// Progress.
    pub items_processed: i64,
    /// Expected total.
    pub items_total: i64,
    /// Failure message.
    pub error_message: Option<String>,
    /// Steps.
    pub steps: Vec<JobStep>,
    /// Times.
    pub created_at: DateTime<Utc>,
    /// Start.
    pub started_at: Option<DateTime<Utc>>,
    /// End.
    pub completed_at: Option<DateTime<Utc>>,
}

/// One outbound API call (to Spotify), for `/api-logs`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApiCallLog {
    /// Id.
    pub id: String,
    /// The user the call was made for; `None` for calls made for no user (an app token).
    pub user_id: Option<String>,
    /// e.g. `spotify`.
    pub service: String,
    /// HTTP method.
    pub method: String,
    /// Path called.
    pub endpoint: String,
    /// HTTP status (0 when no answer).
    pub status_code: i32,
    /// Latency.
    pub latency_ms: f64,
    /// Error text.
    pub error: Option<String>,
    /// When.
    pub timestamp: DateTime<Utc>,
}

/// Totals of one UTC day, split into 96 quarter-hour slots so that hour-of-day, weekday
/// and local-day figures can be computed exactly for any time zone (all zones in use are
/// whole quarter hours from UTC).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RollupDay {
    /// The UTC day.
    pub day: NaiveDate,
    /// Counted plays per quarter hour (slot 0 = 00:00-00:15 UTC).
    pub plays: Vec<i64>,
    /// Milliseconds of counted plays per quarter hour.
    pub ms: Vec<i64>,
}

/// Quarter-hour slots per day in a [`RollupDay`].
pub const SLOTS_PER_DAY: usize = 96;

impl RollupDay {
    /// An empty day.
    pub fn empty(day: NaiveDate) -> Self {
        RollupDay { day, plays: vec![0; SLOTS_PER_DAY], ms: vec![0; SLOTS_PER_DAY] }
    }
    /// Counted plays of the day.
    pub fn total_plays(&self) -> i64 {
        self.plays.iter().sum()
    }
    /// Milliseconds of counted plays of the day.
    pub fn total_ms(&self) -> i64 {
        self.ms.iter().sum()
    }
    /// Encodes the slots as 96 × (i64 plays, i64 ms) little-endian: how SQL stores keep them.
    pub fn encode_slots(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(SLOTS_PER_DAY * 16);
        for i in 0..SLOTS_PER_DAY {
            out.extend_from_slice(&self.plays[i].to_le_bytes());
            out.extend_from_slice(&self.ms[i].to_le_bytes());
        }
        out
    }
    /// Inverse of [`RollupDay::encode_slots`].
    pub fn decode_slots(day: NaiveDate, bytes: &[u8]) -> Option<Self> {
        if bytes.len() != SLOTS_PER_DAY * 16 {
            return None;
        }
        let mut r = RollupDay::empty(day);
        for (i, chunk) in bytes.chunks_exact(16).enumerate() {
            r.plays[i] = i64::from_le_bytes(chunk[0..8].try_into().ok()?);
            r.ms[i] = i64::from_le_bytes(chunk[8..16].try_into().ok()?);
        }
        Some(r)
    }
    /// Adds `other`'s slots (which may be negative deltas) to this day.
    pub fn add(&mut self, other: &RollupDay) {
        for i in 0..SLOTS_PER_DAY {
            self.plays[i] += other.plays[i];
            self.ms[i] += other.ms[i];
        }
    }
    /// Whether the day holds no plays.
    pub fn is_empty(&self) -> bool {
        self.plays.iter().all(|&p| p == 0) && self.ms.iter().all(|&m| m == 0)
    }
    /// The UTC day and quarter-hour slot an instant falls in.
    pub fn slot_of(t: DateTime<Utc>) -> (NaiveDate, usize) {
        use chrono::Timelike;
        (t.date_naive(), (t.hour() * 4 + t.minute() / 15) as usize)
    }
    /// Start instant of slot `i` of this day.
    pub fn slot_start(&self, i: usize) -> DateTime<Utc> {
        self.day.and_hms_opt(0, 0, 0).expect("midnight").and_utc() + chrono::Duration::minutes(15 * i as i64)
    }
}
