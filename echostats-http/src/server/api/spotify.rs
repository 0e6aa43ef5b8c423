//! Routes backed by the Spotify Web API: playlists, player, library, browse and
//! recommendations. Each takes the signed-in user's access token (refreshed when it is
//! about to expire) and calls the core Spotify client.
//!
//! What Spotify withdrew answers with the documented empty shape rather than an error, so
//! the EchoStats dashboard keeps rendering ("nothing to show") instead of failing a page:
//! recommendations and featured playlists (withdrawn for new apps on 2024-11-27) always;
//! new releases and categories (removed for development-mode apps in Feb 2026) when Spotify
//! answers 403/404 for them.

use super::{default_page, ApiTags};
use crate::app::AppState;
use crate::auth::CurrentUser;
use crate::error::ApiError;
use crate::oauth::access_token;
use crate::spotify_dto::*;
use echostats::spotify::Method;
use echostats::Error;
use poem::web::Data;
use poem_openapi::param::Query;
use poem_openapi::payload::Json;
use poem_openapi::OpenApi;
use std::sync::Arc;

fn default_fifty() -> u32 {
    50
}
fn default_twenty() -> u32 {
    20
}
fn default_zero() -> u32 {
    0
}

/// Spotify's page size limit.
const SPOTIFY_PAGE: u32 = 50;

fn status(s: &str) -> Json<crate::dto::Status> {
    Json(crate::dto::Status { status: s.into() })
}

/// An empty list instead of an error when Spotify has removed the endpoint for this app.
fn withdrawn_as_empty<T>(r: echostats::Result<Vec<T>>, what: &str) -> Result<Vec<T>, ApiError> {
    match r {
        Ok(items) => Ok(items),
        Err(Error::Spotify { status: 403 | 404, message }) => {
            tracing::info!(%message, "Spotify no longer offers {what} to this app; answering an empty list");
            Ok(Vec::new())
        }
        Err(e) => Err(e.into()),
    }
}

/// Sends a player command. Spotify refuses commands it cannot carry out with 403 (a free
/// account: `PREMIUM_REQUIRED`; or a state that forbids it, such as `NO_PREV_TRACK`) and
/// with 404 when no device is active: those are answers for the user, not a failing
/// Spotify, so they pass on as 403 and 404 with Spotify's reason.
async fn player_command(
    state: &AppState,
    user: &CurrentUser,
    method: Method,
    path: &str,
    query: &[(&str, String)],
    body: Option<&serde_json::Value>,
) -> Result<(), ApiError> {
    let (client, token) = access_token(state, user.id()).await?;
    match client.command(user.id(), &token, method, path, query, body).await {
        Ok(()) => Ok(()),
        Err(Error::Spotify { status: 403, message }) if message.contains("PREMIUM_REQUIRED") => {
            Err(ApiError::forbidden(format!("Playback control needs Spotify Premium (Spotify: {message})")))
        }
        Err(Error::Spotify { status: 403, message }) => {
            Err(ApiError::forbidden(format!("Spotify refused the player command: {message}")))
        }
        Err(Error::Spotify { status: 404, message }) => Err(ApiError::not_found(format!(
            "No active Spotify device: start playing on one of your devices first (Spotify: {message})"
        ))),
        Err(e) => Err(e.into()),
    }
}

pub struct PlaylistsApi;

#[OpenApi(tag = "ApiTags::Playlists")]
impl PlaylistsApi {
    /// The user's Spotify playlists, a page at a time.
    #[oai(path = "/api/v1/playlists", method = "get")]
    async fn playlists(
        &self,
        state: Data<&Arc<AppState>>,
        user: CurrentUser,
        /// Page number (from 1).
        #[oai(default = "default_page", validator(minimum(value = "1")))]
        page: Query<u32>,
        /// Items per page (1-100).
        #[oai(default = "default_fifty", validator(minimum(value = "1"), maximum(value = "100")))]
        limit: Query<u32>,
    ) -> Result<Json<PlaylistList>, ApiError> {
        let (client, token) = access_token(&state, user.id()).await?;
        let (page, limit) = (page.0, limit.0);
        let start = (page - 1).saturating_mul(limit);
        let mut items = Vec::new();
        let mut total = 0;
        // Spotify pages hold at most 50.
        while (items.len() as u32) < limit {
            let want = (limit - items.len() as u32).min(SPOTIFY_PAGE);
            let chunk = client.playlists(user.id(), &token, want, start + items.len() as u32).await?;
            total = chunk.total.unwrap_or(0);
            let got = chunk.items.len() as u32;
            items.extend(chunk.items.into_iter().map(|p| PlaylistBody::new(user.id(), p)));
            if got < want || start as i64 + items.len() as i64 >= total {
                break;
            }
        }
        Ok(Json(PlaylistList { items, total, page, limit }))
    }
}

