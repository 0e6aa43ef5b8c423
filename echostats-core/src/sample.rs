//! A deterministic generator of realistic synthetic Spotify privacy exports (feature
//! `sample`).
//!
//! [`generate_export`] writes real files in the real formats, laid out like an unzipped
//! download (or zipped into `my_spotify_data.zip`):
//!
//! ```text
//! Spotify Extended Streaming History/
//!     endsong_0.json ...                          older years: username, ip_addr_decrypted,
//!                                                 detailed platforms, offline_timestamp in ms
//!     Streaming_History_Audio_2024-2025_0.json ... newer years: ip_addr, audiobook_* fields,
//!                                                 short platforms, offline_timestamp in s
//!     Streaming_History_Video_2024-2026.json
//!     ReadMeFirst_ExtendedStreamingHistory.pdf     (a placeholder)
//! Spotify Account Data/
//!     StreamingHistory_music_0.json ...            the last 365 days, from the same plays
//!     StreamingHistory_podcast_0.json
//!     YourLibrary.json, Playlist1.json
//! ```
//!
//! The listening is modelled, not uniform: a catalog of fake artists, albums and tracks with
//! stable base62 IDs and Zipf-like popularity that drifts over the years; sessions of
//! consecutive plays, mostly in the evening (the listener lives at UTC+1) and more at
//! weekends; days, holidays and trips without listening (so streaks mean something); ~8%
//! podcast episodes, a few audiobook chapters in the newer years, a few rows with every
//! metadata field null, ~15% short skips, ~0.5% exact duplicate rows (sometimes across two
//! files). Rows are serialised one by one through buffered writers, so a million entries take
//! a few seconds and little memory.
//!
//! The same options and seed always give the same bytes. `tests/fixtures/sample_export/` is
//! [`SampleOptions::small`]; regenerate it with
//! `cargo test -p echostats-core --features sample -- --ignored regenerate_sample_fixture`.

use crate::export::{ExtendedFiles, ExtendedNaming, JsonArray};
use chrono::{DateTime, TimeZone, Utc};
use serde::Serialize;
use std::collections::HashSet;
use std::fs::{self, File};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

/// The folder of the extended streaming history inside an export.
pub const EXTENDED_DIR: &str = "Spotify Extended Streaming History";
/// The folder of the account data inside an export.
pub const ACCOUNT_DIR: &str = "Spotify Account Data";
/// The name of the archive written when [`SampleOptions::zip`] is set.
pub const ZIP_NAME: &str = "my_spotify_data.zip";
/// At most this many entries go into one extended-history file.
pub const MAX_FILE_ENTRIES: usize = 15_000;
/// An extended-history file is closed before it grows past this many bytes (~12 MB).
pub const MAX_FILE_BYTES: u64 = 12_000_000;

/// Entries per account-data streaming-history file, as in real exports.
const ACCOUNT_FILE_ENTRIES: usize = 10_000;
const DAY: i64 = 86_400;
/// A mean Gregorian year in seconds.
const YEAR: i64 = 31_556_952;
/// 2024-10-01T00:00:00Z: when the extended history files were renamed (and reshaped).
const RENAME_DATE: i64 = 1_727_740_800;
/// The listener lives at UTC+1 (daylight saving ignored).
const UTC_OFFSET: i64 = 3_600;
/// Above this many entries per year the history is stretched over more years.
const MAX_ENTRIES_PER_YEAR: usize = 56_000;
/// Music rows ended by a skip within 30 s (more on overfull days).
const BASE_SKIP_RATE: f64 = 0.165;

/// What to generate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SampleOptions {
    /// Rows in the extended audio history files (duplicates included).
    pub extended_entries: usize,
    /// Years of history before `end` (a minimum: stretched when `extended_entries` would
    /// need more than ~56,000 entries a year, e.g. 1M entries span ~18 years).
    pub years: u32,
    /// When the export was requested: every play ends before it.
    pub end: DateTime<Utc>,
    /// The random seed; the same options give the same bytes.
    pub seed: u64,
    /// Also write `Spotify Account Data/` (last-year history, library, playlists).
    pub account_data: bool,
    /// Include podcast episodes (~8% of rows) and audiobook chapters (newer years).
    pub podcasts: bool,
    /// Write a single `my_spotify_data.zip` instead of folders.
    pub zip: bool,
}

impl SampleOptions {
    /// The checked-in demo export: 6,000 extended entries over 4 years up to
    /// 2026-11-01T00:00:00Z, seed 42, account data and podcasts, not zipped.
    pub fn small() -> Self {
        SampleOptions {
            extended_entries: 6_000,
            years: 4,
            end: Utc.with_ymd_and_hms(2026, 11, 1, 0, 0, 0).unwrap(),
            seed: 42,
            account_data: true,
            podcasts: true,
            zip: false,
        }
    }

    /// [`SampleOptions::small`] with `entries` extended entries and a plausible span
    /// (4 years up to 100k entries, then ~25k entries a year, at most 18 years).
    pub fn with_entries(entries: usize) -> Self {
        let years = (entries.div_ceil(25_000) as u32).clamp(4, 18);
        SampleOptions { extended_entries: entries, years, ..Self::small() }
    }
}

impl Default for SampleOptions {
    fn default() -> Self {
        Self::small()
    }
}

/// What [`generate_export`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SampleSummary {
    /// Every file written (just the zip when zipped), sorted.
    pub files: Vec<PathBuf>,
    /// Rows in the extended audio history files (`endsong_*`, `Streaming_History_Audio_*`),
    /// duplicates included; the video file's few rows are not counted.
    pub extended_entries: usize,
    /// Rows in the account-data streaming history files (music + podcast).
    pub account_entries: usize,
}

/// Writes the export under `dir` (creating `Spotify Extended Streaming History/` and
/// `Spotify Account Data/` like a real download), or a single `my_spotify_data.zip` in `dir`
/// when `opts.zip`. Files of the same name are overwritten; other files are left alone, so
/// use an empty directory.
pub fn generate_export(dir: &Path, opts: &SampleOptions) -> io::Result<SampleSummary> {
    fs::create_dir_all(dir)?;
    if !opts.zip {
        return write_tree(dir, opts);
    }
    let tmp = dir.join(format!(".echostats-sample-{}", std::process::id()));
    if tmp.exists() {
        fs::remove_dir_all(&tmp)?;
    }
    let result = write_tree(&tmp, opts).and_then(|tree| {
        let zip_path = dir.join(ZIP_NAME);
        zip_tree(&tmp, &tree.files, &zip_path, opts.end)?;
        Ok(SampleSummary { files: vec![zip_path], ..tree })
    });
    let cleanup = fs::remove_dir_all(&tmp);
    let summary = result?;
    cleanup?;
    Ok(summary)
}

fn zip_tree(root: &Path, files: &[PathBuf], zip_path: &Path, end: DateTime<Utc>) -> io::Result<()> {
    use chrono::{Datelike, Timelike};
    use zip::write::SimpleFileOptions;
    let stamp = zip::DateTime::from_date_and_time(
        end.year().clamp(1980, 2107) as u16,
        end.month() as u8,
        end.day() as u8,
        end.hour() as u8,
        end.minute() as u8,
        end.second() as u8,
    )
    .unwrap_or_default();
    let options = SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated)
        .compression_level(Some(3))
        .last_modified_time(stamp);
    let mut zip = zip::ZipWriter::new(BufWriter::new(File::create(zip_path)?));
    let mut dirs_done: HashSet<String> = HashSet::new();
    for file in files {
        let rel = file.strip_prefix(root).map_err(io::Error::other)?;
        let parts: Vec<String> = rel.components().map(|c| c.as_os_str().to_string_lossy().into_owned()).collect();
        if parts.len() > 1 {
            let folder = parts[..parts.len() - 1].join("/") + "/";
            if dirs_done.insert(folder.clone()) {
                zip.add_directory(folder, options).map_err(io::Error::other)?;
            }
        }
        zip.start_file(parts.join("/"), options).map_err(io::Error::other)?;
        io::copy(&mut File::open(file)?, &mut zip)?;
    }
    zip.finish().map_err(io::Error::other)?.flush()
}

// ---------------------------------------------------------------------------------------
// Randomness: a tiny portable generator (splitmix64), so the bytes do not depend on the
// `rand` version or the platform.

fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[derive(Debug, Clone)]
struct Rng(u64);

impl Rng {
    fn new(seed: u64, stream: u64) -> Self {
        Rng(mix(seed ^ mix(stream.wrapping_add(0x632B_E59B_D9B4_E019))))
    }
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        mix(self.0)
    }
    /// Uniform in [0, 1).
    fn f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }
    /// Uniform in [0, n).
    fn below(&mut self, n: usize) -> usize {
        ((self.next_u64() as u128 * n as u128) >> 64) as usize
    }
    /// Uniform in [lo, hi).
    fn range(&mut self, lo: i64, hi: i64) -> i64 {
        lo + self.below((hi - lo).max(1) as usize) as i64
    }
    fn chance(&mut self, p: f64) -> bool {
        self.f64() < p
    }
    fn pick<'a, T>(&mut self, xs: &'a [T]) -> &'a T {
        &xs[self.below(xs.len())]
    }
    /// Approximately standard normal (Irwin-Hall), no libm involved.
    fn normal(&mut self) -> f64 {
        (0..12).map(|_| self.f64()).sum::<f64>() - 6.0
    }
    /// An index drawn from cumulative weights.
    fn weighted(&mut self, cum: &[f64]) -> usize {
        let x = self.f64() * cum[cum.len() - 1];
        cum.partition_point(|&c| c <= x).min(cum.len() - 1)
    }
    fn index_by_weight(&mut self, weights: &[f64]) -> usize {
        let total: f64 = weights.iter().sum();
        let mut x = self.f64() * total;
        for (i, w) in weights.iter().enumerate() {
            if x < *w {
                return i;
            }
            x -= w;
        }
        weights.len() - 1
    }
}

fn cumulative(weights: impl Iterator<Item = f64>) -> Vec<f64> {
    let mut acc = 0.0;
    weights
        .map(|w| {
            acc += w;
            acc
        })
        .collect()
}

const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// A stable fake 22-character base62 Spotify ID for item `idx` of `kind`.
fn spotify_id(seed: u64, kind: u64, idx: u64) -> String {
    let mut rng = Rng::new(seed ^ 0x05EE_D1D5, kind.wrapping_mul(0x1_0000_0001).wrapping_add(idx));
    (0..22).map(|_| BASE62[rng.below(62)] as char).collect()
}

// ---------------------------------------------------------------------------------------
// Dates without chrono on the hot path.

/// (year, month, day) of a day number since 1970-01-01.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

