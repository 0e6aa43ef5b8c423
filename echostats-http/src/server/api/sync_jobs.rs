//! `/api/v1/sync-jobs`: the user's sync, import and rollup jobs, their counts, and a
//! manual sync.

use super::{default_page, ApiTags};
use crate::app::AppState;
use crate::auth::CurrentUser;
use crate::error::ApiError;
use crate::jobs::{self, Started};
use crate::timestamp::Timestamp;
use echostats::store::{JobQuery, JobStats};
use echostats::{JobStatus, JobStep, JobType, SyncJob};
use poem::web::Data;
use poem_openapi::param::Query;
use poem_openapi::payload::Json;
use poem_openapi::{Object, OpenApi};
use std::sync::Arc;

pub struct SyncJobsApi;

fn default_job_limit() -> u32 {
    20
}

/// One step of a job.
#[derive(Object, Debug)]
pub struct SyncJobStepBody {
    /// What the step did, e.g. `recently_played`, `import_file`, `rebuild_rollups`.
    pub action: String,
    /// `pending`, `running`, `completed` or `failed`.
    pub status: String,
    /// What happened, for a person.
    pub detail: Option<String>,
    /// Items handled.
    pub items: i64,
    /// Why the step failed.
    pub error: Option<String>,
}

impl From<JobStep> for SyncJobStepBody {
    fn from(s: JobStep) -> Self {
        SyncJobStepBody {
            action: s.action,
            status: s.status.as_str().into(),
            detail: s.detail,
            items: s.items,
            error: s.error,
        }
    }
}

/// A sync, import or rollup job.
#[derive(Object, Debug)]
pub struct SyncJobBody {
    /// Id.
    pub id: String,
    /// `periodic`, `rollup_build`, `import` or `initial`.
    pub job_type: String,
    /// `pending`, `running`, `completed` or `failed`.
    pub status: String,
    /// Items handled so far.
    pub items_processed: i64,
    /// Items expected (0 while unknown).
    pub items_total: i64,
    /// Why the job failed.
    pub error_message: Option<String>,
    /// When it started running.
    pub started_at: Option<Timestamp>,
    /// When it ended.
    pub completed_at: Option<Timestamp>,
    /// When it was created.
    pub created_at: Timestamp,
    /// What it did, in order.
    pub steps: Vec<SyncJobStepBody>,
}

impl From<SyncJob> for SyncJobBody {
    fn from(j: SyncJob) -> Self {
        SyncJobBody {
            id: j.id,
            job_type: j.job_type.as_str().into(),
            status: j.status.as_str().into(),
            items_processed: j.items_processed,
            items_total: j.items_total,
            error_message: j.error_message,
            started_at: j.started_at.map(Into::into),
            completed_at: j.completed_at.map(Into::into),
            created_at: j.created_at.into(),
            steps: j.steps.into_iter().map(Into::into).collect(),
        }
    }
}

/// `GET /api/v1/sync-jobs`: a page of jobs, newest first.
#[derive(Object, Debug)]
pub struct SyncJobList {
    /// The jobs of this page.
    pub items: Vec<SyncJobBody>,
    /// All matching jobs.
    pub total: u64,
    /// This page (1-based).
    pub page: u32,
    /// Number of pages.
    pub pages: u64,
}

/// `GET /api/v1/sync-jobs/stats`.
#[derive(Object, Debug)]
pub struct SyncJobStatsBody {
    /// All stored jobs.
    pub total_jobs: u64,
    /// Completed jobs.
    pub completed: u64,
    /// Failed jobs.
    pub failed: u64,
    /// Running jobs.
    pub running: u64,
    /// Items processed by completed jobs.
    pub total_items_synced: i64,
    /// When the last completed job ended.
    pub last_sync_at: Option<Timestamp>,
}

impl From<JobStats> for SyncJobStatsBody {
    fn from(s: JobStats) -> Self {
        SyncJobStatsBody {
            total_jobs: s.total_jobs,
            completed: s.completed,
            failed: s.failed,
            running: s.running,
            total_items_synced: s.total_items_synced,
            last_sync_at: s.last_sync_at.map(Into::into),
        }
    }
}

/// `POST /api/v1/sync-jobs/trigger`.
#[derive(Object, Debug)]
pub struct SyncTriggered {
    /// `started`, or `already_running` when a sync is in progress.
    pub status: String,
    /// The new job, or the one in progress.
    pub job_id: String,
    /// For a person.
    pub message: String,
}

/// A filter parameter naming one of a core enum's values, or 422 naming the parameter.
fn parse_filter<T: std::str::FromStr<Err = echostats::Error>>(
    name: &str,
    value: Option<String>,
) -> Result<Option<T>, ApiError> {
    let Some(value) = value.filter(|v| !v.trim().is_empty()) else { return Ok(None) };
    value.trim().parse().map(Some).map_err(|e| match e {
        echostats::Error::InvalidInput { message } => ApiError::invalid("query", name, message),
        e => e.into(),
    })
}

#[OpenApi(tag = "ApiTags::SyncJobs")]
impl SyncJobsApi {
    /// The user's jobs (syncs, imports, rollup builds), newest first.
    #[oai(path = "/api/v1/sync-jobs", method = "get")]
    async fn list(
        &self,
        state: Data<&Arc<AppState>>,
        user: CurrentUser,
        /// Page number (from 1).
        #[oai(default = "default_page", validator(minimum(value = "1")))]
        page: Query<u32>,
        /// Items per page (1-100).
        #[oai(default = "default_job_limit", validator(minimum(value = "1"), maximum(value = "100")))]
        limit: Query<u32>,
        /// Only jobs in this state: `pending`, `running`, `completed`, `failed`.
        status: Query<Option<String>>,
        /// Only jobs of this type: `periodic`, `rollup_build`, `import`, `initial`.
        job_type: Query<Option<String>>,
    ) -> Result<Json<SyncJobList>, ApiError> {
        let query = JobQuery {
            page: page.0,
            limit: limit.0,
            status: parse_filter::<JobStatus>("status", status.0)?,
            job_type: parse_filter::<JobType>("job_type", job_type.0)?,
        };
        let found = state.store.jobs(user.id(), &query).await?;
        Ok(Json(SyncJobList {
            pages: found.total.div_ceil(query.limit as u64),
            items: found.items.into_iter().map(Into::into).collect(),
            total: found.total,
            page: query.page,
        }))
    }

    /// Job counts: total, completed, failed, running, items synced, last completion.
    #[oai(path = "/api/v1/sync-jobs/stats", method = "get")]
    async fn stats(&self, state: Data<&Arc<AppState>>, user: CurrentUser) -> Result<Json<SyncJobStatsBody>, ApiError> {
        Ok(Json(state.store.job_stats(user.id()).await?.into()))
    }

    /// Starts a sync from Spotify in the background (`already_running` while one runs).
    /// Follow it through `GET /api/v1/sync-jobs`; it fails at once when the user has not
    /// connected a Spotify account.
    #[oai(path = "/api/v1/sync-jobs/trigger", method = "post")]
    async fn trigger(&self, state: Data<&Arc<AppState>>, user: CurrentUser) -> Result<Json<SyncTriggered>, ApiError> {
        Ok(Json(match jobs::start_sync(&state, user.id(), JobType::Periodic).await? {
            Started::New(job) => SyncTriggered {
                status: "started".into(),
                job_id: job.id().to_string(),
                message: "Sync job started".into(),
            },
            Started::AlreadyRunning(job_id) => SyncTriggered {
                status: "already_running".into(),
                job_id,
                message: "A sync job is already running".into(),
            },
        }))
    }
}
