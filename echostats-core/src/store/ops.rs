//! Operational records: sync/import jobs and the log of outbound API calls. Small
//! volumes next to the play history, but users page, filter and aggregate them
//! (`/sync-jobs`, `/api-logs`), and both expire after a retention period.

use super::*;
use std::collections::BTreeMap;

/// One page of a listing.
#[derive(Debug, Clone, PartialEq)]
pub struct Page<T> {
    /// Items of this page.
    pub items: Vec<T>,
    /// All matching items.
    pub total: u64,
}

/// Filters and page of a job listing (EchoStats `GET /sync-jobs`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobQuery {
    /// 1-based page.
    pub page: u32,
    /// Page size, 1..=100.
    pub limit: u32,
    /// Only jobs in this state.
    pub status: Option<JobStatus>,
    /// Only jobs of this type.
    pub job_type: Option<JobType>,
}

impl Default for JobQuery {
    fn default() -> Self {
        JobQuery { page: 1, limit: 20, status: None, job_type: None }
    }
}

impl JobQuery {
    /// Checks page and limit; stores call this first.
    pub fn validate(&self) -> Result<()> {
        validate_page(self.page, self.limit, 100)
    }
    /// Rows to skip.
    pub fn offset(&self) -> u64 {
        (self.page as u64 - 1) * self.limit as u64
    }
}

/// Job counts of a user (EchoStats `GET /sync-jobs/stats`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JobStats {
    /// All stored jobs.
    pub total_jobs: u64,
    /// Jobs by state.
    pub pending: u64,
    /// Jobs by state.
    pub running: u64,
    /// Jobs by state.
    pub completed: u64,
    /// Jobs by state.
    pub failed: u64,
    /// Sum of `items_processed` over completed jobs.
    pub total_items_synced: i64,
    /// Latest `completed_at` of a completed job.
    pub last_sync_at: Option<DateTime<Utc>>,
}

impl JobStats {
    /// Adds `jobs` jobs in `status` with `items` processed items and latest completion
    /// `completed_at` (stores fold their grouped counts through this, so the arithmetic
    /// lives in one place).
    pub fn add(&mut self, status: JobStatus, jobs: u64, items: i64, completed_at: Option<DateTime<Utc>>) {
        self.total_jobs += jobs;
        match status {
            JobStatus::Pending => self.pending += jobs,
            JobStatus::Running => self.running += jobs,
            JobStatus::Failed => self.failed += jobs,
            JobStatus::Completed => {
                self.completed += jobs;
                self.total_items_synced += items;
                self.last_sync_at = self.last_sync_at.max(completed_at);
            }
        }
    }
}

/// Sync, import and rollup jobs.
///
/// A job is created `pending` or `running` and replaced as it progresses. An
/// *exclusive* job is one of which a user may have only one active (pending or running)
/// at a time per job type: creating a second gives [`crate::Error::AlreadyExists`],
/// atomically, even when two processes race (a unique key in every backend).
#[async_trait]
pub trait JobStore: Send + Sync {
    /// Stores a new job. [`crate::Error::AlreadyExists`] when the id is taken, or when
    /// `exclusive` and the user already has an active job of this type.
    async fn create_job(&self, job: &SyncJob, exclusive: bool) -> Result<()>;
    /// Replaces a stored job (status, progress, steps, times); the exclusivity taken at
    /// creation is released once the job is completed or failed.
    /// [`crate::Error::NotFound`] when the user has no job with this id.
    async fn update_job(&self, job: &SyncJob) -> Result<()>;
    /// A job of `user_id`, or [`crate::Error::NotFound`] (also for another user's job).
    async fn job(&self, user_id: &str, id: &str) -> Result<SyncJob>;
    /// The user's jobs, newest first (`created_at`, then id, descending).
    async fn jobs(&self, user_id: &str, query: &JobQuery) -> Result<Page<SyncJob>>;
    /// The user's job counts.
    async fn job_stats(&self, user_id: &str) -> Result<JobStats>;
    /// Marks every pending or running job of every user as failed with `reason` (a
    /// process that starts knows no job of an earlier process is still running) and
    /// returns how many there were.
    async fn fail_unfinished_jobs(&self, reason: &str) -> Result<u64>;
    /// Deletes finished (completed or failed) jobs created before `before`, of every
    /// user; returns how many.
    async fn delete_jobs_before(&self, before: DateTime<Utc>) -> Result<u64>;
}

/// Filters and page of an API log listing (EchoStats `GET /api-logs`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiLogQuery {
    /// 1-based page.
    pub page: u32,
    /// Page size, 1..=200.
    pub limit: u32,
    /// Only calls to this service (`spotify`).
    pub service: Option<String>,
    /// Only calls answered with at least this status.
    pub status_min: Option<i32>,
    /// Only calls answered with at most this status.
    pub status_max: Option<i32>,
    /// Only this HTTP method (case-insensitive).
    pub method: Option<String>,
    /// Only endpoints containing this text (case-sensitive, literal: no wildcards).
    pub endpoint_contains: Option<String>,
}

impl Default for ApiLogQuery {
    fn default() -> Self {
        ApiLogQuery {
            page: 1,
            limit: 50,
            service: None,
            status_min: None,
            status_max: None,
            method: None,
            endpoint_contains: None,
        }
    }
}

