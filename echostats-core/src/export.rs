//! Getting a user's plays back out of a store, all of them or a time window, with memory
//! bounded by one chunk of plays whatever the history's size:
//!
//! - [`write_extended_history`]: Spotify's extended streaming history
//!   (`Streaming_History_Audio_*.json`), which this project imports back exactly (a
//!   backup, or a move to another store) and which other tools that read Spotify exports
//!   understand. Four fields Spotify's format has no room for are written beside its own,
//!   under `echostats_` names: the origin of a record that did not come from the extended
//!   history (so that a later import of the real one still replaces it), and the artist id
//!   and playback context of plays synced from the Web API.
//! - [`write_csv`]: one row per play with every stored field, for spreadsheets.
//!
//! Also the JSON-array file writers that the sample generator shares.

use crate::import::extended::MILLIS_THRESHOLD;
use crate::model::{HistoryEntry, PlayAnchor, PlayKind, PlayOrigin, PlayRecord};
use crate::store::{Store, TimeWindow};
use crate::{Error, Result};
use chrono::{DateTime, Datelike, SecondsFormat, Utc};
use serde::Serialize;
use std::fs::{self, File};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

/// Plays read from the store at a time.
const EXPORT_CHUNK: usize = 16_384;
/// An exported extended-history file is closed before it grows past this many bytes:
/// real export files are at most ~12 MB, and the importer parses files up to 32 MB from
/// memory (faster than streaming them).
const EXPORT_FILE_BYTES: u64 = 12_000_000;

/// What [`write_extended_history`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportSummary {
    /// Plays written.
    pub plays: u64,
    /// The files, in order (oldest plays first).
    pub files: Vec<PathBuf>,
}

/// Writes the plays of `user_id` in `window` (or all) into `dir` as Spotify's extended
/// streaming history: `Streaming_History_Audio_{year}[-{year}]_{n}.json` files of at most
/// ~12 MB, oldest plays first. `dir` is created when missing and must not hold extended
/// history files already (an import of the folder would read both). On an error, the
/// files written so far are removed; a file an export that was killed left half-written
/// (hidden, `.partial_N.json`) is removed by the next export into `dir`.
pub async fn write_extended_history(
    store: &dyn Store,
    user_id: &str,
    window: Option<TimeWindow>,
    dir: &Path,
) -> Result<ExportSummary> {
    write_extended_files(store, user_id, window, dir, EXPORT_FILE_BYTES).await
}

async fn write_extended_files(
    store: &dyn Store,
    user_id: &str,
    window: Option<TimeWindow>,
    dir: &Path,
    max_file_bytes: u64,
) -> Result<ExportSummary> {
    fs::create_dir_all(dir).map_err(|e| io_error(dir, e))?;
    let entries = fs::read_dir(dir).map_err(|e| io_error(dir, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| io_error(dir, e))?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if is_partial_file(&name) {
            // Left by an export that was killed before it could clean up: the files it
            // completed would have failed the check below, so this one is all there is.
            fs::remove_file(entry.path()).map_err(|e| io_error(dir, e))?;
            continue;
        }
        if name.starts_with("Streaming_History_Audio_") || name.starts_with("endsong_") {
            return Err(Error::invalid(format!(
                "{} already holds extended streaming history ({name}): export into an empty folder",
                dir.display()
            )));
        }
    }
    let mut files = ExtendedFiles::new(dir, usize::MAX, max_file_bytes);
    let written = store
        .plays_chunked(user_id, window, EXPORT_CHUNK, &mut |chunk: Vec<HistoryEntry>| {
            for e in &chunk {
                files
                    .file_for(ExtendedNaming::Audio, e.record.played_at.year())
                    .and_then(|f| f.push(&ExtendedRow::of(&e.record, e.anchor)))
                    .map_err(|err| io_error(dir, err))?;
            }
            Ok(())
        })
        .await;
    match written.and_then(|()| files.finish().map_err(|e| io_error(dir, e))) {
        Ok((files, plays)) => Ok(ExportSummary { plays: plays as u64, files }),
        Err(e) => {
            files.remove_all();
            Err(e)
        }
    }
}

