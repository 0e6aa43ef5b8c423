//! Tokens, jobs and API logs: the operational tables of migration 0002.

use crate::codec::{from_ms, ms_floor, Ph, Query};
use crate::error::{SqlError, SqlResult};
use crate::{Dialect, SqlStore};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use echostats_core::model::{ApiCallLog, EncryptedTokens, JobStatus, JobStep, SyncJob};
use echostats_core::store::{ApiLogQuery, ApiLogStats, ApiLogStore, JobQuery, JobStats, JobStore, Page};
use echostats_core::{Error, Result};
use sqlx::any::AnyRow;
use sqlx::{Executor, Row};

/// Rows per multi-row insert of API logs (9 binds each).
const LOG_ROWS_PER_INSERT: usize = 500;

const JOB_COLS: &str = "id, user_id, job_type, status, items_processed, items_total, error_message, steps, \
                        created_at, started_at, completed_at";
const LOG_COLS: &str = "id, user_id, service, method, endpoint, status_code, latency_ms, error, ts";

/// The value of `active_key` for an exclusive job while it is active.
fn active_key(job: &SyncJob) -> String {
    format!("{}\u{1f}{}", job.user_id, job.job_type)
}

/// SQL list of the active statuses, for `status IN (...)`.
fn active_statuses() -> String {
    let quoted: Vec<String> =
        JobStatus::ALL.iter().filter(|s| s.is_active()).map(|s| format!("'{}'", s.as_str())).collect();
    quoted.join(", ")
}

fn opt_ms(t: Option<DateTime<Utc>>) -> Option<i64> {
    t.map(ms_floor)
}

fn opt_from_ms(ms: Option<i64>) -> SqlResult<Option<DateTime<Utc>>> {
    ms.map(from_ms).transpose()
}

fn job_from_row(row: &AnyRow) -> SqlResult<SyncJob> {
    let corrupt = |what: &str, e: Error| SqlError::Corrupt(format!("job {what}: {e}"));
    let steps: String = row.try_get(7)?;
    Ok(SyncJob {
        id: row.try_get(0)?,
        user_id: row.try_get(1)?,
        job_type: row.try_get::<String, _>(2)?.parse().map_err(|e| corrupt("type", e))?,
        status: row.try_get::<String, _>(3)?.parse().map_err(|e| corrupt("status", e))?,
        items_processed: row.try_get(4)?,
        items_total: row.try_get(5)?,
        error_message: row.try_get(6)?,
        steps: serde_json::from_str::<Vec<JobStep>>(&steps)?,
        created_at: from_ms(row.try_get(8)?)?,
        started_at: opt_from_ms(row.try_get(9)?)?,
        completed_at: opt_from_ms(row.try_get(10)?)?,
    })
}

fn log_from_row(row: &AnyRow) -> SqlResult<ApiCallLog> {
    Ok(ApiCallLog {
        id: row.try_get(0)?,
        user_id: row.try_get(1)?,
        service: row.try_get(2)?,
        method: row.try_get(3)?,
        endpoint: row.try_get(4)?,
        status_code: i32::try_from(row.try_get::<i64, _>(5)?)
            .map_err(|e| SqlError::Corrupt(format!("API log status: {e}")))?,
        latency_ms: row.try_get(6)?,
        error: row.try_get(7)?,
        timestamp: from_ms(row.try_get(8)?)?,
    })
}

/// A bind value of a dynamically built filter.
enum Arg {
    I(i64),
    S(String),
}

/// `WHERE` conditions with their binds, numbered through one [`Ph`].
struct Filter {
    ph: Ph,
    conds: Vec<String>,
    args: Vec<Arg>,
}

