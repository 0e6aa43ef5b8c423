//! A cache of what servers read many times: computed overviews, and the totals of history
//! listings (a `COUNT` over up to millions of entries, while the page itself is a few
//! rows).
//!
//! Both only change when the user's plays change, and an overview also when its window
//! moves, which it does in quarter-hour steps ([`super::Period::window`]). So an overview
//! is keyed by the request and the quarter hour it was computed in, a total by the
//! listing's filters, and both belong to a *generation* of the user's data:
//! [`ReadCache::invalidate_user`], called after every write this process makes (imports,
//! syncs, rollup rebuilds), starts a new one. Writes by another process (the command line
//! on the same database) are seen once entries expire, after `max_age`.

use super::{overview, quarter_ceil, Overview, OverviewRequest, Period};
use crate::store::{HistoryPage, HistoryQuery, Store};
use crate::{Error, Result};
use moka::future::Cache;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Key {
    user_id: String,
    generation: u64,
    period: Period,
    tz: chrono_tz::Tz,
    top_limit: usize,
    /// End of the quarter hour of "now" (epoch seconds).
    slot: i64,
}

/// A history listing's filters (page and limit are not part of it).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct TotalKey {
    user_id: String,
    generation: u64,
    filters: HistoryQuery,
}

/// Overviews and history totals, shared by all requests of a process.
pub struct ReadCache {
    entries: Cache<Key, Arc<Overview>>,
    totals: Cache<TotalKey, u64>,
    generations: Mutex<HashMap<String, u64>>,
}

fn bounded<K, V>(capacity: u64, max_age: Duration) -> Cache<K, V>
where
    K: std::hash::Hash + Eq + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    let capacity = if max_age.is_zero() { 0 } else { capacity };
    Cache::builder().max_capacity(capacity).time_to_live(max_age.max(Duration::from_millis(1))).build()
}

impl ReadCache {
    /// At most `capacity` overviews and as many totals, each kept at most `max_age`
    /// (zero: nothing is kept).
    pub fn new(capacity: u64, max_age: Duration) -> Self {
        ReadCache {
            entries: bounded(capacity, max_age),
            totals: bounded(capacity, max_age),
            generations: Mutex::new(HashMap::new()),
        }
    }

    fn generation(&self, user_id: &str) -> u64 {
        let generations = self.generations.lock().unwrap_or_else(|p| p.into_inner());
        generations.get(user_id).copied().unwrap_or(0)
    }

    /// The overview of `req`, computed at most once per key: concurrent requests for an
    /// entry that is missing wait for one computation.
    pub async fn overview(&self, store: &dyn Store, user_id: &str, req: &OverviewRequest) -> Result<Arc<Overview>> {
        let now = req.now();
        let key = Key {
            user_id: user_id.to_string(),
            generation: self.generation(user_id),
            period: req.period,
            tz: req.tz,
            top_limit: req.top_limit,
            slot: quarter_ceil(now).timestamp(),
        };
        let pinned = OverviewRequest { now: Some(now), ..req.clone() };
        self.entries
            .try_get_with(key, async move { overview(store, user_id, &pinned).await.map(Arc::new) })
            .await
            .map_err(Error::from_shared)
    }

    /// A page of the user's history. The entries are read every time; the count of all
    /// matching entries once per filter set and generation, concurrent requests sharing one
    /// count.
    pub async fn history(&self, store: &dyn Store, user_id: &str, query: &HistoryQuery) -> Result<HistoryPage> {
        query.validate()?;
        let key = TotalKey {
            user_id: user_id.to_string(),
            generation: self.generation(user_id),
            filters: HistoryQuery { page: 1, limit: 1, ..query.clone() },
        };
        let (items, total) = tokio::join!(
            store.history_items(user_id, query),
            self.totals.try_get_with(key, store.history_count(user_id, query))
        );
        Ok(HistoryPage { items: items?, total: total.map_err(Error::from_shared)? })
    }