/// Writes the plays of `user_id` in `window` (or all) to `out` as CSV with a header row,
/// oldest first; returns how many. Times are RFC 3339 in UTC, flags `true`/`false`,
/// unknown values empty.
pub async fn write_csv<W: Write + Send>(
    store: &dyn Store,
    user_id: &str,
    window: Option<TimeWindow>,
    out: W,
) -> Result<u64> {
    let mut csv = csv::Writer::from_writer(out);
    let mut plays = 0u64;
    // The header comes from the first row; an empty history still gets one.
    let mut header = true;
    store
        .plays_chunked(user_id, window, EXPORT_CHUNK, &mut |chunk: Vec<HistoryEntry>| {
            for e in &chunk {
                csv.serialize(CsvRow::of(&e.record)).map_err(csv_error)?;
                header = false;
                plays += 1;
            }
            Ok(())
        })
        .await?;
    if header {
        csv.write_record(CsvRow::COLUMNS).map_err(csv_error)?;
    }
    csv.flush().map_err(|e| io_error(Path::new("the CSV output"), e))?;
    Ok(plays)
}

fn io_error(path: &Path, source: io::Error) -> Error {
    Error::Io { path: path.display().to_string(), source }
}

fn csv_error(e: csv::Error) -> Error {
    match e.into_kind() {
        csv::ErrorKind::Io(source) => Error::Io { path: "the CSV output".into(), source },
        other => Error::invalid(format!("cannot write CSV: {other:?}")),
    }
}

/// An RFC 3339 UTC time, with milliseconds only when it has them (`...:07Z`, `...:07.250Z`).
fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

/// One play as a `Streaming_History_Audio_*.json` entry, fields in Spotify's order (the
/// listener's `ip_addr` is never stored, so it is not written).
#[derive(Serialize)]
struct ExtendedRow<'a> {
    ts: String,
    platform: Option<&'a str>,
    ms_played: i64,
    conn_country: Option<&'a str>,
    master_metadata_track_name: Option<&'a str>,
    master_metadata_album_artist_name: Option<&'a str>,
    master_metadata_album_album_name: Option<&'a str>,
    spotify_track_uri: Option<&'a str>,
    episode_name: Option<&'a str>,
    episode_show_name: Option<&'a str>,
    spotify_episode_uri: Option<&'a str>,
    audiobook_title: Option<&'a str>,
    audiobook_uri: Option<&'a str>,
    audiobook_chapter_uri: Option<&'a str>,
    audiobook_chapter_title: Option<&'a str>,
    reason_start: Option<&'a str>,
    reason_end: Option<&'a str>,
    shuffle: Option<bool>,
    skipped: Option<bool>,
    offline: Option<bool>,
    offline_timestamp: Option<i64>,
    incognito_mode: Option<bool>,
    #[serde(skip_serializing_if = "is_extended_history")]
    echostats_origin: PlayOrigin,
    #[serde(skip_serializing_if = "Option::is_none")]
    echostats_artist_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    echostats_context_type: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    echostats_context_uri: Option<&'a str>,
    /// The play's anchor (epoch ms) when the record does not imply it
    /// ([`HistoryEntry::anchor`]): imported back, the play is matched from it as it was.
    #[serde(skip_serializing_if = "Option::is_none")]
    echostats_anchor: Option<i64>,
    #[serde(skip_serializing_if = "is_false")]
    echostats_anchor_minute: bool,
}

fn is_false(b: &bool) -> bool {
    !*b
}

fn is_extended_history(origin: &PlayOrigin) -> bool {
    *origin == PlayOrigin::ExtendedHistory
}

