//! Background jobs of the server (history imports, rollup builds, syncs), recorded in the
//! store's [`JobStore`](echostats::store::JobStore) so that `/api/v1/sync-jobs` shows
//! their progress, steps and outcome; plus what keeps that record honest: failing the
//! jobs an earlier process left unfinished, and the hourly retention sweep.
//!
//! A job is created `pending` (exclusive per user and type where it must not run twice),
//! its body runs in its own task, and however that body ends (`Ok`, `Err(message)`, even
//! a panic) the job ends `completed` or `failed`: nothing stays pending.

use crate::app::AppState;
use crate::upload::SavedUpload;
use chrono::Utc;
use echostats::ingest::{self, FileReport, FileStatus, ImportOptions, ImportSummary};
use echostats::store::{JobQuery, Store};
use echostats::sync::{self, SyncOptions};
use echostats::{JobStatus, JobStep, JobType, SyncJob};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Mutex;

/// Why jobs found unfinished when the server starts are failed.
pub const INTERRUPTED: &str = "interrupted: the server restarted";

/// How often finished jobs and API logs past the retention are deleted.
const RETENTION_SWEEP_EVERY: Duration = Duration::from_secs(3600);

/// How often a running import writes its progress to the store.
const PROGRESS_EVERY: Duration = Duration::from_millis(500);

/// A job as recorded in the store; clones share it. Every change is written through.
#[derive(Clone)]
pub struct JobRecorder {
    store: Arc<dyn Store>,
    job: Arc<Mutex<SyncJob>>,
    id: String,
    user_id: String,
}

/// What starting an exclusive job gave.
pub enum Started {
    /// A new job, `pending`; give it a body with [`spawn`].
    New(JobRecorder),
    /// The user's job of this type that is pending or running already (its id).
    AlreadyRunning(String),
}

impl JobRecorder {
    /// Records a new `pending` job of `job_type` for `user_id`. With `exclusive`, a job of
    /// that type the user already has pending or running is returned instead.
    pub async fn create(
        store: &Arc<dyn Store>,
        user_id: &str,
        job_type: JobType,
        exclusive: bool,
    ) -> echostats::Result<Started> {
        // The store decides atomically; the retries cover a running job that ends between
        // the refusal and the look-up of its id.
        for _ in 0..3 {
            let job = SyncJob {
                id: uuid::Uuid::new_v4().simple().to_string(),
                user_id: user_id.to_string(),
                job_type,
                status: JobStatus::Pending,
                items_processed: 0,
                items_total: 0,
                error_message: None,
                steps: Vec::new(),
                created_at: Utc::now(),
                started_at: None,
                completed_at: None,
            };
            match store.create_job(&job, exclusive).await {
                Ok(()) => {
                    return Ok(Started::New(JobRecorder {
                        store: store.clone(),
                        id: job.id.clone(),
                        user_id: job.user_id.clone(),
                        job: Arc::new(Mutex::new(job)),
                    }))
                }
                Err(echostats::Error::AlreadyExists { .. }) if exclusive => {
                    if let Some(id) = active_job(&**store, user_id, job_type).await? {
                        return Ok(Started::AlreadyRunning(id));
                    }
                }
                Err(e) => return Err(e),
            }
        }
        Err(echostats::Error::invalid(format!("could not start a {job_type} job: one keeps being started and ended")))
    }

    /// The job id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The owner.
    pub fn user_id(&self) -> &str {
        &self.user_id
    }

    /// Changes the job and writes it to the store. A store failure is logged, not
    /// returned: progress is best effort, and the job's body goes on.
    pub async fn update(&self, change: impl FnOnce(&mut SyncJob)) {
        let mut job = self.job.lock().await;
        change(&mut job);
        if let Err(e) = self.store.update_job(&job).await {
            tracing::error!(job_id = %job.id, error = %e, "cannot record the job's progress");
        }
    }

    /// Marks the job running.
    pub async fn running(&self) {
        self.update(|j| {
            j.status = JobStatus::Running;
            j.started_at = Some(Utc::now());
        })
        .await;
    }

    async fn finish(&self, outcome: Result<(), String>) {
        self.update(|j| {
            let now = Utc::now();
            j.started_at.get_or_insert(now);
            j.completed_at = Some(now);
            match outcome {
                Ok(()) => j.status = JobStatus::Completed,
                Err(message) => {
                    j.status = JobStatus::Failed;
                    j.error_message = Some(message);
                }
            }
        })
        .await;
    }
}

