//! `GET /api/v1/history`: the user's listening history, newest first, filtered and paged.

use super::{default_limit, default_page, ApiTags};
use crate::app::AppState;
use crate::auth::CurrentUser;
use crate::dto::HistoryList;
use crate::error::ApiError;
use chrono::{DateTime, Duration, NaiveDate, NaiveDateTime, Utc};
use echostats::store::HistoryQuery;
use echostats::PlayKind;
use poem::web::Data;
use poem_openapi::param::Query;
use poem_openapi::payload::Json;
use poem_openapi::OpenApi;
use std::sync::Arc;

pub struct HistoryApi;

/// An ISO 8601 instant or date (UTC). A bare date as `end_date` means the end of that day,
/// so `start_date=2025-01-15&end_date=2025-01-15` is the whole day.
pub(super) fn parse_instant(name: &str, s: &str, is_end: bool) -> Result<DateTime<Utc>, ApiError> {
    let s = s.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(t.with_timezone(&Utc));
    }
    if let Ok(t) = NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f") {
        return Ok(t.and_utc());
    }
    if let Ok(d) = NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        let d = if is_end { d + Duration::days(1) } else { d };
        return Ok(d.and_hms_opt(0, 0, 0).expect("midnight").and_utc());
    }
    Err(ApiError::invalid(
        "query",
        name,
        format!("invalid date {s:?}: expected ISO 8601, e.g. 2025-01-15 or 2025-01-15T14:32:00Z"),
    ))
}

#[OpenApi(tag = "ApiTags::History")]
impl HistoryApi {
    /// The user's listening history (tracks), newest first.
    #[oai(path = "/api/v1/history", method = "get")]
    #[allow(clippy::too_many_arguments)]
    async fn history(
        &self,
        state: Data<&Arc<AppState>>,
        user: CurrentUser,
        /// Page number (from 1).
        #[oai(default = "default_page", validator(minimum(value = "1")))]
        page: Query<u32>,
        /// Items per page (1-100).
        #[oai(default = "default_limit", validator(minimum(value = "1"), maximum(value = "100")))]
        limit: Query<u32>,
        /// Only this artist (whole name, case-insensitive).
        artist: Query<Option<String>>,
        /// Only this track (whole name, case-insensitive).
        track: Query<Option<String>>,
        /// ISO 8601 start (inclusive).
        start_date: Query<Option<String>>,
        /// ISO 8601 end (exclusive; a bare date includes that day).
        end_date: Query<Option<String>>,
    ) -> Result<Json<HistoryList>, ApiError> {
        let query = HistoryQuery {
            page: page.0,
            limit: limit.0,
            artist: artist.0.filter(|s| !s.trim().is_empty()),
            track: track.0.filter(|s| !s.trim().is_empty()),
            start: start_date.0.as_deref().map(|s| parse_instant("start_date", s, false)).transpose()?,
            end: end_date.0.as_deref().map(|s| parse_instant("end_date", s, true)).transpose()?,
            kind: Some(PlayKind::Track),
        };
        let page = state.reads.history(&*state.store, user.id(), &query).await?;
        Ok(Json(HistoryList::new(page, query.page, query.limit)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_and_instants_parse() {
        let t = |s: &str, end| parse_instant("d", s, end).unwrap().to_rfc3339();
        assert_eq!(t("2025-01-15", false), "2025-01-15T00:00:00+00:00");
        assert_eq!(t("2025-01-15", true), "2025-01-16T00:00:00+00:00");
        assert_eq!(t("2025-01-15T14:32:00Z", true), "2025-01-15T14:32:00+00:00");
        assert_eq!(t("2025-01-15T14:32:00+01:00", false), "2025-01-15T13:32:00+00:00");
        assert_eq!(t("2025-01-15T14:32:00", false), "2025-01-15T14:32:00+00:00");
        assert!(parse_instant("d", "yesterday", false).is_err());
    }
}