impl<'a> ExtendedRow<'a> {
    fn of(r: &'a PlayRecord, anchor: Option<PlayAnchor>) -> Self {
        let uri = r.uri.as_deref();
        let uri_of = |kind: PlayKind| uri.filter(|_| r.kind == kind);
        ExtendedRow {
            ts: rfc3339(r.played_at),
            platform: r.platform.as_deref(),
            ms_played: r.ms_played,
            conn_country: r.conn_country.as_deref(),
            master_metadata_track_name: r.track_name.as_deref(),
            master_metadata_album_artist_name: r.artist_name.as_deref(),
            master_metadata_album_album_name: r.album_name.as_deref(),
            // The importer reads a track URI only with this prefix; anything else stays unknown.
            spotify_track_uri: uri.filter(|_| matches!(r.kind, PlayKind::Track | PlayKind::Unknown)),
            episode_name: r.episode_name.as_deref(),
            episode_show_name: r.show_name.as_deref(),
            spotify_episode_uri: uri_of(PlayKind::Episode),
            audiobook_title: r.audiobook_title.as_deref(),
            audiobook_uri: r.audiobook_uri.as_deref(),
            audiobook_chapter_uri: uri_of(PlayKind::Audiobook),
            audiobook_chapter_title: r.audiobook_chapter_title.as_deref(),
            reason_start: r.reason_start.as_deref(),
            reason_end: r.reason_end.as_deref(),
            shuffle: r.shuffle,
            skipped: r.skipped,
            offline: r.offline,
            // Milliseconds, which the importer tells from seconds by size: exact for any
            // time after March 1973; earlier ones (never seen in real exports) in seconds.
            offline_timestamp: r.offline_timestamp.map(|t| match t.timestamp_millis() {
                ms if ms > MILLIS_THRESHOLD => ms,
                _ => t.timestamp(),
            }),
            incognito_mode: r.incognito,
            echostats_origin: r.origin,
            echostats_artist_id: r.artist_id.as_deref(),
            echostats_context_type: r.context_type.as_deref(),
            echostats_context_uri: r.context_uri.as_deref(),
            echostats_anchor: anchor.map(|a| a.at.timestamp_millis()),
            echostats_anchor_minute: anchor.is_some_and(|a| a.to_the_minute),
        }
    }
}

/// One play as a CSV row: every stored field.
#[derive(Serialize)]
struct CsvRow<'a> {
    played_at: String,
    ms_played: i64,
    kind: &'static str,
    origin: &'static str,
    uri: Option<&'a str>,
    track_name: Option<&'a str>,
    artist_name: Option<&'a str>,
    album_name: Option<&'a str>,
    artist_id: Option<&'a str>,
    episode_name: Option<&'a str>,
    show_name: Option<&'a str>,
    audiobook_title: Option<&'a str>,
    audiobook_uri: Option<&'a str>,
    audiobook_chapter_title: Option<&'a str>,
    platform: Option<&'a str>,
    conn_country: Option<&'a str>,
    reason_start: Option<&'a str>,
    reason_end: Option<&'a str>,
    shuffle: Option<bool>,
    skipped: Option<bool>,
    offline: Option<bool>,
    offline_timestamp: Option<String>,
    incognito: Option<bool>,
    context_type: Option<&'a str>,
    context_uri: Option<&'a str>,
}

impl<'a> CsvRow<'a> {
    /// The header, in field order.
    const COLUMNS: [&'static str; 25] = [
        "played_at",
        "ms_played",
        "kind",
        "origin",
        "uri",
        "track_name",
        "artist_name",
        "album_name",
        "artist_id",
        "episode_name",
        "show_name",
        "audiobook_title",
        "audiobook_uri",
        "audiobook_chapter_title",
        "platform",
        "conn_country",
        "reason_start",
        "reason_end",
        "shuffle",
        "skipped",
        "offline",
        "offline_timestamp",
        "incognito",
        "context_type",
        "context_uri",
    ];

    fn of(r: &'a PlayRecord) -> Self {
        CsvRow {
            played_at: rfc3339(r.played_at),
            ms_played: r.ms_played,
            kind: r.kind.as_str(),
            origin: r.origin.as_str(),
            uri: r.uri.as_deref(),
            track_name: r.track_name.as_deref(),
            artist_name: r.artist_name.as_deref(),
            album_name: r.album_name.as_deref(),
            artist_id: r.artist_id.as_deref(),
            episode_name: r.episode_name.as_deref(),
            show_name: r.show_name.as_deref(),
            audiobook_title: r.audiobook_title.as_deref(),
            audiobook_uri: r.audiobook_uri.as_deref(),
            audiobook_chapter_title: r.audiobook_chapter_title.as_deref(),
            platform: r.platform.as_deref(),
            conn_country: r.conn_country.as_deref(),
            reason_start: r.reason_start.as_deref(),
            reason_end: r.reason_end.as_deref(),
            shuffle: r.shuffle,
            skipped: r.skipped,
            offline: r.offline,
            offline_timestamp: r.offline_timestamp.map(rfc3339),
            incognito: r.incognito,
            context_type: r.context_type.as_deref(),
            context_uri: r.context_uri.as_deref(),
        }
    }
}

// ---------------------------------------------------------------------------------------
// JSON-array files as Spotify writes them (shared with the sample generator).

/// Formats a flat object as an element of a top-level array indented by two spaces, the
/// way Spotify's files look (`[\n  {\n    "ts": ...`).
struct RowFormatter;

