//! The in-memory reference store. It computes every aggregate naively from raw plays,
//! which makes it the yardstick the conformance suite holds other stores to. Also handy
//! for tests and for notebooks that never persist anything.

use super::*;
use crate::ingest::{plan_insert, RollupDelta};
use crate::model::{
    ApiCallLog, Artist, AudioFeatures, EncryptedTokens, HistoryEntry, JobStatus, PlayAnchor, PlayKind, PlayRecord,
    SyncJob, Track, User,
};
use crate::rules::{normalize_name, PlayRules};
use crate::{Error, Result};
use chrono::Duration;
use std::collections::HashMap;
use std::sync::Arc;
use tokio::sync::{Mutex, OwnedMutexGuard};

#[derive(Default)]
struct UserData {
    plays: Vec<HistoryEntry>,
    rules: PlayRules,
    /// The widest duplicate window the plays were stored under (`None`: no batch yet).
    widest_window: Option<Duration>,
}

#[derive(Default)]
struct Inner {
    users: HashMap<String, User>,
    tokens: HashMap<String, EncryptedTokens>,
    /// Jobs with whether they were created exclusive.
    jobs: Vec<(SyncJob, bool)>,
    api_logs: Vec<ApiCallLog>,
    data: HashMap<String, UserData>,
    tracks: HashMap<String, Track>,
    artists: HashMap<String, Artist>,
    next_id: u64,
}

/// A store in process memory. Cloning shares the data.
#[derive(Clone, Default)]
pub struct MemoryStore {
    inner: Arc<Mutex<Inner>>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }
}

struct MemoryBatch {
    guard: OwnedMutexGuard<Inner>,
    user_id: String,
    rules: PlayRules,
    /// The widest duplicate window the user's plays were stored under, these rules' own
    /// included: what the candidate read reaches by.
    widest_window: Duration,
    staged: Vec<HistoryEntry>,
    next_id: u64,
    /// The open savepoint: the staged plays and next id as they were.
    savepoint: Option<(Vec<HistoryEntry>, u64)>,
}

#[async_trait]
impl PlayBatch for MemoryBatch {
    async fn insert_anchored(
        &mut self,
        plays: Vec<PlayRecord>,
        anchored: Vec<(usize, PlayAnchor)>,
    ) -> Result<InsertOutcome> {
        let (Some(min), Some(max)) = (plays.iter().map(|p| p.played_at).min(), plays.iter().map(|p| p.played_at).max())
        else {
            return Ok(InsertOutcome::default());
        };
        let (lo, hi) = self.rules.candidate_window(self.widest_window, min, max);
        let existing: Vec<HistoryEntry> =
            self.staged.iter().filter(|e| e.record.played_at >= lo && e.record.played_at <= hi).cloned().collect();
        let plan = plan_insert(existing, plays, &anchored, &self.rules);
        for replacement in plan.replacements {
            if let Some(e) = self.staged.iter_mut().find(|e| e.id == replacement.id) {
                e.record = replacement.record;
                e.anchor = replacement.anchor;
            }
        }
        for (record, anchor) in plan.inserts.into_iter().zip(plan.insert_anchors) {
            self.next_id += 1;
            let id = self.next_id.to_string();
            self.staged.push(HistoryEntry { id, user_id: self.user_id.clone(), record, anchor });
        }
        Ok(plan.outcome)
    }

    async fn commit(self: Box<Self>) -> Result<()> {
        let MemoryBatch { mut guard, user_id, rules, widest_window, staged, next_id, .. } = *self;
        guard.next_id = next_id;
        let data = guard.data.entry(user_id).or_default();
        data.plays = staged;
        data.rules = rules;
        data.widest_window = Some(widest_window);
        Ok(())
    }

    async fn rollback(self: Box<Self>) -> Result<()> {
        Ok(())
    }

    async fn savepoint(&mut self) -> Result<bool> {
        self.savepoint = Some((self.staged.clone(), self.next_id));
        Ok(true)
    }

    async fn release_savepoint(&mut self) -> Result<()> {
        self.savepoint = None;
        Ok(())
    }

