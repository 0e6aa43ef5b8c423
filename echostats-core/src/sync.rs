//! The Spotify sync pipeline: recently played tracks into the history, their metadata into
//! the catalog.
//!
//! Spotify keeps only the last 50 plays of an account (`GET /v1/me/player/recently-played`),
//! so a sync every 15 minutes catches all but the heaviest listening. Each sync fetches the
//! plays after the newest one a previous sync stored; the insert goes through the same
//! batch as an import, so the duplicate rule applies: a play synced and later imported from
//! the export (or synced twice) is stored once, and the export's richer record wins.
//!
//! What the API does not give is filled in as peers do: `ms_played` is the track's length
//! (the API reports a play only after about 30 s, and not how long it lasted), and the
//! artist of a play is the album's first artist, as the export's album artist is.
//!
//! Enrichment: every synced track goes into the catalog. Artist genres need one
//! `GET /v1/artists/{id}` per artist since Spotify removed the batch endpoint for
//! development-mode apps (Feb 2026), so a sync looks up at most
//! [`SyncOptions::max_artist_lookups`] artists it does not know yet and leaves the rest for
//! the next one. A 429 (whose `Retry-After` can be hours) stops the lookups without failing
//! the sync: the plays are what must not be lost.

use crate::model::{Artist, ArtistRef, PlayKind, PlayOrigin, PlayRecord, Track};
use crate::rules::PlayRules;
use crate::spotify::wire::{first_image, PlayHistory};
use crate::spotify::SpotifyClient;
use crate::store::{HistoryQuery, InsertOutcome, Store};
use crate::{Error, Result};
use chrono::{DateTime, Utc};
use std::collections::BTreeMap;

/// How a sync runs.
#[derive(Debug, Clone)]
pub struct SyncOptions {
    /// What counts as a play and as the same play.
    pub rules: PlayRules,
    /// Artists looked up (one call each) per sync at most.
    pub max_artist_lookups: usize,
}

impl Default for SyncOptions {
    fn default() -> Self {
        SyncOptions { rules: PlayRules::default(), max_artist_lookups: 20 }
    }
}

/// What one sync did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SyncReport {
    /// Plays Spotify returned.
    pub fetched: u64,
    /// How the insert went (added, replaced, duplicates).
    pub stored: InsertOutcome,
    /// The newest play returned.
    pub newest: Option<DateTime<Utc>>,
    /// Tracks written to the catalog.
    pub tracks_cataloged: u64,
    /// Artists looked up and written to the catalog with their genres.
    pub artists_enriched: u64,
    /// Artists still without metadata, left for a later sync (lookup budget, rate limit).
    pub artists_pending: u64,
    /// Why the artist lookups stopped early, when they did.
    pub enrichment_stopped: Option<String>,
}

/// A recently-played item as a play record (origin [`PlayOrigin::Api`]). Local files and
/// items without an id are skipped (`None`): they have no URI to deduplicate on.
pub fn play_from_history(item: &PlayHistory) -> Option<PlayRecord> {
    let track = &item.track;
    let id = track.id.as_deref().filter(|s| !s.is_empty())?;
    let mut r = PlayRecord::new(item.played_at, track.duration_ms.unwrap_or(0), PlayKind::Track, PlayOrigin::Api);
    r.uri = Some(format!("spotify:track:{id}"));
    r.track_name = Some(track.name.clone());
    let album_artist = track.album.as_ref().and_then(|a| a.artists.first()).or_else(|| track.artists.first());
    r.artist_name = album_artist.map(|a| a.name.clone());
    r.artist_id = album_artist.and_then(|a| a.id.clone());
    r.album_name = track.album.as_ref().map(|a| a.name.clone());
    r.context_type = item.context.as_ref().and_then(|c| c.kind.clone());
    r.context_uri = item.context.as_ref().and_then(|c| c.uri.clone());
    Some(r)
}

/// The catalog entry of a recently-played track.
fn track_from_history(item: &PlayHistory) -> Option<Track> {
    let t = &item.track;
    Some(Track {
        spotify_id: t.id.clone().filter(|s| !s.is_empty())?,
        name: t.name.clone(),
        artists: t.artists.iter().map(|a| ArtistRef { spotify_id: a.id.clone(), name: a.name.clone() }).collect(),
        album_name: t.album.as_ref().map(|a| a.name.clone()),
        album_id: t.album.as_ref().and_then(|a| a.id.clone()),
        album_image_url: t.image(),
        duration_ms: t.duration_ms,
        explicit: None,
        audio_features: None,
    })
}

/// What earlier syncs left among the user's newest 100 entries: the newest synced play
/// (the cursor of the next sync) and the album artists of the synced plays (id → name),
/// so that artists an earlier sync could not look up are tried again.
async fn synced_so_far(store: &dyn Store, user_id: &str) -> Result<(Option<DateTime<Utc>>, BTreeMap<String, String>)> {
    // Synced plays are the newest ones unless an export was imported since; then there
    // is no cursor, and the duplicate rule makes fetching all 50 plays safe.
    let query = HistoryQuery { limit: 100, ..HistoryQuery::default() };
    let synced: Vec<_> = store
        .history_items(user_id, &query)
        .await?
        .into_iter()
        .filter(|e| e.record.origin == PlayOrigin::Api)
        .collect();
    let cursor = synced.iter().map(|e| e.record.played_at).max();
    let artists = synced
        .into_iter()
        .filter_map(|e| Some((e.record.artist_id?, e.record.artist_name.unwrap_or_default())))
        .collect();
    Ok((cursor, artists))
}