impl serde_json::ser::Formatter for RowFormatter {
    fn begin_object<W: ?Sized + Write>(&mut self, w: &mut W) -> io::Result<()> {
        w.write_all(b"{")
    }
    fn end_object<W: ?Sized + Write>(&mut self, w: &mut W) -> io::Result<()> {
        w.write_all(b"\n  }")
    }
    fn begin_object_key<W: ?Sized + Write>(&mut self, w: &mut W, first: bool) -> io::Result<()> {
        w.write_all(if first { b"\n    " } else { b",\n    " })
    }
    fn begin_object_value<W: ?Sized + Write>(&mut self, w: &mut W) -> io::Result<()> {
        w.write_all(b": ")
    }
}

struct Counting<'a, W: Write> {
    inner: &'a mut W,
    n: u64,
}

impl<W: Write> Write for Counting<'_, W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.n += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// A JSON array file written row by row.
pub(crate) struct JsonArray {
    w: BufWriter<File>,
    path: PathBuf,
    pub(crate) entries: usize,
    bytes: u64,
}

impl JsonArray {
    pub(crate) fn create(path: PathBuf) -> io::Result<Self> {
        let mut w = BufWriter::with_capacity(1 << 17, File::create(&path)?);
        w.write_all(b"[")?;
        Ok(JsonArray { w, path, entries: 0, bytes: 1 })
    }

    pub(crate) fn push<T: Serialize>(&mut self, row: &T) -> io::Result<()> {
        let sep: &[u8] = if self.entries == 0 { b"\n  " } else { b",\n  " };
        self.w.write_all(sep)?;
        let mut counting = Counting { inner: &mut self.w, n: sep.len() as u64 };
        row.serialize(&mut serde_json::Serializer::with_formatter(&mut counting, RowFormatter))?;
        self.bytes += counting.n;
        self.entries += 1;
        Ok(())
    }

    pub(crate) fn finish(mut self) -> io::Result<PathBuf> {
        self.w.write_all(if self.entries == 0 { b"]" } else { b"\n]" })?;
        self.w.flush()?;
        Ok(self.path)
    }
}

/// How extended-history files are named: Spotify's names changed in 2023.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ExtendedNaming {
    /// `endsong_N.json`
    #[cfg_attr(not(feature = "sample"), allow(dead_code))] // written by the sample generator only
    Endsong,
    /// `Streaming_History_Audio_YYYY[-YYYY]_N.json`
    Audio,
}

struct OpenExt {
    format: ExtendedNaming,
    file: JsonArray,
    first_year: i32,
    last_year: i32,
}

/// The hidden name a file has while it is written (`n` counts the files of one export).
fn partial_file_name(n: usize) -> String {
    format!(".partial_{n}.json")
}

