//! Tokens, jobs and API logs.
//!
//! Jobs and API logs expire through TTL indexes (MongoDB deletes them in the
//! background), and [`JobStore::delete_jobs_before`] / [`ApiLogStore::delete_api_logs_before`]
//! delete the same documents on demand. A job's TTL field `expire_from` (its creation
//! time as a BSON date) is set only once it is finished, so a running job never expires.

use crate::codec::{ms_floor, num};
use crate::error::{MongoError, MongoResult};
use crate::{MongoStore, API_LOGS, JOBS, TOKENS};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use echostats_core::model::{ApiCallLog, EncryptedTokens, JobStatus, JobStep, SyncJob};
use echostats_core::store::{ApiLogQuery, ApiLogStats, ApiLogStore, JobQuery, JobStats, JobStore, Page};
use echostats_core::{Error, Result};
use futures_util::TryStreamExt;
use mongodb::bson::{self, doc, spec::BinarySubtype, Binary, Bson, Document};

fn time(ms: i64) -> MongoResult<DateTime<Utc>> {
    DateTime::from_timestamp_millis(ms).ok_or_else(|| MongoError::Corrupt(format!("time {ms} ms out of range")))
}

fn opt_time(d: &Document, key: &str) -> MongoResult<Option<DateTime<Utc>>> {
    num(d, key).map(time).transpose()
}

fn str_field(d: &Document, key: &str) -> MongoResult<String> {
    d.get_str(key).map(str::to_string).map_err(|e| MongoError::Corrupt(format!("field {key}: {e}")))
}

fn opt_str(d: &Document, key: &str) -> Option<String> {
    d.get_str(key).ok().map(str::to_string)
}

fn bson_date(t: DateTime<Utc>) -> bson::DateTime {
    bson::DateTime::from_millis(ms_floor(t))
}

/// The fields of a job that change as it runs (all but id, owner and exclusivity).
fn job_state(job: &SyncJob) -> MongoResult<Document> {
    let mut d = doc! {
        "type": job.job_type.as_str(),
        "status": job.status.as_str(),
        "processed": job.items_processed,
        "total": job.items_total,
        "error": job.error_message.as_deref(),
        "steps": bson::to_bson(&job.steps)?,
        "created": ms_floor(job.created_at),
        "started": job.started_at.map(ms_floor),
        "completed": job.completed_at.map(ms_floor),
    };
    if !job.status.is_active() {
        d.insert("expire_from", bson_date(job.created_at));
    }
    Ok(d)
}

fn job_from_doc(d: &Document) -> MongoResult<SyncJob> {
    let corrupt = |what: &str, e: Error| MongoError::Corrupt(format!("job {what}: {e}"));
    let steps = d.get("steps").cloned().unwrap_or(Bson::Array(vec![]));
    Ok(SyncJob {
        id: str_field(d, "_id")?,
        user_id: str_field(d, "u")?,
        job_type: str_field(d, "type")?.parse().map_err(|e| corrupt("type", e))?,
        status: str_field(d, "status")?.parse().map_err(|e| corrupt("status", e))?,
        items_processed: num(d, "processed").unwrap_or(0),
        items_total: num(d, "total").unwrap_or(0),
        error_message: opt_str(d, "error"),
        steps: bson::from_bson::<Vec<JobStep>>(steps)?,
        created_at: time(num(d, "created").ok_or_else(|| MongoError::Corrupt("job without created".into()))?)?,
        started_at: opt_time(d, "started")?,
        completed_at: opt_time(d, "completed")?,
    })
}

fn log_doc(c: &ApiCallLog) -> Document {
    doc! {
        "_id": c.id.as_str(),
        "u": c.user_id.as_deref(),
        "service": c.service.as_str(),
        "method": c.method.as_str(),
        "endpoint": c.endpoint.as_str(),
        "status": c.status_code,
        "latency": c.latency_ms,
        "error": c.error.as_deref(),
        "at": ms_floor(c.timestamp),
        // The TTL index's field (a BSON date).
        "ts": bson_date(c.timestamp),
    }
}

fn log_from_doc(d: &Document) -> MongoResult<ApiCallLog> {
    let status = num(d, "status").ok_or_else(|| MongoError::Corrupt("API log without status".into()))?;
    Ok(ApiCallLog {
        id: str_field(d, "_id")?,
        user_id: opt_str(d, "u"),
        service: str_field(d, "service")?,
        method: str_field(d, "method")?,
        endpoint: str_field(d, "endpoint")?,
        status_code: i32::try_from(status).map_err(|e| MongoError::Corrupt(format!("API log status: {e}")))?,
        latency_ms: d.get_f64("latency").map_err(|e| MongoError::Corrupt(format!("API log latency: {e}")))?,
        error: opt_str(d, "error"),
        timestamp: time(num(d, "at").ok_or_else(|| MongoError::Corrupt("API log without time".into()))?)?,
    })
}

