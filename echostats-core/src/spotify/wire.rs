//! The Web API's JSON objects, as far as EchoStats reads them. Every field that Spotify has
//! removed or may omit (popularity, followers, country, product after Feb 2026) is
//! optional, so a missing field never fails a call.

use serde::Deserialize;

/// `POST /api/token` answer.
#[derive(Debug, Clone, Deserialize)]
pub struct TokenResponse {
    /// The access token (1 h).
    pub access_token: String,
    /// Seconds until the access token expires.
    #[serde(default)]
    pub expires_in: Option<i64>,
    /// A new refresh token; absent on many refreshes (keep the old one then).
    #[serde(default)]
    pub refresh_token: Option<String>,
    /// Granted scopes, space-separated.
    #[serde(default)]
    pub scope: Option<String>,
}

/// An image.
#[derive(Debug, Clone, Deserialize)]
pub struct Image {
    /// URL.
    pub url: String,
}

/// The first image's URL.
pub fn first_image(images: &Option<Vec<Image>>) -> Option<String> {
    images.as_ref().and_then(|i| i.first()).map(|i| i.url.clone())
}

/// `GET /v1/me`.
#[derive(Debug, Clone, Deserialize)]
pub struct CurrentUser {
    /// Spotify user id.
    pub id: String,
    /// Display name.
    #[serde(default)]
    pub display_name: Option<String>,
    /// Avatars.
    #[serde(default)]
    pub images: Option<Vec<Image>>,
    /// `premium`, `free` (removed for development-mode apps in Feb 2026).
    #[serde(default)]
    pub product: Option<String>,
}

/// `external_urls`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ExternalUrls {
    /// `https://open.spotify.com/...`.
    #[serde(default)]
    pub spotify: Option<String>,
}

/// An offset-paged list.
#[derive(Debug, Clone, Deserialize)]
pub struct Paging<T> {
    /// The page.
    #[serde(default = "Vec::new")]
    pub items: Vec<T>,
    /// All items.
    #[serde(default)]
    pub total: Option<i64>,
}

/// A `{href, total}` reference to a playlist's items.
#[derive(Debug, Clone, Deserialize)]
pub struct ItemsRef {
    /// Number of items.
    #[serde(default)]
    pub total: Option<i64>,
}

/// A playlist owner.
#[derive(Debug, Clone, Deserialize)]
pub struct Owner {
    /// Spotify user id.
    #[serde(default)]
    pub id: Option<String>,
    /// Display name.
    #[serde(default)]
    pub display_name: Option<String>,
}

/// A simplified playlist (`GET /v1/me/playlists`).
#[derive(Debug, Clone, Deserialize)]
pub struct SimplifiedPlaylist {
    /// Spotify id.
    pub id: String,
    /// Name.
    #[serde(default)]
    pub name: String,
    /// Description.
    #[serde(default)]
    pub description: Option<String>,
    /// Covers.
    #[serde(default)]
    pub images: Option<Vec<Image>>,
    /// Items reference (`tracks` before Feb 2026).
    #[serde(default)]
    pub tracks: Option<ItemsRef>,
    /// Items reference (`items` since Feb 2026).
    #[serde(default)]
    pub items: Option<ItemsRef>,
    /// Owner.
    #[serde(default)]
    pub owner: Option<Owner>,
    /// Public.
    #[serde(default)]
    pub public: Option<bool>,
    /// Collaborative.
    #[serde(default)]
    pub collaborative: bool,
    /// Links.
    #[serde(default)]
    pub external_urls: ExternalUrls,
}

impl SimplifiedPlaylist {
    /// Number of items, under either name.
    pub fn items_total(&self) -> i64 {
        self.items.as_ref().or(self.tracks.as_ref()).and_then(|r| r.total).unwrap_or(0)
    }
}

/// A simplified artist.
#[derive(Debug, Clone, Deserialize)]
pub struct SimplifiedArtist {
    /// Spotify id.
    #[serde(default)]
    pub id: Option<String>,
    /// Name.
    #[serde(default)]
    pub name: String,
}

