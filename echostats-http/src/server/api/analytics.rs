//! `/api/v1/analytics/*`: overview, trend, rollup status and rebuild, refresh.

use super::{default_tz, ApiTags};
use crate::app::AppState;
use crate::auth::CurrentUser;
use crate::dto::{JobStarted, Overview, Period, Refreshed, RollupStatusBody, Trend};
use crate::error::ApiError;
use crate::jobs::{self, JobRecorder, Started};
use crate::timestamp::Timestamp;
use chrono::Utc;
use chrono_tz::Tz;
use echostats::analytics::{self, OverviewRequest};
use echostats::JobType;
use poem::web::Data;
use poem_openapi::param::Query;
use poem_openapi::payload::Json;
use poem_openapi::OpenApi;
use std::sync::Arc;

pub struct AnalyticsApi;

/// The time zone parameter, or 422 naming it.
fn time_zone(name: &str) -> Result<Tz, ApiError> {
    analytics::parse_tz(name).map_err(|e| match e {
        echostats::Error::InvalidInput { message } => ApiError::invalid("query", "tz", message),
        e => e.into(),
    })
}

#[OpenApi(tag = "ApiTags::Analytics")]
impl AnalyticsApi {
    /// Totals, top lists, distributions and streaks of a period.
    #[oai(path = "/api/v1/analytics/overview", method = "get")]
    async fn overview(
        &self,
        state: Data<&Arc<AppState>>,
        user: CurrentUser,
        /// `week`, `month`, `quarter`, `year` or `all_time`.
        #[oai(default = "Period::default_all_time")]
        period: Query<Period>,
        /// IANA time zone of hours, weekdays and days.
        #[oai(default = "default_tz")]
        tz: Query<String>,
    ) -> Result<Json<Overview>, ApiError> {
        let mut req = OverviewRequest::new(period.0.into());
        req.tz = time_zone(&tz)?;
        let overview = state.reads.overview(&*state.store, user.id(), &req).await?;
        Ok(Json(Overview::from((*overview).clone())))
    }

    /// Plays and hours per day (week, month), ISO week (quarter) or month (year, all time).
    #[oai(path = "/api/v1/analytics/trend", method = "get")]
    async fn trend(
        &self,
        state: Data<&Arc<AppState>>,
        user: CurrentUser,
        /// `week`, `month`, `quarter`, `year` or `all_time`.
        #[oai(default = "Period::default_all_time")]
        period: Query<Period>,
        /// IANA time zone of the buckets.
        #[oai(default = "default_tz")]
        tz: Query<String>,
    ) -> Result<Json<Trend>, ApiError> {
        let tz = time_zone(&tz)?;
        let trend = analytics::trend(&*state.store, user.id(), period.0.into(), tz, Utc::now()).await?;
        Ok(Json(trend.into()))
    }

    /// State of the daily rollups.
    #[oai(path = "/api/v1/analytics/rollup-status", method = "get")]
    async fn rollup_status(
        &self,
        state: Data<&Arc<AppState>>,
        user: CurrentUser,
    ) -> Result<Json<RollupStatusBody>, ApiError> {
        Ok(Json(state.store.rollup_status(user.id()).await?.into()))
    }

    /// Starts a background rebuild of the daily rollups from the raw history;
    /// `already_running` while one runs for this user.
    #[oai(path = "/api/v1/analytics/rollup-build", method = "post")]
    async fn rollup_build(&self, state: Data<&Arc<AppState>>, user: CurrentUser) -> Result<Json<JobStarted>, ApiError> {
        let (status, job_id) = match JobRecorder::create(&state.store, user.id(), JobType::RollupBuild, true).await? {
            Started::New(job) => {
                let job_id = job.id().to_string();
                jobs::spawn(job.clone(), jobs::rollup_build(state.0.clone(), job));
                ("started", job_id)
            }
            Started::AlreadyRunning(job_id) => ("already_running", job_id),
        };
        Ok(Json(JobStarted { status: status.into(), job_id }))
    }

    /// Drops the user's cached overviews, so the next ones are computed from the store
    /// (the rollups are always current); answers as EchoStats does once the store is
    /// reachable. `all_time` stands for every period.
    #[oai(path = "/api/v1/analytics/refresh", method = "post")]
    async fn refresh(
        &self,
        state: Data<&Arc<AppState>>,
        user: CurrentUser,
        /// `week`, `month`, `quarter`, `year` or `all_time`.
        #[oai(default = "Period::default_all_time")]
        period: Query<Period>,
    ) -> Result<Json<Refreshed>, ApiError> {
        state.store.ping().await?;
        state.reads.invalidate_user(user.id());
        let periods = match period.0 {
            Period::AllTime => analytics::Period::ALL.into_iter().map(Period::from).collect(),
            p => vec![p],
        };
        Ok(Json(Refreshed { status: "refreshed".into(), periods, computed_at: Timestamp::now() }))
    }
}