    async fn rollback_to_savepoint(&mut self) -> Result<()> {
        let (staged, next_id) = self.savepoint.take().ok_or_else(|| Error::invalid("no savepoint to roll back to"))?;
        (self.staged, self.next_id) = (staged, next_id);
        Ok(())
    }
}

fn counted<'a>(data: &'a UserData, window: Option<TimeWindow>) -> impl Iterator<Item = &'a PlayRecord> + 'a {
    data.plays
        .iter()
        .map(|e| &e.record)
        .filter(move |r| window.is_none_or(|w| w.contains(r.played_at)) && r.keys(&data.rules).counted)
}

/// The user's entries that pass the query's filters, unordered.
fn matching_history<'a>(inner: &'a Inner, user_id: &str, q: &HistoryQuery) -> Vec<&'a HistoryEntry> {
    let Some(data) = inner.data.get(user_id) else { return Vec::new() };
    let (artist, track) = (q.artist_key(), q.track_key());
    data.plays
        .iter()
        .filter(|e| {
            let r = &e.record;
            q.start.is_none_or(|s| r.played_at >= s)
                && q.end.is_none_or(|s| r.played_at < s)
                && q.kind.is_none_or(|k| r.kind == k)
                && artist.as_ref().is_none_or(|a| r.artist_name.as_deref().map(normalize_name).as_ref() == Some(a))
                && track.as_ref().is_none_or(|t| r.track_name.as_deref().map(normalize_name).as_ref() == Some(t))
        })
        .collect()
}

#[async_trait]
impl HistoryStore for MemoryStore {
    async fn begin_batch(&self, user_id: &str, rules: &PlayRules) -> Result<Box<dyn PlayBatch>> {
        let guard = self.inner.clone().lock_owned().await;
        let staged = guard.data.get(user_id).map(|d| d.plays.clone()).unwrap_or_default();
        let widest_window = rules.widest_window(guard.data.get(user_id).and_then(|d| d.widest_window));
        let next_id = guard.next_id;
        Ok(Box::new(MemoryBatch {
            guard,
            user_id: user_id.to_string(),
            rules: rules.clone(),
            widest_window,
            staged,
            next_id,
            savepoint: None,
        }))
    }

    async fn history_items(&self, user_id: &str, q: &HistoryQuery) -> Result<Vec<HistoryEntry>> {
        q.validate()?;
        let inner = self.inner.lock().await;
        let mut matching = matching_history(&inner, user_id, q);
        matching.sort_by(|a, b| {
            b.record
                .played_at
                .cmp(&a.record.played_at)
                .then_with(|| b.id.parse::<u64>().unwrap_or(0).cmp(&a.id.parse::<u64>().unwrap_or(0)))
        });
        Ok(matching.into_iter().skip(q.offset() as usize).take(q.limit as usize).cloned().collect())
    }

    async fn history_count(&self, user_id: &str, q: &HistoryQuery) -> Result<u64> {
        let inner = self.inner.lock().await;
        Ok(matching_history(&inner, user_id, q).len() as u64)
    }

    async fn plays_chunked(
        &self,
        user_id: &str,
        window: Option<TimeWindow>,
        chunk_size: usize,
        sink: PlaySink<'_>,
    ) -> Result<()> {
        let inner = self.inner.lock().await;
        let Some(data) = inner.data.get(user_id) else { return Ok(()) };
        // Stored in id order: a stable sort by time leaves ties by id.
        let mut found: Vec<&HistoryEntry> =
            data.plays.iter().filter(|e| window.is_none_or(|w| w.contains(e.record.played_at))).collect();
        found.sort_by_key(|e| e.record.played_at);
        let mut chunker = PlayChunker::new(sink, chunk_size);
        for entry in found {
            chunker.push(entry.clone())?;
        }
        chunker.finish()
    }
}

#[async_trait]
impl AnalyticsStore for MemoryStore {
    async fn rollup_days(&self, user_id: &str, from: NaiveDate, to: NaiveDate) -> Result<Vec<RollupDay>> {
        let inner = self.inner.lock().await;
        let Some(data) = inner.data.get(user_id) else { return Ok(vec![]) };
        let delta = RollupDelta::from_records(counted(data, None), &data.rules);
        Ok(delta.days.into_values().filter(|d| d.day >= from && d.day <= to).collect())
    }

