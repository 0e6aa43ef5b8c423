//! The analytics engine: EchoStats figures per period, computed from the rollups and
//! rankings every store keeps (never from a scan of raw history for totals and
//! distributions), in any IANA time zone.

mod cache;
mod overview;
mod trend;

pub use cache::ReadCache;
pub use overview::*;
pub use trend::*;

use crate::store::TimeWindow;
use crate::Error;
use chrono::{DateTime, Duration, DurationRound, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};
use std::str::FromStr;

/// An analytics period: rolling windows ending now, or everything.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Period {
    /// The last 7 days.
    Week,
    /// The last 30 days.
    Month,
    /// The last 90 days.
    Quarter,
    /// The last 365 days.
    Year,
    /// Everything.
    AllTime,
}

impl Period {
    /// All periods, shortest first.
    pub const ALL: [Period; 5] = [Period::Week, Period::Month, Period::Quarter, Period::Year, Period::AllTime];

    /// The EchoStats name.
    pub fn as_str(self) -> &'static str {
        match self {
            Period::Week => "week",
            Period::Month => "month",
            Period::Quarter => "quarter",
            Period::Year => "year",
            Period::AllTime => "all_time",
        }
    }

    /// Length in days (`None` for all time).
    pub fn days(self) -> Option<i64> {
        match self {
            Period::Week => Some(7),
            Period::Month => Some(30),
            Period::Quarter => Some(90),
            Period::Year => Some(365),
            Period::AllTime => None,
        }
    }

    /// The window of this period at `now`: `[end - days, end)` where `end` is `now`
    /// rounded up to the next quarter hour, so windows align with rollup slots and every
    /// figure is exact. `None` for all time.
    pub fn window(self, now: DateTime<Utc>) -> Option<TimeWindow> {
        let days = self.days()?;
        let end = quarter_ceil(now);
        Some(TimeWindow { start: end - Duration::days(days), end })
    }
}

/// `t` rounded up to a multiple of 15 minutes (unchanged when already on one).
pub fn quarter_ceil(t: DateTime<Utc>) -> DateTime<Utc> {
    let q = Duration::minutes(15);
    let floor = t.duration_trunc(q).expect("15 minutes divides a day");
    if floor == t {
        t
    } else {
        floor + q
    }
}

impl FromStr for Period {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        Period::ALL.into_iter().find(|p| p.as_str() == s).ok_or_else(|| {
            Error::invalid(format!("unknown period {s:?}: expected one of week, month, quarter, year, all_time"))
        })
    }
}

impl std::fmt::Display for Period {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Parses an IANA time zone name (`Europe/Berlin`, `UTC`) with a clear error.
pub fn parse_tz(name: &str) -> Result<Tz, Error> {
    name.parse::<Tz>().map_err(|_| {
        Error::invalid(format!("unknown time zone {name:?}: expected an IANA name such as UTC or Europe/Berlin"))
    })
}

/// Milliseconds as hours rounded to one decimal, as EchoStats shows them.
pub fn hours(ms: i64) -> f64 {
    (ms as f64 / 360_000.0).round() / 10.0
}