/// Runs `body` as the work of `job` in the background; the job ends `completed` when it
/// returns `Ok`, `failed` with the message when it returns `Err` or panics.
pub fn spawn(job: JobRecorder, body: impl Future<Output = Result<(), String>> + Send + 'static) {
    tokio::spawn(async move {
        let outcome = match tokio::spawn(body).await {
            Ok(outcome) => outcome,
            Err(e) => {
                tracing::error!(job_id = %job.id(), error = %e, "job crashed");
                Err("the job crashed (see the server log)".to_string())
            }
        };
        match &outcome {
            Ok(()) => tracing::info!(job_id = %job.id(), user = %job.user_id(), "job completed"),
            Err(e) => tracing::warn!(job_id = %job.id(), user = %job.user_id(), error = %e, "job failed"),
        }
        job.finish(outcome).await;
    });
}

/// The id of the user's pending or running job of `job_type`, if any.
pub async fn active_job(store: &dyn Store, user_id: &str, job_type: JobType) -> echostats::Result<Option<String>> {
    for status in [JobStatus::Running, JobStatus::Pending] {
        let query = JobQuery { page: 1, limit: 1, status: Some(status), job_type: Some(job_type) };
        if let Some(job) = store.jobs(user_id, &query).await?.items.into_iter().next() {
            return Ok(Some(job.id));
        }
    }
    Ok(None)
}

/// At start: no job of an earlier process is still running, so fail them all. (This
/// assumes one server process per database, as the in-process job runner does.)
pub async fn fail_interrupted(store: &dyn Store) {
    match store.fail_unfinished_jobs(INTERRUPTED).await {
        Ok(0) => {}
        Ok(n) => tracing::warn!(jobs = n, "failed the jobs an earlier run left unfinished"),
        Err(e) => tracing::error!(error = %e, "cannot fail the jobs an earlier run left unfinished"),
    }
}

/// A task that runs while the server does (retention sweep, sync rounds); dropping this
/// stops it.
pub struct BackgroundTask(tokio::task::JoinHandle<()>);

impl Drop for BackgroundTask {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Deletes finished jobs and API call logs older than `retention`, now and then every
/// hour, until the returned handle is dropped.
pub fn spawn_retention_sweep(store: Arc<dyn Store>, retention: Duration) -> BackgroundTask {
    BackgroundTask(tokio::spawn(async move {
        let mut every = tokio::time::interval(RETENTION_SWEEP_EVERY);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            every.tick().await;
            let Ok(retention) = chrono::Duration::from_std(retention) else { return };
            let before = Utc::now() - retention;
            match store.delete_jobs_before(before).await {
                Ok(n) if n > 0 => tracing::info!(jobs = n, %before, "deleted old jobs"),
                Ok(_) => {}
                Err(e) => tracing::error!(error = %e, "cannot delete old jobs"),
            }
            match store.delete_api_logs_before(before).await {
                Ok(n) if n > 0 => tracing::info!(api_logs = n, %before, "deleted old API call logs"),
                Ok(_) => {}
                Err(e) => tracing::error!(error = %e, "cannot delete old API call logs"),
            }
        }
    }))
}

/// Starts a Spotify sync of `job_type` (`initial` after sign-in, `periodic` otherwise) for
/// `user_id` unless one is pending or running; returns what was started.
pub async fn start_sync(state: &Arc<AppState>, user_id: &str, job_type: JobType) -> echostats::Result<Started> {
    // Initial and periodic syncs do the same work: one at a time per user.
    for other in [JobType::Initial, JobType::Periodic].into_iter().filter(|t| *t != job_type) {
        if let Some(id) = active_job(&*state.store, user_id, other).await? {
            return Ok(Started::AlreadyRunning(id));
        }
    }
    let started = JobRecorder::create(&state.store, user_id, job_type, true).await?;
    if let Started::New(job) = &started {
        spawn(job.clone(), sync_spotify(state.clone(), job.clone()));
    }
    Ok(started)
}

