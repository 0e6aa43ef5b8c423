//! Account data rows (`StreamingHistory*.json`): one year, names only, minute precision.

use super::row::{Field, RawEntry};
use crate::model::{PlayKind, PlayOrigin, PlayRecord};
use chrono::{DateTime, NaiveDateTime, Utc};

/// What one account row becomes.
// Moved once per row and never stored in bulk: boxing the record would only add an
// allocation per row.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Row {
    /// A play.
    Record(PlayRecord),
    /// A row that cannot be a play (a name is missing); not fatal for the file.
    Rejected(String),
}

/// Reads `endTime` ("YYYY-MM-DD HH:MM", UTC) and `msPlayed`: the fields every account
/// row must have. Errors are fatal for the file.
pub(crate) fn timing(end_time: Field<String>, ms_played: Field<i64>) -> Result<(DateTime<Utc>, i64), String> {
    let text = end_time.required("endTime")?;
    let trimmed = text.trim();
    let played_at = NaiveDateTime::parse_from_str(trimmed, "%Y-%m-%d %H:%M")
        .or_else(|_| NaiveDateTime::parse_from_str(trimmed, "%Y-%m-%d %H:%M:%S"))
        .map_err(|_| format!("`endTime` is not a time like \"2024-05-06 18:43\": {text:?}"))?
        .and_utc();
    let ms = ms_played.required("msPlayed")?;
    if ms < 0 {
        return Err(format!("`msPlayed` is negative ({ms})"));
    }
    Ok((played_at, ms))
}

/// Converts a music row: a track with artist and track name.
pub(crate) fn music(raw: RawEntry) -> Result<Row, String> {
    let (played_at, ms) = timing(raw.end_time, raw.ms_played_account)?;
    let artist = raw.artist_name.text("artistName")?;
    let track = raw.track_name.text("trackName")?;
    let (Some(artist), Some(track)) = (artist.as_ref(), track.as_ref()) else {
        return Ok(Row::Rejected(if artist.is_none() { "missing artistName" } else { "missing trackName" }.into()));
    };
    let mut r = PlayRecord::new(played_at, ms, PlayKind::Track, PlayOrigin::AccountData);
    r.artist_name = Some(artist.clone());
    r.track_name = Some(track.clone());
    Ok(Row::Record(r))
}

/// Converts a podcast row: an episode with show and episode name.
pub(crate) fn podcast(raw: RawEntry) -> Result<Row, String> {
    let (played_at, ms) = timing(raw.end_time, raw.ms_played_account)?;
    let show = raw.podcast_name.text("podcastName")?;
    let episode = raw.account_episode_name.text("episodeName")?;
    let (Some(show), Some(episode)) = (show.as_ref(), episode.as_ref()) else {
        return Ok(Row::Rejected(if show.is_none() { "missing podcastName" } else { "missing episodeName" }.into()));
    };
    let mut r = PlayRecord::new(played_at, ms, PlayKind::Episode, PlayOrigin::AccountData);
    r.show_name = Some(show.clone());
    r.episode_name = Some(episode.clone());
    Ok(Row::Record(r))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn raw(json: &str) -> RawEntry {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn music_row() {
        let row = music(raw(
            r#"{"endTime": "2024-05-06 18:43", "artistName": "Björk", "trackName": "Jóga", "msPlayed": 305000}"#,
        ))
        .unwrap();
        let Row::Record(r) = row else { panic!("{row:?}") };
        assert_eq!(r.played_at, Utc.with_ymd_and_hms(2024, 5, 6, 18, 43, 0).unwrap());
        assert_eq!((r.kind, r.origin, r.ms_played), (PlayKind::Track, PlayOrigin::AccountData, 305000));
        assert_eq!((r.artist_name.as_deref(), r.track_name.as_deref()), (Some("Björk"), Some("Jóga")));
        assert_eq!(r.uri, None);
    }

    #[test]
    fn missing_names_are_rejected_not_fatal() {
        let t = r#""endTime": "2024-05-06 18:43", "msPlayed": 1"#;
        for (json, reason) in [
            (format!(r#"{{{t}, "trackName": "x"}}"#), "missing artistName"),
            (format!(r#"{{{t}, "artistName": null, "trackName": "x"}}"#), "missing artistName"),
            (format!(r#"{{{t}, "artistName": "", "trackName": "x"}}"#), "missing artistName"),
            (format!(r#"{{{t}, "artistName": "a"}}"#), "missing trackName"),
        ] {
            assert_eq!(music(raw(&json)).unwrap(), Row::Rejected(reason.into()), "{json}");
        }
        assert_eq!(
            podcast(raw(&format!(r#"{{{t}, "episodeName": "e"}}"#))).unwrap(),
            Row::Rejected("missing podcastName".into())
        );
    }

    #[test]
    fn podcast_row() {
        let row = podcast(raw(r#"{"endTime": "2024-05-06 07:01", "podcastName": "The Daily", "episodeName": "Monday", "msPlayed": 1200000}"#)).unwrap();
        let Row::Record(r) = row else { panic!("{row:?}") };
        assert_eq!(r.kind, PlayKind::Episode);
        assert_eq!((r.show_name.as_deref(), r.episode_name.as_deref()), (Some("The Daily"), Some("Monday")));
    }

    #[test]
    fn bad_timing_is_fatal() {
        assert_eq!(
            music(raw(r#"{"msPlayed": 1, "artistName": "a", "trackName": "t"}"#)).unwrap_err(),
            "missing `endTime`"
        );
        assert_eq!(
            music(raw(r#"{"endTime": "2024-05-06 18:43", "artistName": "a"}"#)).unwrap_err(),
            "missing `msPlayed`"
        );
        assert!(music(raw(r#"{"endTime": "06/05/2024", "msPlayed": 1}"#))
            .unwrap_err()
            .starts_with("`endTime` is not a time"));
        assert_eq!(
            music(raw(r#"{"endTime": "2024-05-06 18:43", "msPlayed": "1", "artistName": "a"}"#)).unwrap_err(),
            "`msPlayed` must be an integer, found the string \"1\""
        );
        // A wrong type in a name is fatal too, not a rejection.
        assert!(music(raw(r#"{"endTime": "2024-05-06 18:43", "msPlayed": 1, "artistName": 5}"#)).is_err());
    }
}