/// `text` as a regular expression matching itself literally (every ASCII character that
/// is not a letter or digit escaped; the server has no text indexes, and user input must
/// never act as a pattern).
pub(crate) fn regex_literal(text: &str) -> String {
    let mut out = String::with_capacity(text.len() * 2);
    for c in text.chars() {
        if c.is_ascii() && !c.is_ascii_alphanumeric() {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

fn active_statuses() -> Vec<&'static str> {
    JobStatus::ALL.iter().filter(|s| s.is_active()).map(|s| s.as_str()).collect()
}

impl MongoStore {
    async fn user_exists(&self, user_id: &str) -> MongoResult<bool> {
        Ok(self.coll(crate::USERS).count_documents(doc! { "_id": user_id }).limit(1).await? > 0)
    }

    async fn set_tokens_inner(&self, user_id: &str, tokens: Option<&EncryptedTokens>) -> MongoResult<bool> {
        if !self.user_exists(user_id).await? {
            return Ok(false);
        }
        let coll = self.coll(TOKENS);
        match tokens {
            Some(t) => {
                let sealed = Binary { subtype: BinarySubtype::Generic, bytes: t.ciphertext.clone() };
                let d = doc! { "_id": user_id, "c": sealed, "exp": ms_floor(t.expires_at) };
                coll.replace_one(doc! { "_id": user_id }, d).upsert(true).await?;
            }
            None => {
                coll.delete_one(doc! { "_id": user_id }).await?;
            }
        }
        Ok(true)
    }

    async fn tokens_inner(&self, user_id: &str) -> MongoResult<Option<Option<EncryptedTokens>>> {
        if !self.user_exists(user_id).await? {
            return Ok(None);
        }
        let Some(d) = self.coll(TOKENS).find_one(doc! { "_id": user_id }).await? else { return Ok(Some(None)) };
        let ciphertext = d.get_binary_generic("c").map_err(|e| MongoError::Corrupt(format!("tokens: {e}")))?.clone();
        let expires_at = time(num(&d, "exp").ok_or_else(|| MongoError::Corrupt("tokens without expiry".into()))?)?;
        Ok(Some(Some(EncryptedTokens { ciphertext, expires_at })))
    }

    async fn create_job_inner(&self, job: &SyncJob, exclusive: bool) -> MongoResult<()> {
        let mut d = doc! { "_id": job.id.as_str(), "u": job.user_id.as_str() };
        d.extend(job_state(job)?);
        if exclusive && job.status.is_active() {
            // Unique (sparse): one active exclusive job per user and type.
            d.insert("active", format!("{}\u{1f}{}", job.user_id, job.job_type));
        }
        self.coll(JOBS).insert_one(d).await?;
        Ok(())
    }

    async fn update_job_inner(&self, job: &SyncJob) -> MongoResult<bool> {
        let mut update = doc! { "$set": job_state(job)? };
        if !job.status.is_active() {
            update.insert("$unset", doc! { "active": "" });
        } else {
            update.insert("$unset", doc! { "expire_from": "" });
        }
        let r = self.coll(JOBS).update_one(doc! { "_id": job.id.as_str(), "u": job.user_id.as_str() }, update).await?;
        Ok(r.matched_count > 0)
    }

    async fn page<T>(
        &self,
        coll: &str,
        filter: Document,
        sort: Document,
        (offset, limit): (u64, u32),
        decode: fn(&Document) -> MongoResult<T>,
    ) -> MongoResult<Page<T>> {
        let coll = self.coll(coll);
        let total = coll.count_documents(filter.clone()).await?;
        let docs: Vec<Document> =
            coll.find(filter).sort(sort).skip(offset).limit(limit as i64).await?.try_collect().await?;
        let items = docs.iter().map(decode).collect::<MongoResult<_>>()?;
        Ok(Page { items, total })
    }

    async fn jobs_inner(&self, user_id: &str, q: &JobQuery) -> MongoResult<Page<SyncJob>> {
        let mut filter = doc! { "u": user_id };
        if let Some(s) = q.status {
            filter.insert("status", s.as_str());
        }
        if let Some(t) = q.job_type {
            filter.insert("type", t.as_str());
        }
        self.page(JOBS, filter, doc! { "created": -1, "_id": -1 }, (q.offset(), q.limit), job_from_doc).await
    }

    async fn job_stats_inner(&self, user_id: &str) -> MongoResult<JobStats> {
        let pipeline = vec![
            doc! { "$match": { "u": user_id } },
            doc! { "$group": {
                "_id": "$status",
                "n": { "$sum": 1 },
                "items": { "$sum": "$processed" },
                "last": { "$max": "$completed" },
            } },
        ];
        let mut cursor = self.coll(JOBS).aggregate(pipeline).await?;
        let mut stats = JobStats::default();
        while let Some(d) = cursor.try_next().await? {
            let status: JobStatus =
                str_field(&d, "_id")?.parse().map_err(|e: Error| MongoError::Corrupt(format!("job status: {e}")))?;
            let jobs = num(&d, "n").unwrap_or(0) as u64;
            stats.add(status, jobs, num(&d, "items").unwrap_or(0), opt_time(&d, "last")?);
        }
        Ok(stats)
    }

    async fn fail_unfinished_inner(&self, reason: &str) -> MongoResult<u64> {
        let coll = self.coll(JOBS);
        let active: Vec<Document> =
            coll.find(doc! { "status": { "$in": active_statuses() } }).await?.try_collect().await?;
        let mut failed = 0;
        for d in &active {
            let mut job = job_from_doc(d)?;
            job.status = JobStatus::Failed;
            job.error_message = Some(reason.to_string());
            // Only if still active: a job finished meanwhile keeps its outcome.
            let filter = doc! { "_id": job.id.as_str(), "status": { "$in": active_statuses() } };
            let update = doc! { "$set": job_state(&job)?, "$unset": { "active": "" } };
            failed += coll.update_one(filter, update).await?.modified_count;
        }
        Ok(failed)
    }

    async fn delete_jobs_inner(&self, before: DateTime<Utc>) -> MongoResult<u64> {
        let filter = doc! { "created": { "$lt": ms_floor(before) }, "status": { "$nin": active_statuses() } };
        Ok(self.coll(JOBS).delete_many(filter).await?.deleted_count)
    }

    async fn log_calls_inner(&self, calls: &[ApiCallLog]) -> MongoResult<()> {
        if calls.is_empty() {
            return Ok(());
        }
        let docs: Vec<Document> = calls.iter().map(log_doc).collect();
        let mut session = self.begin_session().await?;
        self.coll(API_LOGS).insert_many(docs).session(&mut session).await?;
        session.commit_transaction().await?;
        Ok(())
    }

    async fn api_logs_inner(&self, user_id: &str, q: &ApiLogQuery) -> MongoResult<Page<ApiCallLog>> {
        let mut filter = doc! { "u": user_id };
        if let Some(s) = &q.service {
            filter.insert("service", s.as_str());
        }
        let mut status = Document::new();
        if let Some(m) = q.status_min {
            status.insert("$gte", m);
        }
        if let Some(m) = q.status_max {
            status.insert("$lte", m);
        }
        if !status.is_empty() {
            filter.insert("status", status);
        }
        if let Some(m) = q.method_upper() {
            filter.insert("method", m);
        }
        if let Some(e) = &q.endpoint_contains {
            filter.insert("endpoint", doc! { "$regex": regex_literal(e) });
        }
        self.page(API_LOGS, filter, doc! { "at": -1, "_id": -1 }, (q.offset(), q.limit), log_from_doc).await
    }

    async fn api_log_stats_inner(&self, user_id: &str) -> MongoResult<ApiLogStats> {
        let coll = self.coll(API_LOGS);
        let by_status_pipeline = vec![
            doc! { "$match": { "u": user_id } },
            doc! { "$group": { "_id": "$status", "n": { "$sum": 1 }, "lat": { "$sum": "$latency" } } },
        ];
        let mut by_status = Vec::new();
        let mut latency = 0.0;
        let mut cursor = coll.aggregate(by_status_pipeline).await?;
        while let Some(d) = cursor.try_next().await? {
            let status = num(&d, "_id").ok_or_else(|| MongoError::Corrupt("API log group without status".into()))?;
            let status = i32::try_from(status).map_err(|e| MongoError::Corrupt(format!("API log status: {e}")))?;
            by_status.push((status, num(&d, "n").unwrap_or(0) as u64));
            latency += match d.get("lat") {
                Some(Bson::Double(x)) => *x,
                _ => num(&d, "lat").unwrap_or(0) as f64,
            };
        }
        let by_endpoint_pipeline = vec![
            doc! { "$match": { "u": user_id } },
            doc! { "$group": { "_id": { "m": "$method", "e": "$endpoint" }, "n": { "$sum": 1 } } },
        ];
        let mut by_endpoint = Vec::new();
        let mut cursor = coll.aggregate(by_endpoint_pipeline).await?;
        while let Some(d) = cursor.try_next().await? {
            let key = d.get_document("_id").map_err(|e| MongoError::Corrupt(format!("API log group: {e}")))?;
            let name = format!("{} {}", str_field(key, "m")?, str_field(key, "e")?);
            by_endpoint.push((name, num(&d, "n").unwrap_or(0) as u64));
        }
        Ok(ApiLogStats::from_groups(&by_status, latency, by_endpoint))
    }

    async fn delete_logs_inner(&self, before: DateTime<Utc>) -> MongoResult<u64> {
        Ok(self.coll(API_LOGS).delete_many(doc! { "at": { "$lt": ms_floor(before) } }).await?.deleted_count)
    }
}

#[async_trait]
impl JobStore for MongoStore {
    async fn create_job(&self, job: &SyncJob, exclusive: bool) -> Result<()> {
        Ok(self.create_job_inner(job, exclusive).await?)
    }
    async fn update_job(&self, job: &SyncJob) -> Result<()> {
        match self.update_job_inner(job).await? {
            true => Ok(()),
            false => Err(Error::not_found(format!("job {:?}", job.id))),
        }
    }
    async fn job(&self, user_id: &str, id: &str) -> Result<SyncJob> {
        let d = self.coll(JOBS).find_one(doc! { "_id": id, "u": user_id }).await.map_err(MongoError::from)?;
        let d = d.ok_or_else(|| Error::not_found(format!("job {id:?}")))?;
        Ok(job_from_doc(&d)?)
    }
    async fn jobs(&self, user_id: &str, query: &JobQuery) -> Result<Page<SyncJob>> {
        query.validate()?;
        Ok(self.jobs_inner(user_id, query).await?)
    }
    async fn job_stats(&self, user_id: &str) -> Result<JobStats> {
        Ok(self.job_stats_inner(user_id).await?)
    }
    async fn fail_unfinished_jobs(&self, reason: &str) -> Result<u64> {
        Ok(self.fail_unfinished_inner(reason).await?)
    }
    async fn delete_jobs_before(&self, before: DateTime<Utc>) -> Result<u64> {
        Ok(self.delete_jobs_inner(before).await?)
    }
}

#[async_trait]
impl ApiLogStore for MongoStore {
    async fn log_api_calls(&self, calls: &[ApiCallLog]) -> Result<()> {
        Ok(self.log_calls_inner(calls).await?)
    }
    async fn api_logs(&self, user_id: &str, query: &ApiLogQuery) -> Result<Page<ApiCallLog>> {
        query.validate()?;
        Ok(self.api_logs_inner(user_id, query).await?)
    }
    async fn api_log_stats(&self, user_id: &str) -> Result<ApiLogStats> {
        Ok(self.api_log_stats_inner(user_id).await?)
    }
    async fn delete_api_logs_before(&self, before: DateTime<Utc>) -> Result<u64> {
        Ok(self.delete_logs_inner(before).await?)
    }
}

/// Token methods of [`echostats_core::store::UserStore`], called from its impl.
impl MongoStore {
    pub(crate) async fn set_tokens_checked(&self, user_id: &str, tokens: Option<&EncryptedTokens>) -> Result<()> {
        match self.set_tokens_inner(user_id, tokens).await? {
            true => Ok(()),
            false => Err(Error::not_found(format!("user {user_id:?}"))),
        }
    }
    pub(crate) async fn tokens_checked(&self, user_id: &str) -> Result<Option<EncryptedTokens>> {
        self.tokens_inner(user_id).await?.ok_or_else(|| Error::not_found(format!("user {user_id:?}")))
    }
}

#[cfg(test)]
mod tests {
    use super::regex_literal;

    #[test]
    fn regex_literal_escapes_every_symbol() {
        assert_eq!(regex_literal("/v1/me"), "\\/v1\\/me");
        assert_eq!(regex_literal("a.*b%_(x)"), "a\\.\\*b\\%\\_\\(x\\)");
        assert_eq!(regex_literal("Sigur Rós"), "Sigur\\ Rós");
    }
}