fn year_of(secs: i64) -> i32 {
    civil_from_days(secs.div_euclid(DAY)).0 as i32
}

/// Monday = 0.
fn weekday(day: i64) -> usize {
    (day + 3).rem_euclid(7) as usize
}

fn push2(out: &mut String, v: u32) {
    out.push((b'0' + (v / 10) as u8) as char);
    out.push((b'0' + (v % 10) as u8) as char);
}

fn push_date(out: &mut String, secs: i64) {
    let (y, m, d) = civil_from_days(secs.div_euclid(DAY));
    let y = y as u32;
    push2(out, y / 100);
    push2(out, y % 100);
    out.push('-');
    push2(out, m);
    out.push('-');
    push2(out, d);
}

/// "YYYY-MM-DDTHH:MM:SSZ", the extended history's `ts`.
fn fmt_ts(secs: i64) -> String {
    let mut out = String::with_capacity(20);
    push_date(&mut out, secs);
    let s = secs.rem_euclid(DAY) as u32;
    out.push('T');
    push2(&mut out, s / 3600);
    out.push(':');
    push2(&mut out, s / 60 % 60);
    out.push(':');
    push2(&mut out, s % 60);
    out.push('Z');
    out
}

/// "YYYY-MM-DD HH:MM", the account data's `endTime` (truncated to the minute).
fn fmt_minute(secs: i64) -> String {
    let mut out = String::with_capacity(16);
    push_date(&mut out, secs);
    let s = secs.rem_euclid(DAY) as u32;
    out.push(' ');
    push2(&mut out, s / 3600);
    out.push(':');
    push2(&mut out, s / 60 % 60);
    out
}

fn fmt_date(secs: i64) -> String {
    let mut out = String::with_capacity(10);
    push_date(&mut out, secs);
    out
}

// ---------------------------------------------------------------------------------------
// The catalog: artists, albums, tracks, podcast shows, audiobooks.

#[rustfmt::skip]
const ADJ: &[&str] = &[
    "Velvet", "Neon", "Silver", "Hollow", "Golden", "Midnight", "Electric", "Paper", "Crystal",
    "Quiet", "Wild", "Broken", "Burning", "Northern", "Southern", "Distant", "Lonely", "Bright",
    "Dark", "Frozen", "Gentle", "Heavy", "Hidden", "Lost", "Lucky", "Magnetic", "Pale", "Purple",
    "Restless", "Rusty", "Sacred", "Secret", "Shallow", "Silent", "Sleepy", "Slow", "Strange",
    "Sweet", "Tender", "Twin", "Violet", "Wandering", "Wicked", "Young", "Ancient", "Cosmic",
    "Crimson", "Dusty", "Empty", "Fading", "Glass", "Honey", "Ivory", "Jade", "Little", "Lunar",
    "Marble", "Modern", "Radiant", "Scarlet", "Solar", "Static", "Summer", "Winter", "Autumn",
    "Urban", "Vintage", "Wooden", "Blue", "Endless",
];
#[rustfmt::skip]
const NOUN: &[&str] = &[
    "Harbor", "Owl", "Lantern", "River", "Garden", "Mirror", "Engine", "Signal", "Forest", "Ocean",
    "Comet", "Echo", "Tide", "Canyon", "Desert", "Island", "Valley", "Meadow", "Thunder", "Shadow",
    "Ember", "Feather", "Horizon", "Compass", "Anchor", "Arrow", "Bridge", "Cathedral", "Circus",
    "Cloud", "Crown", "Dream", "Fever", "Fire", "Ghost", "Heart", "Highway", "Kingdom", "Machine",
    "Moon", "Mountain", "Parade", "Planet", "Radio", "Rain", "Rebel", "Rose", "Satellite", "Sky",
    "Smoke", "Sparrow", "Star", "Storm", "Sun", "Tiger", "Tower", "Train", "Voyage", "Wave", "Wolf",
    "Window", "Wire", "Cassette", "Lighthouse", "Orchid", "Pilot", "Prism", "Café", "Daydream",
    "Skyline",
];
#[rustfmt::skip]
const PLURAL: &[&str] = &[
    "Owls", "Lanterns", "Rivers", "Mirrors", "Engines", "Signals", "Comets", "Echoes", "Tides",
    "Shadows", "Embers", "Feathers", "Arrows", "Ghosts", "Machines", "Parades", "Planets", "Rebels",
    "Roses", "Satellites", "Sparrows", "Storms", "Tigers", "Towers", "Waves", "Wolves", "Windows",
    "Wires", "Cassettes", "Pilots", "Prisms", "Kids", "Lovers", "Strangers", "Dreamers", "Drifters",
    "Saints", "Sisters", "Brothers", "Hearts",
];
#[rustfmt::skip]
const FIRST: &[&str] = &[
    "Mara", "Jonas", "Elena", "Theo", "Ines", "Felix", "Lena", "Oskar", "Nora", "Milo", "Ada",
    "Leon", "Clara", "Hugo", "Ida", "Emil", "Zoë", "Søren", "Ólafur", "José", "Chloé", "Jürgen",
    "Amélie", "Björn", "Anaïs", "Kenji", "Aiko", "Mateo", "Lucía", "Sven", "Freya", "Luca", "Noa",
    "Ruben", "Yara", "Elliot", "June", "Iris", "Otto", "Vera",
];
#[rustfmt::skip]
const LAST: &[&str] = &[
    "Lindqvist", "Marsh", "Hale", "Okafor", "Novak", "Berg", "Castillo", "Dubois", "Fischer",
    "Holm", "Ivanova", "Jensen", "Kowalski", "Laurent", "Moreau", "Nakamura", "Ortega", "Petrov",
    "Quinn", "Rossi", "Santos", "Tanaka", "Varga", "Weiss", "Young", "Zeller", "Ahlberg", "Brennan",
    "Carver", "Delacroix", "Everly", "Fontaine", "Greer", "Hartmann", "Ito", "Kaur", "Lund",
    "Mendes", "Nyberg", "Østergaard",
];
#[rustfmt::skip]
const SPECIAL_ARTISTS: &[&str] = &[
    "夜明けのバス", "Yoru no Kōen", "Les Étoiles Filantes", "Niños del Sol", "Sølvmåne", "Żuraw",
    "Ghost & Guest", "MC Comet", "Twenty One Lanterns", "múm-ish", "The The Owls", "AC/DCish",
];
#[rustfmt::skip]
const VERB: &[&str] = &[
    "Hold", "Chase", "Follow", "Burn", "Carry", "Call", "Break", "Find", "Leave", "Light", "Save",
    "Wake", "Remember", "Forget", "Miss", "Want", "Need", "Love", "Dance With", "Run From",
    "Hold On To", "Wait For",
];
#[rustfmt::skip]
const PREP: &[&str] = &[
    "in", "under", "over", "beyond", "after", "before", "across", "inside",
];

struct Artist {
    name: String,
    uri: String,
    albums: Vec<u32>,
    /// All the artist's tracks, most played first, with cumulative Zipf weights.
    tracks: Vec<u32>,
    track_cum: Vec<f64>,
    /// Base popularity (Zipf by index).
    base: f64,
    /// Listened to all the time, or in a phase centred on `peak` (secs) of `width` (secs).
    classic: bool,
    peak: f64,
    width: f64,
}

struct Album {
    name: String,
    uri: String,
    tracks: Vec<u32>,
}

struct Track {
    name: String,
    uri: String,
    album: u32,
    artist: u32,
    duration_ms: u32,
}

struct Show {
    name: String,
    publisher: String,
    uri: String,
    style: usize,
    /// Secs of the first episode; weekly after that.
    first: i64,
    /// The listener follows it in [from, to).
    from: i64,
    to: i64,
    weight: f64,
}

struct Book {
    title: String,
    uri: String,
    chapters: u32,
}

struct Catalog {
    seed: u64,
    artists: Vec<Artist>,
    albums: Vec<Album>,
    tracks: Vec<Track>,
    shows: Vec<Show>,
    video_shows: Vec<Show>,
    books: Vec<Book>,
}

struct Names {
    rng: Rng,
    used: HashSet<String>,
}

impl Names {
    /// A name from `make`, unique (after normalisation) within this set.
    fn unique(&mut self, mut make: impl FnMut(&mut Rng) -> String) -> String {
        for attempt in 0.. {
            let mut name = make(&mut self.rng);
            if attempt >= 40 {
                name = format!("{name} {}", attempt - 38);
            }
            if self.used.insert(crate::rules::normalize_name(&name)) {
                return name;
            }
        }
        unreachable!()
    }
}

fn artist_name(r: &mut Rng) -> String {
    match r.index_by_weight(&[22.0, 26.0, 16.0, 10.0, 8.0, 5.0, 4.0, 3.0, 1.5]) {
        0 => format!("The {} {}", r.pick(ADJ), r.pick(PLURAL)),
        1 => format!("{} {}", r.pick(FIRST), r.pick(LAST)),
        2 => format!("{} {}", r.pick(ADJ), r.pick(NOUN)),
        3 => format!("{} {}", r.pick(NOUN), r.pick(NOUN)),
        4 => format!("{} & the {}", r.pick(FIRST), r.pick(PLURAL)),
        5 => format!("{}{}", r.pick(NOUN), r.pick(NOUN).to_lowercase()),
        6 => format!("DJ {}", r.pick(FIRST)),
        7 => format!("{} {} Trio", r.pick(FIRST), r.pick(LAST)),
        _ => r.pick(SPECIAL_ARTISTS).to_string(),
    }
}

fn album_name(r: &mut Rng) -> String {
    let base = match r.index_by_weight(&[25.0, 15.0, 15.0, 12.0, 10.0, 10.0, 8.0, 5.0]) {
        0 => format!("{} {}", r.pick(ADJ), r.pick(NOUN)),
        1 => format!("The {}", r.pick(NOUN)),
        2 => format!("{} of {}", r.pick(NOUN), r.pick(PLURAL)),
        3 => format!("Songs from the {}", r.pick(NOUN)),
        4 => format!("{} {}", r.pick(ADJ), r.pick(PLURAL)),
        5 => r.pick(PLURAL).to_string(),
        6 => format!("{} {} {}", r.pick(NOUN), r.pick(PREP), r.pick(NOUN)),
        _ => format!("{}, Vol. {}", r.pick(NOUN), r.range(1, 4)),
    };
    if r.chance(0.06) {
        format!("{base} (Deluxe Edition)")
    } else {
        base
    }
}

