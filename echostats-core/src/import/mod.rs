//! The Spotify export parser: synchronous, streaming and memory-bounded.
//!
//! [`parse_inputs`] reads `.json` files, folders and the `my_spotify_data.zip` as Spotify
//! delivers it, and reports what it finds as a sequence of [`ParseEvent`]s: per file a
//! [`ParseEvent::FileStarted`], chunks of at most `chunk_size` records, then
//! [`ParseEvent::FileFinished`] or [`ParseEvent::FileFailed`]; files that are not
//! streaming history get a [`ParseEvent::FileSkipped`]. Memory depends on `chunk_size`,
//! never on the size of a file: each JSON array is read element by element.
//!
//! # How files are recognised
//! By content, never by name: the top level must be a JSON array, and the keys of its
//! first entry tell the format (see [`ExportFormat`]). The one exception by name:
//! `Streaming_History_Video*` files are skipped, as video plays are not imported.
//!
//! Inside a zip or folder, anything that is not streaming history is skipped: other
//! extensions (the ReadMe PDF), JSON whose top level is not an array (`YourLibrary.json`,
//! `Playlist1.json`, `Userdata.json`), arrays whose first entry has no known shape
//! (`Marquee.json`, `SearchQueries.json`), empty files, hidden files (silently), nested
//! zips. A `.json` given directly must be streaming history: the same cases (but empty
//! arrays) are then [`ParseEvent::FileFailed`].
//!
//! An empty array (`[]`) is reported as [`ParseEvent::FileSkipped`] ("empty"), since its
//! format cannot be known and there is nothing to store.
//!
//! # Errors
//! A bad file (malformed or truncated JSON, wrong field types, missing required fields,
//! bad timestamps, negative durations, non-UTF-8 bytes, zip limits) gets a
//! [`ParseEvent::FileFailed`] carrying an [`Error::Import`] that names the file, the
//! entry index and, when known, the line and column; parsing continues with the next
//! file. Chunks of a failed file may already have been sent: the caller discards them.
//! Account rows without artist/track (or show/episode) names are not fatal: they are
//! reported as [`Rejected`] in the chunks.

mod account;
mod archive;
pub(crate) mod extended;
pub(crate) mod row;
mod stream;

use crate::model::{PlayAnchor, PlayRecord};
use crate::Error;
use account::Row;
use row::{Element, Shape};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::fs::{self, File};
use std::io::{Read, Seek};
use std::path::{Path, PathBuf};
use stream::{Flow, StreamError, Streamed};

/// Account entries without any name are held back (as indices only) until an entry
/// shows whether the file is music or podcasts; past this many, music is assumed.
const MAX_UNDECIDED_ENTRIES: usize = 100_000;

/// The kinds of streaming history files Spotify exports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExportFormat {
    /// Extended streaming history (`endsong_N.json`, `Streaming_History_Audio_*.json`):
    /// entries with `ts` and `ms_played`.
    ExtendedHistory,
    /// One-year account data, music (`StreamingHistory*.json`): entries with `endTime`,
    /// `msPlayed` and `trackName` / `artistName`.
    AccountMusic,
    /// One-year account data, podcasts (`StreamingHistory_podcast_N.json`): entries with
    /// `endTime`, `msPlayed` and `podcastName` / `episodeName`.
    AccountPodcast,
}

impl fmt::Display for ExportFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ExportFormat::ExtendedHistory => "extended streaming history",
            ExportFormat::AccountMusic => "account data streaming history (music)",
            ExportFormat::AccountPodcast => "account data streaming history (podcasts)",
        })
    }
}

/// Zip bomb limits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportLimits {
    /// Most entries a zip may have (checked before anything is read).
    pub max_zip_entries: usize,
    /// Most uncompressed bytes of one zip entry.
    pub max_entry_bytes: u64,
    /// Most uncompressed bytes of all entries of one zip.
    pub max_total_bytes: u64,
    /// Most uncompressed bytes per compressed byte of an entry (entries up to 1 MiB are
    /// never flagged).
    pub max_compression_ratio: u64,
}

impl Default for ImportLimits {
    fn default() -> Self {
        ImportLimits {
            max_zip_entries: 10_000,
            max_entry_bytes: 1 << 30,
            max_total_bytes: 16 << 30,
            max_compression_ratio: 200,
        }
    }
}

/// An entry that cannot be a play (e.g. an account row without artist name); not fatal
/// for its file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rejected {
    /// Zero-based index of the entry in the file's JSON array.
    pub entry: u64,
    /// Why, e.g. `missing artistName`. Reasons are few and stable: callers count by them.
    pub reason: String,
}

/// What the parser reports, in order. For each streaming history file: `FileStarted`,
/// any number of `Chunk`s, then `FileFinished` or `FileFailed`. A file may also fail
/// before it started (nothing readable) or be skipped.
#[derive(Debug)]
pub enum ParseEvent {
    /// A streaming history file of `format` begins.
    FileStarted {
        /// The file: its path as given; inside a zip `archive.zip!inner/path.json`.
        file: String,
        /// Its format, from the first entry.
        format: ExportFormat,
    },
    /// Entries of the started file, in file order.
    Chunk {
        /// The file.
        file: String,
        /// At most `chunk_size` records.
        records: Vec<PlayRecord>,
        /// The records that carry the anchor of the play they stand for (index into
        /// `records`, ascending): written by `echostats export`
        /// ([`crate::store::PlayBatch::insert_anchored`]).
        anchored: Vec<(usize, PlayAnchor)>,
        /// Entries of this stretch that are not plays.
        rejected: Vec<Rejected>,
    },
    /// The file was read to its end.
    FileFinished {
        /// The file.
        file: String,
        /// Entries in the file (records and rejected).
        entries: u64,
    },
    /// The file is bad: none of it should be kept.
    FileFailed {
        /// The file.
        file: String,
        /// Always [`Error::Import`], naming the file, entry and position when known.
        error: Error,
    },
    /// The file is not streaming history (or not imported by design); nothing was read
    /// from it, or only enough to tell.
    FileSkipped {
        /// The file.
        file: String,
        /// Why, for a person.
        reason: String,
    },
}

/// Parses every input (a .json file, a folder walked recursively in sorted order, or a
/// .zip as Spotify delivers it, any folder layout inside).
///
/// Calls `sink` for each event; if `sink` returns false, stops early and returns `Ok`.
/// Returns `Err` only when an input path itself cannot be opened (missing, unreadable,
/// not a valid zip / truncated zip, too many zip entries): [`Error::Import`] naming the
/// path. Inputs before it have been parsed and reported. Zips and unreadable files
/// found inside a folder are reported as [`ParseEvent::FileFailed`] instead.
///
/// A file given directly is read as a zip when it starts like one or is named `.zip`,
/// otherwise as JSON (whatever its extension).
pub fn parse_inputs(
    paths: &[PathBuf],
    limits: &ImportLimits,
    chunk_size: usize,
    sink: &mut dyn FnMut(ParseEvent) -> bool,
) -> crate::Result<()> {
    for path in paths {
        let display = path.display().to_string();
        let cannot_open = |e: std::io::Error| import_error(&display, format!("cannot open: {e}"));
        let meta = fs::metadata(path).map_err(cannot_open)?;
        let go_on = if meta.is_dir() {
            walk_dir(path, limits, chunk_size, sink)
                .map_err(|e| import_error(&display, format!("cannot read folder: {e}")))?
        } else {
            let mut file = File::open(path).map_err(cannot_open)?;
            if looks_like_zip(path, &mut file).map_err(cannot_open)? {
                archive::parse_zip(&display, file, limits, chunk_size, sink)?
            } else {
                parse_json_reader(&display, file, chunk_size, true, sink)
            }
        };
        if !go_on {
            break;
        }
    }
    Ok(())
}

