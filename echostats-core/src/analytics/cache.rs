//! A cache of computed overviews, for servers that answer the same overview many times.
//!
//! An overview only changes when the user's plays change or when its window moves, and
//! windows move in quarter-hour steps ([`super::Period::window`]). So an entry is keyed by
//! the request and the quarter hour it was computed in, and belongs to a *generation* of
//! the user's data: [`OverviewCache::invalidate_user`], called after every write this
//! process makes (imports, syncs, rollup rebuilds), starts a new one. Writes by another
//! process (the command line on the same database) are seen once entries expire, after
//! `max_age`.

use super::{overview, quarter_ceil, Overview, OverviewRequest, Period};
use crate::store::Store;
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

/// Computed overviews, shared by all requests of a process.
pub struct OverviewCache {
    entries: Cache<Key, Arc<Overview>>,
    generations: Mutex<HashMap<String, u64>>,
}

impl OverviewCache {
    /// At most `capacity` overviews, each kept at most `max_age` (zero: none is kept).
    pub fn new(capacity: u64, max_age: Duration) -> Self {
        let capacity = if max_age.is_zero() { 0 } else { capacity };
        OverviewCache {
            entries: Cache::builder()
                .max_capacity(capacity)
                .time_to_live(max_age.max(Duration::from_millis(1)))
                .build(),
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

    /// Forgets every cached overview of `user_id` (call after writing their data).
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
        let cache = OverviewCache::new(100, Duration::from_secs(3600));
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
}
