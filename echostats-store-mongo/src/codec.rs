//! Documents: how records, days and catalog entries are written and read back.

use crate::error::{MongoError, MongoResult};
use chrono::{DateTime, Datelike, NaiveDate, Utc};
use echostats_core::model::{HistoryEntry, PlayAnchor, PlayKind, PlayRecord, RollupDay};
use echostats_core::rules::{normalize_name, PlayKeys};
use mongodb::bson::{self, doc, spec::BinarySubtype, Binary, Bson, Document};

/// Epoch milliseconds of an instant, rounded down.
pub(crate) fn ms_floor(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

/// Epoch milliseconds of an instant, rounded up.
pub(crate) fn ms_ceil(t: DateTime<Utc>) -> i64 {
    let ms = t.timestamp_millis();
    if DateTime::from_timestamp_millis(ms) == Some(t) {
        ms
    } else {
        ms + 1
    }
}

/// A day as a number (days from the common era), so ranges compare as numbers.
pub(crate) fn day_num(d: NaiveDate) -> i32 {
    d.num_days_from_ce()
}

/// Inverse of [`day_num`].
pub(crate) fn day_from_num(n: i32) -> MongoResult<NaiveDate> {
    NaiveDate::from_num_days_from_ce_opt(n).ok_or_else(|| MongoError::Corrupt(format!("day number {n}")))
}

/// The document of a play: the record under `r`, plus derived fields.
/// The document of a play whose anchor is `anchor` ([`HistoryEntry::anchor`]; fields
/// `anc` and `ancm`, only when set).
pub(crate) fn play_doc(
    id: i64,
    user_id: &str,
    r: &PlayRecord,
    anchor: Option<PlayAnchor>,
    keys: &PlayKeys,
) -> MongoResult<Document> {
    let mut d = doc! {
        "u": user_id,
        "n": id,
        "at": ms_floor(r.played_at),
        "k": r.kind.code(),
        "ms": r.ms_played,
        "mk": match_key(r, keys),
    };
    let mut opt = |name: &str, v: Option<String>| {
        if let Some(v) = v {
            d.insert(name, v);
        }
    };
    opt("tk", keys.track_key.clone());
    opt("ak", keys.artist_key.clone());
    opt("alk", keys.album_key.clone());
    opt("an", r.artist_name.as_deref().map(normalize_name));
    opt("tn", r.track_name.as_deref().map(normalize_name));
    opt("sk", r.show_name.as_deref().filter(|_| r.kind == PlayKind::Episode).map(normalize_name));
    if r.uri.is_some() {
        d.insert("tsid", id);
    }
    if r.artist_id.is_some() {
        d.insert("asid", id);
    }
    if let Some(anchor) = anchor {
        d.insert("anc", ms_floor(anchor.at));
        d.insert("ancm", anchor.to_the_minute);
    }
    d.insert("r", bson::to_document(r)?);
    Ok(d)
}

/// What identifies a play exactly (with user, kind and time): its URI, else its names,
/// else its duration (entries without metadata match only by duration).
fn match_key(r: &PlayRecord, keys: &PlayKeys) -> String {
    match (&r.uri, &keys.name_key) {
        (Some(uri), _) => format!("u:{uri}"),
        (None, Some(name)) => format!("n:{name}"),
        (None, None) => format!("d:{}", r.ms_played),
    }
}

/// Reads a play document back.
pub(crate) fn entry_from_doc(d: &Document) -> MongoResult<(i64, HistoryEntry)> {
    let id = num(d, "n").ok_or_else(|| MongoError::Corrupt("play without id".into()))?;
    let user_id = d.get_str("u").map_err(|e| MongoError::Corrupt(format!("play user: {e}")))?.to_string();
    let r = d.get_document("r").map_err(|e| MongoError::Corrupt(format!("play {id} record: {e}")))?;
    let record: PlayRecord = bson::from_document(r.clone())?;
    let anchor = match num(d, "anc") {
        Some(ms) => Some(PlayAnchor {
            at: DateTime::from_timestamp_millis(ms)
                .ok_or_else(|| MongoError::Corrupt(format!("play {id}: anchor {ms} out of range")))?,
            to_the_minute: d.get_bool("ancm").unwrap_or(false),
        }),
        None => None,
    };
    Ok((id, HistoryEntry { id: id.to_string(), user_id, record, anchor }))
}

/// An integer field, whatever integer or float type the server chose for it.
pub(crate) fn num(d: &Document, key: &str) -> Option<i64> {
    match d.get(key)? {
        Bson::Int32(v) => Some(*v as i64),
        Bson::Int64(v) => Some(*v),
        Bson::Double(v) => Some(*v as i64),
        Bson::Decimal128(v) => v.to_string().parse::<f64>().ok().map(|f| f as i64),
        _ => None,
    }
}

/// The document of a rollup day.
pub(crate) fn day_doc(user_id: &str, day: &RollupDay) -> Document {
    let n = day_num(day.day);
    doc! {
        "_id": format!("{user_id}\u{1f}{n}"),
        "u": user_id,
        "d": n,
        "plays": day.total_plays(),
        "ms": day.total_ms(),
        "s": Binary { subtype: BinarySubtype::Generic, bytes: day.encode_slots() },
    }
}

/// Reads a rollup day back.
pub(crate) fn day_from_doc(d: &Document) -> MongoResult<RollupDay> {
    let n = num(d, "d").ok_or_else(|| MongoError::Corrupt("rollup day without day".into()))? as i32;
    let day = day_from_num(n)?;
    let bytes = match d.get("s") {
        Some(Bson::Binary(b)) => &b.bytes,
        _ => return Err(MongoError::Corrupt(format!("rollup day {day} without slots"))),
    };
    RollupDay::decode_slots(day, bytes)
        .ok_or_else(|| MongoError::Corrupt(format!("rollup slots of day {day} have {} bytes", bytes.len())))
}