impl ApiLogQuery {
    /// Checks page and limit; stores call this first.
    pub fn validate(&self) -> Result<()> {
        validate_page(self.page, self.limit, 200)
    }
    /// Rows to skip.
    pub fn offset(&self) -> u64 {
        (self.page as u64 - 1) * self.limit as u64
    }
    /// The method filter as stored (upper case).
    pub fn method_upper(&self) -> Option<String> {
        self.method.as_deref().map(str::to_ascii_uppercase)
    }
    /// Whether `log` passes the filters (the reference semantics).
    pub fn matches(&self, log: &ApiCallLog) -> bool {
        self.service.as_deref().is_none_or(|s| log.service == s)
            && self.status_min.is_none_or(|m| log.status_code >= m)
            && self.status_max.is_none_or(|m| log.status_code <= m)
            && self.method_upper().is_none_or(|m| log.method == m)
            && self.endpoint_contains.as_deref().is_none_or(|e| log.endpoint.contains(e))
    }
}

/// How many top endpoints [`ApiLogStats`] lists.
pub const TOP_ENDPOINTS: usize = 10;

/// Aggregates of a user's API calls (EchoStats `GET /api-logs/stats`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ApiLogStats {
    /// All calls.
    pub total_calls: u64,
    /// Calls answered >= 400, or not answered (status 0).
    pub error_count: u64,
    /// Calls answered 429.
    pub rate_limit_count: u64,
    /// Percentage of calls that were not errors, one decimal; 100 with no calls.
    pub success_rate: f64,
    /// Mean latency, one decimal; 0 with no calls.
    pub avg_latency_ms: f64,
    /// Calls by status class: `2xx`, `3xx`, `4xx`, `5xx`, and `none` for no answer.
    pub status_distribution: BTreeMap<String, u64>,
    /// The most called `METHOD endpoint`s, most calls first, ties by name.
    pub top_endpoints: Vec<(String, u64)>,
}

impl ApiLogStats {
    /// The figures from what a store groups: call counts per status code, the sum of
    /// latencies, and call counts per `METHOD endpoint` (any number; sorted and cut
    /// here).
    pub fn from_groups(by_status: &[(i32, u64)], latency_sum_ms: f64, by_endpoint: Vec<(String, u64)>) -> ApiLogStats {
        let round1 = |x: f64| (x * 10.0).round() / 10.0;
        let mut stats = ApiLogStats::default();
        for &(status, calls) in by_status {
            stats.total_calls += calls;
            if status == 429 {
                stats.rate_limit_count += calls;
            }
            if status >= 400 || status <= 0 {
                stats.error_count += calls;
            }
            let class = if status <= 0 { "none".to_string() } else { format!("{}xx", status / 100) };
            *stats.status_distribution.entry(class).or_default() += calls;
        }
        if stats.total_calls > 0 {
            let total = stats.total_calls as f64;
            stats.success_rate = round1((total - stats.error_count as f64) * 100.0 / total);
            stats.avg_latency_ms = round1(latency_sum_ms / total);
        } else {
            stats.success_rate = 100.0;
        }
        let mut top = by_endpoint;
        top.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        top.truncate(TOP_ENDPOINTS);
        stats.top_endpoints = top;
        stats
    }
}

/// The log of outbound API calls (to Spotify), per user.
#[async_trait]
pub trait ApiLogStore: Send + Sync {
    /// Appends calls (ids are the caller's; a taken id gives
    /// [`crate::Error::AlreadyExists`] and nothing of the slice is stored).
    async fn log_api_calls(&self, calls: &[ApiCallLog]) -> Result<()>;
    /// The user's calls, newest first (`timestamp`, then id, descending).
    async fn api_logs(&self, user_id: &str, query: &ApiLogQuery) -> Result<Page<ApiCallLog>>;
    /// Aggregates over all the user's calls.
    async fn api_log_stats(&self, user_id: &str) -> Result<ApiLogStats>;
    /// Deletes calls older than `before`, of every user; returns how many.
    async fn delete_api_logs_before(&self, before: DateTime<Utc>) -> Result<u64>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_log_stats_from_groups() {
        let s = ApiLogStats::from_groups(
            &[(200, 90), (204, 4), (429, 2), (500, 3), (0, 1)],
            10_000.0,
            vec![("GET /b".into(), 5), ("GET /a".into(), 5), ("GET /c".into(), 50)],
        );
        assert_eq!((s.total_calls, s.error_count, s.rate_limit_count), (100, 6, 2));
        assert_eq!(s.success_rate, 94.0);
        assert_eq!(s.avg_latency_ms, 100.0);
        assert_eq!(s.status_distribution.get("2xx"), Some(&94));
        assert_eq!(s.status_distribution.get("none"), Some(&1));
        let names: Vec<&str> = s.top_endpoints.iter().map(|e| e.0.as_str()).collect();
        assert_eq!(names, ["GET /c", "GET /a", "GET /b"]);
        assert_eq!(ApiLogStats::from_groups(&[], 0.0, vec![]).success_rate, 100.0);
    }

    #[test]
    fn pages_are_checked() {
        assert!(JobQuery { limit: 101, ..Default::default() }.validate().is_err());
        assert!(ApiLogQuery { limit: 200, ..Default::default() }.validate().is_ok());
        assert!(ApiLogQuery { page: 0, ..Default::default() }.validate().is_err());
    }
}