/// Whether `name` is a [`partial_file_name`].
fn is_partial_file(name: &str) -> bool {
    name.strip_prefix(".partial_")
        .and_then(|rest| rest.strip_suffix(".json"))
        .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

/// Extended-history files: rolled over by entry count, size and naming era, each
/// written under a hidden partial name and renamed once complete (its name holds the
/// years it covers).
pub(crate) struct ExtendedFiles {
    dir: PathBuf,
    /// Entries per file.
    cap: usize,
    /// Bytes per file.
    max_bytes: u64,
    cur: Option<OpenExt>,
    next_index: [usize; 2],
    partials: usize,
    done: Vec<PathBuf>,
    rows: usize,
}

impl ExtendedFiles {
    pub(crate) fn new(dir: &Path, cap: usize, max_bytes: u64) -> Self {
        ExtendedFiles {
            dir: dir.to_path_buf(),
            cap,
            max_bytes,
            cur: None,
            next_index: [0, 0],
            partials: 0,
            done: Vec::new(),
            rows: 0,
        }
    }

    /// Closes the last file; returns the files and the number of entries written.
    pub(crate) fn finish(&mut self) -> io::Result<(Vec<PathBuf>, usize)> {
        self.close()?;
        Ok((std::mem::take(&mut self.done), self.rows))
    }

    /// Removes every file written so far, complete or not (best effort: after a failure).
    pub(crate) fn remove_all(mut self) {
        if let Some(c) = self.cur.take() {
            let path = c.file.path.clone();
            drop(c);
            let _ = fs::remove_file(path);
        }
        for path in &self.done {
            let _ = fs::remove_file(path);
        }
    }

    /// Whether the next entry of `format` goes into a new file.
    pub(crate) fn rolls(&self, format: ExtendedNaming) -> bool {
        match &self.cur {
            None => true,
            Some(c) => c.format != format || c.file.entries >= self.cap || c.file.bytes + 1_600 > self.max_bytes,
        }
    }

    fn close(&mut self) -> io::Result<()> {
        if let Some(c) = self.cur.take() {
            let idx = &mut self.next_index[c.format as usize];
            let name = match c.format {
                ExtendedNaming::Endsong => format!("endsong_{idx}.json"),
                ExtendedNaming::Audio if c.first_year == c.last_year => {
                    format!("Streaming_History_Audio_{}_{idx}.json", c.first_year)
                }
                ExtendedNaming::Audio => format!("Streaming_History_Audio_{}-{}_{idx}.json", c.first_year, c.last_year),
            };
            *idx += 1;
            let partial = c.file.finish()?;
            let path = self.dir.join(name);
            fs::rename(partial, &path)?;
            self.done.push(path);
        }
        Ok(())
    }

    /// The file the next row of `format` from `year` goes to.
    pub(crate) fn file_for(&mut self, format: ExtendedNaming, year: i32) -> io::Result<&mut JsonArray> {
        if self.rolls(format) {
            self.close()?;
            self.partials += 1;
            let file = JsonArray::create(self.dir.join(partial_file_name(self.partials)))?;
            self.cur = Some(OpenExt { format, file, first_year: year, last_year: year });
        }
        let cur = self.cur.as_mut().expect("opened above");
        cur.last_year = year;
        self.rows += 1;
        Ok(&mut cur.file)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::import::extended::to_record;
    use crate::import::row::RawEntry;
    use crate::ingest::{import_paths, ImportOptions};
    use crate::rules::PlayRules;
    use crate::store::{HistoryStore, MemoryStore};
    use chrono::TimeZone;

    fn at(y: i32, mo: u32, d: u32, h: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, mo, d, h, 0, 7).unwrap()
    }

    /// One record of every shape a store holds.
    fn every_shape() -> Vec<PlayRecord> {
        let mut track = PlayRecord::new(at(2016, 3, 1, 9), 215_000, PlayKind::Track, PlayOrigin::ExtendedHistory);
        track.uri = Some("spotify:track:4uLU6hMCjMI75M1A2tKUQC".into());
        track.track_name = Some("Never, \"Gonna\" Give".into());
        track.artist_name = Some("Rick Astley".into());
        track.album_name = Some("Whenever You Need Somebody".into());
        track.platform = Some("Android OS 6.0 API 23 (samsung, SM-G920F)".into());
        track.conn_country = Some("DE".into());
        track.reason_start = Some("clickrow".into());
        track.reason_end = Some("trackdone".into());
        track.shuffle = Some(false);
        track.skipped = None;
        track.offline = Some(true);
        track.offline_timestamp = Some(Utc.timestamp_millis_opt(1_456_822_000_123).unwrap());
        track.incognito = Some(false);

        let mut account_track = PlayRecord::new(at(2025, 1, 2, 0), 61_000, PlayKind::Track, PlayOrigin::AccountData);
        account_track.played_at = Utc.with_ymd_and_hms(2025, 1, 2, 21, 5, 0).unwrap();
        account_track.track_name = Some("Local Song".into());
        account_track.artist_name = Some("Someone".into());

        let mut episode = PlayRecord::new(at(2020, 6, 1, 7), 1_800_000, PlayKind::Episode, PlayOrigin::ExtendedHistory);
        episode.uri = Some("spotify:episode:5kQF1m2FWYmbqp8GbSlj7t".into());
        episode.episode_name = Some("#42 Tides".into());
        episode.show_name = Some("Sea Stories".into());

        let mut account_episode =
            PlayRecord::new(at(2025, 2, 3, 8), 900_000, PlayKind::Episode, PlayOrigin::AccountData);
        account_episode.episode_name = Some("Morning News".into());
        account_episode.show_name = Some("The Daily".into());

        let mut chapter =
            PlayRecord::new(at(2024, 9, 9, 22), 1_200_000, PlayKind::Audiobook, PlayOrigin::ExtendedHistory);
        chapter.uri = Some("spotify:chapter:0z7X".into());
        chapter.audiobook_title = Some("Dune".into());
        chapter.audiobook_uri = Some("spotify:show:7iHfbu1YPACw6oZPAFJtqe".into());
        chapter.audiobook_chapter_title = Some("Chapter 3".into());

        let mut unknown = PlayRecord::new(at(2013, 12, 31, 23), 4_000, PlayKind::Unknown, PlayOrigin::ExtendedHistory);
        unknown.platform = Some("PS4".into());

        let mut synced = PlayRecord::new(at(2026, 11, 1, 0), 187_000, PlayKind::Track, PlayOrigin::Api);
        synced.played_at = Utc.timestamp_millis_opt(1_793_577_605_250).unwrap();
        synced.uri = Some("spotify:track:0VjIjW4GlUZAMYd2vXMi3b".into());
        synced.track_name = Some("Blinding Lights".into());
        synced.artist_name = Some("The Weeknd".into());
        synced.album_name = Some("After Hours".into());
        synced.artist_id = Some("1Xyo4u8uXC1ZmMpatF05PJ".into());
        synced.context_type = Some("playlist".into());
        synced.context_uri = Some("spotify:playlist:37i9dQZF1DXcBWIGoYBM5M".into());

        vec![track, account_track, episode, account_episode, chapter, unknown, synced]
    }

    #[test]
    fn every_shape_reads_back_as_the_same_record() {
        for record in every_shape() {
            let json = serde_json::to_string(&ExtendedRow::of(&record, None)).unwrap();
            let raw: RawEntry = serde_json::from_str(&json).unwrap();
            assert_eq!(to_record(raw).unwrap(), record, "{json}");
        }
    }

    #[test]
    fn spotify_fields_come_first_and_extended_history_needs_no_extras() {
        let record = &every_shape()[0];
        let json = serde_json::to_string(&ExtendedRow::of(record, None)).unwrap();
        assert!(json.starts_with(r#"{"ts":"2016-03-01T09:00:07Z","platform":"#), "{json}");
        assert!(!json.contains("echostats_"), "{json}");
        assert!(json.contains(r#""offline_timestamp":1456822000123"#), "{json}");
        let synced = serde_json::to_string(&ExtendedRow::of(&every_shape()[6], None)).unwrap();
        assert!(synced.contains(r#""ts":"2026-11-02T00:00:05.250Z""#), "{synced}");
        assert!(synced.contains(r#""echostats_origin":"api""#), "{synced}");
    }

    #[test]
    fn an_unknown_origin_is_an_error_that_lists_the_known_ones() {
        let raw: RawEntry =
            serde_json::from_str(r#"{"ts":"2020-01-01T00:00:00Z","ms_played":1,"echostats_origin":"radio"}"#).unwrap();
        let err = to_record(raw).unwrap_err();
        assert!(err.contains("account_data, api, extended_history") && err.contains("\"radio\""), "{err}");
    }

    async fn store_with(records: Vec<PlayRecord>) -> MemoryStore {
        let store = MemoryStore::new();
        let mut batch = store.begin_batch("u", &PlayRules::default()).await.unwrap();
        batch.insert(records).await.unwrap();
        batch.commit().await.unwrap();
        store
    }

    fn stored(entries: Vec<HistoryEntry>) -> Vec<PlayRecord> {
        entries.into_iter().map(|e| e.record).collect()
    }

    #[tokio::test]
    async fn an_exported_history_imports_into_another_store_unchanged() {
        let source = store_with(every_shape()).await;
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("export");
        // Small files: several per year, and one spanning years.
        let summary = write_extended_files(&source, "u", None, &out, 1_500).await.unwrap();
        assert_eq!(summary.plays, 7);
        let names: Vec<String> =
            summary.files.iter().map(|p| p.file_name().unwrap().to_string_lossy().into_owned()).collect();
        assert!(names.len() > 1 && names[0].starts_with("Streaming_History_Audio_2013"), "{names:?}");
        assert!(names.iter().all(|n| n.starts_with("Streaming_History_Audio_") && n.ends_with(".json")));
        assert!(!out.join(".partial_1.json").exists());

        let target = MemoryStore::new();
        let paths = vec![out.clone()];
        let first = import_paths(&target, "u", &paths, &ImportOptions::default(), None).await.unwrap();
        assert_eq!((first.outcome.added, first.failed().count()), (7, 0));
        assert_eq!(
            stored(target.plays_in("u", None).await.unwrap()),
            stored(source.plays_in("u", None).await.unwrap())
        );
        // And into the store it came from: nothing new.
        let again = import_paths(&source, "u", &paths, &ImportOptions::default(), None).await.unwrap();
        assert_eq!((again.outcome.added, again.outcome.duplicates), (0, 7));

        // An account-data record exported and imported back is still the poorer one: the
        // real extended history replaces it.
        let mut real = every_shape()[1].clone();
        real.origin = PlayOrigin::ExtendedHistory;
        real.uri = Some("spotify:track:1111111111111111111111".into());
        let mut batch = target.begin_batch("u", &PlayRules::default()).await.unwrap();
        let outcome = batch.insert(vec![real]).await.unwrap();
        batch.commit().await.unwrap();
        assert_eq!((outcome.added, outcome.replaced), (0, 1));
    }

    #[tokio::test]
    async fn a_window_exports_only_its_plays_and_a_used_folder_is_refused() {
        let source = store_with(every_shape()).await;
        let dir = tempfile::tempdir().unwrap();
        let window = TimeWindow { start: at(2020, 1, 1, 0), end: at(2025, 1, 1, 0) };
        let summary = write_extended_history(&source, "u", Some(window), dir.path()).await.unwrap();
        assert_eq!(summary.plays, 2);
        assert_eq!(summary.files, vec![dir.path().join("Streaming_History_Audio_2020-2024_0.json")]);
        let before = fs::read(&summary.files[0]).unwrap();

        let err = write_extended_history(&source, "u", None, dir.path()).await.unwrap_err();
        assert!(matches!(err, Error::InvalidInput { .. }), "{err}");
        assert!(err.to_string().contains("Streaming_History_Audio_2020-2024_0.json"), "{err}");
        assert_eq!(fs::read(&summary.files[0]).unwrap(), before, "nothing overwritten");
    }

    #[tokio::test]
    async fn a_killed_exports_partial_file_is_removed_and_other_hidden_files_are_kept() {
        let source = store_with(every_shape()).await;
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join(".partial_3.json"), "[{\"ts\":").unwrap();
        fs::write(dir.path().join(".partial_notes.json"), "mine").unwrap();
        let summary = write_extended_history(&source, "u", None, dir.path()).await.unwrap();
        assert_eq!(summary.plays, 7);
        let mut names: Vec<String> =
            fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
        names.sort();
        assert_eq!(names[0], ".partial_notes.json");
        assert!(names[1..].iter().all(|n| n.starts_with("Streaming_History_Audio_")), "{names:?}");
    }

    #[tokio::test]
    async fn an_empty_history_exports_no_file() {
        let dir = tempfile::tempdir().unwrap();
        let summary = write_extended_history(&MemoryStore::new(), "nobody", None, dir.path()).await.unwrap();
        assert_eq!(summary, ExportSummary { plays: 0, files: vec![] });
    }

    #[tokio::test]
    async fn csv_has_a_header_and_one_quoted_row_per_play() {
        let source = store_with(every_shape()).await;
        let mut out = Vec::new();
        assert_eq!(write_csv(&source, "u", None, &mut out).await.unwrap(), 7);
        let mut reader = csv::Reader::from_reader(out.as_slice());
        assert_eq!(reader.headers().unwrap().iter().collect::<Vec<_>>(), CsvRow::COLUMNS);
        let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
        assert_eq!(rows.len(), 7);
        // Oldest first: the unknown 2013 play, then the 2016 track with its commas and quotes.
        assert_eq!(&rows[0][2], "unknown");
        assert_eq!(&rows[1][5], "Never, \"Gonna\" Give");
        assert_eq!(&rows[1][21], "2016-03-01T08:46:40.123Z");
        assert_eq!((&rows[1][18], &rows[1][19]), ("false", ""));
        assert_eq!(&rows[6][0], "2026-11-02T00:00:05.250Z");
        assert_eq!((&rows[6][3], &rows[6][8]), ("api", "1Xyo4u8uXC1ZmMpatF05PJ"));

        let mut empty = Vec::new();
        assert_eq!(write_csv(&MemoryStore::new(), "nobody", None, &mut empty).await.unwrap(), 0);
        assert_eq!(String::from_utf8(empty).unwrap(), format!("{}\n", CsvRow::COLUMNS.join(",")));
    }
}