fn track_name(r: &mut Rng, feat: Option<&str>) -> String {
    let base = match r.index_by_weight(&[22.0, 14.0, 12.0, 10.0, 8.0, 8.0, 6.0, 5.0, 4.0, 3.0, 2.0, 1.0]) {
        0 => format!("{} {}", r.pick(ADJ), r.pick(NOUN)),
        1 => r.pick(NOUN).to_string(),
        2 => format!("{} the {}", r.pick(VERB), r.pick(NOUN)),
        3 => format!("{} {} the {}", r.pick(NOUN), r.pick(PREP), r.pick(NOUN)),
        4 => format!("Don't {}", r.pick(VERB)),
        5 => format!("I {} You", r.pick(VERB)),
        6 => r.pick(ADJ).to_string(),
        7 => format!("{} {}", r.pick(ADJ), r.pick(PLURAL)),
        8 => format!("{} No. {}", r.pick(NOUN), r.range(1, 10)),
        9 => format!("{}'s {}", r.pick(FIRST), r.pick(NOUN)),
        10 => format!("Song Called \"{}\"", r.pick(NOUN)),
        _ => format!("{} ({} Mix)", r.pick(NOUN), r.pick(ADJ)),
    };
    match (feat, r.f64()) {
        (Some(other), x) if x < 0.5 => format!("{base} (feat. {other})"),
        (_, x) if x < 0.03 => format!("{base} - Remastered {}", r.range(2009, 2021)),
        _ => base,
    }
}

fn track_duration(r: &mut Rng) -> u32 {
    let ms = match r.index_by_weight(&[94.0, 3.5, 2.5]) {
        0 => 130_000.0 + (r.f64() + r.f64()) * 95_000.0,
        1 => 40_000.0 + r.f64() * 50_000.0,
        _ => 360_000.0 + r.f64() * 240_000.0,
    };
    ms as u32
}

impl Catalog {
    fn build(opts: &SampleOptions, start: i64, end: i64) -> Catalog {
        let seed = opts.seed;
        let mut rng = Rng::new(seed, 1);
        let scale = (opts.extended_entries.max(1) as f64 / 6_000.0).max(1.0);
        let n_artists = ((300.0 * scale.powf(0.45)).round() as usize).clamp(300, 3_000);
        let span = (end - start) as f64;
        let mut artist_names = Names { rng: Rng::new(seed, 2), used: HashSet::new() };
        let mut artists = Vec::with_capacity(n_artists);
        for a in 0..n_artists {
            let classic = if a < n_artists / 12 { rng.chance(0.6) } else { rng.chance(0.1) };
            artists.push(Artist {
                name: artist_names.unique(artist_name),
                uri: format!("spotify:artist:{}", spotify_id(seed, 1, a as u64)),
                albums: Vec::new(),
                tracks: Vec::new(),
                track_cum: Vec::new(),
                base: 1.0 / ((a + 1) as f64).powf(1.05),
                classic,
                peak: start as f64 - 0.1 * span + rng.f64() * 1.2 * span,
                width: (0.4 + rng.f64() * 2.0) * YEAR as f64,
            });
        }
        let mut albums: Vec<Album> = Vec::new();
        let mut tracks: Vec<Track> = Vec::new();
        for a in 0..n_artists {
            let mut album_names = Names { rng: Rng::new(seed, 1_000 + a as u64), used: HashSet::new() };
            let mut track_names = Names { rng: Rng::new(seed, 2_000_000 + a as u64), used: HashSet::new() };
            let popular = a < n_artists / 10;
            let n_albums = 1 + (0..5).take_while(|_| rng.chance(0.45)).count() + if popular { 2 } else { 0 };
            let n_singles = rng.below(4);
            let mut own = Vec::new();
            for k in 0..n_albums + n_singles {
                let album_id = albums.len() as u32;
                let n_tracks = if k >= n_albums {
                    1
                } else if rng.chance(0.7) {
                    rng.range(7, 15) as usize
                } else {
                    rng.range(3, 6) as usize
                };
                let mut album = Album {
                    name: String::new(),
                    uri: format!("spotify:album:{}", spotify_id(seed, 2, album_id as u64)),
                    tracks: Vec::with_capacity(n_tracks),
                };
                for _ in 0..n_tracks {
                    let track_id = tracks.len() as u32;
                    let feat = if rng.chance(0.04) { Some(artists[rng.below(n_artists)].name.clone()) } else { None };
                    let name = track_names.unique(|r| track_name(r, feat.as_deref()));
                    tracks.push(Track {
                        name,
                        uri: format!("spotify:track:{}", spotify_id(seed, 3, track_id as u64)),
                        album: album_id,
                        artist: a as u32,
                        duration_ms: track_duration(&mut rng),
                    });
                    album.tracks.push(track_id);
                }
                album.name = if n_tracks == 1 {
                    // A single is named after its track.
                    let name = tracks[album.tracks[0] as usize].name.clone();
                    album_names.used.insert(crate::rules::normalize_name(&name));
                    name
                } else if k == 0 && rng.chance(0.08) {
                    artists[a].name.clone()
                } else {
                    album_names.unique(album_name)
                };
                own.push(album_id);
                albums.push(album);
            }
            let mut own_tracks: Vec<u32> =
                own.iter().flat_map(|&al| albums[al as usize].tracks.iter().copied()).collect();
            // Shuffle (Fisher-Yates), then the first ones are the hits.
            for i in (1..own_tracks.len()).rev() {
                let j = rng.below(i + 1);
                own_tracks.swap(i, j);
            }
            let artist = &mut artists[a];
            artist.track_cum = cumulative((0..own_tracks.len()).map(|i| 1.0 / ((i + 1) as f64).powf(1.2)));
            artist.tracks = own_tracks;
            artist.albums = own;
        }

        let mut show_names = Names { rng: Rng::new(seed, 3), used: HashSet::new() };
        let mut shows = Vec::new();
        for s in 0..12 {
            shows.push(Self::show(&mut rng, &mut show_names, seed, s, start, end, false));
        }
        let video_shows =
            (0..3).map(|s| Self::show(&mut rng, &mut show_names, seed, 100 + s, start, end, true)).collect();
        let mut book_names = Names { rng: Rng::new(seed, 4), used: HashSet::new() };
        let books = (0..4u64)
            .map(|b| Book {
                title: book_names.unique(|r| match r.below(3) {
                    0 => format!("The {} {}", r.pick(ADJ), r.pick(NOUN)),
                    1 => format!("A {} of {}", r.pick(NOUN), r.pick(PLURAL)),
                    _ => format!("{} {} the {}", r.pick(PLURAL), r.pick(PREP), r.pick(NOUN)),
                }),
                uri: format!("spotify:audiobook:{}", spotify_id(seed, 7, b)),
                chapters: rng.range(18, 60) as u32,
            })
            .collect();
        Catalog { seed, artists, albums, tracks, shows, video_shows, books }
    }

    fn show(rng: &mut Rng, names: &mut Names, seed: u64, idx: u64, start: i64, end: i64, video: bool) -> Show {
        let span = end - start;
        let from = start - span / 10 + rng.range(0, span * 9 / 10);
        let first = from - rng.range(0, 6 * YEAR);
        Show {
            name: names.unique(|r| match r.below(6) {
                0 => format!("The {} Hour", r.pick(NOUN)),
                1 => format!("{} {} Radio", r.pick(ADJ), r.pick(NOUN)),
                2 => format!("Daily {}", r.pick(NOUN)),
                3 => format!("{} & {} Talk {}", r.pick(FIRST), r.pick(FIRST), r.pick(PLURAL)),
                4 => format!("Stories from the {}", r.pick(NOUN)),
                _ => format!("Deep Dive: {}", r.pick(PLURAL)),
            }) + if video { " (Video)" } else { "" },
            publisher: format!("{} {} Media", rng.pick(ADJ), rng.pick(NOUN)),
            uri: format!("spotify:show:{}", spotify_id(seed, 4, idx)),
            style: rng.below(4),
            first,
            from,
            to: from + rng.range(YEAR, 5 * YEAR),
            weight: 0.3 + rng.f64() * 2.0,
        }
    }

    /// The episode published `n` weeks after a show's first one.
    fn episode(&self, show: &Show, show_idx: u64, n: u32) -> (String, String, u32) {
        let mut r = Rng::new(self.seed ^ show_idx, 5_000_000 + u64::from(n));
        let name = match show.style {
            0 => format!("#{} {} {} (with {} {})", n + 1, r.pick(ADJ), r.pick(PLURAL), r.pick(FIRST), r.pick(LAST)),
            1 => format!("Ep. {}: The {} Problem", n + 1, r.pick(NOUN)),
            2 => format!("{} – Why {} {}", n + 1, r.pick(PLURAL), r.pick(VERB).to_lowercase()),
            _ => format!("{} {} the {}", r.pick(VERB), r.pick(PREP), r.pick(NOUN)),
        };
        let uri = format!("spotify:episode:{}", spotify_id(self.seed, 5 + show_idx * 16, u64::from(n)));
        let duration = (20.0 + r.f64() * 75.0) as u32 * 60_000 + r.below(60_000) as u32;
        (name, uri, duration)
    }

    fn chapter(&self, book: u32, n: u32) -> (String, String, u32) {
        let mut r = Rng::new(self.seed ^ u64::from(book), 7_000_000 + u64::from(n));
        let title =
            if r.chance(0.5) { format!("Chapter {}", n + 1) } else { format!("Chapter {}: {}", n + 1, r.pick(NOUN)) };
        let uri = format!("spotify:episode:{}", spotify_id(self.seed, 8 + u64::from(book) * 16, u64::from(n)));
        (title, uri, (8.0 + r.f64() * 20.0) as u32 * 60_000 + r.below(60_000) as u32)
    }
}

// ---------------------------------------------------------------------------------------
// Rows as Spotify writes them.

/// An `endsong_N.json` row (older years).
#[derive(Serialize)]
struct OldRow<'a> {
    ts: &'a str,
    username: &'a str,
    platform: &'a str,
    ms_played: u32,
    conn_country: &'a str,
    ip_addr_decrypted: Option<&'a str>,
    user_agent_decrypted: Option<&'a str>,
    master_metadata_track_name: Option<&'a str>,
    master_metadata_album_artist_name: Option<&'a str>,
    master_metadata_album_album_name: Option<&'a str>,
    spotify_track_uri: Option<&'a str>,
    episode_name: Option<&'a str>,
    episode_show_name: Option<&'a str>,
    spotify_episode_uri: Option<&'a str>,
    reason_start: &'a str,
    reason_end: &'a str,
    shuffle: Option<bool>,
    skipped: Option<bool>,
    offline: Option<bool>,
    offline_timestamp: Option<i64>,
    incognito_mode: Option<bool>,
}