/// The body of a sync job: the user's recently played tracks into the history, their
/// metadata into the catalog ([`echostats::sync`]). Needs the user's Spotify tokens:
/// without them the job fails at once, so that it does not stay pending.
pub async fn sync_spotify(state: Arc<AppState>, job: JobRecorder) -> Result<(), String> {
    job.running().await;
    let user_id = job.user_id().to_string();
    if state.store.tokens(&user_id).await.map_err(|e| e.to_string())?.is_none() {
        return Err("Spotify account not connected: sign in with Spotify first".into());
    }
    let (client, access_token) = crate::oauth::access_token(&state, &user_id).await.map_err(|e| match e {
        echostats::Error::Unauthenticated => {
            "Spotify refused the stored tokens (expired or revoked): sign in with Spotify again".to_string()
        }
        e => e.to_string(),
    })?;
    let opts = SyncOptions { rules: state.config.rules.clone(), ..SyncOptions::default() };
    let report = sync::sync_recent_plays(&client, &*state.store, &user_id, &access_token, &opts).await;
    if report.as_ref().is_ok_and(|r| r.stored.added + r.stored.replaced > 0) {
        state.reads.invalidate_user(&user_id);
    }
    let report = report.map_err(|e| e.to_string())?;
    job.update(|j| {
        j.items_total = report.fetched as i64;
        j.items_processed = report.fetched as i64;
        j.steps.push(JobStep {
            action: "recently_played".into(),
            status: JobStatus::Completed,
            detail: Some(format!(
                "{} plays from Spotify: {} added, {} replaced, {} already stored",
                report.fetched, report.stored.added, report.stored.replaced, report.stored.duplicates
            )),
            items: report.fetched as i64,
            error: None,
        });
        j.steps.push(JobStep {
            action: "enrich_metadata".into(),
            // Artists left for later are not a failure: the next sync goes on with them.
            status: JobStatus::Completed,
            detail: Some(format!(
                "{} tracks cataloged, {} artists looked up, {} left for the next sync",
                report.tracks_cataloged, report.artists_enriched, report.artists_pending
            )),
            items: (report.tracks_cataloged + report.artists_enriched) as i64,
            error: report.enrichment_stopped.clone(),
        });
    })
    .await;
    Ok(())
}

/// Syncs every user connected to Spotify every `every` while the returned guard lives
/// (the first round after one interval: sign-in starts its own sync).
pub fn spawn_sync_scheduler(state: Arc<AppState>, every: Duration) -> BackgroundTask {
    BackgroundTask(tokio::spawn(async move {
        let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let users = match state.store.users().await {
                Ok(u) => u,
                Err(e) => {
                    tracing::error!(error = %e, "sync round: cannot list the users");
                    continue;
                }
            };
            for user in users {
                match state.store.tokens(&user.id).await {
                    Ok(Some(_)) => {}
                    Ok(None) => continue,
                    Err(e) => {
                        tracing::error!(user = %user.id, error = %e, "sync round: cannot read the tokens");
                        continue;
                    }
                }
                if let Err(e) = start_sync(&state, &user.id, JobType::Periodic).await {
                    tracing::error!(user = %user.id, error = %e, "sync round: cannot start the sync");
                }
            }
        }
    }))
}

/// The body of a `rollup_build` job: rebuilds the user's daily rollups from the history.
pub async fn rollup_build(state: Arc<AppState>, job: JobRecorder) -> Result<(), String> {
    job.running().await;
    let started = std::time::Instant::now();
    let rebuilt = state.store.rebuild_rollups(job.user_id(), &state.config.rules).await;
    state.reads.invalidate_user(job.user_id());
    rebuilt.map_err(|e| e.to_string())?;
    let days = state.store.rollup_status(job.user_id()).await.map_err(|e| e.to_string())?.total_days as i64;
    job.update(|j| {
        j.items_processed = days;
        j.items_total = days;
        j.steps.push(JobStep {
            action: "rebuild_rollups".into(),
            status: JobStatus::Completed,
            detail: Some(format!("Rebuilt the rollups of {days} days in {:.1} s", started.elapsed().as_secs_f64())),
            items: days,
            error: None,
        });
    })
    .await;
    Ok(())
}