/// Parses one JSON document from any reader (an HTTP upload, a zip entry, a file);
/// `name` is used in events and messages.
///
/// `standalone`: the document was given on its own, so anything but streaming history
/// is a [`ParseEvent::FileFailed`]; otherwise (found inside a zip or folder) it is a
/// [`ParseEvent::FileSkipped`]. Files named `Streaming_History_Video*` are skipped
/// either way. Returns whether to continue (false: the sink asked to stop).
pub fn parse_json_reader(
    name: &str,
    reader: impl Read,
    chunk_size: usize,
    standalone: bool,
    sink: &mut dyn FnMut(ParseEvent) -> bool,
) -> bool {
    let base = name.rsplit(['/', '\\', '!']).next().unwrap_or(name);
    if base.starts_with("Streaming_History_Video") {
        return sink(ParseEvent::FileSkipped {
            file: name.to_string(),
            reason: "video history is not imported".into(),
        });
    }
    let mut parser = FileParser::new(name, chunk_size.max(1), sink);
    let result =
        stream::for_each_element(reader, stream::MAX_ELEMENT_BYTES, |index, element| parser.entry(index, element));
    parser.finish(result, standalone)
}

fn import_error(file: &str, reason: String) -> Error {
    Error::Import { file: file.to_string(), entry: None, position: None, reason }
}

/// Zip by magic number (local file header, or the end record of an empty zip), or by
/// name so that a broken `.zip` is reported as one.
fn looks_like_zip(path: &Path, file: &mut File) -> std::io::Result<bool> {
    let mut magic = [0u8; 4];
    let n = file.by_ref().take(4).read(&mut magic)?;
    file.rewind()?;
    let named_zip = path.extension().is_some_and(|e| e.eq_ignore_ascii_case("zip"));
    Ok(named_zip || (n == 4 && (magic == *b"PK\x03\x04" || magic == *b"PK\x05\x06")))
}

/// How many files [`parse_inputs`] will report on (each one ends in a `FileFinished`,
/// `FileFailed` or `FileSkipped` event), for a progress bar. Cheap: it lists folders and
/// reads zip directories, no contents. Unreadable inputs count as one.
pub fn count_input_files(paths: &[PathBuf]) -> u64 {
    fn count_path(path: &Path) -> u64 {
        if path.is_dir() {
            let Ok(entries) = fs::read_dir(path) else { return 1 };
            return entries
                .flatten()
                .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
                .map(|e| count_path(&e.path()))
                .sum();
        }
        let zip_entries = File::open(path).ok().and_then(|mut f| {
            looks_like_zip(path, &mut f).ok().filter(|z| *z)?;
            let archive = zip::ZipArchive::new(f).ok()?;
            Some(archive.file_names().filter(|n| !n.ends_with('/') && !archive::is_hidden(n)).count() as u64)
        });
        zip_entries.unwrap_or(1)
    }
    paths.iter().map(|p| count_path(p)).sum()
}

/// Sort key that puts (likely) one-year account data after everything else in a
/// folder or zip, by name: importing the richer extended history first means account
/// rows are dropped as duplicates instead of being stored and then replaced. Only the
/// order depends on names; formats are still detected by content, and the result is the
/// same in any order.
pub(crate) fn account_data_last(path: &str) -> bool {
    path.split(['/', '\\']).any(|part| part.contains("Account Data") || part.starts_with("StreamingHistory"))
}

/// Walks `dir` depth first in name order (account data last). `Err` only when `dir` itself cannot be read.
fn walk_dir(
    dir: &Path,
    limits: &ImportLimits,
    chunk_size: usize,
    sink: &mut dyn FnMut(ParseEvent) -> bool,
) -> std::io::Result<bool> {
    let mut entries = fs::read_dir(dir)?.collect::<Result<Vec<_>, _>>()?;
    entries.sort_by_key(|e| {
        let name = e.file_name().to_string_lossy().into_owned();
        (account_data_last(&name), name)
    });
    for entry in entries {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') {
            continue;
        }
        let path = entry.path();
        let display = path.display().to_string();
        let failed = |sink: &mut dyn FnMut(ParseEvent) -> bool, reason: String| {
            sink(ParseEvent::FileFailed { file: display.clone(), error: import_error(&display, reason) })
        };
        // Symbolic links to files are followed; to folders not (no cycles).
        let kind = entry.file_type().and_then(|t| match t.is_symlink() {
            true => fs::metadata(&path).map(|m| (true, m.is_dir())),
            false => Ok((false, t.is_dir())),
        });
        let is_dir = match kind {
            Ok((symlink, is_dir)) if !(symlink && is_dir) => is_dir,
            Ok(_) => {
                let reason = "symbolic link to a folder, not followed".into();
                if !sink(ParseEvent::FileSkipped { file: display, reason }) {
                    return Ok(false);
                }
                continue;
            }
            Err(e) => {
                if !failed(sink, format!("cannot open: {e}")) {
                    return Ok(false);
                }
                continue;
            }
        };
        let lower = name.to_lowercase();
        let go_on = if is_dir {
            match walk_dir(&path, limits, chunk_size, sink) {
                Ok(go_on) => go_on,
                Err(e) => failed(sink, format!("cannot read folder: {e}")),
            }
        } else if lower.ends_with(".zip") || lower.ends_with(".json") {
            match File::open(&path) {
                Err(e) => failed(sink, format!("cannot open: {e}")),
                Ok(file) if lower.ends_with(".json") => parse_json_reader(&display, file, chunk_size, false, sink),
                Ok(file) => match archive::parse_zip(&display, file, limits, chunk_size, sink) {
                    Ok(go_on) => go_on,
                    Err(error) => sink(ParseEvent::FileFailed { file: display, error }),
                },
            }
        } else {
            sink(ParseEvent::FileSkipped { file: display, reason: "not a JSON file".into() })
        };
        if !go_on {
            return Ok(false);
        }
    }
    Ok(true)
}

/// The state of one file being parsed: detection, chunking, and the events.
struct FileParser<'s> {
    name: &'s str,
    chunk_size: usize,
    sink: &'s mut dyn FnMut(ParseEvent) -> bool,
    /// Known once an entry shows it (and `FileStarted` was sent).
    format: Option<ExportFormat>,
    /// Account entries without names, seen before the format was known.
    undecided: Vec<u64>,
    records: Vec<PlayRecord>,
    anchored: Vec<(usize, PlayAnchor)>,
    rejected: Vec<Rejected>,
    /// Why the first entry shows this is not a streaming history file.
    not_history: Option<String>,
    /// The sink asked to stop.
    stopped: bool,
}

/// An empty chunk with room for `chunk_size` records (up to a bound, whatever a caller
/// sets): grown by doubling instead, every chunk was copied about twice on its way.
fn chunk_vec(chunk_size: usize) -> Vec<PlayRecord> {
    Vec::with_capacity(chunk_size.min(16_384))
}