    async fn item_ranking(
        &self,
        user_id: &str,
        kind: ItemKind,
        window: Option<TimeWindow>,
        limit: Option<usize>,
    ) -> Result<ItemRanking> {
        let inner = self.inner.lock().await;
        let Some(data) = inner.data.get(user_id) else { return Ok(ItemRanking::default()) };
        let delta = RollupDelta::from_records(counted(data, window), &data.rules);
        let items: Vec<RankedItem> = delta
            .items
            .into_iter()
            .filter(|((k, _), d)| *k == kind && d.plays > 0)
            .map(|((_, key), d)| RankedItem {
                key,
                name: d.name,
                artist_name: d.artist_name,
                spotify_id: d.spotify_id,
                play_count: d.plays,
                total_ms: d.ms,
            })
            .collect();
        Ok(ItemRanking::from_unsorted(items, limit))
    }

    async fn show_ranking(&self, user_id: &str, window: Option<TimeWindow>, limit: usize) -> Result<Vec<RankedItem>> {
        let inner = self.inner.lock().await;
        let Some(data) = inner.data.get(user_id) else { return Ok(vec![]) };
        let mut shows: HashMap<String, RankedItem> = HashMap::new();
        for r in data.plays.iter().map(|e| &e.record) {
            let Some(show) = r.show_name.as_ref().filter(|_| r.kind == PlayKind::Episode) else { continue };
            if window.is_some_and(|w| !w.contains(r.played_at)) {
                continue;
            }
            let key = normalize_name(show);
            let e = shows.entry(key.clone()).or_insert_with(|| RankedItem {
                key,
                name: show.clone(),
                artist_name: None,
                spotify_id: None,
                play_count: 0,
                total_ms: 0,
            });
            e.play_count += 1;
            e.total_ms += r.ms_played;
        }
        let mut items: Vec<RankedItem> = shows.into_values().collect();
        sort_shows(&mut items);
        items.truncate(limit);
        Ok(items)
    }

    async fn rollup_status(&self, user_id: &str) -> Result<RollupStatus> {
        let days = self.rollup_days(user_id, NaiveDate::MIN, NaiveDate::MAX).await?;
        Ok(RollupStatus {
            last_date: days.last().map(|d| d.day),
            total_days: days.len() as u64,
            complete: true,
            coverage: 100.0,
        })
    }

    async fn rebuild_rollups(&self, user_id: &str, rules: &PlayRules) -> Result<()> {
        if let Some(d) = self.inner.lock().await.data.get_mut(user_id) {
            d.rules = rules.clone();
        }
        Ok(())
    }
}

/// Shows rank by listening time first, then episode count, then name.
pub fn sort_shows(items: &mut [RankedItem]) {
    items.sort_by(|a, b| {
        b.total_ms.cmp(&a.total_ms).then(b.play_count.cmp(&a.play_count)).then_with(|| a.name.cmp(&b.name))
    });
}

#[async_trait]
impl CatalogStore for MemoryStore {
    async fn upsert_tracks(&self, tracks: &[Track]) -> Result<()> {
        let mut inner = self.inner.lock().await;
        for t in tracks {
            inner.tracks.insert(t.spotify_id.clone(), t.clone());
        }
        Ok(())
    }
    async fn track(&self, spotify_id: &str) -> Result<Track> {
        self.inner
            .lock()
            .await
            .tracks
            .get(spotify_id)
            .cloned()
            .ok_or_else(|| Error::not_found(format!("track {spotify_id:?}")))
    }
    async fn upsert_artists(&self, artists: &[Artist]) -> Result<()> {
        let mut inner = self.inner.lock().await;
        for a in artists {
            inner.artists.insert(normalize_name(&a.name), a.clone());
        }
        Ok(())
    }
    async fn artist(&self, spotify_id: &str) -> Result<Artist> {
        let inner = self.inner.lock().await;
        inner
            .artists
            .values()
            .find(|a| a.spotify_id.as_deref() == Some(spotify_id))
            .cloned()
            .ok_or_else(|| Error::not_found(format!("artist {spotify_id:?}")))
    }
    async fn artist_genres(&self, artist_keys: &[String]) -> Result<HashMap<String, Vec<String>>> {
        let inner = self.inner.lock().await;
        Ok(artist_keys
            .iter()
            .filter_map(|k| {
                inner.artists.get(k).filter(|a| !a.genres.is_empty()).map(|a| (k.clone(), a.genres.clone()))
            })
            .collect())
    }
    async fn audio_features(&self, track_uris: &[String]) -> Result<HashMap<String, AudioFeatures>> {
        let inner = self.inner.lock().await;
        Ok(track_uris
            .iter()
            .filter_map(|u| {
                let id = u.strip_prefix("spotify:track:").unwrap_or(u);
                inner.tracks.get(id).and_then(|t| t.audio_features.clone()).map(|f| (u.clone(), f))
            })
            .collect())
    }
}