pub struct PlayerApi;

#[OpenApi(tag = "ApiTags::Player")]
impl PlayerApi {
    /// What plays now (`{"is_playing": false}` when nothing does or no device is active).
    #[oai(path = "/api/v1/player/current", method = "get")]
    async fn current(&self, state: Data<&Arc<AppState>>, user: CurrentUser) -> Result<Json<PlayerCurrent>, ApiError> {
        let (client, token) = access_token(&state, user.id()).await?;
        Ok(Json(client.playback(user.id(), &token).await?.into()))
    }

    /// Spotify Connect devices.
    #[oai(path = "/api/v1/player/devices", method = "get")]
    async fn devices(&self, state: Data<&Arc<AppState>>, user: CurrentUser) -> Result<Json<DeviceList>, ApiError> {
        let (client, token) = access_token(&state, user.id()).await?;
        Ok(Json(client.devices(user.id(), &token).await?.into()))
    }

    /// The playback queue (at most 20 items).
    #[oai(path = "/api/v1/player/queue", method = "get")]
    async fn queue(&self, state: Data<&Arc<AppState>>, user: CurrentUser) -> Result<Json<QueueBody>, ApiError> {
        let (client, token) = access_token(&state, user.id()).await?;
        Ok(Json(client.queue(user.id(), &token).await?.into()))
    }

    /// Starts or resumes playback (Spotify Premium). The body is optional.
    #[oai(path = "/api/v1/player/play", method = "post")]
    async fn play(
        &self,
        state: Data<&Arc<AppState>>,
        user: CurrentUser,
        body: OptionalPlayRequest,
    ) -> Result<Json<crate::dto::Status>, ApiError> {
        let play = body.0;
        let mut spotify_body = serde_json::Map::new();
        if let Some(c) = play.context_uri {
            spotify_body.insert("context_uri".into(), c.into());
        }
        if let Some(u) = play.uris {
            spotify_body.insert("uris".into(), u.into());
        }
        let query: Vec<(&str, String)> = play.device_id.map(|d| ("device_id", d)).into_iter().collect();
        let body = (!spotify_body.is_empty()).then_some(serde_json::Value::Object(spotify_body));
        player_command(&state, &user, Method::PUT, "/v1/me/player/play", &query, body.as_ref()).await?;
        Ok(status("playing"))
    }

    /// Pauses playback (Spotify Premium).
    #[oai(path = "/api/v1/player/pause", method = "post")]
    async fn pause(
        &self,
        state: Data<&Arc<AppState>>,
        user: CurrentUser,
    ) -> Result<Json<crate::dto::Status>, ApiError> {
        player_command(&state, &user, Method::PUT, "/v1/me/player/pause", &[], None).await?;
        Ok(status("paused"))
    }

    /// Skips to the next track (Spotify Premium).
    #[oai(path = "/api/v1/player/next", method = "post")]
    async fn next(&self, state: Data<&Arc<AppState>>, user: CurrentUser) -> Result<Json<crate::dto::Status>, ApiError> {
        player_command(&state, &user, Method::POST, "/v1/me/player/next", &[], None).await?;
        Ok(status("skipped"))
    }

    /// Skips to the previous track (Spotify Premium).
    #[oai(path = "/api/v1/player/previous", method = "post")]
    async fn previous(
        &self,
        state: Data<&Arc<AppState>>,
        user: CurrentUser,
    ) -> Result<Json<crate::dto::Status>, ApiError> {
        player_command(&state, &user, Method::POST, "/v1/me/player/previous", &[], None).await?;
        Ok(status("skipped_back"))
    }
}

pub struct LibraryApi;

#[OpenApi(tag = "ApiTags::Library")]
impl LibraryApi {
    /// Artists the user follows on Spotify.
    #[oai(path = "/api/v1/library/followed-artists", method = "get")]
    async fn followed_artists(
        &self,
        state: Data<&Arc<AppState>>,
        user: CurrentUser,
        /// Number of artists (1-50).
        #[oai(default = "default_fifty", validator(minimum(value = "1"), maximum(value = "50")))]
        limit: Query<u32>,
    ) -> Result<Json<FollowedArtists>, ApiError> {
        let (client, token) = access_token(&state, user.id()).await?;
        Ok(Json(client.followed_artists(user.id(), &token, limit.0).await?.into()))
    }