impl Filter {
    fn new(dialect: Dialect) -> Self {
        Filter { ph: Ph::new(dialect), conds: Vec::new(), args: Vec::new() }
    }
    /// Adds `template` with `?` replaced by the next placeholder.
    fn push(&mut self, template: &str, arg: Arg) {
        let p = self.ph.next();
        self.conds.push(template.replace('?', &p));
        self.args.push(arg);
    }
    fn sql(&self) -> String {
        self.conds.join(" AND ")
    }
    fn bind<'q>(&'q self, mut q: Query<'q>) -> Query<'q> {
        for a in &self.args {
            q = match a {
                Arg::I(v) => q.bind(*v),
                Arg::S(s) => q.bind(s.as_str()),
            };
        }
        q
    }
}

impl SqlStore {
    /// The filtered count, then one page ordered by `order` of `table`.
    async fn page<T>(
        &self,
        table: &str,
        cols: &str,
        mut filter: Filter,
        order: &str,
        (offset, limit): (u64, u32),
        decode: fn(&AnyRow) -> SqlResult<T>,
    ) -> SqlResult<Page<T>> {
        let conds = filter.sql();
        let total: i64 = self
            .pool
            .fetch_one(filter.bind(sqlx::query(&format!("SELECT COUNT(*) FROM {table} WHERE {conds}"))))
            .await?
            .try_get(0)?;
        let (lp, op) = (filter.ph.next(), filter.ph.next());
        let sql = format!("SELECT {cols} FROM {table} WHERE {conds} ORDER BY {order} LIMIT {lp} OFFSET {op}");
        let offset = i64::try_from(offset).unwrap_or(i64::MAX);
        let rows = self.pool.fetch_all(filter.bind(sqlx::query(&sql)).bind(limit as i64).bind(offset)).await?;
        let items = rows.iter().map(decode).collect::<SqlResult<_>>()?;
        Ok(Page { items, total: total as u64 })
    }

    async fn user_exists(&self, user_id: &str) -> SqlResult<bool> {
        let mut ph = Ph::new(self.dialect);
        let sql = format!("SELECT COUNT(*) FROM users WHERE id = {}", ph.next());
        let n: i64 = self.pool.fetch_one(sqlx::query(&sql).bind(user_id)).await?.try_get(0)?;
        Ok(n > 0)
    }

    pub(crate) async fn set_tokens_inner(&self, user_id: &str, tokens: Option<&EncryptedTokens>) -> SqlResult<bool> {
        if !self.user_exists(user_id).await? {
            return Ok(false);
        }
        let mut ph = Ph::new(self.dialect);
        match tokens {
            Some(t) => {
                let sql = format!(
                    "INSERT INTO user_tokens (user_id, ciphertext, expires_at) VALUES {} ON CONFLICT (user_id) \
                     DO UPDATE SET ciphertext = excluded.ciphertext, expires_at = excluded.expires_at",
                    ph.values(1, 3)
                );
                let q = sqlx::query(&sql).bind(user_id).bind(t.ciphertext.clone()).bind(ms_floor(t.expires_at));
                self.pool.execute(q).await?;
            }
            None => {
                let sql = format!("DELETE FROM user_tokens WHERE user_id = {}", ph.next());
                self.pool.execute(sqlx::query(&sql).bind(user_id)).await?;
            }
        }
        Ok(true)
    }

    /// `None` when the user does not exist, `Some(None)` when not connected.
    pub(crate) async fn tokens_inner(&self, user_id: &str) -> SqlResult<Option<Option<EncryptedTokens>>> {
        if !self.user_exists(user_id).await? {
            return Ok(None);
        }
        let mut ph = Ph::new(self.dialect);
        let sql = format!("SELECT ciphertext, expires_at FROM user_tokens WHERE user_id = {}", ph.next());
        let row = self.pool.fetch_optional(sqlx::query(&sql).bind(user_id)).await?;
        let tokens = row
            .map(|r| -> SqlResult<EncryptedTokens> {
                Ok(EncryptedTokens { ciphertext: r.try_get(0)?, expires_at: from_ms(r.try_get(1)?)? })
            })
            .transpose()?;
        Ok(Some(tokens))
    }