#[async_trait]
impl UserStore for MemoryStore {
    async fn upsert_user(&self, user: &User) -> Result<()> {
        self.inner.lock().await.users.insert(user.id.clone(), user.clone());
        Ok(())
    }
    async fn user(&self, id: &str) -> Result<User> {
        self.inner.lock().await.users.get(id).cloned().ok_or_else(|| Error::not_found(format!("user {id:?}")))
    }
    async fn users(&self) -> Result<Vec<User>> {
        let mut users: Vec<User> = self.inner.lock().await.users.values().cloned().collect();
        users.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(users)
    }
    async fn set_tokens(&self, user_id: &str, tokens: Option<&EncryptedTokens>) -> Result<()> {
        let mut inner = self.inner.lock().await;
        if !inner.users.contains_key(user_id) {
            return Err(Error::not_found(format!("user {user_id:?}")));
        }
        match tokens {
            Some(t) => inner.tokens.insert(user_id.to_string(), t.clone()),
            None => inner.tokens.remove(user_id),
        };
        Ok(())
    }
    async fn tokens(&self, user_id: &str) -> Result<Option<EncryptedTokens>> {
        let inner = self.inner.lock().await;
        if !inner.users.contains_key(user_id) {
            return Err(Error::not_found(format!("user {user_id:?}")));
        }
        Ok(inner.tokens.get(user_id).cloned())
    }
}

/// Newest first, ties by id descending.
fn page_of<T: Clone>(
    mut items: Vec<&T>,
    key: impl Fn(&T) -> (DateTime<Utc>, &str),
    offset: u64,
    limit: u32,
) -> Page<T> {
    items.sort_by(|a, b| key(b).cmp(&key(a)));
    let total = items.len() as u64;
    let items = items.into_iter().skip(offset as usize).take(limit as usize).cloned().collect();
    Page { items, total }
}

