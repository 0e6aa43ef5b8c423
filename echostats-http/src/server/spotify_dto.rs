//! Request and response bodies of the Spotify-backed routes (sign-in, playlists, player,
//! library, browse, recommendations), in the EchoStats shapes.

use crate::timestamp::Timestamp;
use echostats::spotify::wire::{self, first_image};
use poem_openapi::{Enum, Object};

/// `GET /api/v1/auth/login` for API clients.
#[derive(Object, Debug)]
pub struct LoginUrl {
    /// The Spotify authorization page.
    pub url: String,
    /// The CSRF state the callback expects.
    pub state: String,
}

/// One playlist.
#[derive(Object, Debug)]
pub struct PlaylistBody {
    /// Id (the Spotify id).
    pub id: String,
    /// Our user id.
    pub user_id: String,
    /// Spotify id.
    pub spotify_id: String,
    /// Name.
    pub name: String,
    /// Description.
    pub description: Option<String>,
    /// Cover.
    pub image_url: Option<String>,
    /// Number of items.
    pub tracks_total: i64,
    /// Owner's display name.
    pub owner: Option<String>,
    /// Public.
    pub public: Option<bool>,
    /// Collaborative.
    pub collaborative: bool,
    /// `https://open.spotify.com/playlist/...`.
    pub external_url: Option<String>,
}

impl PlaylistBody {
    /// From Spotify's simplified playlist.
    pub fn new(user_id: &str, p: wire::SimplifiedPlaylist) -> Self {
        PlaylistBody {
            tracks_total: p.items_total(),
            image_url: first_image(&p.images),
            owner: p.owner.and_then(|o| o.display_name.or(o.id)),
            external_url: p
                .external_urls
                .spotify
                .or_else(|| Some(format!("https://open.spotify.com/playlist/{}", p.id))),
            user_id: user_id.to_string(),
            spotify_id: p.id.clone(),
            id: p.id,
            name: p.name,
            description: p.description.filter(|d| !d.is_empty()),
            public: p.public,
            collaborative: p.collaborative,
        }
    }
}

/// `GET /api/v1/playlists`.
#[derive(Object, Debug)]
pub struct PlaylistList {
    /// Playlists of the page.
    pub items: Vec<PlaylistBody>,
    /// All playlists.
    pub total: i64,
    /// Page.
    pub page: u32,
    /// Page size.
    pub limit: u32,
}

/// `GET /api/v1/player/current`: `{"is_playing": false}` when nothing plays.
#[derive(Object, Debug, Default)]
pub struct PlayerCurrent {
    /// Whether something plays.
    pub is_playing: bool,
    /// Track (or episode) name.
    #[oai(skip_serializing_if_is_none)]
    pub track_name: Option<String>,
    /// Artists (or the show).
    #[oai(skip_serializing_if_is_none)]
    pub artist_name: Option<String>,
    /// Album (or the show).
    #[oai(skip_serializing_if_is_none)]
    pub album_name: Option<String>,
    /// Cover.
    #[oai(skip_serializing_if_is_none)]
    pub album_image: Option<String>,
    /// Spotify id.
    #[oai(skip_serializing_if_is_none)]
    pub track_id: Option<String>,
    /// Duration.
    #[oai(skip_serializing_if_is_none)]
    pub duration_ms: Option<i64>,
    /// Progress.
    #[oai(skip_serializing_if_is_none)]
    pub progress_ms: Option<i64>,
    /// Device name.
    #[oai(skip_serializing_if_is_none)]
    pub device: Option<String>,
    /// Shuffle.
    #[oai(skip_serializing_if_is_none)]
    pub shuffle: Option<bool>,
    /// `off`, `track`, `context`.
    #[oai(skip_serializing_if_is_none)]
    pub repeat: Option<String>,
}