/// Syncs the user's recently played tracks into `store`, then enriches the catalog.
/// `access_token` must be valid (the caller refreshes it). Errors of the recently-played
/// call fail the sync and store nothing; errors of the enrichment end it early.
pub async fn sync_recent_plays(
    client: &SpotifyClient,
    store: &dyn Store,
    user_id: &str,
    access_token: &str,
    opts: &SyncOptions,
) -> Result<SyncReport> {
    let (cursor, mut artists) = synced_so_far(store, user_id).await?;
    let after = cursor.map(|t| t.timestamp_millis());
    let recent = client.recently_played(user_id, access_token, 50, after).await?;
    let mut report = SyncReport {
        fetched: recent.items.len() as u64,
        newest: recent.items.iter().map(|i| i.played_at).max(),
        ..SyncReport::default()
    };
    let plays: Vec<PlayRecord> = recent.items.iter().filter_map(play_from_history).collect();
    if !plays.is_empty() {
        let mut batch = store.begin_batch(user_id, &opts.rules).await?;
        match batch.insert(plays).await {
            Ok(outcome) => {
                batch.commit().await?;
                report.stored = outcome;
            }
            Err(e) => {
                batch.rollback().await.ok();
                return Err(e);
            }
        }
    }

    let tracks: Vec<Track> = recent.items.iter().filter_map(track_from_history).collect();
    if !tracks.is_empty() {
        store.upsert_tracks(&tracks).await?;
        report.tracks_cataloged = tracks.len() as u64;
    }

    // Artist id → name: of the new plays' tracks and albums, and of earlier synced plays.
    artists.extend(
        recent
            .items
            .iter()
            .flat_map(|i| i.track.artists.iter().chain(i.track.album.iter().flat_map(|a| a.artists.iter())))
            .filter_map(|a| Some((a.id.clone()?, a.name.clone()))),
    );
    let mut unknown = Vec::new();
    for (id, name) in artists {
        match store.artist(&id).await {
            Ok(_) => {}
            Err(Error::NotFound { .. }) => unknown.push((id, name)),
            Err(e) => return Err(e),
        }
    }
    for (looked_up, (id, name)) in unknown.iter().enumerate() {
        if looked_up == opts.max_artist_lookups {
            report.enrichment_stopped =
                Some(format!("looked up {looked_up} artists, the most per sync; the rest come with the next syncs"));
            break;
        }
        match client.artist(user_id, access_token, id).await {
            Ok(a) => {
                let artist = Artist {
                    spotify_id: Some(a.id.clone()),
                    name: a.name.clone(),
                    genres: a.genres.clone(),
                    image_url: first_image(&a.images),
                };
                store.upsert_artists(&[artist]).await?;
                report.artists_enriched += 1;
            }
            // Spotify does not know the artist (any more): keep it without genres, so that
            // it is not asked for again.
            Err(Error::Spotify { status: 404, .. }) => {
                let artist =
                    Artist { spotify_id: Some(id.clone()), name: name.clone(), genres: Vec::new(), image_url: None };
                store.upsert_artists(&[artist]).await?;
                report.artists_enriched += 1;
            }
            // A rate limit or an outage is not the artist's fault: try again next sync.
            Err(e @ (Error::RateLimited { .. } | Error::Spotify { .. })) => {
                report.enrichment_stopped = Some(format!("artist lookups stopped: {e}"));
                break;
            }
            Err(e) => return Err(e),
        }
    }
    report.artists_pending = unknown.len() as u64 - report.artists_enriched;
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(json: serde_json::Value) -> PlayHistory {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn a_synced_play_takes_the_album_artist_and_the_track_length() {
        let featured = item(serde_json::json!({
            "track": {"id": "t1", "name": "Song", "duration_ms": 200000,
                      "artists": [{"id": "guest", "name": "Guest"}, {"id": "main", "name": "Main"}],
                      "album": {"id": "al", "name": "Album", "artists": [{"id": "main", "name": "Main"}]}},
            "played_at": "2026-11-23T21:00:00.123Z",
            "context": {"type": "playlist", "uri": "spotify:playlist:p"}
        }));
        let r = play_from_history(&featured).unwrap();
        assert_eq!(r.uri.as_deref(), Some("spotify:track:t1"));
        assert_eq!((r.artist_name.as_deref(), r.artist_id.as_deref()), (Some("Main"), Some("main")));
        assert_eq!((r.album_name.as_deref(), r.ms_played), (Some("Album"), 200000));
        assert_eq!((r.origin, r.kind), (PlayOrigin::Api, PlayKind::Track));
        assert_eq!(r.context_type.as_deref(), Some("playlist"));
        let t = track_from_history(&featured).unwrap();
        assert_eq!(t.artists.len(), 2);

        // A local file has no id: nothing to deduplicate on, so it is not stored.
        let local = item(serde_json::json!({
            "track": {"id": null, "name": "Local", "artists": [{"id": null, "name": "Me"}]},
            "played_at": "2026-11-23T21:00:00Z"
        }));
        assert!(play_from_history(&local).is_none() && track_from_history(&local).is_none());
    }
}