#[async_trait]
impl JobStore for MemoryStore {
    async fn create_job(&self, job: &SyncJob, exclusive: bool) -> Result<()> {
        let mut inner = self.inner.lock().await;
        if inner.jobs.iter().any(|(j, _)| j.id == job.id) {
            return Err(Error::AlreadyExists { what: format!("job {:?}", job.id) });
        }
        let conflict = |(j, excl): &(SyncJob, bool)| {
            *excl && j.user_id == job.user_id && j.job_type == job.job_type && j.status.is_active()
        };
        if exclusive && job.status.is_active() && inner.jobs.iter().any(conflict) {
            return Err(Error::AlreadyExists {
                what: format!("an active {} job of user {:?}", job.job_type, job.user_id),
            });
        }
        inner.jobs.push((job.clone(), exclusive));
        Ok(())
    }
    async fn update_job(&self, job: &SyncJob) -> Result<()> {
        let mut inner = self.inner.lock().await;
        let stored = inner.jobs.iter_mut().find(|(j, _)| j.id == job.id && j.user_id == job.user_id);
        let (stored, _) = stored.ok_or_else(|| Error::not_found(format!("job {:?}", job.id)))?;
        *stored = job.clone();
        Ok(())
    }
    async fn job(&self, user_id: &str, id: &str) -> Result<SyncJob> {
        let inner = self.inner.lock().await;
        let found = inner.jobs.iter().find(|(j, _)| j.id == id && j.user_id == user_id);
        found.map(|(j, _)| j.clone()).ok_or_else(|| Error::not_found(format!("job {id:?}")))
    }
    async fn jobs(&self, user_id: &str, query: &JobQuery) -> Result<Page<SyncJob>> {
        query.validate()?;
        let inner = self.inner.lock().await;
        let matching = inner
            .jobs
            .iter()
            .map(|(j, _)| j)
            .filter(|j| j.user_id == user_id)
            .filter(|j| query.status.is_none_or(|s| j.status == s))
            .filter(|j| query.job_type.is_none_or(|t| j.job_type == t))
            .collect();
        Ok(page_of(matching, |j| (j.created_at, j.id.as_str()), query.offset(), query.limit))
    }
    async fn job_stats(&self, user_id: &str) -> Result<JobStats> {
        let inner = self.inner.lock().await;
        let mut stats = JobStats::default();
        for (j, _) in inner.jobs.iter().filter(|(j, _)| j.user_id == user_id) {
            stats.add(j.status, 1, j.items_processed, j.completed_at);
        }
        Ok(stats)
    }
    async fn fail_unfinished_jobs(&self, reason: &str) -> Result<u64> {
        let mut inner = self.inner.lock().await;
        let mut failed = 0;
        for (j, _) in inner.jobs.iter_mut().filter(|(j, _)| j.status.is_active()) {
            j.status = JobStatus::Failed;
            j.error_message = Some(reason.to_string());
            failed += 1;
        }
        Ok(failed)
    }
    async fn delete_jobs_before(&self, before: DateTime<Utc>) -> Result<u64> {
        let mut inner = self.inner.lock().await;
        let n = inner.jobs.len();
        inner.jobs.retain(|(j, _)| j.status.is_active() || j.created_at >= before);
        Ok((n - inner.jobs.len()) as u64)
    }
}

#[async_trait]
impl ApiLogStore for MemoryStore {
    async fn log_api_calls(&self, calls: &[ApiCallLog]) -> Result<()> {
        let mut inner = self.inner.lock().await;
        let mut ids: std::collections::HashSet<&str> = inner.api_logs.iter().map(|l| l.id.as_str()).collect();
        if let Some(taken) = calls.iter().find(|c| !ids.insert(c.id.as_str())) {
            return Err(Error::AlreadyExists { what: format!("API log {:?}", taken.id) });
        }
        inner.api_logs.extend_from_slice(calls);
        Ok(())
    }
    async fn api_logs(&self, user_id: &str, query: &ApiLogQuery) -> Result<Page<ApiCallLog>> {
        query.validate()?;
        let inner = self.inner.lock().await;
        let matching =
            inner.api_logs.iter().filter(|l| l.user_id.as_deref() == Some(user_id) && query.matches(l)).collect();
        Ok(page_of(matching, |l| (l.timestamp, l.id.as_str()), query.offset(), query.limit))
    }
    async fn api_log_stats(&self, user_id: &str) -> Result<ApiLogStats> {
        let inner = self.inner.lock().await;
        let mut by_status: HashMap<i32, u64> = HashMap::new();
        let mut by_endpoint: HashMap<String, u64> = HashMap::new();
        let mut latency = 0.0;
        for l in inner.api_logs.iter().filter(|l| l.user_id.as_deref() == Some(user_id)) {
            *by_status.entry(l.status_code).or_default() += 1;
            *by_endpoint.entry(format!("{} {}", l.method, l.endpoint)).or_default() += 1;
            latency += l.latency_ms;
        }
        let by_status: Vec<(i32, u64)> = by_status.into_iter().collect();
        Ok(ApiLogStats::from_groups(&by_status, latency, by_endpoint.into_iter().collect()))
    }
    async fn delete_api_logs_before(&self, before: DateTime<Utc>) -> Result<u64> {
        let mut inner = self.inner.lock().await;
        let n = inner.api_logs.len();
        inner.api_logs.retain(|l| l.timestamp >= before);
        Ok((n - inner.api_logs.len()) as u64)
    }
}

#[async_trait]
impl StoreHealth for MemoryStore {
    fn backend(&self) -> &'static str {
        "memory"
    }
    async fn ping(&self) -> Result<()> {
        Ok(())
    }
}