impl From<Option<wire::PlaybackState>> for PlayerCurrent {
    fn from(state: Option<wire::PlaybackState>) -> Self {
        let Some(s) = state else { return PlayerCurrent::default() };
        let Some(item) = s.item else { return PlayerCurrent::default() };
        PlayerCurrent {
            is_playing: s.is_playing,
            artist_name: Some(item.artist_line()),
            album_name: item.album_name(),
            album_image: item.image(),
            track_name: Some(item.name),
            track_id: item.id,
            duration_ms: item.duration_ms,
            progress_ms: s.progress_ms,
            device: s.device.map(|d| d.name),
            shuffle: s.shuffle_state,
            repeat: s.repeat_state,
        }
    }
}

/// A Connect device.
#[derive(Object, Debug)]
pub struct DeviceBody {
    /// Id.
    pub id: Option<String>,
    /// Name.
    pub name: String,
    /// `Computer`, `Smartphone`, `Speaker`.
    #[oai(rename = "type")]
    pub kind: String,
    /// Whether it is the active device.
    pub is_active: bool,
    /// Volume.
    pub volume_percent: Option<i64>,
}

/// `GET /api/v1/player/devices`.
#[derive(Object, Debug)]
pub struct DeviceList {
    /// Devices.
    pub devices: Vec<DeviceBody>,
}

impl From<wire::Devices> for DeviceList {
    fn from(d: wire::Devices) -> Self {
        DeviceList {
            devices: d
                .devices
                .into_iter()
                .map(|d| DeviceBody {
                    id: d.id,
                    name: d.name,
                    kind: d.kind,
                    is_active: d.is_active,
                    volume_percent: d.volume_percent,
                })
                .collect(),
        }
    }
}

/// A track in the queue.
#[derive(Object, Debug)]
pub struct QueueItem {
    /// Spotify id.
    pub id: Option<String>,
    /// Name.
    pub name: String,
    /// Artists (or the show).
    pub artist: String,
    /// Album (or the show).
    pub album: Option<String>,
    /// Cover.
    pub image: Option<String>,
    /// Duration.
    pub duration_ms: Option<i64>,
}

impl From<wire::PlayableItem> for QueueItem {
    fn from(i: wire::PlayableItem) -> Self {
        QueueItem {
            artist: i.artist_line(),
            album: i.album_name(),
            image: i.image(),
            id: i.id,
            name: i.name,
            duration_ms: i.duration_ms,
        }
    }
}

/// The most items of `GET /api/v1/player/queue`.
pub const QUEUE_MAX: usize = 20;

/// `GET /api/v1/player/queue`.
#[derive(Object, Debug)]
pub struct QueueBody {
    /// What plays now.
    pub currently_playing: Option<QueueItem>,
    /// What plays next (at most 20).
    pub queue: Vec<QueueItem>,
}

impl From<Option<wire::Queue>> for QueueBody {
    fn from(q: Option<wire::Queue>) -> Self {
        let q = q.unwrap_or(wire::Queue { currently_playing: None, queue: Vec::new() });
        QueueBody {
            currently_playing: q.currently_playing.map(QueueItem::from),
            queue: q.queue.into_iter().take(QUEUE_MAX).map(QueueItem::from).collect(),
        }
    }
}

/// `POST /api/v1/player/play` body (every field optional).
#[derive(Object, Debug, Default, serde::Deserialize)]
pub struct PlayRequest {
    /// An album, artist or playlist to play.
    pub context_uri: Option<String>,
    /// Tracks to play.
    pub uris: Option<Vec<String>>,
    /// The device to play on (default: the active one).
    pub device_id: Option<String>,
}

/// A followed artist.
#[derive(Object, Debug)]
pub struct FollowedArtist {
    /// Spotify id.
    pub id: String,
    /// Name.
    pub name: String,
    /// Picture.
    pub image: Option<String>,
    /// Followers (null since Spotify stopped sending them to development-mode apps, Feb 2026).
    pub followers: Option<i64>,
    /// Genres.
    pub genres: Vec<String>,
}

/// `GET /api/v1/library/followed-artists`.
#[derive(Object, Debug)]
pub struct FollowedArtists {
    /// Artists.
    pub items: Vec<FollowedArtist>,
    /// All followed artists.
    pub total: i64,
}