    async fn create_job_inner(&self, job: &SyncJob, exclusive: bool) -> SqlResult<()> {
        let mut ph = Ph::new(self.dialect);
        let sql = format!("INSERT INTO sync_jobs ({JOB_COLS}, active_key) VALUES {}", ph.values(1, 12));
        let key = (exclusive && job.status.is_active()).then(|| active_key(job));
        let q = sqlx::query(&sql)
            .bind(job.id.as_str())
            .bind(job.user_id.as_str())
            .bind(job.job_type.as_str())
            .bind(job.status.as_str())
            .bind(job.items_processed)
            .bind(job.items_total)
            .bind(job.error_message.as_deref())
            .bind(serde_json::to_string(&job.steps)?)
            .bind(ms_floor(job.created_at))
            .bind(opt_ms(job.started_at))
            .bind(opt_ms(job.completed_at))
            .bind(key);
        self.pool.execute(q).await?;
        Ok(())
    }

    /// Whether a job was replaced.
    async fn update_job_inner(&self, job: &SyncJob) -> SqlResult<bool> {
        let mut ph = Ph::new(self.dialect);
        let mut set = |col: &str| format!("{col} = {}", ph.next());
        let assignments = [
            set("job_type"),
            set("status"),
            set("items_processed"),
            set("items_total"),
            set("error_message"),
            set("steps"),
            set("created_at"),
            set("started_at"),
            set("completed_at"),
        ]
        .join(", ");
        // Finishing releases the exclusivity; otherwise it stays as created.
        let release = if job.status.is_active() { "" } else { ", active_key = NULL" };
        let sql =
            format!("UPDATE sync_jobs SET {assignments}{release} WHERE id = {} AND user_id = {}", ph.next(), ph.next());
        let q = sqlx::query(&sql)
            .bind(job.job_type.as_str())
            .bind(job.status.as_str())
            .bind(job.items_processed)
            .bind(job.items_total)
            .bind(job.error_message.as_deref())
            .bind(serde_json::to_string(&job.steps)?)
            .bind(ms_floor(job.created_at))
            .bind(opt_ms(job.started_at))
            .bind(opt_ms(job.completed_at))
            .bind(job.id.as_str())
            .bind(job.user_id.as_str());
        Ok(self.pool.execute(q).await?.rows_affected() > 0)
    }

    async fn job_inner(&self, user_id: &str, id: &str) -> SqlResult<Option<SyncJob>> {
        let mut ph = Ph::new(self.dialect);
        let sql = format!("SELECT {JOB_COLS} FROM sync_jobs WHERE id = {} AND user_id = {}", ph.next(), ph.next());
        let row = self.pool.fetch_optional(sqlx::query(&sql).bind(id).bind(user_id)).await?;
        row.as_ref().map(job_from_row).transpose()
    }

    async fn jobs_inner(&self, user_id: &str, q: &JobQuery) -> SqlResult<Page<SyncJob>> {
        let mut filter = Filter::new(self.dialect);
        filter.push("user_id = ?", Arg::S(user_id.into()));
        if let Some(s) = q.status {
            filter.push("status = ?", Arg::S(s.as_str().into()));
        }
        if let Some(t) = q.job_type {
            filter.push("job_type = ?", Arg::S(t.as_str().into()));
        }
        self.page("sync_jobs", JOB_COLS, filter, "created_at DESC, id DESC", (q.offset(), q.limit), job_from_row).await
    }