/// Artist names joined with ", ".
pub fn artist_names(artists: &[SimplifiedArtist]) -> String {
    artists.iter().map(|a| a.name.as_str()).collect::<Vec<_>>().join(", ")
}

/// An album.
#[derive(Debug, Clone, Deserialize)]
pub struct Album {
    /// Spotify id.
    #[serde(default)]
    pub id: Option<String>,
    /// Name.
    #[serde(default)]
    pub name: String,
    /// Artists.
    #[serde(default)]
    pub artists: Vec<SimplifiedArtist>,
    /// Covers.
    #[serde(default)]
    pub images: Option<Vec<Image>>,
    /// `2000-10-02`, `2000-10` or `2000`.
    #[serde(default)]
    pub release_date: Option<String>,
    /// Tracks.
    #[serde(default)]
    pub total_tracks: Option<i64>,
    /// `album`, `single`, `compilation`.
    #[serde(default)]
    pub album_type: Option<String>,
}

/// A full artist (followed artists).
#[derive(Debug, Clone, Deserialize)]
pub struct Artist {
    /// Spotify id.
    pub id: String,
    /// Name.
    #[serde(default)]
    pub name: String,
    /// Pictures.
    #[serde(default)]
    pub images: Option<Vec<Image>>,
    /// Followers (removed for development-mode apps in Feb 2026).
    #[serde(default)]
    pub followers: Option<Followers>,
    /// Genres.
    #[serde(default)]
    pub genres: Vec<String>,
}

/// `{total}` of followers.
#[derive(Debug, Clone, Deserialize)]
pub struct Followers {
    /// Count.
    #[serde(default)]
    pub total: Option<i64>,
}

/// A track or an episode in the player (`type` tells which).
#[derive(Debug, Clone, Deserialize)]
pub struct PlayableItem {
    /// Spotify id (null for local files).
    #[serde(default)]
    pub id: Option<String>,
    /// Name.
    #[serde(default)]
    pub name: String,
    /// Track artists.
    #[serde(default)]
    pub artists: Vec<SimplifiedArtist>,
    /// Track album.
    #[serde(default)]
    pub album: Option<Album>,
    /// Episode show.
    #[serde(default)]
    pub show: Option<Show>,
    /// Episode images.
    #[serde(default)]
    pub images: Option<Vec<Image>>,
    /// Duration.
    #[serde(default)]
    pub duration_ms: Option<i64>,
}

impl PlayableItem {
    /// Artists, or the show's name for an episode.
    pub fn artist_line(&self) -> String {
        if self.artists.is_empty() {
            self.show.as_ref().map(|s| s.name.clone()).unwrap_or_default()
        } else {
            artist_names(&self.artists)
        }
    }
    /// Album name, or the show's name for an episode.
    pub fn album_name(&self) -> Option<String> {
        self.album.as_ref().map(|a| a.name.clone()).or_else(|| self.show.as_ref().map(|s| s.name.clone()))
    }
    /// Cover of the album or the episode.
    pub fn image(&self) -> Option<String> {
        self.album.as_ref().and_then(|a| first_image(&a.images)).or_else(|| first_image(&self.images))
    }
}

/// A podcast show (name only).
#[derive(Debug, Clone, Deserialize)]
pub struct Show {
    /// Name.
    #[serde(default)]
    pub name: String,
}

/// A Connect device.
#[derive(Debug, Clone, Deserialize)]
pub struct Device {
    /// Id (may be null for restricted devices).
    #[serde(default)]
    pub id: Option<String>,
    /// Name.
    #[serde(default)]
    pub name: String,
    /// `Computer`, `Smartphone`, `Speaker`.
    #[serde(default, rename = "type")]
    pub kind: String,
    /// Whether it is the active device.
    #[serde(default)]
    pub is_active: bool,
    /// Volume.
    #[serde(default)]
    pub volume_percent: Option<i64>,
}