/// The body of an `import` job: imports the uploaded export with the core importer, one
/// step per file. Fails when any file failed (the others are still stored: each file is
/// atomic). The upload is deleted when this ends.
pub async fn import_upload(state: Arc<AppState>, job: JobRecorder, upload: SavedUpload) -> Result<(), String> {
    job.running().await;
    // Messages name the file as uploaded, not its temporary path.
    let prefix = format!("{}{}", upload.dir().display(), std::path::MAIN_SEPARATOR);
    let shown = move |s: &str| s.replace(&prefix, "");
    let opts = ImportOptions { rules: state.config.rules.clone(), ..ImportOptions::default() };
    let (progress_tx, mut progress_rx) = tokio::sync::watch::channel(None::<ImportSummary>);
    // The progress is written by a task of its own. On SQLite the import's open
    // transaction holds the database's write lock: a progress write awaited beside the
    // import (in a select! over both) kept the import from reaching its commit, and
    // waited out the 30 s busy timeout each time (5.5 minutes for a 128k-entry upload).
    let recorder = {
        let (state, job, shown) = (state.clone(), job.clone(), shown.clone());
        tokio::spawn(async move {
            let mut every = tokio::time::interval(PROGRESS_EVERY);
            while progress_rx.changed().await.is_ok() {
                let running = progress_rx.borrow_and_update().clone();
                if let Some(s) = running {
                    // Plays were added: cached overviews go (they count once committed,
                    // which the import does at least every ingest::COMMIT_EVERY).
                    state.reads.invalidate_user(job.user_id());
                    job.update(|j| {
                        j.items_processed = s.entries() as i64;
                        j.steps = s.files.iter().map(|f| file_step(f, &shown)).collect();
                    })
                    .await;
                }
                every.tick().await;
            }
        })
    };
    let progress = move |s: &ImportSummary, _file: &str| {
        progress_tx.send_replace(Some(s.clone()));
    };
    let paths = [upload.path().to_path_buf()];
    let result = ingest::import_paths(&*state.store, job.user_id(), &paths, &opts, Some(&progress)).await;
    // The sender goes with the callback: the recorder writes what it has and ends.
    drop(progress);
    if let Err(e) = recorder.await {
        tracing::error!(job_id = %job.id, "the import's progress recorder crashed: {e}");
    }
    state.reads.invalidate_user(job.user_id());
    let summary = result.map_err(|e| shown(&e.to_string()))?;
    let read: u64 = summary.files.iter().map(|f| f.entries).sum();
    job.update(|j| {
        j.items_processed = summary.entries() as i64;
        j.items_total = read as i64;
        j.steps = summary.files.iter().map(|f| file_step(f, &shown)).collect();
    })
    .await;
    let failed: Vec<String> = summary
        .failed()
        .filter_map(|f| match &f.status {
            FileStatus::Failed { error } => Some(shown(error)),
            _ => None,
        })
        .collect();
    match failed.len() {
        0 => Ok(()),
        n => Err(format!(
            "{n} of {} files failed (nothing of a failed file was stored): {}",
            summary.files.len(),
            failed.join("; ")
        )),
    }
}

/// One step per file: what was added, what was a duplicate, what was rejected and why.
fn file_step(f: &FileReport, shown: &impl Fn(&str) -> String) -> JobStep {
    let file = shown(&f.file);
    match &f.status {
        FileStatus::Imported => {
            let format = f.format.map(|x| format!(" ({x})")).unwrap_or_default();
            let mut detail = format!(
                "{file}{format}: {} entries, {} plays added, {} enriched, {} duplicates, {} rejected",
                f.entries, f.outcome.added, f.outcome.replaced, f.outcome.duplicates, f.rejected_count
            );
            if !f.rejected.is_empty() {
                let mut reasons: Vec<(String, Vec<u64>)> = Vec::new();
                for r in &f.rejected {
                    match reasons.iter_mut().find(|(reason, _)| *reason == r.reason) {
                        Some((_, entries)) => entries.push(r.entry),
                        None => reasons.push((r.reason.clone(), vec![r.entry])),
                    }
                }
                let more = if f.rejected_count > f.rejected.len() as u64 { ", …" } else { "" };
                let listed: Vec<String> = reasons
                    .iter()
                    .map(|(reason, entries)| {
                        let entries: Vec<String> = entries.iter().map(u64::to_string).collect();
                        format!("{reason}: entries {}{more}", entries.join(", "))
                    })
                    .collect();
                detail.push_str(&format!(" ({})", listed.join("; ")));
            }
            JobStep {
                action: "import_file".into(),
                status: JobStatus::Completed,
                detail: Some(detail),
                items: f.entries as i64,
                error: None,
            }
        }
        FileStatus::Skipped { reason } => JobStep {
            action: "import_file".into(),
            status: JobStatus::Completed,
            detail: Some(format!("{file}: skipped, {reason}")),
            items: 0,
            error: None,
        },
        FileStatus::Failed { error } => JobStep {
            action: "import_file".into(),
            status: JobStatus::Failed,
            detail: Some(format!("{file}: nothing of this file was stored")),
            items: f.entries as i64,
            error: Some(shown(error)),
        },
    }
}