    async fn job_stats_inner(&self, user_id: &str) -> SqlResult<JobStats> {
        let mut ph = Ph::new(self.dialect);
        // SUM of a BIGINT is NUMERIC in PostgreSQL, which the Any driver cannot read.
        let sql = format!(
            "SELECT status, COUNT(*), CAST(SUM(items_processed) AS BIGINT), MAX(completed_at) FROM sync_jobs \
             WHERE user_id = {} GROUP BY status",
            ph.next()
        );
        let rows = self.pool.fetch_all(sqlx::query(&sql).bind(user_id)).await?;
        let mut stats = JobStats::default();
        for row in &rows {
            let status: JobStatus = row
                .try_get::<String, _>(0)?
                .parse()
                .map_err(|e: Error| SqlError::Corrupt(format!("job status: {e}")))?;
            let jobs: i64 = row.try_get(1)?;
            stats.add(status, jobs as u64, row.try_get(2)?, opt_from_ms(row.try_get(3)?)?);
        }
        Ok(stats)
    }

    async fn fail_unfinished_inner(&self, reason: &str) -> SqlResult<u64> {
        let mut ph = Ph::new(self.dialect);
        let sql = format!(
            "UPDATE sync_jobs SET status = {}, error_message = {}, active_key = NULL WHERE status IN ({})",
            ph.next(),
            ph.next(),
            active_statuses()
        );
        let q = sqlx::query(&sql).bind(JobStatus::Failed.as_str()).bind(reason);
        Ok(self.pool.execute(q).await?.rows_affected())
    }

    async fn delete_jobs_inner(&self, before: DateTime<Utc>) -> SqlResult<u64> {
        let mut ph = Ph::new(self.dialect);
        let sql =
            format!("DELETE FROM sync_jobs WHERE created_at < {} AND status NOT IN ({})", ph.next(), active_statuses());
        Ok(self.pool.execute(sqlx::query(&sql).bind(ms_floor(before))).await?.rows_affected())
    }