/// `GET /v1/me/player/devices`.
#[derive(Debug, Clone, Deserialize)]
pub struct Devices {
    /// Devices.
    #[serde(default)]
    pub devices: Vec<Device>,
}

/// `GET /v1/me/player` (204, read as `None`, when no device is active).
#[derive(Debug, Clone, Deserialize)]
pub struct PlaybackState {
    /// Whether something plays.
    #[serde(default)]
    pub is_playing: bool,
    /// The item.
    #[serde(default)]
    pub item: Option<PlayableItem>,
    /// Progress.
    #[serde(default)]
    pub progress_ms: Option<i64>,
    /// The device.
    #[serde(default)]
    pub device: Option<Device>,
    /// Shuffle.
    #[serde(default)]
    pub shuffle_state: Option<bool>,
    /// `off`, `track`, `context`.
    #[serde(default)]
    pub repeat_state: Option<String>,
}

/// `GET /v1/me/player/queue`.
#[derive(Debug, Clone, Deserialize)]
pub struct Queue {
    /// What plays now.
    #[serde(default)]
    pub currently_playing: Option<PlayableItem>,
    /// What plays next.
    #[serde(default)]
    pub queue: Vec<PlayableItem>,
}

/// One play of `GET /v1/me/player/recently-played`.
#[derive(Debug, Clone, Deserialize)]
pub struct PlayHistory {
    /// The track.
    pub track: PlayableItem,
    /// When it was played (ISO 8601, UTC).
    pub played_at: chrono::DateTime<chrono::Utc>,
    /// Where it was played from.
    #[serde(default)]
    pub context: Option<Context>,
}

/// A playback context.
#[derive(Debug, Clone, Deserialize)]
pub struct Context {
    /// `album`, `playlist`, `artist`.
    #[serde(default, rename = "type")]
    pub kind: Option<String>,
    /// Its URI.
    #[serde(default)]
    pub uri: Option<String>,
}

/// `GET /v1/me/player/recently-played` (cursor-paged).
#[derive(Debug, Clone, Deserialize)]
pub struct RecentlyPlayed {
    /// Plays, newest first.
    #[serde(default)]
    pub items: Vec<PlayHistory>,
}

/// `GET /v1/me/following?type=artist`.
#[derive(Debug, Clone, Deserialize)]
pub struct FollowedArtists {
    /// The artists (cursor-paged).
    pub artists: Paging<Artist>,
}

/// One saved album.
#[derive(Debug, Clone, Deserialize)]
pub struct SavedAlbum {
    /// When it was saved.
    #[serde(default)]
    pub added_at: Option<chrono::DateTime<chrono::Utc>>,
    /// The album.
    pub album: Album,
}

/// `GET /v1/browse/new-releases`.
#[derive(Debug, Clone, Deserialize)]
pub struct NewReleases {
    /// Albums.
    pub albums: Paging<Album>,
}

/// A browse category.
#[derive(Debug, Clone, Deserialize)]
pub struct Category {
    /// Id.
    pub id: String,
    /// Name.
    #[serde(default)]
    pub name: String,
    /// Icons.
    #[serde(default)]
    pub icons: Option<Vec<Image>>,
}

/// `GET /v1/browse/categories`.
#[derive(Debug, Clone, Deserialize)]
pub struct Categories {
    /// Categories.
    pub categories: Paging<Category>,
}

/// Spotify's error body: `{"error": {"status": 429, "message": "...", "reason": "..."}}`
/// for the Web API, `{"error": "invalid_grant", "error_description": "..."}` for accounts.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct ErrorBody {
    pub error: ErrorField,
    #[serde(default)]
    pub error_description: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub(crate) enum ErrorField {
    Api {
        #[serde(default)]
        message: Option<String>,
        #[serde(default)]
        reason: Option<String>,
    },
    Code(String),
}