impl<'s> FileParser<'s> {
    fn new(name: &'s str, chunk_size: usize, sink: &'s mut dyn FnMut(ParseEvent) -> bool) -> Self {
        FileParser {
            name,
            chunk_size,
            sink,
            format: None,
            undecided: Vec::new(),
            records: chunk_vec(chunk_size),
            anchored: Vec::new(),
            rejected: Vec::new(),
            not_history: None,
            stopped: false,
        }
    }

    fn emit(&mut self, event: ParseEvent) -> bool {
        let go_on = (self.sink)(event);
        self.stopped |= !go_on;
        go_on
    }

    fn flush(&mut self) -> bool {
        if self.records.is_empty() && self.rejected.is_empty() {
            return true;
        }
        let chunk = ParseEvent::Chunk {
            file: self.name.to_string(),
            records: std::mem::replace(&mut self.records, chunk_vec(self.chunk_size)),
            anchored: std::mem::take(&mut self.anchored),
            rejected: std::mem::take(&mut self.rejected),
        };
        self.emit(chunk)
    }

    fn flush_if_full(&mut self) -> bool {
        if self.records.len() >= self.chunk_size || self.rejected.len() >= self.chunk_size {
            self.flush()
        } else {
            true
        }
    }

    /// Sends `FileStarted` and the entries held back until the format was known.
    fn start(&mut self, format: ExportFormat) -> bool {
        self.format = Some(format);
        if !self.emit(ParseEvent::FileStarted { file: self.name.to_string(), format }) {
            return false;
        }
        let reason = match format {
            ExportFormat::AccountPodcast => "missing podcastName",
            _ => "missing artistName",
        };
        for entry in std::mem::take(&mut self.undecided) {
            self.rejected.push(Rejected { entry, reason: reason.into() });
            if !self.flush_if_full() {
                return false;
            }
        }
        true
    }

    /// Handles the entry at `index`; an `Err` fails the file.
    fn entry(&mut self, index: u64, element: Element) -> Result<Flow, String> {
        let stop = |go_on: bool| {
            if go_on {
                Ok(Flow::Continue)
            } else {
                Ok(Flow::Stop)
            }
        };
        let raw = match element {
            Element::Object(raw) => raw,
            Element::Other(kind) if self.format.is_none() && self.undecided.is_empty() => {
                self.not_history = Some(format!("its first entry is {kind}, not an object"));
                return Ok(Flow::Stop);
            }
            Element::Other(kind) => {
                return Err(format!("entry is {kind}, expected an object like the entries before it"))
            }
        };
        let shape = raw.shape();
        let format = match (self.format, shape) {
            (Some(format), _) => format,
            (None, Shape::Format(format)) => {
                if !self.start(format) {
                    return Ok(Flow::Stop);
                }
                format
            }
            (None, Shape::AccountNameless) => {
                // Music or podcast? Only a later entry can tell; the timing must be valid
                // either way.
                account::timing(raw.end_time, raw.ms_played_account)?;
                self.undecided.push(index);
                if self.undecided.len() >= MAX_UNDECIDED_ENTRIES {
                    return stop(self.start(ExportFormat::AccountMusic));
                }
                return Ok(Flow::Continue);
            }
            (None, Shape::Unknown) if self.undecided.is_empty() => {
                self.not_history = Some(
                    "its first entry has neither `ts` + `ms_played` (extended streaming history) nor `endTime` + `msPlayed` (account data)"
                        .into(),
                );
                return Ok(Flow::Stop);
            }
            (None, Shape::Unknown) => {
                // After account entries without names: fails below with the missing field.
                if !self.start(ExportFormat::AccountMusic) {
                    return Ok(Flow::Stop);
                }
                ExportFormat::AccountMusic
            }
        };
        if let Shape::Format(found) = shape {
            if found != format {
                return Err(format!("entry has the fields of {found}, but the file started as {format}"));
            }
        }
        let row = match format {
            ExportFormat::ExtendedHistory => {
                if shape == Shape::AccountNameless {
                    return Err(format!("entry has the fields of account data, but the file started as {format}"));
                }
                let (record, anchor) = extended::to_play(*raw)?;
                if let Some(anchor) = anchor {
                    self.anchored.push((self.records.len(), anchor));
                }
                Row::Record(record)
            }
            ExportFormat::AccountMusic => account::music(*raw)?,
            ExportFormat::AccountPodcast => account::podcast(*raw)?,
        };
        match row {
            Row::Record(record) => self.records.push(record),
            Row::Rejected(reason) => self.rejected.push(Rejected { entry: index, reason }),
        }
        stop(self.flush_if_full())
    }