/// A `Streaming_History_Audio_*.json` / `Streaming_History_Video_*.json` row (newer years).
#[derive(Serialize)]
struct NewRow<'a> {
    ts: &'a str,
    platform: &'a str,
    ms_played: u32,
    conn_country: &'a str,
    ip_addr: Option<&'a str>,
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
    reason_start: &'a str,
    reason_end: &'a str,
    shuffle: Option<bool>,
    skipped: Option<bool>,
    offline: Option<bool>,
    offline_timestamp: Option<i64>,
    incognito_mode: Option<bool>,
}

/// `StreamingHistory_music_N.json` row; since 2025 some rows lack the names.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct MusicRow<'a> {
    end_time: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    artist_name: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    track_name: Option<&'a str>,
    ms_played: u32,
}

/// `StreamingHistory_podcast_N.json` row.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct PodcastRow<'a> {
    end_time: &'a str,
    podcast_name: &'a str,
    episode_name: &'a str,
    ms_played: u32,
}

fn write_pretty<T: Serialize>(path: &Path, value: &T) -> io::Result<()> {
    let mut w = BufWriter::new(File::create(path)?);
    serde_json::to_writer_pretty(&mut w, value)?;
    w.flush()
}

/// Account-data history files of one kind, `StreamingHistory_{kind}_N.json`.
struct AccountFiles {
    dir: PathBuf,
    kind: &'static str,
    cur: Option<JsonArray>,
    next_index: usize,
    done: Vec<PathBuf>,
    rows: usize,
}

impl AccountFiles {
    fn new(dir: &Path, kind: &'static str) -> Self {
        AccountFiles { dir: dir.to_path_buf(), kind, cur: None, next_index: 0, done: Vec::new(), rows: 0 }
    }

    fn push<T: Serialize>(&mut self, row: &T) -> io::Result<()> {
        let full = match &self.cur {
            Some(c) => c.entries >= ACCOUNT_FILE_ENTRIES,
            None => true,
        };
        if full {
            self.finish()?;
            let path = self.dir.join(format!("StreamingHistory_{}_{}.json", self.kind, self.next_index));
            self.next_index += 1;
            self.cur = Some(JsonArray::create(path)?);
        }
        self.rows += 1;
        self.cur.as_mut().expect("opened above").push(row)
    }

    fn finish(&mut self) -> io::Result<()> {
        if let Some(c) = self.cur.take() {
            self.done.push(c.finish()?);
        }
        Ok(())
    }

    /// Closes the last file, writing an empty `_0` file when there was no row at all.
    fn close(mut self) -> io::Result<(Vec<PathBuf>, usize)> {
        if self.next_index == 0 {
            let path = self.dir.join(format!("StreamingHistory_{}_0.json", self.kind));
            self.cur = Some(JsonArray::create(path)?);
        }
        self.finish()?;
        Ok((self.done, self.rows))
    }
}

// ---------------------------------------------------------------------------------------
// The listener.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Device {
    Phone,
    Desktop,
    Laptop,
    Web,
    Speaker,
    Tablet,
}

impl Device {
    /// The `platform` string: detailed before the rename, short after.
    fn platform(self, ts: i64, format: ExtendedNaming) -> &'static str {
        if format == ExtendedNaming::Audio {
            return match self {
                Device::Phone => "android",
                Device::Desktop | Device::Web => "windows",
                Device::Laptop => "linux",
                Device::Speaker => "not_applicable",
                Device::Tablet => "ios",
            };
        }
        // A new phone every ~2.5 years, counting back from the rename.
        let age = ((RENAME_DATE - ts).max(0) / (5 * YEAR / 2)) as usize;
        let pick = |list: &[&'static str]| list[list.len() - 1 - age.min(list.len() - 1)];
        match self {
            Device::Phone => pick(&[
                "Android OS 6.0.1 API 23 (samsung, SM-G920F)",
                "Android OS 8.0.0 API 26 (samsung, SM-G950F)",
                "Android OS 10 API 29 (OnePlus, GM1913)",
                "Android OS 12 API 31 (Google, Pixel 5)",
                "Android OS 14 API 34 (Google, Pixel 7)",
            ]),
            Device::Desktop => pick(&[
                "Windows 7 (6.1.7601; x64; SP1; S)",
                "Windows 10 (10.0.17134; x64)",
                "Windows 10 (10.0.19041; x64; AppX)",
                "Windows 10 (10.0.22621; x64; AppX)",
            ]),
            Device::Laptop => pick(&["OS X 10.11.6 [x86 8]", "Linux [x86-64 0]"]),
            Device::Web => {
                pick(&["web_player linux ;firefox 68.0;desktop", "web_player windows 10;chrome 117.0.5938.92;desktop"])
            }
            Device::Speaker => pick(&["Partner google cast_tv;Chromecast;;", "Partner sonos_ppc Sonos;One;;"]),
            Device::Tablet => pick(&["iOS 12.4.1 (iPad6,11)", "iOS 15.6 (iPad7,5)"]),
        }
    }

