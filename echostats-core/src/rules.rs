//! The play rules: what counts as a play, when two entries are the same play, and the
//! keys under which plays are grouped (artist, album, track). Every store and the
//! analytics engine use these functions, so the rules live in exactly one place.

use crate::model::{PlayKind, PlayRecord};
use chrono::Duration;

/// Tunable play rules. The defaults are the documented ones (README, "Play rules").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlayRules {
    /// A music entry counts as a play from this many milliseconds (Spotify's 30 s).
    pub min_play_ms: i64,
    /// Two entries of the same item ending within this window are the same play.
    pub duplicate_window: Duration,
}

impl Default for PlayRules {
    fn default() -> Self {
        PlayRules { min_play_ms: 30_000, duplicate_window: Duration::seconds(60) }
    }
}

/// Normalises a name for grouping and matching: trimmed, lower-case, inner white space
/// collapsed to one space.
pub fn normalize_name(name: &str) -> String {
    // Most names are ASCII with single spaces between words: copied whole and lowered
    // in place, they need no walk word by word (this runs three times per imported entry).
    if name.is_ascii() && single_spaced(name.as_bytes()) {
        let mut out = name.to_owned();
        out.make_ascii_lowercase();
        return out;
    }
    normalize_chars(name)
}

/// No white space but single spaces between words (ASCII white space is what
/// `char::is_whitespace` says it is: tab to carriage return, and space).
fn single_spaced(bytes: &[u8]) -> bool {
    let mut after_space = true;
    for &b in bytes {
        match b {
            b' ' if after_space => return false,
            b' ' => after_space = true,
            b'\t'..=b'\r' => return false,
            _ => after_space = false,
        }
    }
    !after_space || bytes.is_empty()
}

/// [`normalize_name`] for any text, word by word.
fn normalize_chars(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for word in name.split_whitespace() {
        if !out.is_empty() {
            out.push(' ');
        }
        for c in word.chars() {
            out.extend(c.to_lowercase());
        }
    }
    out
}

fn norm_nonempty(name: &Option<String>) -> Option<String> {
    name.as_deref().map(normalize_name).filter(|n| !n.is_empty())
}

fn join_keys(a: Option<&String>, b: Option<&String>) -> Option<String> {
    let (a, b) = (a?, b?);
    // Built by hand: `format!` costs several percent of an import (three keys per entry).
    let mut key = String::with_capacity(a.len() + 1 + b.len());
    key.push_str(a);
    key.push('\u{1f}');
    key.push_str(b);
    Some(key)
}

/// The grouping and matching keys of one record, derived from its fields.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PlayKeys {
    /// Counts as a play under the rules (music, long enough).
    pub counted: bool,
    /// Item identity by names: track + artist, episode + show, chapter + book.
    pub name_key: Option<String>,
    /// Track grouping key (tracks only): the name key, or the URI when names are missing.
    pub track_key: Option<String>,
    /// Artist grouping key (tracks only): the normalised album-artist name.
    pub artist_key: Option<String>,
    /// Album grouping key (tracks only): normalised album name + album artist.
    pub album_key: Option<String>,
}

impl PlayRecord {
    /// The keys of this record under `rules`.
    pub fn keys(&self, rules: &PlayRules) -> PlayKeys {
        let (item, parent) = match self.kind {
            PlayKind::Track => (&self.track_name, &self.artist_name),
            PlayKind::Episode => (&self.episode_name, &self.show_name),
            PlayKind::Audiobook => (&self.audiobook_chapter_title, &self.audiobook_title),
            PlayKind::Unknown => return PlayKeys::default(),
        };
        let (item, parent) = (norm_nonempty(item), norm_nonempty(parent));
        let name_key = join_keys(item.as_ref(), parent.as_ref());
        if self.kind != PlayKind::Track {
            return PlayKeys { name_key, ..PlayKeys::default() };
        }
        let album_key = join_keys(norm_nonempty(&self.album_name).as_ref(), parent.as_ref());
        let track_key = name_key.clone().or_else(|| self.uri.clone());
        PlayKeys {
            counted: self.ms_played >= rules.min_play_ms && track_key.is_some(),
            name_key,
            track_key,
            artist_key: parent,
            album_key,
        }
    }

