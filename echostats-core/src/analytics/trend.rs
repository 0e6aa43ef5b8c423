//! Listening trend: plays and hours per day, ISO week or month, zero-filled.

use super::overview::local_totals;
use super::{hours, Period};
use crate::store::Store;
use crate::Result;
use chrono::{DateTime, Datelike, Duration, NaiveDate, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// One trend point.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrendPoint {
    /// `2025-01-15`, `2025-W03` or `2025-01`.
    pub label: String,
    /// Counted plays.
    pub plays: i64,
    /// Milliseconds.
    pub ms: i64,
    /// Hours, one decimal.
    pub hours: f64,
}

/// The EchoStats trend.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Trend {
    /// Period.
    pub period: Period,
    /// strftime pattern of the labels.
    pub granularity: String,
    /// Points, oldest first.
    pub points: Vec<TrendPoint>,
}

/// Label pattern of a period: days for week/month, ISO weeks for quarter, months beyond.
pub fn granularity(period: Period) -> &'static str {
    match period {
        Period::Week | Period::Month => "%Y-%m-%d",
        Period::Quarter => "%G-W%V",
        Period::Year | Period::AllTime => "%Y-%m",
    }
}

/// The trend of a period in zone `tz`. Every bucket from the start of the period (or
/// the first play, for all time) to today is present, empty ones with zeros.
pub async fn trend(store: &dyn Store, user_id: &str, period: Period, tz: Tz, now: DateTime<Utc>) -> Result<Trend> {
    let window = period.window(now);
    let totals = local_totals(store, user_id, window, tz).await?;
    let fmt = granularity(period);
    let today = now.with_timezone(&tz).date_naive();
    let first = match window {
        Some(w) => w.start.with_timezone(&tz).date_naive(),
        None => match totals.by_day.keys().next() {
            Some(d) => *d,
            None => return Ok(Trend { period, granularity: fmt.into(), points: Vec::new() }),
        },
    };
    let mut buckets: BTreeMap<NaiveDate, (String, i64, i64)> = BTreeMap::new();
    let bucket_start = |d: NaiveDate| match period {
        Period::Week | Period::Month => d,
        Period::Quarter => d - Duration::days(d.weekday().num_days_from_monday() as i64),
        Period::Year | Period::AllTime => d.with_day(1).expect("day 1"),
    };
    let mut d = first;
    while d <= today {
        let b = bucket_start(d);
        buckets.entry(b).or_insert_with(|| (d.format(fmt).to_string(), 0, 0));
        d += Duration::days(1);
    }
    for (day, (plays, ms)) in totals.by_day {
        if let Some(e) = buckets.get_mut(&bucket_start(day)) {
            e.1 += plays;
            e.2 += ms;
        }
    }
    Ok(Trend {
        period,
        granularity: fmt.into(),
        points: buckets
            .into_values()
            .map(|(label, plays, ms)| TrendPoint { label, plays, ms, hours: hours(ms) })
            .collect(),
    })
}