    async fn log_calls_inner(&self, calls: &[ApiCallLog]) -> SqlResult<()> {
        let mut tx = self.pool.begin().await?;
        for chunk in calls.chunks(LOG_ROWS_PER_INSERT) {
            let mut ph = Ph::new(self.dialect);
            let sql = format!("INSERT INTO api_logs ({LOG_COLS}) VALUES {}", ph.values(chunk.len(), 9));
            let mut q = sqlx::query(&sql);
            for c in chunk {
                q = q
                    .bind(c.id.as_str())
                    .bind(c.user_id.as_deref())
                    .bind(c.service.as_str())
                    .bind(c.method.as_str())
                    .bind(c.endpoint.as_str())
                    .bind(c.status_code as i64)
                    .bind(c.latency_ms)
                    .bind(c.error.as_deref())
                    .bind(ms_floor(c.timestamp));
            }
            tx.execute(q).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn api_logs_inner(&self, user_id: &str, q: &ApiLogQuery) -> SqlResult<Page<ApiCallLog>> {
        let mut filter = Filter::new(self.dialect);
        filter.push("user_id = ?", Arg::S(user_id.into()));
        if let Some(s) = &q.service {
            filter.push("service = ?", Arg::S(s.clone()));
        }
        if let Some(m) = q.status_min {
            filter.push("status_code >= ?", Arg::I(m.into()));
        }
        if let Some(m) = q.status_max {
            filter.push("status_code <= ?", Arg::I(m.into()));
        }
        if let Some(m) = q.method_upper() {
            filter.push("method = ?", Arg::S(m));
        }
        if let Some(e) = &q.endpoint_contains {
            // A literal, case-sensitive substring: no LIKE wildcards to escape.
            let find = match self.dialect {
                Dialect::Sqlite => "instr(endpoint, ?) > 0",
                Dialect::Postgres => "strpos(endpoint, ?) > 0",
            };
            filter.push(find, Arg::S(e.clone()));
        }
        self.page("api_logs", LOG_COLS, filter, "ts DESC, id DESC", (q.offset(), q.limit), log_from_row).await
    }

    async fn api_log_stats_inner(&self, user_id: &str) -> SqlResult<ApiLogStats> {
        let mut ph = Ph::new(self.dialect);
        let sql = format!(
            "SELECT status_code, COUNT(*), SUM(latency_ms) FROM api_logs WHERE user_id = {} GROUP BY status_code",
            ph.next()
        );
        let rows = self.pool.fetch_all(sqlx::query(&sql).bind(user_id)).await?;
        let mut by_status = Vec::with_capacity(rows.len());
        let mut latency = 0.0;
        for row in &rows {
            let status = i32::try_from(row.try_get::<i64, _>(0)?)
                .map_err(|e| SqlError::Corrupt(format!("API log status: {e}")))?;
            by_status.push((status, row.try_get::<i64, _>(1)? as u64));
            latency += row.try_get::<f64, _>(2)?;
        }
        let mut ph = Ph::new(self.dialect);
        let sql = format!(
            "SELECT method, endpoint, COUNT(*) FROM api_logs WHERE user_id = {} GROUP BY method, endpoint",
            ph.next()
        );
        let rows = self.pool.fetch_all(sqlx::query(&sql).bind(user_id)).await?;
        let by_endpoint = rows
            .iter()
            .map(|r| -> SqlResult<(String, u64)> {
                let (method, endpoint): (String, String) = (r.try_get(0)?, r.try_get(1)?);
                Ok((format!("{method} {endpoint}"), r.try_get::<i64, _>(2)? as u64))
            })
            .collect::<SqlResult<_>>()?;
        Ok(ApiLogStats::from_groups(&by_status, latency, by_endpoint))
    }

    async fn delete_logs_inner(&self, before: DateTime<Utc>) -> SqlResult<u64> {
        let mut ph = Ph::new(self.dialect);
        let sql = format!("DELETE FROM api_logs WHERE ts < {}", ph.next());
        Ok(self.pool.execute(sqlx::query(&sql).bind(ms_floor(before))).await?.rows_affected())
    }
}

#[async_trait]
impl JobStore for SqlStore {
    async fn create_job(&self, job: &SyncJob, exclusive: bool) -> Result<()> {
        self.create_job_inner(job, exclusive).await.map_err(self.fail())
    }
    async fn update_job(&self, job: &SyncJob) -> Result<()> {
        match self.update_job_inner(job).await.map_err(self.fail())? {
            true => Ok(()),
            false => Err(Error::not_found(format!("job {:?}", job.id))),
        }
    }
    async fn job(&self, user_id: &str, id: &str) -> Result<SyncJob> {
        self.job_inner(user_id, id).await.map_err(self.fail())?.ok_or_else(|| Error::not_found(format!("job {id:?}")))
    }
    async fn jobs(&self, user_id: &str, query: &JobQuery) -> Result<Page<SyncJob>> {
        query.validate()?;
        self.jobs_inner(user_id, query).await.map_err(self.fail())
    }
    async fn job_stats(&self, user_id: &str) -> Result<JobStats> {
        self.job_stats_inner(user_id).await.map_err(self.fail())
    }
    async fn fail_unfinished_jobs(&self, reason: &str) -> Result<u64> {
        self.fail_unfinished_inner(reason).await.map_err(self.fail())
    }
    async fn delete_jobs_before(&self, before: DateTime<Utc>) -> Result<u64> {
        self.delete_jobs_inner(before).await.map_err(self.fail())
    }
}

#[async_trait]
impl ApiLogStore for SqlStore {
    async fn log_api_calls(&self, calls: &[ApiCallLog]) -> Result<()> {
        self.log_calls_inner(calls).await.map_err(self.fail())
    }
    async fn api_logs(&self, user_id: &str, query: &ApiLogQuery) -> Result<Page<ApiCallLog>> {
        query.validate()?;
        self.api_logs_inner(user_id, query).await.map_err(self.fail())
    }
    async fn api_log_stats(&self, user_id: &str) -> Result<ApiLogStats> {
        self.api_log_stats_inner(user_id).await.map_err(self.fail())
    }
    async fn delete_api_logs_before(&self, before: DateTime<Utc>) -> Result<u64> {
        self.delete_logs_inner(before).await.map_err(self.fail())
    }
}
