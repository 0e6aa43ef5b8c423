//! Extended streaming history rows (`endsong_N.json`, `Streaming_History_Audio_*.json`).

use super::row::RawEntry;
use crate::model::{PlayAnchor, PlayKind, PlayOrigin, PlayRecord};
use chrono::{DateTime, Utc};

/// `offline_timestamp` values above this are milliseconds, below it seconds
/// (10^11 seconds is the year 5138; 10^11 milliseconds is March 1973).
pub(crate) const MILLIS_THRESHOLD: i64 = 100_000_000_000;

/// Converts one extended history row. Errors (fatal for the file) name the field.
pub(crate) fn to_record(raw: RawEntry) -> Result<PlayRecord, String> {
    let ts = raw.ts.required("ts")?;
    let played_at = DateTime::parse_from_rfc3339(ts.trim())
        .map_err(|e| format!("`ts` is not an RFC 3339 timestamp like \"2024-05-06T18:43:07Z\" ({e}): {ts:?}"))?
        .with_timezone(&Utc);
    let ms_played = raw.ms_played.required("ms_played")?;
    if ms_played < 0 {
        return Err(format!("`ms_played` is negative ({ms_played})"));
    }

    let track_uri = raw.spotify_track_uri.text("spotify_track_uri")?;
    let episode_uri = raw.spotify_episode_uri.text("spotify_episode_uri")?;
    let chapter_uri = raw.audiobook_chapter_uri.text("audiobook_chapter_uri")?;
    let audiobook_uri = raw.audiobook_uri.text("audiobook_uri")?;
    let track_name = raw.master_metadata_track_name.text("master_metadata_track_name")?;
    let artist_name = raw.master_metadata_album_artist_name.text("master_metadata_album_artist_name")?;

    let (kind, uri) = if let Some(uri) = track_uri.filter(|u| u.starts_with("spotify:track:")) {
        (PlayKind::Track, Some(uri))
    } else if let Some(uri) = episode_uri {
        (PlayKind::Episode, Some(uri))
    } else if chapter_uri.is_some() || audiobook_uri.is_some() {
        (PlayKind::Audiobook, chapter_uri)
    } else if track_name.is_some() && artist_name.is_some() {
        (PlayKind::Track, None)
    } else if raw.episode_name.is_named() && raw.episode_show_name.is_named() {
        // No URI but both names: how an exported episode from the account data reads.
        (PlayKind::Episode, None)
    } else {
        (PlayKind::Unknown, None)
    };

    let mut r = PlayRecord::new(played_at, ms_played, kind, PlayOrigin::ExtendedHistory);
    r.uri = uri;
    r.track_name = track_name;
    r.artist_name = artist_name;
    r.album_name = raw.master_metadata_album_album_name.text("master_metadata_album_album_name")?;
    r.episode_name = raw.episode_name.text("episode_name")?;
    r.show_name = raw.episode_show_name.text("episode_show_name")?;
    r.audiobook_title = raw.audiobook_title.text("audiobook_title")?;
    r.audiobook_uri = audiobook_uri;
    r.audiobook_chapter_title = raw.audiobook_chapter_title.text("audiobook_chapter_title")?;
    r.platform = raw.platform.text("platform")?;
    r.conn_country = raw.conn_country.text("conn_country")?;
    r.reason_start = raw.reason_start.text("reason_start")?;
    r.reason_end = raw.reason_end.text("reason_end")?;
    r.shuffle = raw.shuffle.optional("shuffle")?;
    r.skipped = raw.skipped.optional("skipped")?;
    r.offline = raw.offline.optional("offline")?;
    r.offline_timestamp = offline_time(raw.offline_timestamp.optional("offline_timestamp")?);
    r.incognito = raw.incognito_mode.optional("incognito_mode")?;
    // What `echostats export` writes beside Spotify's fields (crate::export).
    if let Some(origin) = raw.echostats_origin.text("echostats_origin")? {
        r.origin = PlayOrigin::ALL.iter().copied().find(|o| o.as_str() == origin).ok_or_else(|| {
            let names: Vec<_> = PlayOrigin::ALL.iter().map(|o| o.as_str()).collect();
            format!("`echostats_origin` must be one of {}, found {origin:?}", names.join(", "))
        })?;
    }
    r.artist_id = raw.echostats_artist_id.text("echostats_artist_id")?;
    r.context_type = raw.echostats_context_type.text("echostats_context_type")?;
    r.context_uri = raw.echostats_context_uri.text("echostats_context_uri")?;
    Ok(r)
}

/// Converts one extended history row, with the anchor of the play it stands for when
/// `echostats export` wrote one (`echostats_anchor`, epoch milliseconds, and
/// `echostats_anchor_minute`).
pub(crate) fn to_play(mut raw: RawEntry) -> Result<(PlayRecord, Option<PlayAnchor>), String> {
    let anchor_ms = std::mem::take(&mut raw.echostats_anchor).optional("echostats_anchor")?;
    let to_the_minute = std::mem::take(&mut raw.echostats_anchor_minute).optional("echostats_anchor_minute")?;
    let record = to_record(raw)?;
    let anchor = match anchor_ms {
        Some(ms) => {
            let at = DateTime::from_timestamp_millis(ms)
                .ok_or_else(|| format!("`echostats_anchor` is not a time in milliseconds: {ms}"))?;
            Some(PlayAnchor { at, to_the_minute: to_the_minute.unwrap_or(false) })
        }
        None => None,
    };
    Ok((record, anchor))
}

