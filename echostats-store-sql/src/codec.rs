//! Conversions between the domain model and rows, and small SQL text helpers.

use crate::error::{SqlError, SqlResult};
use chrono::{DateTime, NaiveDate, Utc};
use echostats_core::model::{HistoryEntry, PlayAnchor, PlayKind, PlayOrigin, PlayRecord};
use echostats_core::rules::{normalize_name, PlayKeys, PlayRules};
use sqlx::any::{AnyArguments, AnyRow};
use sqlx::{Any, Row};

/// A query with Any arguments.
pub(crate) type Query<'q> = sqlx::query::Query<'q, Any, AnyArguments<'q>>;

/// Most bind parameters per statement (SQLite's limit is 32,766; PostgreSQL's 65,535).
/// Not the limit: SQLite compiles a statement of 32,000 binds into a program of several
/// MB, kept in each connection's statement cache, which put a 6M-entry import over
/// 300 MB; at 8,000 an import is as fast (a few % faster on SQLite and PostgreSQL) and
/// its memory levels off ~60 MB lower.
pub(crate) const MAX_BINDS: usize = 8_000;

// ---------------------------------------------------------------------------------------
// Time

/// Epoch milliseconds, rounded down.
pub(crate) fn ms_floor(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

/// Epoch milliseconds, rounded up: `t <= x` for a whole-millisecond `x` iff
/// `ms_ceil(t) <= ms(x)`.
pub(crate) fn ms_ceil(t: DateTime<Utc>) -> i64 {
    let floor = t.timestamp_millis();
    if t.timestamp_subsec_nanos() != t.timestamp_subsec_millis() * 1_000_000 {
        floor + 1
    } else {
        floor
    }
}

pub(crate) fn from_ms(ms: i64) -> SqlResult<DateTime<Utc>> {
    DateTime::from_timestamp_millis(ms).ok_or_else(|| SqlError::Corrupt(format!("timestamp {ms} out of range")))
}

const EPOCH_DAY: NaiveDate = match NaiveDate::from_ymd_opt(1970, 1, 1) {
    Some(d) => d,
    None => panic!("epoch"),
};

/// Days since 1970-01-01.
pub(crate) fn day_num(d: NaiveDate) -> i64 {
    d.signed_duration_since(EPOCH_DAY).num_days()
}

pub(crate) fn day_from_num(n: i64) -> SqlResult<NaiveDate> {
    chrono::Duration::try_days(n)
        .and_then(|d| EPOCH_DAY.checked_add_signed(d))
        .ok_or_else(|| SqlError::Corrupt(format!("day {n} out of range")))
}

// ---------------------------------------------------------------------------------------
// Plays

/// Columns derived from a record for the queries: `counted` is stored on the play, the
/// keys on its item (they depend on the item's fields only).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Derived {
    pub counted: bool,
    pub track_key: Option<String>,
    pub artist_key: Option<String>,
    pub album_key: Option<String>,
    /// `normalize_name(artist_name)` (every kind): the history artist filter.
    pub artist_norm: Option<String>,
    /// `normalize_name(track_name)` (every kind): the history track filter.
    pub track_norm: Option<String>,
    /// `normalize_name(show_name)` of episodes: the show ranking key.
    pub show_key: Option<String>,
}

impl Derived {
    pub(crate) fn of(r: &PlayRecord, rules: &PlayRules) -> Self {
        Self::from_keys(r, r.keys(rules))
    }

    /// Whether the item columns (all but `counted`) agree.
    pub(crate) fn same_item_keys(&self, other: &Derived) -> bool {
        Derived { counted: other.counted, ..self.clone() } == *other
    }

    pub(crate) fn from_keys(r: &PlayRecord, keys: PlayKeys) -> Self {
        let artist_norm = match &keys.artist_key {
            Some(k) => Some(k.clone()),
            None => r.artist_name.as_deref().map(normalize_name),
        };
        Derived {
            counted: keys.counted,
            track_key: keys.track_key,
            artist_key: keys.artist_key,
            album_key: keys.album_key,
            artist_norm,
            track_norm: r.track_name.as_deref().map(normalize_name),
            show_key: r.show_name.as_deref().filter(|_| r.kind == PlayKind::Episode).map(normalize_name),
        }
    }
}