    fn user_agent(self, platform: &str) -> &'static str {
        match self {
            Device::Web if platform.contains("firefox") => "Mozilla/5.0 (X11; Linux x86_64; rv:68.0) Gecko/20100101 Firefox/68.0",
            Device::Web => "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/117.0.5938.92 Safari/537.36",
            _ => "unknown",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Item {
    Track(u32),
    Episode { show: u16, n: u32 },
    Chapter { book: u16, n: u32 },
    Unknown,
}

#[derive(Debug, Clone)]
struct Play {
    ts: i64,
    ms: u32,
    item: Item,
    device: Device,
    country: &'static str,
    ip: [u8; 4],
    reason_start: &'static str,
    reason_end: &'static str,
    shuffle: Option<bool>,
    skipped: Option<bool>,
    offline: Option<bool>,
    /// Seconds (0 = missing, None = null); written in ms in the older files.
    offline_ts: Option<i64>,
    offline_ms_part: u16,
    incognito: Option<bool>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SessionKind {
    Music,
    Episodes,
    Chapters,
}

const HOME_COUNTRIES: &[&str] = &["DE", "SE", "NL", "FR", "ES", "PL", "GB", "AT"];
const TRAVEL_COUNTRIES: &[&str] = &["IT", "PT", "GR", "US", "JP", "NO", "HR", "DK", "CZ"];

/// Local start hours of sessions.
#[rustfmt::skip]
const WEEKDAY_HOURS: [f64; 24] = [
    1.5, 0.8, 0.3, 0.1, 0.1, 0.2, 1.0, 5.0, 6.0, 3.0, 2.0, 2.0, 4.0, 3.0, 2.0, 2.0, 3.0, 6.0, 8.0,
    10.0, 11.0, 10.0, 7.0, 3.5,
];
#[rustfmt::skip]
const WEEKEND_HOURS: [f64; 24] = [
    4.0, 3.0, 1.5, 0.5, 0.2, 0.2, 0.3, 1.0, 2.0, 4.0, 6.0, 7.0, 7.0, 6.0, 6.0, 6.0, 6.0, 6.0, 7.0,
    9.0, 10.0, 9.0, 8.0, 6.0,
];
#[rustfmt::skip]
const SPOKEN_HOURS: [f64; 24] = [
    0.5, 0.2, 0.1, 0.0, 0.0, 0.5, 3.0, 8.0, 8.0, 3.0, 2.0, 2.0, 3.0, 2.0, 2.0, 2.0, 3.0, 7.0, 6.0,
    3.0, 3.0, 3.0, 2.5, 1.5,
];

struct Generator<'a> {
    opts: &'a SampleOptions,
    cat: Catalog,
    rng: Rng,
    username: String,
    home: &'static str,
    home_ip: [u8; 4],
    start: i64,
    end: i64,
    cutoff: i64,
    account_from: i64,
    /// End of the last play so far.
    cursor: i64,
    last_ts: i64,
    uniques_left: usize,
    dups_left: usize,
    weights_epoch: i64,
    artist_cum: Vec<f64>,
    book_progress: Vec<u32>,
    ext: ExtendedFiles,
    music: Option<AccountFiles>,
    podcast: Option<AccountFiles>,
}

fn write_tree(dir: &Path, opts: &SampleOptions) -> io::Result<SampleSummary> {
    let ext_dir = dir.join(EXTENDED_DIR);
    let acc_dir = dir.join(ACCOUNT_DIR);
    fs::create_dir_all(&ext_dir)?;
    if opts.account_data {
        fs::create_dir_all(&acc_dir)?;
    }
    let total = opts.extended_entries;
    let dups = total / 200;
    let uniques = total - dups;
    let years = (opts.years.max(1) as usize).max(uniques.div_ceil(MAX_ENTRIES_PER_YEAR)) as i64;
    let end = opts.end.timestamp();
    let start = (end - years * YEAR).div_euclid(DAY) * DAY;
    let span = end - start;
    // The real rename date, moved inside the span when needed so both namings appear.
    let cutoff = RENAME_DATE.clamp(start + span / 8, end - span / 16);
    let cat = Catalog::build(opts, start, end);
    let mut rng = Rng::new(opts.seed, 0);
    let username: String = (0..25).map(|_| BASE62[10 + rng.below(26) + 26] as char).collect::<String>();
    let home = *rng.pick(HOME_COUNTRIES);
    let home_ip = [203, 0, 113, rng.range(2, 250) as u8];
    let cap = MAX_FILE_ENTRIES.min(total.div_ceil(4).max(1_000));
    let mut gen = Generator {
        opts,
        book_progress: vec![0; cat.books.len()],
        cat,
        rng,
        username: format!("31{username}"),
        home,
        home_ip,
        start,
        end,
        cutoff,
        account_from: end - 365 * DAY,
        cursor: start,
        last_ts: start,
        uniques_left: uniques,
        dups_left: dups,
        weights_epoch: i64::MIN,
        artist_cum: Vec::new(),
        ext: ExtendedFiles::new(&ext_dir, cap, MAX_FILE_BYTES),
        music: opts.account_data.then(|| AccountFiles::new(&acc_dir, "music")),
        podcast: (opts.account_data && opts.podcasts).then(|| AccountFiles::new(&acc_dir, "podcast")),
    };
    gen.run(uniques)?;
    let (mut files, extended_entries) = gen.ext.finish()?;
    let mut account_entries = 0;
    for acc in [gen.music.take(), gen.podcast.take()].into_iter().flatten() {
        let (done, rows) = acc.close()?;
        files.extend(done);
        account_entries += rows;
    }
    files.push(gen.write_video(&ext_dir)?);
    let pdf = ext_dir.join("ReadMeFirst_ExtendedStreamingHistory.pdf");
    fs::write(&pdf, b"%PDF-1.4\n% Placeholder for Spotify's ReadMeFirst: the real one describes the fields.\n%%EOF\n")?;
    files.push(pdf);
    if opts.account_data {
        files.extend(gen.write_library(&acc_dir)?);
    }
    files.sort();
    Ok(SampleSummary { files, extended_entries, account_entries })
}

impl Generator<'_> {
    /// Per-day counts of unique plays (summing to `uniques`) and the day's country.
    fn plan_days(&mut self, uniques: usize) -> (Vec<u32>, Vec<&'static str>) {
        let first_day = self.start / DAY;
        let n_days = ((self.end + DAY - 1) / DAY - first_day).max(1) as usize;
        let mut weights = vec![0.0f64; n_days];
        let mut countries = vec![self.home; n_days];
        let rng = &mut self.rng;
        let mut break_left = 0;
        let mut trip: Option<(usize, &'static str)> = None;
        for d in 0..n_days {
            let wd = weekday(first_day + d as i64);
            if break_left > 0 {
                break_left -= 1;
                continue;
            }
            if let Some((left, country)) = trip {
                countries[d] = country;
                trip = if left > 1 { Some((left - 1, country)) } else { None };
            } else if rng.chance(2.0 / 365.0) {
                break_left = rng.range(2, 9);
                continue;
            } else if rng.chance(2.0 / 365.0) {
                trip = Some((rng.range(3, 10) as usize, *rng.pick(TRAVEL_COUNTRIES)));
            }
            let weekend = wd >= 5;
            if rng.chance(if weekend { 0.08 } else { 0.13 }) {
                continue;
            }
            let day_factor = [1.0, 0.95, 1.0, 1.05, 1.15, 1.5, 1.35][wd];
            let noise = (1.0 + 0.35 * rng.normal()).clamp(0.25, 2.2);
            let trend = 0.75 + 0.5 * d as f64 / n_days as f64;
            let travel = if countries[d] == self.home { 1.0 } else { 0.6 };
            weights[d] = day_factor * noise * trend * travel;
        }
        if weights.iter().all(|w| *w == 0.0) {
            weights.iter_mut().for_each(|w| *w = 1.0);
        }
        let total: f64 = weights.iter().sum();
        let mut counts = Vec::with_capacity(n_days);
        let (mut acc, mut given) = (0.0, 0usize);
        for (d, w) in weights.iter().enumerate() {
            acc += w;
            let target = if d + 1 == n_days { uniques } else { ((acc / total) * uniques as f64).round() as usize };
            let target = target.clamp(given, uniques);
            counts.push((target - given) as u32);
            given = target;
        }
        (counts, countries)
    }

    fn refresh_weights(&mut self, t: i64) {
        let epoch = t.div_euclid(30 * DAY);
        if epoch == self.weights_epoch {
            return;
        }
        self.weights_epoch = epoch;
        let t = t as f64;
        self.artist_cum = cumulative(self.cat.artists.iter().map(|a| {
            let phase = if a.classic {
                1.0
            } else {
                let x = (t - a.peak) / a.width;
                0.06 + (-x * x).exp()
            };
            a.base * phase
        }));
    }

    fn run(&mut self, uniques: usize) -> io::Result<()> {
        let (counts, countries) = self.plan_days(uniques);
        let first_day = self.start / DAY;
        for (d, &count) in counts.iter().enumerate() {
            if count == 0 {
                continue;
            }
            let day = first_day + d as i64;
            let midnight = day * DAY - UTC_OFFSET;
            self.refresh_weights(midnight);
            let weekend = weekday(day) >= 5;
            let newer = midnight >= self.cutoff;
            // Split the day's plays into music, episode and chapter sessions.
            let (mut n_episodes, mut n_chapters) = (0usize, 0usize);
            if self.opts.podcasts {
                for _ in 0..count {
                    let x = self.rng.f64();
                    if x < 0.08 {
                        n_episodes += 1;
                    } else if newer && x < 0.0845 {
                        n_chapters += 1;
                    }
                }
            }
            let n_music = count as usize - n_episodes - n_chapters;
            // Heavy days (only when an export has far more entries than years): skip more
            // music, so the day still fits in ~12 hours instead of spilling into the night.
            let spoken_minutes = 18.0 * (n_episodes + n_chapters) as f64;
            let music_minutes = (720.0 - spoken_minutes).max(60.0) / n_music.max(1) as f64;
            let skip_rate = (1.0 - music_minutes / 3.6).clamp(BASE_SKIP_RATE, 0.8);
            let mut sessions: Vec<(i64, SessionKind, usize)> = Vec::new();
            let hours = if weekend { &WEEKEND_HOURS } else { &WEEKDAY_HOURS };
            for (kind, n, mean, table) in [
                (SessionKind::Music, n_music, 8.0 + self.rng.f64() * 10.0, hours),
                (SessionKind::Episodes, n_episodes, 1.6, &SPOKEN_HOURS),
                (SessionKind::Chapters, n_chapters, 2.0, &SPOKEN_HOURS),
            ] {
                if n == 0 {
                    continue;
                }
                let k = ((n as f64 / mean).round() as usize).clamp(1, n);
                let mut lens = vec![1usize; k];
                for _ in k..n {
                    lens[self.rng.below(k)] += 1;
                }
                for len in lens {
                    let at = self.rng.index_by_weight(table) as i64 * 3_600 + self.rng.range(0, 3_600);
                    sessions.push((midnight + at, kind, len));
                }
            }
            sessions.sort_by_key(|s| s.0);
            for (at, kind, len) in sessions {
                let start = at.max(self.cursor + self.rng.range(90, 1_200));
                self.session(start, kind, len, weekend, countries[d], skip_rate)?;
            }
        }
        Ok(())
    }

    fn device_for(&mut self, local_hour: i64, weekend: bool, kind: SessionKind) -> Device {
        use Device::*;
        let table: &[(Device, f64)] =
            if kind != SessionKind::Music || (!weekend && matches!(local_hour, 6..=9 | 16..=18)) {
                &[(Phone, 88.0), (Speaker, 5.0), (Desktop, 4.0), (Tablet, 3.0)]
            } else if weekend {
                &[(Speaker, 35.0), (Phone, 33.0), (Desktop, 14.0), (Laptop, 8.0), (Tablet, 10.0)]
            } else {
                &[(Desktop, 36.0), (Phone, 28.0), (Speaker, 16.0), (Laptop, 10.0), (Web, 5.0), (Tablet, 5.0)]
            };
        let weights: Vec<f64> = table.iter().map(|(_, w)| *w).collect();
        table[self.rng.index_by_weight(&weights)].0
    }

    fn pick_track(&mut self) -> u32 {
        let a = self.rng.weighted(&self.artist_cum);
        self.pick_track_of(a)
    }

    fn pick_track_of(&mut self, artist: usize) -> u32 {
        let artist = &self.cat.artists[artist];
        artist.tracks[self.rng.weighted(&artist.track_cum)]
    }

    #[allow(clippy::too_many_arguments)]
    fn session(
        &mut self,
        start: i64,
        kind: SessionKind,
        len: usize,
        weekend: bool,
        country: &'static str,
        skip_rate: f64,
    ) -> io::Result<()> {
        let local_hour = (start + UTC_OFFSET).rem_euclid(DAY) / 3_600;
        let device = self.device_for(local_hour, weekend, kind);
        let rng = &mut self.rng;
        let offline = device == Device::Phone && rng.chance(0.08);
        let incognito = rng.chance(0.01);
        let ip = if country != self.home {
            [192, 0, 2, rng.range(1, 255) as u8]
        } else if device == Device::Phone && !offline {
            [198, 51, 100, rng.range(1, 255) as u8]
        } else {
            // The home address changes about twice a year.
            let period = (start / (182 * DAY)) as u64;
            [self.home_ip[0], self.home_ip[1], self.home_ip[2], (mix(period ^ self.opts.seed) % 250 + 2) as u8]
        };
        // Music modes: 0 mixed, 1 album, 2 one artist and friends.
        let mode = rng.index_by_weight(&[60.0, 20.0, 20.0]);
        let shuffle = mode != 1 && rng.chance(0.65);
        let focus = rng.weighted(&self.artist_cum);
        let mut album_queue: Vec<u32> = Vec::new();
        if mode == 1 {
            let albums = &self.cat.artists[focus].albums;
            let album = albums[rng.below(albums.len())];
            album_queue = self.cat.albums[album as usize].tracks.iter().rev().copied().collect();
        }
        let show = if kind == SessionKind::Episodes { self.pick_show(start) } else { 0 };
        let book = ((start - self.cutoff).max(0) / (YEAR / 2)) as usize % self.cat.books.len();
        let mut t = start;
        let mut prev_end = "";
        let mut episode: Option<u32> = None;
        for i in 0..len {
            let rng = &mut self.rng;
            let last = i + 1 == len;
            let unknown_rate = if t >= self.account_from { 0.008 } else { 0.004 };
            let item = match kind {
                _ if rng.chance(unknown_rate) => Item::Unknown,
                SessionKind::Music => {
                    if let Some(track) = album_queue.pop() {
                        Item::Track(track)
                    } else if mode == 2 && rng.chance(0.6) {
                        Item::Track(self.pick_track_of(focus))
                    } else {
                        Item::Track(self.pick_track())
                    }
                }
                SessionKind::Episodes => {
                    // The newest episode or a slightly older one; the next row often resumes it.
                    let s = &self.cat.shows[show];
                    let latest = ((t - s.first) / (7 * DAY)).max(0) as u32;
                    let backlog = (0..4).take_while(|_| rng.chance(0.35)).count() as u32;
                    let n = match episode {
                        Some(prev) if rng.chance(0.5) => prev,
                        _ => latest.saturating_sub(backlog),
                    };
                    episode = Some(n);
                    Item::Episode { show: show as u16, n }
                }
                SessionKind::Chapters => {
                    let b = &self.cat.books[book];
                    let n = self.book_progress[book] % b.chapters;
                    self.book_progress[book] += 1;
                    Item::Chapter { book: book as u16, n }
                }
            };
            let rng = &mut self.rng;
            let duration = match item {
                Item::Track(tr) => self.cat.tracks[tr as usize].duration_ms,
                Item::Episode { show, n } => self.cat.episode(&self.cat.shows[show as usize], show as u64, n).2,
                Item::Chapter { book, n } => self.cat.chapter(book as u32, n).2,
                Item::Unknown => 60_000 + rng.below(180_000) as u32,
            };
            let spoken = matches!(item, Item::Episode { .. } | Item::Chapter { .. });
            let x = rng.f64();
            let skip = if spoken { 0.10 } else { skip_rate };
            let (ms, reason_end) = if x < skip {
                let ms = (rng.f64() * rng.f64() * 30_000.0) as u32;
                (ms, if rng.chance(0.9) { "fwdbtn" } else { "backbtn" })
            } else if x < skip + if spoken { 0.75 } else { 0.075 } {
                // Stopped part-way (spoken word: a stretch of 1-25 minutes, then paused).
                let most = if spoken { duration.min(25 * 60_000) } else { duration };
                let ms = 30_000 + rng.below(most.saturating_sub(30_000).max(1) as usize) as u32;
                (ms, *rng.pick(&["fwdbtn", "endplay", "endplay", "logout", "remote", "unexpected-exit-while-paused"]))
            } else if rng.chance(0.002) {
                (0, "trackerror")
            } else {
                (duration.saturating_sub(rng.below(1_200) as u32), "trackdone")
            };
            let reason_end = if last && reason_end == "trackdone" && rng.chance(0.5) {
                *rng.pick(&["endplay", "logout", "unexpected-exit-while-paused", "unexpected-exit", "unknown"])
            } else {
                reason_end
            };
            let reason_start = if i == 0 {
                match device {
                    Device::Speaker => "remote",
                    _ => *rng.pick(&["clickrow", "clickrow", "playbtn", "appload", "trackdone"]),
                }
            } else {
                match prev_end {
                    "trackdone" => "trackdone",
                    "fwdbtn" => "fwdbtn",
                    "backbtn" => "backbtn",
                    _ => "clickrow",
                }
            };
            prev_end = reason_end;
            let play_start = t;
            let rows_after = self.uniques_left - 1 + self.dups_left;
            let ts =
                (play_start + (i64::from(ms) + 999) / 1_000).min(self.end - 1 - rows_after as i64).max(self.last_ts);
            // Next one starts right away, sometimes a little before (overlap) or after.
            t = match rng.f64() {
                x if x < 0.04 => ts - rng.range(1, 10),
                x if x < 0.85 => ts + rng.range(0, 2),
                _ => ts + rng.range(2, 25),
            };
            let newer = ts >= self.cutoff;
            let unknown = item == Item::Unknown;
            let play = Play {
                ts,
                ms,
                item,
                device,
                country,
                ip,
                reason_start,
                reason_end,
                shuffle: if unknown && rng.chance(0.5) { None } else { Some(shuffle) },
                skipped: if unknown {
                    None
                } else if newer {
                    Some(reason_end == "fwdbtn" || reason_end == "backbtn")
                } else {
                    Some(false)
                },
                offline: if unknown && rng.chance(0.5) { None } else { Some(offline) },
                offline_ts: match rng.f64() {
                    x if x < 0.04 => None,
                    x if x < 0.14 => Some(0),
                    _ => Some(play_start),
                },
                offline_ms_part: rng.below(1_000) as u16,
                incognito: if unknown && rng.chance(0.5) { None } else { Some(incognito) },
            };
            self.emit(&play)?;
            self.last_ts = ts;
            self.cursor = self.cursor.max(ts);
        }
        Ok(())
    }

    fn pick_show(&mut self, t: i64) -> usize {
        let live: Vec<usize> = (0..self.cat.shows.len())
            .filter(|&s| (self.cat.shows[s].from..self.cat.shows[s].to).contains(&t))
            .collect();
        let pool: Vec<usize> = if live.is_empty() { (0..self.cat.shows.len()).collect() } else { live };
        let weights: Vec<f64> = pool.iter().map(|&s| self.cat.shows[s].weight).collect();
        pool[self.rng.index_by_weight(&weights)]
    }

    /// Writes one unique play (and perhaps its exact duplicate) to the extended history and,
    /// in the last year, to the account data.
    fn emit(&mut self, play: &Play) -> io::Result<()> {
        let format = if play.ts < self.cutoff { ExtendedNaming::Endsong } else { ExtendedNaming::Audio };
        self.write_extended(play, format)?;
        if self.dups_left > 0 {
            // Duplicates: ~0.5% of rows, sometimes crossing into the next file.
            let force = self.ext.rolls(format) && self.rng.chance(0.5);
            if force || self.rng.below(self.uniques_left) < self.dups_left {
                self.write_extended(play, format)?;
                self.dups_left -= 1;
            }
        }
        self.uniques_left -= 1;
        if play.ts >= self.account_from {
            let end_time = fmt_minute(play.ts);
            match play.item {
                Item::Track(tr) => {
                    if let Some(music) = &mut self.music {
                        let track = &self.cat.tracks[tr as usize];
                        let artist = &self.cat.artists[track.artist as usize];
                        music.push(&MusicRow {
                            end_time: &end_time,
                            artist_name: Some(&artist.name),
                            track_name: Some(&track.name),
                            ms_played: play.ms,
                        })?;
                    }
                }
                Item::Unknown => {
                    if let Some(music) = &mut self.music {
                        music.push(&MusicRow {
                            end_time: &end_time,
                            artist_name: None,
                            track_name: None,
                            ms_played: play.ms,
                        })?;
                    }
                }
                Item::Episode { show, n } => {
                    if let Some(podcast) = &mut self.podcast {
                        let s = &self.cat.shows[show as usize];
                        let (episode, _, _) = self.cat.episode(s, show as u64, n);
                        podcast.push(&PodcastRow {
                            end_time: &end_time,
                            podcast_name: &s.name,
                            episode_name: &episode,
                            ms_played: play.ms,
                        })?;
                    }
                }
                Item::Chapter { .. } => {}
            }
        }
        Ok(())
    }

    fn write_extended(&mut self, play: &Play, format: ExtendedNaming) -> io::Result<()> {
        let cat = &self.cat;
        let ts = fmt_ts(play.ts);
        let ip = format!("{}.{}.{}.{}", play.ip[0], play.ip[1], play.ip[2], play.ip[3]);
        let mut m = Meta::default();
        let owned: (String, String);
        match play.item {
            Item::Track(tr) => {
                let track = &cat.tracks[tr as usize];
                m.track = Some(&track.name);
                m.artist = Some(&cat.artists[track.artist as usize].name);
                m.album = Some(&cat.albums[track.album as usize].name);
                m.track_uri = Some(&track.uri);
            }
            Item::Episode { show, n } => {
                let s = &cat.shows[show as usize];
                let (name, uri, _) = cat.episode(s, show as u64, n);
                owned = (name, uri);
                m.episode = Some(&owned.0);
                m.show = Some(&s.name);
                m.episode_uri = Some(&owned.1);
            }
            Item::Chapter { book, n } => {
                let b = &cat.books[book as usize];
                let (title, uri, _) = cat.chapter(book as u32, n);
                owned = (title, uri);
                m.book = Some(&b.title);
                m.book_uri = Some(&b.uri);
                m.chapter_uri = Some(&owned.1);
                m.chapter = Some(&owned.0);
            }
            Item::Unknown => {}
        }
        let year = year_of(play.ts);
        let file = self.ext.file_for(format, year)?;
        let platform = play.device.platform(play.ts, format);
        match format {
            ExtendedNaming::Endsong => file.push(&OldRow {
                ts: &ts,
                username: &self.username,
                platform,
                ms_played: play.ms,
                conn_country: play.country,
                ip_addr_decrypted: Some(&ip),
                user_agent_decrypted: Some(play.device.user_agent(platform)),
                master_metadata_track_name: m.track,
                master_metadata_album_artist_name: m.artist,
                master_metadata_album_album_name: m.album,
                spotify_track_uri: m.track_uri,
                episode_name: m.episode,
                episode_show_name: m.show,
                spotify_episode_uri: m.episode_uri,
                reason_start: play.reason_start,
                reason_end: play.reason_end,
                shuffle: play.shuffle,
                skipped: play.skipped,
                offline: play.offline,
                offline_timestamp: play.offline_ts.map(|s| {
                    if s == 0 {
                        0
                    } else {
                        s * 1_000 + i64::from(play.offline_ms_part)
                    }
                }),
                incognito_mode: play.incognito,
            }),
            ExtendedNaming::Audio => file.push(&NewRow {
                ts: &ts,
                platform,
                ms_played: play.ms,
                conn_country: play.country,
                ip_addr: Some(&ip),
                master_metadata_track_name: m.track,
                master_metadata_album_artist_name: m.artist,
                master_metadata_album_album_name: m.album,
                spotify_track_uri: m.track_uri,
                episode_name: m.episode,
                episode_show_name: m.show,
                spotify_episode_uri: m.episode_uri,
                audiobook_title: m.book,
                audiobook_uri: m.book_uri,
                audiobook_chapter_uri: m.chapter_uri,
                audiobook_chapter_title: m.chapter,
                reason_start: play.reason_start,
                reason_end: play.reason_end,
                shuffle: play.shuffle,
                skipped: play.skipped,
                offline: play.offline,
                offline_timestamp: play.offline_ts,
                incognito_mode: play.incognito,
            }),
        }
    }

    /// A few video-podcast rows in the newer format.
    fn write_video(&mut self, dir: &Path) -> io::Result<PathBuf> {
        let n = 4 + (self.opts.extended_entries / 25_000).min(26);
        let from = self.cutoff.max(self.end - 2 * YEAR);
        let mut rng = Rng::new(self.opts.seed, 9);
        let mut times: Vec<i64> = (0..n)
            .map(|_| rng.range(from, self.end - DAY) / DAY * DAY - UTC_OFFSET + rng.range(6 * 3_600, 7 * 3_600))
            .collect();
        times.sort_unstable();
        let (y1, y2) = (year_of(times[0]), year_of(times[n - 1]));
        let name = if y1 == y2 {
            format!("Streaming_History_Video_{y1}.json")
        } else {
            format!("Streaming_History_Video_{y1}-{y2}.json")
        };
        let mut file = JsonArray::create(dir.join(name))?;
        for ts in times {
            let s_idx = rng.below(self.cat.video_shows.len());
            let show = &self.cat.video_shows[s_idx];
            let (episode, uri, duration) =
                self.cat.episode(show, 100 + s_idx as u64, ((ts - show.first).max(0) / (7 * DAY)) as u32);
            let ms = if rng.chance(0.4) { duration } else { rng.range(30_000, i64::from(duration)) as u32 };
            file.push(&NewRow {
                ts: &fmt_ts(ts),
                platform: ["android", "ios", "windows"][rng.below(3)],
                ms_played: ms,
                conn_country: self.home,
                ip_addr: Some("198.51.100.23"),
                master_metadata_track_name: None,
                master_metadata_album_artist_name: None,
                master_metadata_album_album_name: None,
                spotify_track_uri: None,
                episode_name: Some(&episode),
                episode_show_name: Some(&show.name),
                spotify_episode_uri: Some(&uri),
                audiobook_title: None,
                audiobook_uri: None,
                audiobook_chapter_uri: None,
                audiobook_chapter_title: None,
                reason_start: "clickrow",
                reason_end: if ms == duration { "trackdone" } else { "endplay" },
                shuffle: Some(false),
                skipped: Some(false),
                offline: Some(false),
                offline_timestamp: Some(ts - i64::from(ms) / 1_000),
                incognito_mode: Some(false),
            })?;
        }
        file.finish()
    }

    /// `YourLibrary.json` and `Playlist1.json`.
    fn write_library(&mut self, dir: &Path) -> io::Result<Vec<PathBuf>> {
        let cat = &self.cat;
        let mut rng = Rng::new(self.opts.seed, 10);
        let top = cat.artists.len().min(25);
        let track_json = |t: u32| {
            let track = &cat.tracks[t as usize];
            LibraryTrack {
                artist: &cat.artists[track.artist as usize].name,
                album: &cat.albums[track.album as usize].name,
                track: &track.name,
                uri: &track.uri,
            }
        };
        let tracks: Vec<LibraryTrack> =
            (0..top).flat_map(|a| cat.artists[a].tracks.iter().take(2).copied()).map(track_json).collect();
        let albums: Vec<LibraryAlbum> = (0..top.min(10))
            .map(|a| {
                let album = &cat.albums[cat.artists[a].albums[0] as usize];
                LibraryAlbum { artist: &cat.artists[a].name, album: &album.name, uri: &album.uri }
            })
            .collect();
        let shows: Vec<LibraryShow> = cat
            .shows
            .iter()
            .take(5)
            .map(|s| LibraryShow { name: &s.name, publisher: &s.publisher, uri: &s.uri })
            .collect();
        let artists: Vec<LibraryArtist> =
            cat.artists.iter().take(12).map(|a| LibraryArtist { name: &a.name, uri: &a.uri }).collect();
        let empty: Vec<serde_json::Value> = Vec::new();
        let library = YourLibrary {
            tracks,
            albums,
            shows,
            episodes: &empty,
            banned_tracks: &empty,
            artists,
            banned_artists: &empty,
            other: &empty,
        };
        let library_path = dir.join("YourLibrary.json");
        write_pretty(&library_path, &library)?;

        let mut playlists = Vec::new();
        for (name, description) in [
            ("Evening chill", None),
            ("Running 🏃", Some("fast stuff only")),
            ("Sunday Morning", None),
            ("Best of the Year", Some("what I played most")),
        ] {
            let n = rng.range(8, 30) as usize;
            let modified = self.end - rng.range(DAY, 300 * DAY);
            let items = (0..n)
                .map(|_| {
                    let a = rng.below(cat.artists.len().min(60));
                    let artist = &cat.artists[a];
                    let t = artist.tracks[rng.below(artist.tracks.len())];
                    let track = &cat.tracks[t as usize];
                    PlaylistItem {
                        track: PlaylistTrack {
                            track_name: &track.name,
                            artist_name: &artist.name,
                            album_name: &cat.albums[track.album as usize].name,
                            track_uri: &track.uri,
                        },
                        episode: None,
                        local_track: None,
                        audiobook: None,
                        added_date: fmt_date(modified - rng.range(0, 2 * YEAR)),
                    }
                })
                .collect();
            playlists.push(Playlist {
                name,
                last_modified_date: fmt_date(modified),
                collaborators: &empty,
                items,
                description,
                number_of_followers: rng.below(3) as u32,
            });
        }
        let playlist_path = dir.join("Playlist1.json");
        write_pretty(&playlist_path, &Playlists { playlists })?;
        Ok(vec![library_path, playlist_path])
    }
}

#[derive(Default)]
struct Meta<'a> {
    track: Option<&'a str>,
    artist: Option<&'a str>,
    album: Option<&'a str>,
    track_uri: Option<&'a str>,
    episode: Option<&'a str>,
    show: Option<&'a str>,
    episode_uri: Option<&'a str>,
    book: Option<&'a str>,
    book_uri: Option<&'a str>,
    chapter_uri: Option<&'a str>,
    chapter: Option<&'a str>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct YourLibrary<'a> {
    tracks: Vec<LibraryTrack<'a>>,
    albums: Vec<LibraryAlbum<'a>>,
    shows: Vec<LibraryShow<'a>>,
    episodes: &'a [serde_json::Value],
    banned_tracks: &'a [serde_json::Value],
    artists: Vec<LibraryArtist<'a>>,
    banned_artists: &'a [serde_json::Value],
    other: &'a [serde_json::Value],
}

#[derive(Serialize)]
struct LibraryTrack<'a> {
    artist: &'a str,
    album: &'a str,
    track: &'a str,
    uri: &'a str,
}

#[derive(Serialize)]
struct LibraryAlbum<'a> {
    artist: &'a str,
    album: &'a str,
    uri: &'a str,
}