    /// Sends the closing events of the file; returns whether to continue.
    fn finish(mut self, result: Result<Streamed, StreamError>, standalone: bool) -> bool {
        if self.stopped {
            return false;
        }
        let not_history = |this: &mut Self, why: String, entry: Option<u64>| {
            if standalone {
                let reason = format!("not a Spotify streaming history file: {why}");
                let error = Error::Import { file: this.name.to_string(), entry, position: None, reason };
                this.emit(ParseEvent::FileFailed { file: this.name.to_string(), error })
            } else {
                let reason = format!("not a streaming history file ({why})");
                this.emit(ParseEvent::FileSkipped { file: this.name.to_string(), reason })
            }
        };
        match result {
            Ok(Streamed::Stopped { .. }) => {
                let why = self.not_history.take().unwrap_or_else(|| "stopped".into());
                not_history(&mut self, why, Some(0))
            }
            Ok(Streamed::NotAnArray(kind)) if standalone => {
                let reason = format!("expected a JSON array of streaming history entries, found {kind}");
                let error = Error::Import { file: self.name.to_string(), entry: None, position: None, reason };
                self.emit(ParseEvent::FileFailed { file: self.name.to_string(), error })
            }
            Ok(Streamed::NotAnArray(kind)) => {
                not_history(&mut self, format!("the top level is {kind}, not an array"), None)
            }
            Ok(Streamed::Empty) => not_history(&mut self, "the file is empty".into(), None),
            Ok(Streamed::Finished { entries }) => {
                if self.format.is_none() {
                    if self.undecided.is_empty() {
                        let reason = "empty: the JSON array holds no entries".into();
                        return self.emit(ParseEvent::FileSkipped { file: self.name.to_string(), reason });
                    }
                    if !self.start(ExportFormat::AccountMusic) {
                        return false;
                    }
                }
                self.flush() && self.emit(ParseEvent::FileFinished { file: self.name.to_string(), entries })
            }
            Err(e) => {
                let error = Error::Import {
                    file: self.name.to_string(),
                    entry: Some(e.entry),
                    position: e.position,
                    reason: e.reason,
                };
                self.emit(ParseEvent::FileFailed { file: self.name.to_string(), error })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{PlayKind, PlayOrigin};
    use chrono::{DateTime, TimeZone, Utc};
    use serde_json::{json, Value};
    use std::io::{Cursor, Write};
    use zip::write::SimpleFileOptions;
    use zip::{CompressionMethod, ZipWriter};

    // ---- fixtures -------------------------------------------------------------------

    /// An extended row as in `endsong_N.json` (before late 2024): with `username`,
    /// `ip_addr_decrypted` and `user_agent_decrypted`.
    fn old_row(i: i64) -> Value {
        json!({
            "ts": format!("2019-02-11T05:{:02}:33Z", i % 60), "username": "secret-user",
            "platform": "Android OS 9 API 28 (samsung, SM-G960F)", "ms_played": 213000 + i,
            "conn_country": "DE", "ip_addr_decrypted": "203.0.113.7", "user_agent_decrypted": "unknown-agent",
            "master_metadata_track_name": "Idioteque", "master_metadata_album_artist_name": "Radiohead",
            "master_metadata_album_album_name": "Kid A", "spotify_track_uri": "spotify:track:2dkcZ0o1qOuYMdiVjVs4TD",
            "episode_name": null, "episode_show_name": null, "spotify_episode_uri": null,
            "reason_start": "trackdone", "reason_end": "trackdone", "shuffle": false, "skipped": null,
            "offline": false, "offline_timestamp": 1549861353656_i64, "incognito_mode": false
        })
    }

    /// An extended row as in `Streaming_History_Audio_*.json` (since late 2024): `ip_addr`
    /// and the audiobook fields.
    fn new_row(i: i64) -> Value {
        json!({
            "ts": format!("2024-11-20T21:{:02}:10Z", i % 60), "platform": "ios", "ms_played": 61000 + i,
            "conn_country": "SE", "ip_addr": "198.51.100.23",
            "master_metadata_track_name": "Dancing On My Own", "master_metadata_album_artist_name": "Robyn",
            "master_metadata_album_album_name": "Body Talk", "spotify_track_uri": "spotify:track:3Opv",
            "episode_name": null, "episode_show_name": null, "spotify_episode_uri": null,
            "audiobook_title": null, "audiobook_uri": null, "audiobook_chapter_uri": null, "audiobook_chapter_title": null,
            "reason_start": "clickrow", "reason_end": "endplay", "shuffle": true, "skipped": true,
            "offline": false, "offline_timestamp": 1732137000, "incognito_mode": false
        })
    }

    fn music_row(artist: Option<&str>, track: &str) -> Value {
        let mut row = json!({"endTime": "2024-05-06 18:43", "trackName": track, "msPlayed": 185000});
        if let Some(artist) = artist {
            row["artistName"] = json!(artist);
        }
        row
    }

    fn array(rows: &[Value]) -> Vec<u8> {
        serde_json::to_vec_pretty(rows).unwrap()
    }

    /// The rows, one per line, after a `[` line: entry `i` is on line `i + 2`.
    fn lines(rows: &[String]) -> Vec<u8> {
        format!("[\n{}\n]\n", rows.join(",\n")).into_bytes()
    }

    fn compact(rows: impl IntoIterator<Item = Value>) -> Vec<String> {
        rows.into_iter().map(|r| r.to_string()).collect()
    }

    fn zip_of(entries: &[(&str, &[u8])], method: CompressionMethod) -> Vec<u8> {
        let mut w = ZipWriter::new(Cursor::new(Vec::new()));
        let options = SimpleFileOptions::default().compression_method(method);
        for (name, data) in entries {
            if name.ends_with('/') {
                w.add_directory(*name, options).unwrap();
            } else {
                w.start_file(*name, options).unwrap();
                w.write_all(data).unwrap();
            }
        }
        w.finish().unwrap().into_inner()
    }

    // ---- running the parser -----------------------------------------------------------

    fn run_paths(paths: &[PathBuf], limits: &ImportLimits, chunk_size: usize) -> (crate::Result<()>, Vec<ParseEvent>) {
        let mut events = Vec::new();
        let result = parse_inputs(paths, limits, chunk_size, &mut |e| {
            events.push(e);
            true
        });
        (result, events)
    }

    fn run_bytes(name: &str, bytes: &[u8], standalone: bool, chunk_size: usize) -> Vec<ParseEvent> {
        let mut events = Vec::new();
        assert!(parse_json_reader(name, bytes, chunk_size, standalone, &mut |e| {
            events.push(e);
            true
        }));
        events
    }

    fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
        let path = dir.join(name);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(&path, bytes).unwrap();
        path
    }

    /// One line per event, for asserting sequences.
    fn outline(events: &[ParseEvent]) -> Vec<String> {
        events
            .iter()
            .map(|e| match e {
                ParseEvent::FileStarted { file, format } => format!("started {file} ({format})"),
                ParseEvent::Chunk { file, records, rejected, .. } => {
                    format!("chunk {file} {}+{}", records.len(), rejected.len())
                }
                ParseEvent::FileFinished { file, entries } => format!("finished {file} {entries}"),
                ParseEvent::FileFailed { file, error } => {
                    assert!(matches!(error, Error::Import { file: f, .. } if f == file), "{error:?}");
                    format!("failed {error}")
                }
                ParseEvent::FileSkipped { file, reason } => format!("skipped {file}: {reason}"),
            })
            .collect()
    }

    fn records(events: &[ParseEvent]) -> Vec<PlayRecord> {
        let chunks = events.iter().filter_map(|e| match e {
            ParseEvent::Chunk { records, .. } => Some(records.clone()),
            _ => None,
        });
        chunks.flatten().collect()
    }

    fn rejected(events: &[ParseEvent]) -> Vec<Rejected> {
        let chunks = events.iter().filter_map(|e| match e {
            ParseEvent::Chunk { rejected, .. } => Some(rejected.clone()),
            _ => None,
        });
        chunks.flatten().collect()
    }

    /// The failure of the (only) failed file: entry, position, reason.
    fn failure(events: &[ParseEvent]) -> (Option<u64>, Option<(usize, usize)>, String) {
        let failures: Vec<_> = events
            .iter()
            .filter_map(|e| match e {
                ParseEvent::FileFailed { error: Error::Import { entry, position, reason, .. }, .. } => {
                    Some((*entry, *position, reason.clone()))
                }
                ParseEvent::FileFailed { error, .. } => panic!("not an import error: {error:?}"),
                _ => None,
            })
            .collect();
        assert_eq!(failures.len(), 1, "{:#?}", outline(events));
        failures.into_iter().next().unwrap()
    }

    fn last(events: &[ParseEvent]) -> String {
        outline(events).pop().unwrap_or_default()
    }

    // ---- formats ----------------------------------------------------------------------

    #[test]
    fn extended_history_old_and_new_namings() {
        let events = run_bytes("endsong_0.json", &array(&[old_row(0), new_row(1)]), true, 100);
        assert_eq!(
            outline(&events),
            [
                "started endsong_0.json (extended streaming history)",
                "chunk endsong_0.json 2+0",
                "finished endsong_0.json 2"
            ]
        );
        let recs = records(&events);
        let (old, new) = (&recs[0], &recs[1]);
        assert_eq!(old.played_at, Utc.with_ymd_and_hms(2019, 2, 11, 5, 0, 33).unwrap());
        assert_eq!((old.kind, old.origin, old.ms_played), (PlayKind::Track, PlayOrigin::ExtendedHistory, 213000));
        assert_eq!(old.uri.as_deref(), Some("spotify:track:2dkcZ0o1qOuYMdiVjVs4TD"));
        assert_eq!(
            (old.track_name.as_deref(), old.artist_name.as_deref(), old.album_name.as_deref()),
            (Some("Idioteque"), Some("Radiohead"), Some("Kid A"))
        );
        assert_eq!(old.platform.as_deref(), Some("Android OS 9 API 28 (samsung, SM-G960F)"));
        assert_eq!((old.conn_country.as_deref(), old.reason_start.as_deref()), (Some("DE"), Some("trackdone")));
        assert_eq!(
            (old.shuffle, old.skipped, old.offline, old.incognito),
            (Some(false), None, Some(false), Some(false))
        );
        assert_eq!(new.played_at, Utc.with_ymd_and_hms(2024, 11, 20, 21, 1, 10).unwrap());
        assert_eq!(
            (new.kind, new.artist_name.as_deref(), new.reason_end.as_deref()),
            (PlayKind::Track, Some("Robyn"), Some("endplay"))
        );
        assert_eq!((new.shuffle, new.skipped), (Some(true), Some(true)));
        assert_eq!(new.audiobook_title, None);
        // Nothing identifying survives parsing.
        let all = format!("{recs:?}");
        for secret in ["secret-user", "203.0.113.7", "198.51.100.23", "unknown-agent"] {
            assert!(!all.contains(secret), "{secret} leaked");
        }
    }

    #[test]
    fn podcast_audiobook_and_all_null_rows() {
        let mut podcast = new_row(0);
        podcast["master_metadata_track_name"] = Value::Null;
        podcast["master_metadata_album_artist_name"] = Value::Null;
        podcast["master_metadata_album_album_name"] = Value::Null;
        podcast["spotify_track_uri"] = Value::Null;
        podcast["episode_name"] = json!("Episode 12: Heat");
        podcast["episode_show_name"] = json!("Science Hour");
        podcast["spotify_episode_uri"] = json!("spotify:episode:5abc");
        let mut book = podcast.clone();
        book["episode_name"] = Value::Null;
        book["episode_show_name"] = Value::Null;
        book["spotify_episode_uri"] = Value::Null;
        book["audiobook_title"] = json!("Dune");
        book["audiobook_uri"] = json!("spotify:show:dune");
        book["audiobook_chapter_uri"] = json!("spotify:episode:ch1");
        book["audiobook_chapter_title"] = json!("Chapter 1");
        let mut unknown = old_row(0);
        for (key, value) in unknown.as_object_mut().unwrap() {
            if !matches!(key.as_str(), "ts" | "ms_played") {
                *value = Value::Null;
            }
        }
        let events = run_bytes("h.json", &array(&[podcast, book, unknown]), true, 100);
        let recs = records(&events);
        assert_eq!(recs.len(), 3, "{:?}", outline(&events));
        assert_eq!(recs[0].kind, PlayKind::Episode);
        assert_eq!(recs[0].uri.as_deref(), Some("spotify:episode:5abc"));
        assert_eq!(
            (recs[0].episode_name.as_deref(), recs[0].show_name.as_deref()),
            (Some("Episode 12: Heat"), Some("Science Hour"))
        );
        assert_eq!(recs[0].track_name, None);
        assert_eq!(recs[1].kind, PlayKind::Audiobook);
        assert_eq!(recs[1].uri.as_deref(), Some("spotify:episode:ch1"));
        assert_eq!(
            (recs[1].audiobook_title.as_deref(), recs[1].audiobook_uri.as_deref()),
            (Some("Dune"), Some("spotify:show:dune"))
        );
        assert_eq!(recs[1].audiobook_chapter_title.as_deref(), Some("Chapter 1"));
        assert_eq!(recs[2].kind, PlayKind::Unknown);
        assert_eq!((recs[2].uri.as_ref(), recs[2].platform.as_ref(), recs[2].shuffle), (None, None, None));
    }

    #[test]
    fn offline_timestamp_in_seconds_milliseconds_or_zero() {
        let rows: Vec<Value> = [json!(1699136230), json!(1549861353656_i64), json!(0), Value::Null]
            .into_iter()
            .map(|t| {
                let mut row = new_row(0);
                row["offline_timestamp"] = t;
                row
            })
            .collect();
        let got: Vec<_> =
            records(&run_bytes("h.json", &array(&rows), true, 10)).into_iter().map(|r| r.offline_timestamp).collect();
        assert_eq!(
            got,
            [
                Some(Utc.with_ymd_and_hms(2023, 11, 4, 22, 17, 10).unwrap()),
                DateTime::from_timestamp_millis(1549861353656),
                None,
                None
            ]
        );
    }

    #[test]
    fn account_music_rows_without_artist_are_rejected_not_fatal() {
        let rows =
            [music_row(Some("Björk"), "Jóga"), music_row(None, "Untitled"), music_row(Some("Sigur Rós"), "Hoppípolla")];
        let events = run_bytes("StreamingHistory_music_0.json", &array(&rows), true, 100);
        assert_eq!(
            outline(&events),
            [
                "started StreamingHistory_music_0.json (account data streaming history (music))",
                "chunk StreamingHistory_music_0.json 2+1",
                "finished StreamingHistory_music_0.json 3"
            ]
        );
        assert_eq!(rejected(&events), [Rejected { entry: 1, reason: "missing artistName".into() }]);
        let recs = records(&events);
        assert_eq!((recs[0].kind, recs[0].origin), (PlayKind::Track, PlayOrigin::AccountData));
        assert_eq!(recs[0].played_at, Utc.with_ymd_and_hms(2024, 5, 6, 18, 43, 0).unwrap());
        assert_eq!(
            (recs[1].artist_name.as_deref(), recs[1].track_name.as_deref(), recs[1].ms_played),
            (Some("Sigur Rós"), Some("Hoppípolla"), 185000)
        );
    }

    #[test]
    fn account_podcast_rows() {
        let rows = [
            json!({"endTime": "2024-01-02 07:15", "podcastName": "The Daily", "episodeName": "Tuesday", "msPlayed": 1500000}),
            json!({"endTime": "2024-01-03 07:15", "podcastName": "The Daily", "episodeName": null, "msPlayed": 3000}),
        ];
        let events = run_bytes("StreamingHistory_podcast_0.json", &array(&rows), true, 100);
        assert!(outline(&events)[0].ends_with("(account data streaming history (podcasts))"));
        let recs = records(&events);
        assert_eq!(recs.len(), 1);
        assert_eq!(
            (recs[0].kind, recs[0].show_name.as_deref(), recs[0].episode_name.as_deref()),
            (PlayKind::Episode, Some("The Daily"), Some("Tuesday"))
        );
        assert_eq!(rejected(&events), [Rejected { entry: 1, reason: "missing episodeName".into() }]);
    }

    #[test]
    fn account_rows_without_names_wait_for_the_format() {
        let nameless = json!({"endTime": "2025-07-01 10:00", "msPlayed": 1000});
        let podcast = json!({"endTime": "2025-07-01 11:00", "podcastName": "P", "episodeName": "E", "msPlayed": 1000});
        let events = run_bytes("x.json", &array(&[nameless.clone(), nameless.clone(), podcast]), true, 100);
        assert_eq!(outline(&events)[0], "started x.json (account data streaming history (podcasts))");
        assert_eq!(
            rejected(&events).iter().map(|r| (r.entry, r.reason.as_str())).collect::<Vec<_>>(),
            [(0, "missing podcastName"), (1, "missing podcastName")]
        );
        assert_eq!(records(&events).len(), 1);
        // Only nameless rows: music is assumed.
        let events = run_bytes("y.json", &array(&[nameless]), true, 100);
        assert_eq!(outline(&events)[0], "started y.json (account data streaming history (music))");
        assert_eq!(rejected(&events)[0].reason, "missing artistName");
        assert_eq!(last(&events), "finished y.json 1");
    }

    #[test]
    fn an_entry_of_another_format_fails_the_file_at_that_entry() {
        let rows = [old_row(0), old_row(1), music_row(Some("a"), "t")];
        let (entry, _, reason) = failure(&run_bytes("h.json", &array(&rows), true, 100));
        assert_eq!(entry, Some(2));
        assert_eq!(reason, "entry has the fields of account data streaming history (music), but the file started as extended streaming history");
        let rows = [music_row(Some("a"), "t"), json!(5)];
        let (entry, _, reason) = failure(&run_bytes("h.json", &array(&rows), true, 100));
        assert_eq!(
            (entry, reason.as_str()),
            (Some(1), "entry is a number, expected an object like the entries before it")
        );
    }

    // ---- what is not streaming history ------------------------------------------------

    #[test]
    fn video_history_is_skipped_by_name() {
        let events = run_bytes("dir/Streaming_History_Video_2019-2024.json", &array(&[old_row(0)]), true, 10);
        assert_eq!(
            outline(&events),
            ["skipped dir/Streaming_History_Video_2019-2024.json: video history is not imported"]
        );
    }

    #[test]
    fn non_history_json_is_skipped_inside_an_export_but_fails_on_its_own() {
        let library =
            br#"{"tracks": [{"artist": "a", "album": "b", "track": "c", "uri": "spotify:track:x"}], "albums": []}"#;
        let events = run_bytes("a.zip!Spotify Account Data/YourLibrary.json", library, false, 10);
        assert_eq!(
            outline(&events),
            ["skipped a.zip!Spotify Account Data/YourLibrary.json: not a streaming history file (the top level is an object, not an array)"]
        );
        let events = run_bytes("YourLibrary.json", library, true, 10);
        let (entry, _, reason) = failure(&events);
        assert_eq!(
            (entry, reason.as_str()),
            (None, "expected a JSON array of streaming history entries, found an object")
        );

        let marquee = br#"[{"artistName": "Robyn", "segment": "Light listeners"}]"#;
        assert!(last(&run_bytes("Marquee.json", marquee, false, 10))
            .starts_with("skipped Marquee.json: not a streaming history file (its first entry has neither"));
        let (entry, _, reason) = failure(&run_bytes("Marquee.json", marquee, true, 10));
        assert_eq!(entry, Some(0));
        assert!(
            reason.starts_with("not a Spotify streaming history file: its first entry has neither `ts`"),
            "{reason}"
        );

        assert_eq!(
            last(&run_bytes("strings.json", br#"["a", "b"]"#, false, 10)),
            "skipped strings.json: not a streaming history file (its first entry is a string, not an object)"
        );
        assert_eq!(
            last(&run_bytes("empty.json", b"", false, 10)),
            "skipped empty.json: not a streaming history file (the file is empty)"
        );
        assert_eq!(
            failure(&run_bytes("empty.json", b"  \n", true, 10)).2,
            "not a Spotify streaming history file: the file is empty"
        );
    }

    #[test]
    fn an_empty_array_is_skipped() {
        assert_eq!(
            outline(&run_bytes("e.json", b"[ ]\n", true, 10)),
            ["skipped e.json: empty: the JSON array holds no entries"]
        );
    }

    // ---- bad files --------------------------------------------------------------------

    #[test]
    fn malformed_json_names_entry_three_and_its_line() {
        let mut rows = compact([old_row(0), old_row(1), old_row(2)]);
        rows.push(r#"{"ts": "2019-02-11T05:02:33Z", "ms_played": 12,, "platform": "ios"}"#.into());
        rows.extend(compact([old_row(4)]));
        let events = run_bytes("endsong_1.json", &lines(&rows), true, 2);
        let (entry, position, reason) = failure(&events);
        assert_eq!(entry, Some(3));
        assert_eq!(position.map(|p| p.0), Some(5), "entry 3 is on line 5");
        assert_eq!(reason, "malformed JSON: key must be a string");
        // The chunk of entries 0-1 went out before; the failure ends the file.
        assert!(last(&events).starts_with("failed endsong_1.json (entry 3, line 5, column "), "{}", last(&events));
    }

    #[test]
    fn a_field_of_the_wrong_type_is_fatal_and_named() {
        let mut bad = old_row(1);
        bad["ms_played"] = json!("abc");
        let events = run_bytes("h.json", &lines(&compact([old_row(0), bad, old_row(2)])), true, 10);
        let (entry, position, reason) = failure(&events);
        assert_eq!((entry, reason.as_str()), (Some(1), "`ms_played` must be an integer, found the string \"abc\""));
        assert_eq!(position.map(|p| p.0), Some(3));
        assert!(records(&events).is_empty(), "no chunk was full yet");
    }

    #[test]
    fn missing_required_fields_bad_timestamps_and_negative_durations_are_fatal() {
        let case = |edit: &dyn Fn(&mut Value)| {
            let mut row = new_row(1);
            edit(&mut row);
            failure(&run_bytes("h.json", &array(&[new_row(0), row]), true, 10))
        };
        assert_eq!(case(&|r| r["ts"] = json!("2024-13-45 25:00")).0, Some(1));
        assert!(case(&|r| r["ts"] = json!("2024-13-45 25:00")).2.starts_with("`ts` is not an RFC 3339 timestamp"));
        assert_eq!(case(&|r| r["ms_played"] = json!(-1)).2, "`ms_played` is negative (-1)");
        assert_eq!(case(&|r| r["ts"] = Value::Null).2, "`ts` is null");
        assert_eq!(case(&|r| drop(r.as_object_mut().unwrap().remove("ms_played"))).2, "missing `ms_played`");
        let rows = [
            music_row(Some("a"), "t"),
            json!({"endTime": "2024-05-06", "artistName": "a", "trackName": "t", "msPlayed": 1}),
        ];
        let (entry, _, reason) = failure(&run_bytes("m.json", &array(&rows), true, 10));
        assert_eq!(entry, Some(1));
        assert!(reason.starts_with("`endTime` is not a time like"), "{reason}");
    }

    #[test]
    fn non_utf8_bytes_are_reported_as_such() {
        let mut bytes = lines(&compact([old_row(0)]));
        bytes.truncate(bytes.len() - 3);
        bytes.extend_from_slice(
            b",\n{\"ts\": \"2019-02-11T05:02:33Z\", \"ms_played\": 1, \"master_metadata_track_name\": \"Caf\xE9\"}\n]",
        );
        let (entry, position, reason) = failure(&run_bytes("latin1.json", &bytes, true, 10));
        assert_eq!(entry, Some(1));
        assert!(reason.starts_with("the file is not UTF-8 JSON"), "{reason}");
        assert_eq!(position.map(|p| p.0), Some(3));
    }

    #[test]
    fn truncated_json_names_the_last_entry_reached() {
        let full = lines(&compact([old_row(0), old_row(1), old_row(2)]));
        let cut = &full[..full.len() * 5 / 6];
        let events = run_bytes("cut.json", cut, true, 10);
        let (entry, _, reason) = failure(&events);
        assert_eq!(entry, Some(2));
        assert!(reason.starts_with("unexpected end of file, the JSON is truncated"), "{reason}");
        // Cut right after a comma: the entry that should follow.
        let text = String::from_utf8(full).unwrap();
        let cut = &text[..text.find("},\n").unwrap() + 2];
        assert_eq!(failure(&run_bytes("cut.json", cut.as_bytes(), true, 10)).0, Some(1));
    }

    #[test]
    fn a_leading_bom_is_skipped() {
        let mut bytes = b"\xEF\xBB\xBF".to_vec();
        bytes.extend(array(&[old_row(0)]));
        assert_eq!(last(&run_bytes("bom.json", &bytes, true, 10)), "finished bom.json 1");
    }

    #[test]
    fn chunks_hold_at_most_chunk_size_records() {
        let rows: Vec<Value> = (0..5).map(old_row).collect();
        let events = run_bytes("h.json", &array(&rows), true, 2);
        assert_eq!(
            outline(&events),
            [
                "started h.json (extended streaming history)",
                "chunk h.json 2+0",
                "chunk h.json 2+0",
                "chunk h.json 1+0",
                "finished h.json 5"
            ]
        );
        let ms: Vec<i64> = records(&events).iter().map(|r| r.ms_played).collect();
        assert_eq!(ms, [213000, 213001, 213002, 213003, 213004], "in file order");
    }

    #[test]
    fn the_sink_can_stop_the_parser() {
        let dir = tempfile::tempdir().unwrap();
        let rows: Vec<Value> = (0..5).map(old_row).collect();
        let a = write(dir.path(), "a.json", &array(&rows));
        let b = write(dir.path(), "b.json", &array(&rows));
        let mut seen = Vec::new();
        let result = parse_inputs(&[a, b], &ImportLimits::default(), 2, &mut |e| {
            let go_on = !matches!(e, ParseEvent::Chunk { .. });
            seen.push(e);
            go_on
        });
        assert!(result.is_ok());
        assert_eq!(outline(&seen).len(), 2, "started, then the first chunk: {:?}", outline(&seen));
    }

    // ---- paths, folders, zips ---------------------------------------------------------

    #[test]
    fn a_zip_as_spotify_delivers_it() {
        let dir = tempfile::tempdir().unwrap();
        let audio = array(&[old_row(0), new_row(1)]);
        let video = array(&[old_row(0)]);
        let music = array(&[music_row(Some("a"), "t")]);
        let library = br#"{"tracks": []}"#;
        let ext = "Spotify Extended Streaming History";
        let bytes = zip_of(
            &[
                (&format!("{ext}/"), b""),
                (&format!("{ext}/Streaming_History_Video_2019-2024.json"), &video),
                (&format!("{ext}/Streaming_History_Audio_2019-2024_0.json"), &audio),
                (&format!("{ext}/ReadMeFirst_ExtendedStreamingHistory.pdf"), b"%PDF-1.4"),
                ("Spotify Account Data/YourLibrary.json", library),
                ("Spotify Account Data/StreamingHistory_music_0.json", &music),
                ("Spotify Account Data/nested.zip", b"PK\x05\x06"),
                ("__MACOSX/Spotify Account Data/._StreamingHistory_music_0.json", b"\x00\x05\x16\x07"),
                ("Spotify Account Data/.DS_Store", b"\x00"),
            ],
            CompressionMethod::Deflated,
        );
        let zip = write(dir.path(), "my_spotify_data.zip", &bytes);
        let (result, events) = run_paths(std::slice::from_ref(&zip), &ImportLimits::default(), 100);
        result.unwrap();
        let z = zip.display().to_string();
        // Account data comes last (see `account_data_last`), the rest in name order.
        assert_eq!(
            outline(&events),
            [
                format!("skipped {z}!{ext}/ReadMeFirst_ExtendedStreamingHistory.pdf: not a JSON file"),
                format!("started {z}!{ext}/Streaming_History_Audio_2019-2024_0.json (extended streaming history)"),
                format!("chunk {z}!{ext}/Streaming_History_Audio_2019-2024_0.json 2+0"),
                format!("finished {z}!{ext}/Streaming_History_Audio_2019-2024_0.json 2"),
                format!("skipped {z}!{ext}/Streaming_History_Video_2019-2024.json: video history is not imported"),
                format!("started {z}!Spotify Account Data/StreamingHistory_music_0.json (account data streaming history (music))"),
                format!("chunk {z}!Spotify Account Data/StreamingHistory_music_0.json 1+0"),
                format!("finished {z}!Spotify Account Data/StreamingHistory_music_0.json 1"),
                format!("skipped {z}!Spotify Account Data/YourLibrary.json: not a streaming history file (the top level is an object, not an array)"),
                format!("skipped {z}!Spotify Account Data/nested.zip: nested zip archives are not imported"),
            ]
        );
    }

    #[test]
    fn a_folder_is_walked_in_order_with_zips_inside() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("export");
        write(&root, "b/endsong_1.json", &array(&[old_row(1)]));
        write(&root, "a/endsong_0.json", &array(&[old_row(0)]));
        write(&root, "a/ReadMe.pdf", b"%PDF");
        write(&root, ".hidden.json", b"not json");
        write(&root, "c.zip", &zip_of(&[("x/endsong_2.json", &array(&[old_row(2)]))], CompressionMethod::Stored));
        write(&root, "d.zip", b"PK\x03\x04 this is not really a zip");
        let (result, events) = run_paths(std::slice::from_ref(&root), &ImportLimits::default(), 100);
        result.unwrap();
        let r = root.display();
        let got: Vec<String> =
            outline(&events).into_iter().filter(|l| !l.starts_with("chunk") && !l.starts_with("started")).collect();
        assert_eq!(got[0], format!("skipped {r}/a/ReadMe.pdf: not a JSON file"));
        assert_eq!(got[1], format!("finished {r}/a/endsong_0.json 1"));
        assert_eq!(got[2], format!("finished {r}/b/endsong_1.json 1"));
        assert_eq!(got[3], format!("finished {r}/c.zip!x/endsong_2.json 1"));
        assert!(
            got[4].starts_with(&format!("failed {r}/d.zip: not a readable zip archive (truncated or corrupt?)")),
            "{}",
            got[4]
        );
        assert_eq!(got.len(), 5);
    }

    #[test]
    fn inputs_that_cannot_be_opened_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope.json");
        let (result, events) = run_paths(std::slice::from_ref(&missing), &ImportLimits::default(), 10);
        let err = result.unwrap_err();
        assert!(
            matches!(&err, Error::Import { file, reason, .. } if *file == missing.display().to_string() && reason.starts_with("cannot open")),
            "{err}"
        );
        assert!(events.is_empty());

        let bytes = zip_of(&[("endsong_0.json", &array(&[old_row(0)]))], CompressionMethod::Deflated);
        let truncated = write(dir.path(), "truncated.zip", &bytes[..bytes.len() - 30]);
        let err = run_paths(&[truncated], &ImportLimits::default(), 10).0.unwrap_err();
        assert!(
            err.to_string().contains("truncated.zip: not a readable zip archive (truncated or corrupt?): "),
            "{err}"
        );
    }

    #[test]
    fn a_json_file_given_directly_is_read_whatever_its_extension() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(dir.path(), "history.txt", &array(&[old_row(0)]));
        let (result, events) = run_paths(&[path], &ImportLimits::default(), 10);
        result.unwrap();
        assert!(last(&events).ends_with("history.txt 1"));
    }

    #[test]
    fn a_zip_with_too_many_entries_is_refused_before_reading() {
        let dir = tempfile::tempdir().unwrap();
        let names: Vec<String> = (0..4).map(|i| format!("f{i}.json")).collect();
        let entries: Vec<(&str, &[u8])> = names.iter().map(|n| (n.as_str(), &b"[]"[..])).collect();
        let zip = write(dir.path(), "many.zip", &zip_of(&entries, CompressionMethod::Stored));
        let limits = ImportLimits { max_zip_entries: 3, ..ImportLimits::default() };
        let (result, events) = run_paths(&[zip], &limits, 10);
        assert!(result
            .unwrap_err()
            .to_string()
            .ends_with("the zip has 4 entries, more than the limit of 3 (possible zip bomb)"));
        assert!(events.is_empty());
    }

    /// `[` + `fill` bytes of spaces + `]`, deflated, without holding it all in memory.
    fn spaces_zip(name: &str, fill: usize) -> Vec<u8> {
        let mut w = ZipWriter::new(Cursor::new(Vec::new()));
        w.start_file(name, SimpleFileOptions::default().compression_method(CompressionMethod::Deflated)).unwrap();
        w.write_all(b"[").unwrap();
        let block = vec![b' '; 1 << 20];
        for _ in 0..fill / block.len() {
            w.write_all(&block).unwrap();
        }
        w.write_all(b"]").unwrap();
        w.finish().unwrap().into_inner()
    }

    #[test]
    fn a_zip_bomb_is_refused_by_its_declared_ratio() {
        let dir = tempfile::tempdir().unwrap();
        let zip = write(dir.path(), "bomb.zip", &spaces_zip("bomb.json", 50 << 20));
        let (result, events) = run_paths(&[zip], &ImportLimits::default(), 10);
        result.unwrap();
        let (entry, _, reason) = failure(&events);
        assert_eq!(entry, None);
        assert!(reason.starts_with("entry declares a compression ratio of "), "{reason}");
        assert!(reason.ends_with("more than the limit of 200:1 (possible zip bomb)"), "{reason}");
        // Its declared size alone can be too much as well.
        let limits =
            ImportLimits { max_entry_bytes: 10 << 20, max_compression_ratio: u64::MAX, ..ImportLimits::default() };
        let (_, events) = run_paths(&[dir.path().join("bomb.zip")], &limits, 10);
        assert!(failure(&events)
            .2
            .starts_with("entry declares 52428802 bytes uncompressed, more than the limit of 10485760"));
    }

    /// Rewrites the uncompressed size of the (single) entry in its local header and in
    /// the central directory: a zip that lies about its size.
    fn lie_about_size(mut bytes: Vec<u8>, size: u32) -> Vec<u8> {
        assert_eq!(&bytes[..4], b"PK\x03\x04");
        bytes[22..26].copy_from_slice(&size.to_le_bytes());
        let central = bytes.windows(4).rposition(|w| w == b"PK\x01\x02").unwrap();
        bytes[central + 24..central + 28].copy_from_slice(&size.to_le_bytes());
        bytes
    }

    #[test]
    fn a_zip_lying_about_its_size_is_stopped_while_reading() {
        let dir = tempfile::tempdir().unwrap();
        // Real rows, separated by runs of spaces: well-formed, and compressing ~1000:1.
        let row = old_row(0).to_string();
        let mut w = ZipWriter::new(Cursor::new(Vec::new()));
        w.start_file("endsong_0.json", SimpleFileOptions::default().compression_method(CompressionMethod::Deflated))
            .unwrap();
        w.write_all(b"[").unwrap();
        let gap = vec![b' '; 500_000];
        for _ in 0..40 {
            w.write_all(row.as_bytes()).unwrap();
            w.write_all(&gap).unwrap();
            w.write_all(b",").unwrap();
        }
        w.write_all(row.as_bytes()).unwrap();
        w.write_all(b"]").unwrap();
        let honest = w.finish().unwrap().into_inner();
        let zip = write(dir.path(), "liar.zip", &lie_about_size(honest, 1000));

        // The ratio is enforced on what is actually read.
        let (result, events) = run_paths(std::slice::from_ref(&zip), &ImportLimits::default(), 1000);
        result.unwrap();
        let (entry, _, reason) = failure(&events);
        assert!(entry.unwrap() > 0, "some rows were read before");
        assert_eq!(reason, "entry expands to more than 200 times its compressed size (possible zip bomb)");
        // And so is the entry limit.
        let limits =
            ImportLimits { max_entry_bytes: 3 << 20, max_compression_ratio: u64::MAX, ..ImportLimits::default() };
        let (_, events) = run_paths(std::slice::from_ref(&zip), &limits, 1000);
        assert_eq!(
            failure(&events).2,
            "entry is larger than the limit of 3145728 bytes uncompressed (possible zip bomb)"
        );
        // Within limits, the lie does not matter (the CRC is right).
        let limits = ImportLimits { max_compression_ratio: u64::MAX, ..ImportLimits::default() };
        let (_, events) = run_paths(&[zip], &limits, 1000);
        assert!(last(&events).ends_with("liar.zip!endsong_0.json 41"), "{}", last(&events));
    }

    #[test]
    fn the_total_limit_stops_the_whole_zip() {
        let dir = tempfile::tempdir().unwrap();
        let file = array(&[old_row(0)]);
        assert!(file.len() > 600 && file.len() < 1000);
        let bytes = zip_of(
            &[("a.json", &file), ("b.json", &file), ("c.json", &file), ("d.pdf", b"x")],
            CompressionMethod::Deflated,
        );
        let zip = write(dir.path(), "t.zip", &bytes);
        let limits = ImportLimits { max_total_bytes: 1500, ..ImportLimits::default() };
        let (result, events) = run_paths(std::slice::from_ref(&zip), &limits, 10);
        result.unwrap();
        let z = zip.display();
        let got = outline(&events);
        assert_eq!(got[2], format!("finished {z}!a.json 1"));
        assert!(got[3].starts_with(&format!("failed {z}!b.json (entry 0, line ")), "{}", got[3]);
        assert!(
            got[3].ends_with(": zip exceeds total uncompressed limit of 1500 bytes (possible zip bomb)"),
            "{}",
            got[3]
        );
        assert_eq!(
            got[4],
            format!(
                "failed {z}!c.json: not read: zip exceeds total uncompressed limit of 1500 bytes (possible zip bomb)"
            )
        );
        assert_eq!(got[5], format!("skipped {z}!d.pdf: not a JSON file"));
    }

    #[test]
    fn a_corrupt_entry_fails_only_that_entry() {
        let dir = tempfile::tempdir().unwrap();
        let good = array(&[old_row(0)]);
        let mut bytes = zip_of(&[("a.json", &good), ("b.json", &good)], CompressionMethod::Stored);
        // Change a letter inside the first entry's data: still JSON, but the CRC fails.
        let at = bytes.windows(9).position(|w| w == b"Idioteque").unwrap();
        bytes[at] = b'X';
        let zip = write(dir.path(), "crc.zip", &bytes);
        let (result, events) = run_paths(std::slice::from_ref(&zip), &ImportLimits::default(), 10);
        result.unwrap();
        let (entry, _, reason) = failure(&events);
        assert_eq!((entry, reason.as_str()), (Some(1), "corrupt zip entry: Invalid checksum"));
        assert!(last(&events).ends_with("crc.zip!b.json 1"));
    }
}
