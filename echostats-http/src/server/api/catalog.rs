//! `/api/v1/tracks`, `/api/v1/artists`, `/api/v1/albums`, `/api/v1/genres`: the user's
//! rankings of a period, and catalog entries by Spotify id.

use super::{default_limit, ApiTags};
use crate::app::AppState;
use crate::auth::CurrentUser;
use crate::dto::{
    bare_spotify_id, ArtistBody, GenreDistribution, Period, TopAlbum, TopAlbums, TopArtists, TopTrack, TopTracks,
    TrackDetail,
};
use crate::error::ApiError;
use chrono::Utc;
use echostats::analytics;
use echostats::store::ItemKind;
use poem::web::Data;
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::OpenApi;
use std::sync::Arc;

pub struct TracksApi;
pub struct ArtistsApi;
pub struct AlbumsApi;
pub struct GenresApi;

async fn ranking(
    state: &AppState,
    user: &CurrentUser,
    kind: ItemKind,
    period: Period,
    limit: u32,
) -> Result<echostats::store::ItemRanking, ApiError> {
    Ok(analytics::top_items(&*state.store, user.id(), kind, period.into(), Utc::now(), limit as usize).await?)
}

#[OpenApi(tag = "ApiTags::Tracks")]
impl TracksApi {
    /// The user's top tracks by counted plays in a period.
    #[oai(path = "/api/v1/tracks/top", method = "get")]
    async fn top(
        &self,
        state: Data<&Arc<AppState>>,
        user: CurrentUser,
        /// `week`, `month`, `quarter`, `year` or `all_time`.
        #[oai(default = "Period::default_all_time")]
        period: Query<Period>,
        /// Number of tracks (1-100).
        #[oai(default = "default_limit", validator(minimum(value = "1"), maximum(value = "100")))]
        limit: Query<u32>,
    ) -> Result<Json<TopTracks>, ApiError> {
        let r = ranking(&state, &user, ItemKind::Track, period.0, limit.0).await?;
        Ok(Json(TopTracks {
            items: r.items.into_iter().enumerate().map(|(i, t)| TopTrack::ranked(i, t)).collect(),
            period: period.0,
            total: r.distinct,
        }))
    }

    /// A track of the catalog by Spotify id (or `spotify:track:` URI).
    #[oai(path = "/api/v1/tracks/:track_id", method = "get")]
    async fn track(
        &self,
        state: Data<&Arc<AppState>>,
        _user: CurrentUser,
        /// Spotify track id.
        track_id: Path<String>,
    ) -> Result<Json<TrackDetail>, ApiError> {
        Ok(Json(state.store.track(&bare_spotify_id(&track_id)).await?.into()))
    }
}

#[OpenApi(tag = "ApiTags::Artists")]
impl ArtistsApi {
    /// The user's top artists by counted plays in a period, with their catalog genres.
    #[oai(path = "/api/v1/artists/top", method = "get")]
    async fn top(
        &self,
        state: Data<&Arc<AppState>>,
        user: CurrentUser,
        /// `week`, `month`, `quarter`, `year` or `all_time`.
        #[oai(default = "Period::default_all_time")]
        period: Query<Period>,
        /// Number of artists (1-100).
        #[oai(default = "default_limit", validator(minimum(value = "1"), maximum(value = "100")))]
        limit: Query<u32>,
    ) -> Result<Json<TopArtists>, ApiError> {
        let r = ranking(&state, &user, ItemKind::Artist, period.0, limit.0).await?;
        let keys: Vec<String> = r.items.iter().map(|a| a.key.clone()).collect();
        let mut genres = if keys.is_empty() { Default::default() } else { state.store.artist_genres(&keys).await? };
        Ok(Json(TopArtists {
            items: r
                .items
                .into_iter()
                .enumerate()
                .map(|(i, a)| {
                    let g = genres.remove(&a.key).unwrap_or_default();
                    ArtistBody::ranked(i, a, g)
                })
                .collect(),
            period: period.0,
            total: r.distinct,
        }))
    }

    /// An artist of the catalog by Spotify id (or `spotify:artist:` URI).
    #[oai(path = "/api/v1/artists/:artist_id", method = "get")]
    async fn artist(
        &self,
        state: Data<&Arc<AppState>>,
        _user: CurrentUser,
        /// Spotify artist id.
        artist_id: Path<String>,
    ) -> Result<Json<ArtistBody>, ApiError> {
        Ok(Json(state.store.artist(&bare_spotify_id(&artist_id)).await?.into()))
    }
}

#[OpenApi(tag = "ApiTags::Albums")]
impl AlbumsApi {
    /// The user's top albums by counted plays in a period.
    #[oai(path = "/api/v1/albums/top", method = "get")]
    async fn top(
        &self,
        state: Data<&Arc<AppState>>,
        user: CurrentUser,
        /// `week`, `month`, `quarter`, `year` or `all_time`.
        #[oai(default = "Period::default_all_time")]
        period: Query<Period>,
        /// Number of albums (1-100).
        #[oai(default = "default_limit", validator(minimum(value = "1"), maximum(value = "100")))]
        limit: Query<u32>,
    ) -> Result<Json<TopAlbums>, ApiError> {
        let r = ranking(&state, &user, ItemKind::Album, period.0, limit.0).await?;
        Ok(Json(TopAlbums {
            items: r.items.into_iter().enumerate().map(|(i, a)| TopAlbum::ranked(i, a)).collect(),
            period: period.0,
            total: r.distinct,
        }))
    }
}

#[OpenApi(tag = "ApiTags::Genres")]
impl GenresApi {
    /// Each genre's share of the period's plays (from the catalog genres of the artists).
    #[oai(path = "/api/v1/genres/distribution", method = "get")]
    async fn distribution(
        &self,
        state: Data<&Arc<AppState>>,
        user: CurrentUser,
        /// `week`, `month`, `quarter`, `year` or `all_time`.
        #[oai(default = "Period::default_all_time")]
        period: Query<Period>,
    ) -> Result<Json<GenreDistribution>, ApiError> {
        let d = analytics::genre_distribution(&*state.store, user.id(), period.0.into(), Utc::now()).await?;
        Ok(Json(d.into()))
    }
}