    /// Forgets everything cached of `user_id` (call after writing their data).
    pub fn invalidate_user(&self, user_id: &str) {
        let mut generations = self.generations.lock().unwrap_or_else(|p| p.into_inner());
        *generations.entry(user_id.to_string()).or_default() += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{PlayKind, PlayOrigin, PlayRecord};
    use crate::rules::PlayRules;
    use crate::store::MemoryStore;
    use chrono::{TimeZone, Utc};

    async fn add_play(store: &MemoryStore, at: chrono::DateTime<Utc>) {
        let mut r = PlayRecord::new(at, 200_000, PlayKind::Track, PlayOrigin::ExtendedHistory);
        r.uri = Some(format!("spotify:track:{}", at.timestamp()));
        r.track_name = Some("t".into());
        r.artist_name = Some("a".into());
        let mut batch = crate::store::HistoryStore::begin_batch(store, "u", &PlayRules::default()).await.unwrap();
        batch.insert(vec![r]).await.unwrap();
        batch.commit().await.unwrap();
    }

    #[tokio::test]
    async fn cached_until_invalidated_or_the_window_moves() {
        let store = MemoryStore::new();
        let now = Utc.with_ymd_and_hms(2026, 11, 1, 12, 1, 0).unwrap();
        add_play(&store, now - chrono::Duration::hours(1)).await;
        let cache = ReadCache::new(100, Duration::from_secs(3600));
        let req = OverviewRequest { now: Some(now), ..OverviewRequest::new(Period::Week) };
        assert_eq!(cache.overview(&store, "u", &req).await.unwrap().total_tracks_played, 1);

        add_play(&store, now - chrono::Duration::hours(2)).await;
        assert_eq!(cache.overview(&store, "u", &req).await.unwrap().total_tracks_played, 1, "cached");
        // Later in the same quarter hour: the same window, still cached.
        let later = OverviewRequest { now: Some(now + chrono::Duration::minutes(10)), ..req.clone() };
        assert_eq!(cache.overview(&store, "u", &later).await.unwrap().total_tracks_played, 1);
        // The next quarter hour is another window.
        let next = OverviewRequest { now: Some(now + chrono::Duration::minutes(15)), ..req.clone() };
        assert_eq!(cache.overview(&store, "u", &next).await.unwrap().total_tracks_played, 2);
        cache.invalidate_user("u");
        assert_eq!(cache.overview(&store, "u", &req).await.unwrap().total_tracks_played, 2, "invalidated");
        // Errors are not cached and keep their kind.
        let other = cache.overview(&store, "nobody", &req).await.unwrap();
        assert_eq!(other.total_tracks_played, 0);
    }

    #[tokio::test]
    async fn history_totals_are_counted_once_per_generation_and_filters() {
        let store = MemoryStore::new();
        let now = Utc.with_ymd_and_hms(2026, 11, 1, 12, 0, 0).unwrap();
        for h in 1..=3 {
            add_play(&store, now - chrono::Duration::hours(h)).await;
        }
        let cache = ReadCache::new(100, Duration::from_secs(3600));
        let first = HistoryQuery { limit: 2, ..HistoryQuery::default() };
        let page = cache.history(&store, "u", &first).await.unwrap();
        assert_eq!((page.items.len(), page.total), (2, 3));

        add_play(&store, now - chrono::Duration::hours(4)).await;
        // The entries are fresh; the total is the cached one until invalidated.
        let second = HistoryQuery { page: 2, ..first.clone() };
        let page = cache.history(&store, "u", &second).await.unwrap();
        assert_eq!((page.items.len(), page.total), (2, 3));
        // Other filters are another count.
        let since = HistoryQuery { start: Some(now - chrono::Duration::minutes(150)), ..first.clone() };
        assert_eq!(cache.history(&store, "u", &since).await.unwrap().total, 2);
        cache.invalidate_user("u");
        assert_eq!(cache.history(&store, "u", &second).await.unwrap().total, 4);
        // Bad pages are refused before anything is read.
        let bad = HistoryQuery { limit: 0, ..first };
        assert!(matches!(cache.history(&store, "u", &bad).await, Err(Error::InvalidInput { .. })));
    }
}