impl From<wire::Paging<wire::Artist>> for FollowedArtists {
    fn from(p: wire::Paging<wire::Artist>) -> Self {
        let total = p.total.unwrap_or(p.items.len() as i64);
        FollowedArtists {
            items: p
                .items
                .into_iter()
                .map(|a| FollowedArtist {
                    image: first_image(&a.images),
                    followers: a.followers.and_then(|f| f.total),
                    id: a.id,
                    name: a.name,
                    genres: a.genres,
                })
                .collect(),
            total,
        }
    }
}

/// A saved album.
#[derive(Object, Debug)]
pub struct SavedAlbumBody {
    /// Spotify id.
    pub id: Option<String>,
    /// Name.
    pub name: String,
    /// Artists, comma-separated.
    pub artists: String,
    /// Cover.
    pub image: Option<String>,
    /// Release date.
    pub release_date: Option<String>,
    /// Tracks.
    pub total_tracks: Option<i64>,
    /// When it was saved.
    pub added_at: Option<Timestamp>,
}

/// `GET /api/v1/library/saved-albums`.
#[derive(Object, Debug)]
pub struct SavedAlbums {
    /// Albums.
    pub items: Vec<SavedAlbumBody>,
    /// All saved albums.
    pub total: i64,
    /// Page size.
    pub limit: u32,
    /// Offset.
    pub offset: u32,
}

impl SavedAlbums {
    /// From Spotify's page.
    pub fn new(p: wire::Paging<wire::SavedAlbum>, limit: u32, offset: u32) -> Self {
        let total = p.total.unwrap_or(p.items.len() as i64);
        SavedAlbums {
            items: p
                .items
                .into_iter()
                .map(|s| SavedAlbumBody {
                    artists: wire::artist_names(&s.album.artists),
                    image: first_image(&s.album.images),
                    id: s.album.id,
                    name: s.album.name,
                    release_date: s.album.release_date,
                    total_tracks: s.album.total_tracks,
                    added_at: s.added_at.map(Into::into),
                })
                .collect(),
            total,
            limit,
            offset,
        }
    }
}

/// A new release.
#[derive(Object, Debug)]
pub struct NewRelease {
    /// Spotify id.
    pub id: Option<String>,
    /// Name.
    pub name: String,
    /// Artists, comma-separated.
    pub artists: String,
    /// Cover.
    pub image: Option<String>,
    /// Release date.
    pub release_date: Option<String>,
    /// Tracks.
    pub total_tracks: Option<i64>,
    /// `album`, `single`, `compilation`.
    #[oai(rename = "type")]
    pub kind: Option<String>,
}

/// `GET /api/v1/browse/new-releases`.
#[derive(Object, Debug)]
pub struct NewReleases {
    /// Albums (empty when Spotify no longer offers them to this app).
    pub items: Vec<NewRelease>,
}

impl From<Vec<wire::Album>> for NewReleases {
    fn from(albums: Vec<wire::Album>) -> Self {
        NewReleases {
            items: albums
                .into_iter()
                .map(|a| NewRelease {
                    artists: wire::artist_names(&a.artists),
                    image: first_image(&a.images),
                    id: a.id,
                    name: a.name,
                    release_date: a.release_date,
                    total_tracks: a.total_tracks,
                    kind: a.album_type,
                })
                .collect(),
        }
    }
}

/// A featured playlist (none since Nov 2024; kept for the shape).
#[derive(Object, Debug)]
pub struct FeaturedPlaylist {
    /// Spotify id.
    pub id: String,
    /// Name.
    pub name: String,
    /// Description.
    pub description: Option<String>,
    /// Cover.
    pub image: Option<String>,
    /// Number of items.
    pub tracks_total: i64,
    /// Owner.
    pub owner: Option<String>,
}

/// `GET /api/v1/browse/featured-playlists`.
#[derive(Object, Debug)]
pub struct FeaturedPlaylists {
    /// Spotify's greeting; here, why the list is empty.
    pub message: String,
    /// Always empty: withdrawn by Spotify in Nov 2024.
    pub items: Vec<FeaturedPlaylist>,
}