    /// Whether `self` and `other` are the same play under the duplicate rule: same kind,
    /// end times within the window, and the same item (by URI when both have one,
    /// otherwise by track and artist name; entries without any metadata match only an
    /// entry with the same duration).
    pub fn same_play(&self, other: &PlayRecord, rules: &PlayRules) -> bool {
        self.same_play_keyed(&self.keys(rules), other, &other.keys(rules), rules)
    }

    /// [`PlayRecord::same_play`] with both records' keys already computed.
    pub fn same_play_keyed(
        &self,
        keys: &PlayKeys,
        other: &PlayRecord,
        other_keys: &PlayKeys,
        rules: &PlayRules,
    ) -> bool {
        if self.kind != other.kind || (self.played_at - other.played_at).abs() > rules.duplicate_window {
            return false;
        }
        if let (Some(a), Some(b)) = (&self.uri, &other.uri) {
            return a == b;
        }
        match (&keys.name_key, &other_keys.name_key) {
            (Some(a), Some(b)) => a == b,
            (None, None) => self.uri.is_none() && other.uri.is_none() && self.ms_played == other.ms_played,
            _ => false,
        }
    }

    /// Whether `self` should replace `other` when both are the same play: the richer
    /// origin wins (extended history over API over account data), then the longer play.
    pub fn richer_than(&self, other: &PlayRecord) -> bool {
        (self.origin, self.ms_played) > (other.origin, other.ms_played)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::PlayOrigin;
    use chrono::{TimeZone, Utc};

    fn track(secs: i64, origin: PlayOrigin, uri: Option<&str>) -> PlayRecord {
        let mut r =
            PlayRecord::new(Utc.timestamp_opt(1_700_000_000 + secs, 0).unwrap(), 200_000, PlayKind::Track, origin);
        r.uri = uri.map(String::from);
        r.track_name = Some("Everything In Its Right Place".into());
        r.artist_name = Some("Radiohead ".into());
        r.album_name = Some("Kid A".into());
        r
    }

    #[test]
    fn normalisation_folds_case_and_space() {
        assert_eq!(normalize_name("  The   Beatles "), "the beatles");
        assert_eq!(normalize_name("ÉDITH Piaf"), "édith piaf");
        // The ASCII fast path agrees with the general one, white space of every kind included.
        for name in [
            "",
            " ",
            "\t\n\x0b\x0c\r",
            "A\x0bB\x0cC\rD\tE\nF",
            "  Mixed CASE  words  ",
            "x",
            "AC/DC -- Live!",
            "a\x1fb",
        ] {
            assert_eq!(normalize_name(name), normalize_chars(name), "{name:?}");
        }
    }

    #[test]
    fn account_row_matches_extended_row_by_names_within_window() {
        let rules = PlayRules::default();
        let ext = track(0, PlayOrigin::ExtendedHistory, Some("spotify:track:1"));
        let acc = track(59, PlayOrigin::AccountData, None);
        assert!(acc.same_play(&ext, &rules));
        assert!(ext.richer_than(&acc));
        assert!(!track(61, PlayOrigin::AccountData, None).same_play(&ext, &rules));
    }

    #[test]
    fn different_uris_are_different_items() {
        let rules = PlayRules::default();
        let a = track(0, PlayOrigin::ExtendedHistory, Some("spotify:track:1"));
        let b = track(10, PlayOrigin::ExtendedHistory, Some("spotify:track:2"));
        assert!(!a.same_play(&b, &rules));
    }

    #[test]
    fn short_plays_are_not_counted_and_podcasts_never() {
        let rules = PlayRules::default();
        let mut r = track(0, PlayOrigin::ExtendedHistory, Some("spotify:track:1"));
        r.ms_played = 29_999;
        assert!(!r.keys(&rules).counted);
        r.ms_played = 30_000;
        assert!(r.keys(&rules).counted);
        r.kind = PlayKind::Episode;
        assert!(!r.keys(&rules).counted);
    }
}
