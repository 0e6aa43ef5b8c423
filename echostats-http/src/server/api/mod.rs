//! The routes, one module per EchoStats router. Handlers translate query parameters into
//! core calls and core results into DTOs; errors go through [`crate::error::ApiError`].

mod analytics;
mod api_logs;
mod auth;
mod catalog;
mod export;
mod health;
mod history;
mod import;
mod login;
mod spotify;
mod sync_jobs;

use poem_openapi::Tags;

/// Groups of operations in the docs.
#[derive(Tags)]
pub enum ApiTags {
    /// Liveness and readiness (no auth).
    Health,
    /// Sessions.
    Auth,
    /// Overview, trend and rollups.
    Analytics,
    /// Top tracks and track details.
    Tracks,
    /// Top artists and artist details.
    Artists,
    /// Top albums.
    Albums,
    /// Genre distribution.
    Genres,
    /// Listening history.
    History,
    /// Sync, import and rollup jobs.
    SyncJobs,
    /// Calls made to the Spotify API.
    ApiLogs,
    /// The user's Spotify playlists.
    Playlists,
    /// Playback state and control (Spotify).
    Player,
    /// Followed artists and saved albums (Spotify).
    Library,
    /// New releases, featured playlists, categories (Spotify).
    Browse,
    /// Recommendations (withdrawn by Spotify in Nov 2024).
    Recommendations,
}

/// Every API of the server, for [`poem_openapi::OpenApiService`].
pub fn all() -> impl poem_openapi::OpenApi {
    (
        health::HealthApi,
        auth::AuthApi,
        analytics::AnalyticsApi,
        (catalog::TracksApi, catalog::ArtistsApi, catalog::AlbumsApi, catalog::GenresApi),
        (history::HistoryApi, import::ImportApi, export::ExportApi),
        (sync_jobs::SyncJobsApi, api_logs::ApiLogsApi),
        (
            login::SpotifyLoginApi,
            spotify::PlaylistsApi,
            spotify::PlayerApi,
            spotify::LibraryApi,
            spotify::BrowseApi,
            spotify::RecommendationsApi,
        ),
    )
}

/// The default `page` of every paged listing: the first.
fn default_page() -> u32 {
    1
}

/// The default `limit` of top lists and history pages.
fn default_limit() -> u32 {
    50
}

/// The default time zone.
fn default_tz() -> String {
    "UTC".into()
}