/// A browse category.
#[derive(Object, Debug)]
pub struct CategoryBody {
    /// Id.
    pub id: String,
    /// Name.
    pub name: String,
    /// Icon.
    pub image: Option<String>,
}

/// `GET /api/v1/browse/categories`.
#[derive(Object, Debug)]
pub struct Categories {
    /// Categories (empty when Spotify no longer offers them to this app).
    pub items: Vec<CategoryBody>,
}

impl From<Vec<wire::Category>> for Categories {
    fn from(c: Vec<wire::Category>) -> Self {
        Categories {
            items: c
                .into_iter()
                .map(|c| CategoryBody { image: first_image(&c.icons), id: c.id, name: c.name })
                .collect(),
        }
    }
}

/// What recommendation seeds are taken from.
#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq, Default)]
#[oai(rename_all = "snake_case")]
pub enum SeedType {
    /// Top artists.
    Artists,
    /// Top tracks.
    Tracks,
    /// Top genres.
    Genres,
    /// All of them.
    #[default]
    Mixed,
}

/// A recommended track (none since Nov 2024; kept for the shape).
#[derive(Object, Debug)]
pub struct Recommendation {
    /// Spotify id.
    pub id: String,
    /// Name.
    pub name: String,
    /// Artists.
    pub artists: Vec<String>,
    /// First artist.
    pub artist: String,
    /// Album.
    pub album: Option<String>,
    /// Cover.
    pub album_image: Option<String>,
    /// Duration.
    pub duration_ms: Option<i64>,
    /// Link.
    pub external_url: Option<String>,
}

/// `seed_info` (empty when there are no recommendations).
#[derive(Object, Debug, Default)]
pub struct SeedInfo {
    /// Seed type.
    #[oai(rename = "type", skip_serializing_if_is_none)]
    pub kind: Option<SeedType>,
    /// Top artist used as a seed.
    #[oai(skip_serializing_if_is_none)]
    pub top_artist: Option<String>,
    /// Top genre used as a seed.
    #[oai(skip_serializing_if_is_none)]
    pub top_genre: Option<String>,
}

/// `GET /api/v1/recommendations`.
#[derive(Object, Debug)]
pub struct Recommendations {
    /// Always empty: Spotify withdrew recommendations in Nov 2024.
    pub items: Vec<Recommendation>,
    /// Number of items.
    pub total: i64,
    /// Seeds used (`{}` when none).
    pub seed_info: SeedInfo,
}

/// The optional JSON body of `POST /api/v1/player/play`: documented as a JSON
/// [`PlayRequest`], and read as one when present; an empty body (with or without a
/// content type) is the empty request, as EchoStats accepts.
pub struct OptionalPlayRequest(pub PlayRequest);

impl<'a> poem_openapi::ApiExtractor<'a> for OptionalPlayRequest {
    const TYPES: &'static [poem_openapi::ApiExtractorType] = &[poem_openapi::ApiExtractorType::RequestObject];
    type ParamType = ();
    type ParamRawType = ();

    fn register(registry: &mut poem_openapi::registry::Registry) {
        <PlayRequest as poem_openapi::types::Type>::register(registry);
    }

    fn request_meta() -> Option<poem_openapi::registry::MetaRequest> {
        Some(poem_openapi::registry::MetaRequest {
            description: None,
            content: vec![poem_openapi::registry::MetaMediaType {
                content_type: "application/json",
                schema: <PlayRequest as poem_openapi::types::Type>::schema_ref(),
            }],
            required: false,
        })
    }

    async fn from_request(
        request: &'a poem::Request,
        body: &mut poem::RequestBody,
        _param_opts: poem_openapi::ExtractParamOptions<Self::ParamType>,
    ) -> poem::Result<Self> {
        use poem::FromRequest;
        let bytes = <Vec<u8> as FromRequest>::from_request(request, body).await?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(OptionalPlayRequest(PlayRequest::default()));
        }
        serde_json::from_slice(&bytes)
            .map(OptionalPlayRequest)
            .map_err(|e| poem_openapi::error::ParseRequestPayloadError { reason: e.to_string() }.into())
    }
}
