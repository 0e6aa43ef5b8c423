//! `/api/v1/api-logs`: the log of the calls made to the Spotify API for the user, and
//! its aggregates.

use super::{default_page, ApiTags};
use crate::app::AppState;
use crate::auth::CurrentUser;
use crate::error::ApiError;
use crate::timestamp::Timestamp;
use echostats::store::{ApiLogQuery, ApiLogStats};
use echostats::ApiCallLog;
use poem::web::Data;
use poem_openapi::param::Query;
use poem_openapi::payload::Json;
use poem_openapi::{Object, OpenApi};
use std::collections::BTreeMap;
use std::sync::Arc;

pub struct ApiLogsApi;

fn default_log_limit() -> u32 {
    50
}

/// One outbound API call.
#[derive(Object, Debug)]
pub struct ApiLogBody {
    /// Id.
    pub id: String,
    /// The service called, e.g. `spotify`.
    pub service: String,
    /// HTTP method.
    pub method: String,
    /// The path called.
    pub endpoint: String,
    /// HTTP status of the answer (0 when there was none).
    pub status_code: i32,
    /// Milliseconds until the answer.
    pub latency_ms: f64,
    /// What went wrong.
    pub error: Option<String>,
    /// When the call was made.
    pub timestamp: Timestamp,
}

impl From<ApiCallLog> for ApiLogBody {
    fn from(l: ApiCallLog) -> Self {
        ApiLogBody {
            id: l.id,
            service: l.service,
            method: l.method,
            endpoint: l.endpoint,
            status_code: l.status_code,
            latency_ms: l.latency_ms,
            error: l.error,
            timestamp: l.timestamp.into(),
        }
    }
}

/// `GET /api/v1/api-logs`: a page of calls, newest first.
#[derive(Object, Debug)]
pub struct ApiLogList {
    /// The calls of this page.
    pub items: Vec<ApiLogBody>,
    /// All matching calls.
    pub total: u64,
    /// This page (1-based).
    pub page: u32,
    /// Page size.
    pub limit: u32,
    /// Number of pages.
    pub pages: u64,
}

/// Calls to one `METHOD endpoint`.
#[derive(Object, Debug)]
pub struct EndpointCount {
    /// `METHOD endpoint`, e.g. `GET /v1/me/player/recently-played`.
    pub endpoint: String,
    /// Calls.
    pub count: u64,
}

/// `GET /api/v1/api-logs/stats`.
#[derive(Object, Debug)]
pub struct ApiLogStatsBody {
    /// All calls.
    pub total_calls: u64,
    /// Calls answered with 400 or more, or not answered.
    pub error_count: u64,
    /// Calls answered 429.
    pub rate_limit_count: u64,
    /// Percentage of calls that were not errors (100 with no calls).
    pub success_rate: f64,
    /// Mean latency in milliseconds.
    pub avg_latency_ms: f64,
    /// Calls by status class: `2xx`, `3xx`, `4xx`, `5xx`, and `none` for no answer.
    pub status_distribution: BTreeMap<String, u64>,
    /// The most called endpoints, most calls first.
    pub top_endpoints: Vec<EndpointCount>,
}

impl From<ApiLogStats> for ApiLogStatsBody {
    fn from(s: ApiLogStats) -> Self {
        ApiLogStatsBody {
            total_calls: s.total_calls,
            error_count: s.error_count,
            rate_limit_count: s.rate_limit_count,
            success_rate: s.success_rate,
            avg_latency_ms: s.avg_latency_ms,
            status_distribution: s.status_distribution,
            top_endpoints: s
                .top_endpoints
                .into_iter()
                .map(|(endpoint, count)| EndpointCount { endpoint, count })
                .collect(),
        }
    }
}

fn non_empty(s: Option<String>) -> Option<String> {
    s.filter(|s| !s.trim().is_empty())
}

#[OpenApi(tag = "ApiTags::ApiLogs")]
impl ApiLogsApi {
    /// The calls made to external APIs (Spotify) for the user, newest first.
    #[oai(path = "/api/v1/api-logs", method = "get")]
    #[allow(clippy::too_many_arguments)]
    async fn list(
        &self,
        state: Data<&Arc<AppState>>,
        user: CurrentUser,
        /// Page number (from 1).
        #[oai(default = "default_page", validator(minimum(value = "1")))]
        page: Query<u32>,
        /// Items per page (1-200).
        #[oai(default = "default_log_limit", validator(minimum(value = "1"), maximum(value = "200")))]
        limit: Query<u32>,
        /// Only calls to this service (e.g. `spotify`).
        service: Query<Option<String>>,
        /// Only calls answered with at least this HTTP status.
        status_min: Query<Option<i32>>,
        /// Only calls answered with at most this HTTP status.
        status_max: Query<Option<i32>>,
        /// Only this HTTP method (`GET`, `POST`, ...).
        method: Query<Option<String>>,
        /// Only endpoints containing this text.
        endpoint_contains: Query<Option<String>>,
    ) -> Result<Json<ApiLogList>, ApiError> {
        let query = ApiLogQuery {
            page: page.0,
            limit: limit.0,
            service: non_empty(service.0),
            status_min: status_min.0,
            status_max: status_max.0,
            method: non_empty(method.0),
            endpoint_contains: non_empty(endpoint_contains.0),
        };
        let found = state.store.api_logs(user.id(), &query).await?;
        Ok(Json(ApiLogList {
            pages: found.total.div_ceil(query.limit as u64),
            items: found.items.into_iter().map(Into::into).collect(),
            total: found.total,
            page: query.page,
            limit: query.limit,
        }))
    }

    /// Aggregates of the user's calls: totals, errors, rate limits, latency, status
    /// classes and the most called endpoints.
    #[oai(path = "/api/v1/api-logs/stats", method = "get")]
    async fn stats(&self, state: Data<&Arc<AppState>>, user: CurrentUser) -> Result<Json<ApiLogStatsBody>, ApiError> {
        Ok(Json(state.store.api_log_stats(user.id()).await?.into()))
    }
}