/// Columns written for a play, in bind order (see [`play_values`]). What describes the
/// item played is in `play_items` ([`ITEM_WRITE_COLS`]); the play points at it.
pub(crate) const PLAY_WRITE_COLS: [&str; 20] = [
    "user_id",
    "played_at",
    "ms_played",
    "kind",
    "origin",
    "counted",
    "item_id",
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
    "anchor_at",
    "anchor_minute",
];

/// Columns written for an item, in bind order (see [`item_values`]).
pub(crate) const ITEM_WRITE_COLS: [&str; 18] = [
    "ident",
    "kind",
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
    "track_key",
    "artist_key",
    "album_key",
    "artist_norm",
    "track_norm",
    "show_key",
];

/// Columns read for a [`HistoryEntry`] from the `play_rows` view (see [`entry_from_row`]).
pub(crate) const PLAY_READ_COLS: &str = "id, user_id, played_at, ms_played, kind, origin, uri, track_name, \
     artist_name, album_name, artist_id, episode_name, show_name, audiobook_title, audiobook_uri, \
     audiobook_chapter_title, platform, conn_country, reason_start, reason_end, shuffle, skipped, offline, \
     offline_timestamp, incognito, context_type, context_uri, anchor_at, anchor_minute";

/// The number of [`PLAY_READ_COLS`].
pub(crate) const PLAY_READ_COL_COUNT: usize = column_count(PLAY_READ_COLS);

/// The number of columns in a comma-separated list.
const fn column_count(list: &str) -> usize {
    let bytes = list.as_bytes();
    let (mut i, mut count) = (0, 1);
    while i < bytes.len() {
        if bytes[i] == b',' {
            count += 1;
        }
        i += 1;
    }
    count
}

/// [`PLAY_READ_COLS`] plus the derived columns, in [`Derived`] order, and the item id.
pub(crate) const PLAY_READ_COLS_DERIVED: &str = "id, user_id, played_at, ms_played, kind, origin, uri, \
     track_name, artist_name, album_name, artist_id, episode_name, show_name, audiobook_title, audiobook_uri, \
     audiobook_chapter_title, platform, conn_country, reason_start, reason_end, shuffle, skipped, offline, \
     offline_timestamp, incognito, context_type, context_uri, anchor_at, anchor_minute, counted, track_key, \
     artist_key, album_key, artist_norm, track_norm, show_key, item_id";

/// The identity of the item a record describes: its kind and every item field, in
/// [`ITEM_WRITE_COLS`] order, each length-prefixed (in characters) or `-` when missing.
/// Unambiguous whatever the names contain, and the same text migration 0003 builds in
/// SQL (`length()` counts characters on both dialects).
pub(crate) fn item_ident(r: &PlayRecord) -> String {
    let fields = [
        &r.uri,
        &r.track_name,
        &r.artist_name,
        &r.album_name,
        &r.artist_id,
        &r.episode_name,
        &r.show_name,
        &r.audiobook_title,
        &r.audiobook_uri,
        &r.audiobook_chapter_title,
    ];
    let mut ident =
        String::with_capacity(16 + fields.iter().map(|f| f.as_ref().map_or(2, |v| v.len() + 6)).sum::<usize>());
    let mut digits = itoa::Buffer::new();
    ident.push_str(digits.format(r.kind.code()));
    for field in fields {
        match field {
            Some(v) => {
                ident.push('|');
                ident.push_str(digits.format(v.chars().count()));
                ident.push(':');
                ident.push_str(v);
            }
            None => ident.push_str("|-"),
        }
    }
    ident
}

fn flag(b: Option<bool>) -> Option<i64> {
    b.map(i64::from)
}

/// A value of a written column (plays, items): typed even when NULL, as PostgreSQL wants.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ColumnValue<'a> {
    Int(Option<i64>),
    Text(Option<&'a str>),
}

/// The [`PLAY_WRITE_COLS`] of one play, whose item has id `item_id` and whose anchor is
/// `anchor` ([`HistoryEntry::anchor`]), in order.
pub(crate) fn play_values<'a>(
    user_id: &'a str,
    r: &'a PlayRecord,
    anchor: Option<PlayAnchor>,
    counted: bool,
    item_id: i64,
) -> [ColumnValue<'a>; PLAY_WRITE_COLS.len()] {
    use ColumnValue::{Int, Text};
    [
        Text(Some(user_id)),
        Int(Some(ms_floor(r.played_at))),
        Int(Some(r.ms_played)),
        Int(Some(r.kind.code() as i64)),
        Int(Some(r.origin.code() as i64)),
        Int(Some(counted as i64)),
        Int(Some(item_id)),
        Text(r.platform.as_deref()),
        Text(r.conn_country.as_deref()),
        Text(r.reason_start.as_deref()),
        Text(r.reason_end.as_deref()),
        Int(flag(r.shuffle)),
        Int(flag(r.skipped)),
        Int(flag(r.offline)),
        Int(r.offline_timestamp.map(ms_floor)),
        Int(flag(r.incognito)),
        Text(r.context_type.as_deref()),
        Text(r.context_uri.as_deref()),
        Int(anchor.map(|a| ms_floor(a.at))),
        Int(anchor.map(|a| i64::from(a.to_the_minute))),
    ]
}

