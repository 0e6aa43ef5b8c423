//! The play rules: what counts as a play, when two entries are the same play, and the
//! keys under which plays are grouped (artist, album, track). Every store and the
//! analytics engine use these functions, so the rules live in exactly one place.

use crate::model::{PlayAnchor, PlayKind, PlayRecord};
use chrono::{DateTime, Duration, Utc};

/// One minute, the precision of account data's end times.
pub(crate) const MINUTE_MS: i64 = 60_000;

/// Tunable play rules. The defaults are the documented ones (README, "Play rules").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlayRules {
    /// A music entry counts as a play from this many milliseconds (Spotify's 30 s).
    pub min_play_ms: i64,
    /// Two entries of the same item ending within this window are the same play.
    pub duplicate_window: Duration,
}

impl PlayRules {
    /// The end times of the stored plays that entries ending between `first` and `last`
    /// can be duplicates of: what a store reads (plays of the entries' kinds) to plan a
    /// chunk. `stored_window` is the widest duplicate window the user's plays were ever
    /// stored under (see [`PlayRules::widest_window`]).
    ///
    /// An entry ending at `t` matches a play anchored within the window `W` of `t`, where
    /// either time may stand for a whole minute: anchors in `[t - W - 1 min, t + W + 1
    /// min]`. A play's record matched its anchor the same way when it was stored, under
    /// the window of that day: it ends within that window and a minute of the anchor.
    /// Together: within `W + stored_window + 2 min`. Reading by the current window alone
    /// would miss plays stored under a wider one, and a later import would add them again.
    pub fn candidate_window(
        &self,
        stored_window: Duration,
        first: DateTime<Utc>,
        last: DateTime<Utc>,
    ) -> (DateTime<Utc>, DateTime<Utc>) {
        let reach =
            self.duplicate_window + self.widest_window(Some(stored_window)) + Duration::milliseconds(2 * MINUTE_MS);
        (first - reach, last + reach)
    }

    /// The widest duplicate window a user's plays have been stored under once a batch
    /// under these rules begins: what the store keeps for [`PlayRules::candidate_window`]
    /// (`stored` is what it kept so far, `None` for a new user).
    pub fn widest_window(&self, stored: Option<Duration>) -> Duration {
        stored.map_or(self.duplicate_window, |w| w.max(self.duplicate_window))
    }
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

    /// Whether `self` is the same play as `other`, a play first stored from `other` (so
    /// anchored at its own end time): the same item ([`PlayRecord::same_item_keyed`]),
    /// within the duplicate window ([`PlayRecord::anchor_distance_ms`]).
    pub fn same_play(&self, other: &PlayRecord, rules: &PlayRules) -> bool {
        self.same_item_keyed(&self.keys(rules), other, &other.keys(rules))
            && self.anchor_distance_ms(PlayAnchor::of(other)) <= rules.duplicate_window.num_milliseconds()
    }

    /// Whether `self` and `other` are entries of the same item: same kind, and the same
    /// URI when both have one, otherwise the same track and artist name (episode and
    /// show, chapter and book); entries without any metadata match only an entry with
    /// the same duration.
    pub fn same_item_keyed(&self, keys: &PlayKeys, other: &PlayRecord, other_keys: &PlayKeys) -> bool {
        if self.kind != other.kind {
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

    /// How far, in milliseconds, this entry's end time is from a play's `anchor`: the
    /// entry is that play (when of the same item) if this is within the duplicate window.
    ///
    /// A play's anchor is the end time of the entry that first stored it. It never moves,
    /// not even when a richer entry replaces the record: measured from the record's own
    /// end time, a run of one track's entries, each within the window of the next, walked
    /// the play away from the entries it had absorbed, and importing them again added
    /// them. From a fixed anchor, every entry a play absorbed stays within its window.
    ///
    /// Account data gives end times to the minute (the minute's start). Compared with a
    /// time to the millisecond, such a time stands for any instant of its minute, and the
    /// distance is to the nearest one: the account-data row of a skip that joined a play
    /// 55 s later still finds that play, and extended entries imported after the account
    /// data find the plays their rows started. Minute against minute, and millisecond
    /// against millisecond, the times compare as they are.
    pub fn anchor_distance_ms(&self, anchor: PlayAnchor) -> i64 {
        anchor_distance_ms(
            self.played_at.timestamp_millis(),
            self.origin.to_the_minute(),
            anchor.at.timestamp_millis(),
            anchor.to_the_minute,
        )
    }

    /// Whether `self` should replace `other` when both are the same play: the richer
    /// origin wins (extended history over API over account data), then the longer play.
    pub fn richer_than(&self, other: &PlayRecord) -> bool {
        (self.origin, self.ms_played) > (other.origin, other.ms_played)
    }
}

/// [`PlayRecord::anchor_distance_ms`] in whole milliseconds: an entry ending at `at_ms`
/// (to the minute or not) against an anchor at `anchor_ms` (to the minute or not).
pub(crate) fn anchor_distance_ms(at_ms: i64, at_minute: bool, anchor_ms: i64, anchor_minute: bool) -> i64 {
    let last_of_minute = |start: i64| start + MINUTE_MS - 1;
    match (at_minute, anchor_minute) {
        (true, false) => (at_ms - anchor_ms).max(anchor_ms - last_of_minute(at_ms)).max(0),
        (false, true) => (anchor_ms - at_ms).max(at_ms - last_of_minute(anchor_ms)).max(0),
        _ => (at_ms - anchor_ms).abs(),
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
    fn a_time_to_the_minute_stands_for_its_whole_minute_against_a_finer_one() {
        let rules = PlayRules::default();
        let ext = track(0, PlayOrigin::ExtendedHistory, Some("spotify:track:1"));
        let acc = |secs| track(secs, PlayOrigin::AccountData, None);
        // The minute from -100 s reaches -40 s: 40 s from the extended entry, both ways.
        assert!(acc(-100).same_play(&ext, &rules));
        assert!(ext.same_play(&acc(-100), &rules));
        // The minute from -121 s ends 61 s before it.
        assert!(!acc(-121).same_play(&ext, &rules));
        assert!(!ext.same_play(&acc(-121), &rules));
        // Minute against minute, the times compare as they are.
        assert!(acc(60).same_play(&acc(0), &rules));
        assert!(!acc(-100).same_play(&acc(0), &rules));
        assert_eq!(acc(-100).anchor_distance_ms(PlayAnchor::of(&acc(0))), 100_000);
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
