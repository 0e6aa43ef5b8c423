//! Arrow tables built column by column in Rust (no per-row Python objects).

use arrow_array::builder::{BooleanBuilder, Float64Builder, Int64Builder, StringBuilder, TimestampMillisecondBuilder};
use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::{ArrowError, DataType, Field, Schema, SchemaRef, TimeUnit};
use echostats::analytics::TrendPoint;
use echostats::PlayRecord;
use std::sync::Arc;

const STRING_COLUMNS: [&str; 13] = [
    "kind",
    "origin",
    "source",
    "uri",
    "track_name",
    "artist_name",
    "album_name",
    "episode_name",
    "show_name",
    "platform",
    "conn_country",
    "reason_start",
    "reason_end",
];
const BOOL_COLUMNS: [&str; 4] = ["shuffle", "skipped", "offline", "incognito"];

/// Schema of a plays table: `played_at` (timestamp[ms, UTC]), `ms_played` (int64), the
/// string columns, then the boolean flags.
pub fn plays_schema() -> SchemaRef {
    let mut fields = vec![
        Field::new("played_at", DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())), false),
        Field::new("ms_played", DataType::Int64, false),
    ];
    for name in STRING_COLUMNS {
        let required = matches!(name, "kind" | "origin" | "source");
        fields.push(Field::new(name, DataType::Utf8, !required));
    }
    for name in BOOL_COLUMNS {
        fields.push(Field::new(name, DataType::Boolean, true));
    }
    Arc::new(Schema::new(fields))
}

/// One record batch of plays, in the given order.
pub fn plays_batch<'a>(records: impl ExactSizeIterator<Item = &'a PlayRecord>) -> Result<RecordBatch, ArrowError> {
    let n = records.len();
    let mut played_at = TimestampMillisecondBuilder::with_capacity(n).with_timezone("UTC");
    let mut ms_played = Int64Builder::with_capacity(n);
    let mut strings: Vec<StringBuilder> =
        STRING_COLUMNS.iter().map(|_| StringBuilder::with_capacity(n, n.saturating_mul(12))).collect();
    let mut bools: Vec<BooleanBuilder> = BOOL_COLUMNS.iter().map(|_| BooleanBuilder::with_capacity(n)).collect();
    for r in records {
        played_at.append_value(r.played_at.timestamp_millis());
        ms_played.append_value(r.ms_played);
        let values: [Option<&str>; 13] = [
            Some(r.kind.as_str()),
            Some(r.origin.as_str()),
            Some(r.origin.source()),
            r.uri.as_deref(),
            r.track_name.as_deref(),
            r.artist_name.as_deref(),
            r.album_name.as_deref(),
            r.episode_name.as_deref(),
            r.show_name.as_deref(),
            r.platform.as_deref(),
            r.conn_country.as_deref(),
            r.reason_start.as_deref(),
            r.reason_end.as_deref(),
        ];
        for (b, v) in strings.iter_mut().zip(values) {
            b.append_option(v);
        }
        for (b, v) in bools.iter_mut().zip([r.shuffle, r.skipped, r.offline, r.incognito]) {
            b.append_option(v);
        }
    }
    let mut columns: Vec<ArrayRef> = vec![Arc::new(played_at.finish()), Arc::new(ms_played.finish())];
    columns.extend(strings.iter_mut().map(|b| Arc::new(b.finish()) as ArrayRef));
    columns.extend(bools.iter_mut().map(|b| Arc::new(b.finish()) as ArrayRef));
    RecordBatch::try_new(plays_schema(), columns)
}

/// Schema of a trend table: `label`, `plays`, `ms`, `hours`.
pub fn trend_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("label", DataType::Utf8, false),
        Field::new("plays", DataType::Int64, false),
        Field::new("ms", DataType::Int64, false),
        Field::new("hours", DataType::Float64, false),
    ]))
}

/// One record batch of trend points, oldest first.
pub fn trend_batch(points: &[TrendPoint]) -> Result<RecordBatch, ArrowError> {
    let mut label = StringBuilder::new();
    let mut plays = Int64Builder::with_capacity(points.len());
    let mut ms = Int64Builder::with_capacity(points.len());
    let mut hours = Float64Builder::with_capacity(points.len());
    for p in points {
        label.append_value(&p.label);
        plays.append_value(p.plays);
        ms.append_value(p.ms);
        hours.append_value(p.hours);
    }
    RecordBatch::try_new(
        trend_schema(),
        vec![Arc::new(label.finish()), Arc::new(plays.finish()), Arc::new(ms.finish()), Arc::new(hours.finish())],
    )
}