/// Binds the [`PLAY_WRITE_COLS`] of one play (see [`play_values`]).
pub(crate) fn bind_play<'q>(
    q: Query<'q>,
    user_id: &'q str,
    r: &'q PlayRecord,
    anchor: Option<PlayAnchor>,
    counted: bool,
    item_id: i64,
) -> Query<'q> {
    bind_values(q, play_values(user_id, r, anchor, counted, item_id))
}

/// The [`ITEM_WRITE_COLS`] of the item `r` describes (`d`: its derived columns), in order.
pub(crate) fn item_values<'a>(
    ident: &'a str,
    r: &'a PlayRecord,
    d: &'a Derived,
) -> [ColumnValue<'a>; ITEM_WRITE_COLS.len()] {
    use ColumnValue::{Int, Text};
    [
        Text(Some(ident)),
        Int(Some(r.kind.code() as i64)),
        Text(r.uri.as_deref()),
        Text(r.track_name.as_deref()),
        Text(r.artist_name.as_deref()),
        Text(r.album_name.as_deref()),
        Text(r.artist_id.as_deref()),
        Text(r.episode_name.as_deref()),
        Text(r.show_name.as_deref()),
        Text(r.audiobook_title.as_deref()),
        Text(r.audiobook_uri.as_deref()),
        Text(r.audiobook_chapter_title.as_deref()),
        Text(d.track_key.as_deref()),
        Text(d.artist_key.as_deref()),
        Text(d.album_key.as_deref()),
        Text(d.artist_norm.as_deref()),
        Text(d.track_norm.as_deref()),
        Text(d.show_key.as_deref()),
    ]
}

/// Binds `values` in order.
pub(crate) fn bind_values<'q>(q: Query<'q>, values: impl IntoIterator<Item = ColumnValue<'q>>) -> Query<'q> {
    values.into_iter().fold(q, |q, value| match value {
        ColumnValue::Int(v) => q.bind(v),
        ColumnValue::Text(v) => q.bind(v),
    })
}

/// The values of a selected row by column index, however the row was read: through sqlx,
/// or from the rows SQLite's read function packed (`sqlite_bulk::unpack_rows`).
pub(crate) trait RowValues {
    /// An integer column, `None` for NULL.
    fn int(&self, i: usize) -> SqlResult<Option<i64>>;
    /// A text column, `None` for NULL.
    fn text(&self, i: usize) -> SqlResult<Option<String>>;

    /// An integer column that must not be NULL.
    fn required_int(&self, i: usize) -> SqlResult<i64> {
        self.int(i)?.ok_or_else(|| SqlError::Corrupt(format!("column {i} is NULL, an integer was expected")))
    }

    /// A 0/1 column.
    fn flag(&self, i: usize) -> SqlResult<Option<bool>> {
        Ok(self.int(i)?.map(|v| v != 0))
    }
}

impl RowValues for AnyRow {
    fn int(&self, i: usize) -> SqlResult<Option<i64>> {
        Ok(self.try_get(i)?)
    }

    fn text(&self, i: usize) -> SqlResult<Option<String>> {
        Ok(self.try_get(i)?)
    }
}