    /// Albums saved in the user's Spotify library.
    #[oai(path = "/api/v1/library/saved-albums", method = "get")]
    async fn saved_albums(
        &self,
        state: Data<&Arc<AppState>>,
        user: CurrentUser,
        /// Number of albums (1-50).
        #[oai(default = "default_fifty", validator(minimum(value = "1"), maximum(value = "50")))]
        limit: Query<u32>,
        /// Pagination offset.
        #[oai(default = "default_zero")]
        offset: Query<u32>,
    ) -> Result<Json<SavedAlbums>, ApiError> {
        let (client, token) = access_token(&state, user.id()).await?;
        let page = client.saved_albums(user.id(), &token, limit.0, offset.0).await?;
        Ok(Json(SavedAlbums::new(page, limit.0, offset.0)))
    }
}

pub struct BrowseApi;

#[OpenApi(tag = "ApiTags::Browse")]
impl BrowseApi {
    /// New album releases. Empty when Spotify no longer offers them to this app (removed for
    /// development-mode apps in Feb 2026).
    #[oai(path = "/api/v1/browse/new-releases", method = "get")]
    async fn new_releases(
        &self,
        state: Data<&Arc<AppState>>,
        user: CurrentUser,
        /// Number of results (1-50).
        #[oai(default = "default_twenty", validator(minimum(value = "1"), maximum(value = "50")))]
        limit: Query<u32>,
    ) -> Result<Json<NewReleases>, ApiError> {
        let (client, token) = access_token(&state, user.id()).await?;
        let albums = client.new_releases(user.id(), &token, limit.0).await.map(|p| p.items);
        Ok(Json(withdrawn_as_empty(albums, "new releases")?.into()))
    }

    /// Spotify's featured playlists: always empty, with a message saying why. Spotify
    /// withdrew featured playlists from the Web API in Nov 2024; no call is made.
    #[oai(path = "/api/v1/browse/featured-playlists", method = "get")]
    async fn featured_playlists(
        &self,
        _user: CurrentUser,
        /// Number of results (1-50; accepted for compatibility).
        #[oai(name = "limit", default = "default_twenty", validator(minimum(value = "1"), maximum(value = "50")))]
        _limit: Query<u32>,
    ) -> Result<Json<FeaturedPlaylists>, ApiError> {
        // `Result` documents the error answers (401) like every other route.
        Ok(Json(FeaturedPlaylists {
            message: "Featured playlists were withdrawn by Spotify in Nov 2024".into(),
            items: Vec::new(),
        }))
    }

    /// Spotify browse categories. Empty when Spotify no longer offers them to this app
    /// (removed for development-mode apps in Feb 2026).
    #[oai(path = "/api/v1/browse/categories", method = "get")]
    async fn categories(
        &self,
        state: Data<&Arc<AppState>>,
        user: CurrentUser,
        /// Number of results (1-50).
        #[oai(default = "default_fifty", validator(minimum(value = "1"), maximum(value = "50")))]
        limit: Query<u32>,
    ) -> Result<Json<Categories>, ApiError> {
        let (client, token) = access_token(&state, user.id()).await?;
        let categories = client.categories(user.id(), &token, limit.0).await.map(|p| p.items);
        Ok(Json(withdrawn_as_empty(categories, "browse categories")?.into()))
    }
}

pub struct RecommendationsApi;

#[OpenApi(tag = "ApiTags::Recommendations")]
impl RecommendationsApi {
    /// Track recommendations: always `{"items": [], "total": 0, "seed_info": {}}`, the
    /// documented empty answer. Spotify withdrew recommendations from the Web API in Nov
    /// 2024; no call is made.
    #[oai(path = "/api/v1/recommendations", method = "get")]
    async fn recommendations(
        &self,
        _user: CurrentUser,
        /// Number of recommendations (1-50).
        #[oai(name = "limit", default = "default_twenty", validator(minimum(value = "1"), maximum(value = "50")))]
        _limit: Query<u32>,
        /// Seeds from `artists`, `tracks`, `genres` or `mixed`.
        #[oai(name = "seed_type", default)]
        _seed_type: Query<SeedType>,
    ) -> Result<Json<Recommendations>, ApiError> {
        Ok(Json(Recommendations { items: Vec::new(), total: 0, seed_info: SeedInfo::default() }))
    }
}