#[derive(Serialize)]
struct LibraryShow<'a> {
    name: &'a str,
    publisher: &'a str,
    uri: &'a str,
}

#[derive(Serialize)]
struct LibraryArtist<'a> {
    name: &'a str,
    uri: &'a str,
}

#[derive(Serialize)]
struct Playlists<'a> {
    playlists: Vec<Playlist<'a>>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Playlist<'a> {
    name: &'a str,
    last_modified_date: String,
    collaborators: &'a [serde_json::Value],
    items: Vec<PlaylistItem<'a>>,
    description: Option<&'a str>,
    number_of_followers: u32,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct PlaylistItem<'a> {
    track: PlaylistTrack<'a>,
    episode: Option<()>,
    local_track: Option<()>,
    audiobook: Option<()>,
    added_date: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct PlaylistTrack<'a> {
    track_name: &'a str,
    artist_name: &'a str,
    album_name: &'a str,
    track_uri: &'a str,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;
    use std::collections::HashMap;

    fn read_array(path: &Path) -> Vec<Value> {
        let text = fs::read_to_string(path).unwrap();
        match serde_json::from_str(&text).unwrap() {
            Value::Array(rows) => rows,
            other => panic!("{} is not an array: {other:.80}", path.display()),
        }
    }

    fn name_of(path: &Path) -> String {
        path.file_name().unwrap().to_string_lossy().into_owned()
    }

    fn is_audio(path: &Path) -> bool {
        let name = name_of(path);
        name.starts_with("endsong_") || name.starts_with("Streaming_History_Audio_")
    }

    /// The audio files in the order their rows were written (by first `ts`).
    fn audio_rows(summary: &SampleSummary) -> Vec<(String, Vec<Value>)> {
        let mut files: Vec<(String, Vec<Value>)> =
            summary.files.iter().filter(|p| is_audio(p)).map(|p| (name_of(p), read_array(p))).collect();
        files.sort_by(|a, b| {
            a.1[0]["ts"].as_str().cmp(&b.1[0]["ts"].as_str()).then(a.1.len().cmp(&b.1.len()).reverse())
        });
        files
    }

    fn opts(entries: usize) -> SampleOptions {
        SampleOptions { extended_entries: entries, ..SampleOptions::small() }
    }

    #[test]
    fn same_seed_same_bytes() {
        let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let sa = generate_export(a.path(), &opts(3_000)).unwrap();
        let sb = generate_export(b.path(), &opts(3_000)).unwrap();
        assert_eq!(sa.files.len(), sb.files.len());
        for (fa, fb) in sa.files.iter().zip(&sb.files) {
            assert_eq!(fa.strip_prefix(a.path()).unwrap(), fb.strip_prefix(b.path()).unwrap());
            assert!(fs::read(fa).unwrap() == fs::read(fb).unwrap(), "{} differs", fa.display());
        }
        let c = tempfile::tempdir().unwrap();
        let sc = generate_export(c.path(), &SampleOptions { seed: 7, ..opts(3_000) }).unwrap();
        let first = |s: &SampleSummary| fs::read(s.files.iter().find(|p| is_audio(p)).unwrap()).unwrap();
        assert_ne!(first(&sa), first(&sc));
    }

    #[test]
    fn small_export_layout_counts_and_realism() {
        let dir = tempfile::tempdir().unwrap();
        let summary = generate_export(dir.path(), &SampleOptions::small()).unwrap();
        assert_eq!(summary.extended_entries, 6_000);
        let names: Vec<String> = summary.files.iter().map(|p| name_of(p)).collect();
        for expected in [
            "ReadMeFirst_ExtendedStreamingHistory.pdf",
            "StreamingHistory_music_0.json",
            "StreamingHistory_podcast_0.json",
            "YourLibrary.json",
            "Playlist1.json",
        ] {
            assert!(names.iter().any(|n| n == expected), "{expected} missing from {names:?}");
        }
        assert!(names.iter().any(|n| n.starts_with("endsong_")), "{names:?}");
        assert!(names.iter().any(|n| n.starts_with("Streaming_History_Audio_")), "{names:?}");
        assert!(names.iter().any(|n| n.starts_with("Streaming_History_Video_")), "{names:?}");
        assert!(dir.path().join(EXTENDED_DIR).join("endsong_0.json").exists());
        assert!(fs::read(dir.path().join(EXTENDED_DIR).join("ReadMeFirst_ExtendedStreamingHistory.pdf"))
            .unwrap()
            .starts_with(b"%PDF"));
        let library: Value =
            serde_json::from_str(&fs::read_to_string(dir.path().join(ACCOUNT_DIR).join("YourLibrary.json")).unwrap())
                .unwrap();
        assert!(library["tracks"].as_array().unwrap().len() > 10);
        let playlists: Value =
            serde_json::from_str(&fs::read_to_string(dir.path().join(ACCOUNT_DIR).join("Playlist1.json")).unwrap())
                .unwrap();
        assert!(playlists["playlists"][0]["items"][0]["track"]["trackUri"]
            .as_str()
            .unwrap()
            .starts_with("spotify:track:"));

        let files = audio_rows(&summary);
        let rows: Vec<&Value> = files.iter().flat_map(|f| f.1.iter()).collect();
        assert_eq!(rows.len(), 6_000);
        let text = fs::read_to_string(summary.files.iter().find(|p| is_audio(p)).unwrap()).unwrap();
        assert!(text.starts_with("[\n  {\n    \"ts\": \""), "{}", &text[..40]);
        assert!(text.ends_with("\n  }\n]"));

        // Both shapes, each with its own fields and offline_timestamp unit.
        for (name, rows) in &files {
            for row in rows {
                let offline_ts = row["offline_timestamp"].as_i64().unwrap_or(0);
                if name.starts_with("endsong_") {
                    assert!(
                        row.get("username").is_some()
                            && row.get("ip_addr_decrypted").is_some()
                            && row.get("ip_addr").is_none()
                    );
                    assert!(row.get("audiobook_title").is_none());
                    assert!(offline_ts == 0 || offline_ts > 100_000_000_000, "{row}");
                } else {
                    assert!(
                        row.get("ip_addr").is_some()
                            && row.get("audiobook_uri").is_some()
                            && row.get("username").is_none()
                    );
                    assert!(offline_ts < 100_000_000_000, "{row}");
                    assert!(["android", "ios", "windows", "linux", "not_applicable"]
                        .contains(&row["platform"].as_str().unwrap()));
                }
            }
        }
        // ts is "YYYY-MM-DDTHH:MM:SSZ", never decreasing, within the span.
        let ts: Vec<&str> = rows.iter().map(|r| r["ts"].as_str().unwrap()).collect();
        assert!(ts.windows(2).all(|w| w[0] <= w[1]));
        assert!(ts
            .iter()
            .all(|t| t.len() == 20 && t.ends_with('Z') && *t < "2026-11-01T00:00:00Z" && *t >= "2022-10-01"));
        assert!(ts[0] < "2023-01-01", "{}", ts[0]);

        let count = |f: &dyn Fn(&Value) -> bool| rows.iter().filter(|r| f(r)).count() as f64 / rows.len() as f64;
        let episodes = count(&|r| r["spotify_episode_uri"].is_string());
        let chapters = rows.iter().filter(|r| r["audiobook_chapter_uri"].is_string()).count();
        let nulls = rows
            .iter()
            .filter(|r| {
                r["spotify_track_uri"].is_null() && r["spotify_episode_uri"].is_null() && r["audiobook_uri"].is_null()
            })
            .count();
        let skips = count(&|r| r["ms_played"].as_u64().unwrap() < 30_000 && r["reason_end"] == "fwdbtn");
        assert!((0.06..0.10).contains(&episodes), "episodes {episodes}");
        assert!((3..60).contains(&chapters), "chapters {chapters}");
        assert!((5..80).contains(&nulls), "all-null rows {nulls}");
        assert!((0.11..0.19).contains(&skips), "skips {skips}");
        let uri = rows.iter().find_map(|r| r["spotify_track_uri"].as_str()).unwrap();
        let id = uri.strip_prefix("spotify:track:").unwrap();
        assert!(id.len() == 22 && id.bytes().all(|b| b.is_ascii_alphanumeric()));

        // Exact duplicates: ~0.5%.
        let mut seen = HashSet::new();
        let dups = rows.iter().filter(|r| !seen.insert(r.to_string())).count();
        assert_eq!(dups, 30);

        // Popularity is skewed: the top artist has far more plays than the median one.
        let mut per_artist: HashMap<&str, usize> = HashMap::new();
        for r in &rows {
            if let Some(a) = r["master_metadata_album_artist_name"].as_str() {
                *per_artist.entry(a).or_default() += 1;
            }
        }
        let mut counts: Vec<usize> = per_artist.values().copied().collect();
        counts.sort_unstable_by(|a, b| b.cmp(a));
        assert!(counts[0] > 10 * counts[counts.len() / 2], "{:?}", &counts[..10]);
        assert!(per_artist.len() > 100);

        // Days without listening exist, and more evening than morning plays.
        let days: HashSet<&str> = ts.iter().map(|t| &t[..10]).collect();
        assert!(days.len() < 4 * 365 * 95 / 100 && days.len() > 4 * 365 / 2, "{} days", days.len());
        let hour = |t: &&str| t[11..13].parse::<u32>().unwrap();
        let evening = ts.iter().filter(|t| (17..22).contains(&hour(t))).count();
        let early = ts.iter().filter(|t| (2..7).contains(&hour(t))).count();
        assert!(evening > 5 * early, "evening {evening} early {early}");
    }

    #[test]
    fn account_data_is_a_subset_of_the_extended_plays() {
        let dir = tempfile::tempdir().unwrap();
        let summary = generate_export(dir.path(), &SampleOptions::small()).unwrap();
        let rows: Vec<Value> = audio_rows(&summary).into_iter().flat_map(|f| f.1).collect();
        let minute = |ts: &str| format!("{} {}", &ts[..10], &ts[11..16]);
        let mut extended: HashSet<(String, String, String, u64)> = HashSet::new();
        for r in &rows {
            let ts = minute(r["ts"].as_str().unwrap());
            let ms = r["ms_played"].as_u64().unwrap();
            let s = |k: &str| r[k].as_str().unwrap_or("").to_string();
            if r["spotify_episode_uri"].is_string() {
                extended.insert((ts, s("episode_show_name"), s("episode_name"), ms));
            } else {
                extended.insert((ts, s("master_metadata_album_artist_name"), s("master_metadata_track_name"), ms));
            }
        }
        let acc = dir.path().join(ACCOUNT_DIR);
        let music = read_array(&acc.join("StreamingHistory_music_0.json"));
        let podcast = read_array(&acc.join("StreamingHistory_podcast_0.json"));
        assert!(music.len() > 1_000 && !podcast.is_empty(), "{} {}", music.len(), podcast.len());
        assert_eq!(summary.account_entries, music.len() + podcast.len());
        let mut nameless = 0;
        for r in &music {
            let end = r["endTime"].as_str().unwrap();
            assert_eq!(end.len(), 16);
            assert!(end >= "2025-11-01 00:00", "{end}");
            if r.get("trackName").is_none() {
                nameless += 1;
                assert!(r.get("artistName").is_none());
            }
            let s = |k: &str| r[k].as_str().unwrap_or("").to_string();
            let key = (end.to_string(), s("artistName"), s("trackName"), r["msPlayed"].as_u64().unwrap());
            assert!(extended.contains(&key), "{r} has no extended play");
        }
        assert!(nameless >= 2, "{nameless} rows without names");
        for r in &podcast {
            let s = |k: &str| r[k].as_str().unwrap().to_string();
            let key = (s("endTime"), s("podcastName"), s("episodeName"), r["msPlayed"].as_u64().unwrap());
            assert!(extended.contains(&key), "{r} has no extended play");
        }
        // Every extended play of the last year is in the account data.
        let last_year = rows
            .iter()
            .filter(|r| r["ts"].as_str().unwrap() >= "2025-11-01" && r["audiobook_uri"].is_null())
            .map(|r| r.to_string())
            .collect::<HashSet<_>>()
            .len();
        assert_eq!(last_year, music.len() + podcast.len());
    }

    #[test]
    fn large_export_splits_files_like_spotify() {
        let dir = tempfile::tempdir().unwrap();
        let opts =
            SampleOptions { extended_entries: 70_000, account_data: true, podcasts: false, ..SampleOptions::small() };
        let summary = generate_export(dir.path(), &opts).unwrap();
        assert_eq!(summary.extended_entries, 70_000);
        let files = audio_rows(&summary);
        assert!(files.len() >= 5, "{} files", files.len());
        let mut total = 0;
        for (name, rows) in &files {
            let size = fs::metadata(dir.path().join(EXTENDED_DIR).join(name)).unwrap().len();
            assert!(
                rows.len() <= MAX_FILE_ENTRIES && size <= MAX_FILE_BYTES,
                "{name}: {} rows, {size} bytes",
                rows.len()
            );
            total += rows.len();
            // The years in a new-style name are those of its first and last rows.
            if let Some(years) = name.strip_prefix("Streaming_History_Audio_") {
                let years = years.rsplit_once('_').unwrap().0;
                let first = &rows[0]["ts"].as_str().unwrap()[..4];
                let last = &rows[rows.len() - 1]["ts"].as_str().unwrap()[..4];
                let expected = if first == last { first.to_string() } else { format!("{first}-{last}") };
                assert_eq!(years, expected);
            }
        }
        assert_eq!(total, 70_000);
        let n_episodes: usize =
            files.iter().flat_map(|f| f.1.iter()).filter(|r| r["spotify_episode_uri"].is_string()).count();
        assert_eq!(n_episodes, 0);
        // A duplicate row right at a file boundary lands in the next file.
        let crossing = files.windows(2).filter(|w| w[0].1.last() == w[1].1.first()).count();
        assert!(crossing >= 1, "no duplicate across files");
        assert!(!dir.path().join(ACCOUNT_DIR).join("StreamingHistory_podcast_0.json").exists());
        assert!(dir.path().join(ACCOUNT_DIR).join("StreamingHistory_music_1.json").exists());
    }

    #[test]
    fn zip_holds_the_same_tree() {
        let dir = tempfile::tempdir().unwrap();
        let summary = generate_export(dir.path(), &SampleOptions { zip: true, ..opts(2_000) }).unwrap();
        assert_eq!(summary.files, vec![dir.path().join(ZIP_NAME)]);
        assert_eq!(summary.extended_entries, 2_000);
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1, "temporary files left behind");
        let mut zip = zip::ZipArchive::new(File::open(&summary.files[0]).unwrap()).unwrap();
        let names: Vec<String> = zip.file_names().map(String::from).collect();
        assert!(names.iter().any(|n| n.starts_with("Spotify Extended Streaming History/endsong_")), "{names:?}");
        assert!(names.iter().any(|n| n == "Spotify Account Data/StreamingHistory_music_0.json"), "{names:?}");
        let mut text = String::new();
        io::Read::read_to_string(
            &mut zip.by_name("Spotify Extended Streaming History/endsong_0.json").unwrap(),
            &mut text,
        )
        .unwrap();
        assert!(text.starts_with("[\n  {"));
        let plain = tempfile::tempdir().unwrap();
        generate_export(plain.path(), &opts(2_000)).unwrap();
        assert_eq!(text, fs::read_to_string(plain.path().join(EXTENDED_DIR).join("endsong_0.json")).unwrap());
    }

    #[test]
    fn dates_format_like_spotify() {
        assert_eq!(fmt_ts(0), "1970-01-01T00:00:00Z");
        assert_eq!(fmt_ts(1_699_136_230), "2023-11-04T22:17:10Z");
        assert_eq!(fmt_minute(1_709_164_799), "2024-02-28 23:59");
        assert_eq!(fmt_ts(1_709_164_800 + DAY), "2024-03-01T00:00:00Z");
        assert_eq!(weekday(0), 3);
        assert_eq!(year_of(RENAME_DATE), 2024);
    }

    /// Regenerates `tests/fixtures/sample_export/` (the README's demo data) from
    /// [`SampleOptions::small`]:
    /// `cargo test -p echostats-core --features sample -- --ignored regenerate_sample_fixture`.
    #[test]
    #[ignore = "writes tests/fixtures/sample_export"]
    fn regenerate_sample_fixture() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/sample_export");
        for sub in [EXTENDED_DIR, ACCOUNT_DIR] {
            let _ = fs::remove_dir_all(dir.join(sub));
        }
        let summary = generate_export(&dir, &SampleOptions::small()).unwrap();
        let bytes: u64 = summary.files.iter().map(|f| fs::metadata(f).unwrap().len()).sum();
        println!("{} files, {bytes} bytes, {summary:?}", summary.files.len());
        assert!(bytes < 6_000_000);
    }
}