/// A [`HistoryEntry`] from a row selected with [`PLAY_READ_COLS`] (or the derived variant).
pub(crate) fn entry_from_row<R: RowValues + ?Sized>(row: &R) -> SqlResult<(i64, HistoryEntry)> {
    let id = row.required_int(0)?;
    let kind = row.required_int(4)?;
    let origin = row.required_int(5)?;
    let kind = i32::try_from(kind)
        .ok()
        .and_then(PlayKind::from_code)
        .ok_or_else(|| SqlError::Corrupt(format!("play {id}: unknown kind code {kind}")))?;
    let origin = i32::try_from(origin)
        .ok()
        .and_then(PlayOrigin::from_code)
        .ok_or_else(|| SqlError::Corrupt(format!("play {id}: unknown origin code {origin}")))?;
    let s = |i: usize| row.text(i);
    let record = PlayRecord {
        played_at: from_ms(row.required_int(2)?)?,
        ms_played: row.required_int(3)?,
        kind,
        origin,
        uri: s(6)?,
        track_name: s(7)?,
        artist_name: s(8)?,
        album_name: s(9)?,
        artist_id: s(10)?,
        episode_name: s(11)?,
        show_name: s(12)?,
        audiobook_title: s(13)?,
        audiobook_uri: s(14)?,
        audiobook_chapter_title: s(15)?,
        platform: s(16)?,
        conn_country: s(17)?,
        reason_start: s(18)?,
        reason_end: s(19)?,
        shuffle: row.flag(20)?,
        skipped: row.flag(21)?,
        offline: row.flag(22)?,
        offline_timestamp: row.int(23)?.map(from_ms).transpose()?,
        incognito: row.flag(24)?,
        context_type: s(25)?,
        context_uri: s(26)?,
    };
    let user_id = row.text(1)?.ok_or_else(|| SqlError::Corrupt(format!("play {id}: no user")))?;
    let anchor = match row.int(27)? {
        Some(ms) => Some(PlayAnchor { at: from_ms(ms)?, to_the_minute: row.flag(28)?.unwrap_or(false) }),
        None => None,
    };
    Ok((id, HistoryEntry { id: id.to_string(), user_id, record, anchor }))
}

/// The stored derived columns of a row selected with [`PLAY_READ_COLS_DERIVED`], and its item id.
pub(crate) fn derived_from_row(row: &AnyRow) -> SqlResult<(Derived, i64)> {
    let s = |i: usize| row.try_get::<Option<String>, _>(i);
    let derived = Derived {
        counted: row.try_get::<i64, _>(29)? != 0,
        track_key: s(30)?,
        artist_key: s(31)?,
        album_key: s(32)?,
        artist_norm: s(33)?,
        track_norm: s(34)?,
        show_key: s(35)?,
    };
    Ok((derived, row.try_get(36)?))
}

/// Parses a store id back into the integer primary key.
pub(crate) fn parse_id(id: &str) -> SqlResult<i64> {
    id.parse().map_err(|_| SqlError::Corrupt(format!("play id {id:?} is not one of ours")))
}

// ---------------------------------------------------------------------------------------
// SQL text

/// How `n` rows are split into multi-row statements of at most `full` rows: (first row,
/// rows) of each. Full statements, then the rest in power-of-two sizes, so that every
/// statement is one of a few, prepared once per connection: preparing an odd-sized
/// statement of thousands of parameters for every batch cost SQLite more than the few
/// extra round trips.
pub(crate) fn statement_rows(n: usize, full: usize) -> Vec<(usize, usize)> {
    let mut out: Vec<(usize, usize)> = (0..n / full).map(|k| (k * full, full)).collect();
    let mut base = out.len() * full;
    while base < n {
        let rows = 1 << (n - base).ilog2();
        out.push((base, rows));
        base += rows;
    }
    out
}

/// The text of a multi-row statement (`what`, for `rows` rows), built once per process.
/// Only for the sizes [`statement_rows`] produces: a few dozen statements in all, kept
/// for the life of the process.
pub(crate) fn cached_sql(
    what: &'static str,
    dialect: crate::Dialect,
    rows: usize,
    build: impl FnOnce() -> String,
) -> &'static str {
    use std::collections::HashMap;
    use std::sync::{Mutex, OnceLock};
    type Key = (&'static str, bool, usize);
    static CACHE: OnceLock<Mutex<HashMap<Key, &'static str>>> = OnceLock::new();
    let mut cache = CACHE.get_or_init(Default::default).lock().unwrap_or_else(|e| e.into_inner());
    cache
        .entry((what, dialect == crate::Dialect::Postgres, rows))
        .or_insert_with(|| Box::leak(build().into_boxed_str()))
}

/// Placeholder generator. SQLite gets anonymous `?` (textual order = bind order):
/// numbered or named parameters cost SQLite a linear search per bind
/// (`sqlite3_bind_parameter_name`), which makes multi-row statements with thousands of
/// binds quadratic. PostgreSQL gets `$1, $2, ...`. Never mix with hand-written `$N` in
/// one statement.
pub(crate) struct Ph {
    pg: bool,
    n: usize,
}