/// `offline_timestamp` is seconds in some years and milliseconds in others; 0 means none.
fn offline_time(value: Option<i64>) -> Option<DateTime<Utc>> {
    match value? {
        v if v <= 0 => None,
        v if v > MILLIS_THRESHOLD => DateTime::from_timestamp_millis(v),
        v => DateTime::from_timestamp(v, 0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn convert(json: &str) -> Result<PlayRecord, String> {
        to_record(serde_json::from_str(json).unwrap())
    }

    #[test]
    fn an_exported_play_brings_its_anchor() {
        let play = |extra: &str| {
            to_play(
                serde_json::from_str(&format!(r#"{{"ts": "2019-02-11T05:02:33Z", "ms_played": 1{extra}}}"#)).unwrap(),
            )
        };
        let (r, anchor) = play(r#", "echostats_anchor": 1549861313000, "echostats_anchor_minute": true"#).unwrap();
        assert_eq!(r.played_at, Utc.with_ymd_and_hms(2019, 2, 11, 5, 2, 33).unwrap());
        let at = Utc.with_ymd_and_hms(2019, 2, 11, 5, 1, 53).unwrap();
        assert_eq!(anchor, Some(PlayAnchor { at, to_the_minute: true }));
        assert_eq!(play("").unwrap().1, None);
        let err = play(r#", "echostats_anchor": "yesterday""#).unwrap_err();
        assert!(err.contains("`echostats_anchor` must be"), "{err}");
    }

    #[test]
    fn track_row_keeps_metadata() {
        let r = convert(
            r#"{"ts": "2019-02-11T05:02:33Z", "platform": "Android OS 9 API 28 (samsung, SM-G960F)", "ms_played": 213000,
                "conn_country": "DE", "master_metadata_track_name": "Idioteque", "master_metadata_album_artist_name": "Radiohead",
                "master_metadata_album_album_name": "Kid A", "spotify_track_uri": "spotify:track:2dkc", "episode_name": null,
                "episode_show_name": null, "spotify_episode_uri": null, "reason_start": "trackdone", "reason_end": "fwdbtn",
                "shuffle": true, "skipped": null, "offline": false, "offline_timestamp": 1549861353656, "incognito_mode": false}"#,
        )
        .unwrap();
        assert_eq!(r.played_at, Utc.with_ymd_and_hms(2019, 2, 11, 5, 2, 33).unwrap());
        assert_eq!((r.kind, r.origin, r.ms_played), (PlayKind::Track, PlayOrigin::ExtendedHistory, 213000));
        assert_eq!(r.uri.as_deref(), Some("spotify:track:2dkc"));
        assert_eq!(r.artist_name.as_deref(), Some("Radiohead"));
        assert_eq!(r.album_name.as_deref(), Some("Kid A"));
        assert_eq!(r.reason_end.as_deref(), Some("fwdbtn"));
        assert_eq!((r.shuffle, r.skipped, r.offline, r.incognito), (Some(true), None, Some(false), Some(false)));
        assert_eq!(r.offline_timestamp, DateTime::from_timestamp_millis(1549861353656));
    }

    #[test]
    fn offline_timestamp_units() {
        assert_eq!(offline_time(Some(1699136230)), Some(Utc.with_ymd_and_hms(2023, 11, 4, 22, 17, 10).unwrap()));
        assert_eq!(offline_time(Some(1549861353656)), DateTime::from_timestamp_millis(1549861353656));
        assert_eq!(offline_time(Some(0)), None);
        assert_eq!(offline_time(Some(-5)), None);
        assert_eq!(offline_time(None), None);
    }

    #[test]
    fn kind_precedence() {
        let base = r#""ts": "2024-01-01T00:00:00Z", "ms_played": 1"#;
        let kind = |extra: &str| convert(&format!("{{{base}, {extra}}}")).unwrap();
        assert_eq!(
            kind(r#""spotify_episode_uri": "spotify:episode:e", "episode_name": "E", "episode_show_name": "S""#).kind,
            PlayKind::Episode
        );
        let book = kind(
            r#""audiobook_uri": "spotify:show:b", "audiobook_chapter_uri": "spotify:episode:c", "audiobook_title": "B""#,
        );
        assert_eq!((book.kind, book.uri.as_deref()), (PlayKind::Audiobook, Some("spotify:episode:c")));
        let named = kind(r#""master_metadata_track_name": "T", "master_metadata_album_artist_name": "A""#);
        assert_eq!((named.kind, named.uri), (PlayKind::Track, None));
        assert_eq!(kind(r#""master_metadata_track_name": "T""#).kind, PlayKind::Unknown);
        assert_eq!(kind(r#""spotify_track_uri": """#).kind, PlayKind::Unknown);
    }

    #[test]
    fn bad_values_are_named() {
        assert_eq!(convert(r#"{"ms_played": 1}"#).unwrap_err(), "missing `ts`");
        assert_eq!(convert(r#"{"ts": "2024-01-01T00:00:00Z"}"#).unwrap_err(), "missing `ms_played`");
        assert_eq!(
            convert(r#"{"ts": "2024-01-01T00:00:00Z", "ms_played": -3}"#).unwrap_err(),
            "`ms_played` is negative (-3)"
        );
        assert!(convert(r#"{"ts": "yesterday", "ms_played": 1}"#)
            .unwrap_err()
            .starts_with("`ts` is not an RFC 3339 timestamp"));
        assert_eq!(
            convert(r#"{"ts": "2024-01-01T00:00:00Z", "ms_played": 1, "shuffle": "yes"}"#).unwrap_err(),
            "`shuffle` must be a boolean, found the string \"yes\""
        );
    }
}