impl Ph {
    pub(crate) fn new(dialect: crate::Dialect) -> Self {
        Ph { pg: dialect == crate::Dialect::Postgres, n: 0 }
    }

    /// The next placeholder.
    pub(crate) fn next(&mut self) -> String {
        self.n += 1;
        if self.pg {
            format!("${}", self.n)
        } else {
            "?".to_string()
        }
    }

    /// `count` placeholders separated by commas, for `IN (...)` lists.
    pub(crate) fn list(&mut self, count: usize) -> String {
        let mut s = String::with_capacity(count * 4);
        for i in 0..count {
            if i > 0 {
                s.push_str(", ");
            }
            s.push_str(&self.next());
        }
        s
    }

    /// `(p, p, ...), (...)` for `rows` rows of `cols` columns.
    pub(crate) fn values(&mut self, rows: usize, cols: usize) -> String {
        let mut s = String::with_capacity(rows * cols * 4);
        for r in 0..rows {
            if r > 0 {
                s.push_str(", ");
            }
            s.push('(');
            s.push_str(&self.list(cols));
            s.push(')');
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    /// Stored identities must keep their text: migration 0003 builds the same in SQL,
    /// and stored items are found by it.
    #[test]
    fn an_item_identity_is_its_kind_and_length_prefixed_fields() {
        use echostats_core::model::{PlayKind, PlayOrigin};
        let at = chrono::Utc.timestamp_opt(1_700_000_000, 0).unwrap();
        let mut r = PlayRecord::new(at, 1, PlayKind::Audiobook, PlayOrigin::ExtendedHistory);
        r.uri = Some("spotify:track:x".into());
        r.track_name = Some("Café|1:x".into());
        r.audiobook_chapter_title = Some(String::new());
        assert_eq!(item_ident(&r), "2|15:spotify:track:x|8:Café|1:x|-|-|-|-|-|-|-|0:");
    }

    #[test]
    fn rows_are_split_into_full_then_power_of_two_statements() {
        assert_eq!(statement_rows(0, 100), vec![]);
        assert_eq!(statement_rows(1, 100), vec![(0, 1)]);
        assert_eq!(statement_rows(7, 100), vec![(0, 4), (4, 2), (6, 1)]);
        assert_eq!(statement_rows(206, 100), vec![(0, 100), (100, 100), (200, 4), (204, 2)]);
        for n in [99, 100, 5_000] {
            let rows = statement_rows(n, 100);
            assert_eq!(rows.iter().map(|r| r.1).sum::<usize>(), n);
            assert!(rows.windows(2).all(|w| w[0].0 + w[0].1 == w[1].0), "contiguous");
            assert!(rows.iter().all(|r| r.1 == 100 || r.1.is_power_of_two()));
        }
    }

    #[test]
    fn ms_rounding() {
        let t = Utc.timestamp_opt(10, 1_500_000).unwrap();
        assert_eq!((ms_floor(t), ms_ceil(t)), (10_001, 10_002));
        let t = Utc.timestamp_opt(10, 2_000_000).unwrap();
        assert_eq!((ms_floor(t), ms_ceil(t)), (10_002, 10_002));
        let t = Utc.timestamp_opt(-1, 999_999_999).unwrap();
        assert_eq!((ms_floor(t), ms_ceil(t)), (-1, 0));
    }

    #[test]
    fn days_roundtrip() {
        for d in [NaiveDate::from_ymd_opt(1969, 12, 31).unwrap(), NaiveDate::from_ymd_opt(2024, 2, 29).unwrap()] {
            assert_eq!(day_from_num(day_num(d)).unwrap(), d);
        }
        assert_eq!(day_num(NaiveDate::from_ymd_opt(1970, 1, 2).unwrap()), 1);
        assert!(day_num(NaiveDate::MIN) < day_num(NaiveDate::MAX));
    }

    #[test]
    fn placeholder_text() {
        let mut p = Ph::new(crate::Dialect::Postgres);
        assert_eq!(p.next(), "$1");
        assert_eq!(p.values(2, 2), "($2, $3), ($4, $5)");
        assert_eq!(p.list(2), "$6, $7");
        let mut p = Ph::new(crate::Dialect::Sqlite);
        assert_eq!(p.values(1, 2), "(?, ?)");
    }
}
