//! Storage traits. Every backend implements all of them; callers hold an
//! `Arc<dyn Store>` picked at run time from a URL (see the `echostats` crate's
//! `open_store`). The guarantees written on each method hold for every backend: the
//! conformance suite (feature `conformance`) checks them against each store.

mod memory;
mod ops;

pub use memory::MemoryStore;
pub use ops::*;

use crate::model::*;
use crate::rules::PlayRules;
use crate::Result;
use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};
use std::collections::HashMap;

/// A half-open time range `[start, end)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeWindow {
    /// Inclusive start.
    pub start: DateTime<Utc>,
    /// Exclusive end.
    pub end: DateTime<Utc>,
}

impl TimeWindow {
    /// The window from `start` to `end` where a missing side reaches as far as a timestamp
    /// can; `None` (everything) when both are missing. Stores filter by it, so a window
    /// open on one side still reads only the plays inside it.
    ///
    /// Fails when both sides are given and `start` is not before `end`: such a window
    /// holds nothing, which is never what the person asking meant (each front end says
    /// so in the names of its own parameters).
    pub fn open_ended(
        start: Option<DateTime<Utc>>,
        end: Option<DateTime<Utc>>,
    ) -> std::result::Result<Option<Self>, EmptyWindow> {
        if let (Some(start), Some(end)) = (start, end) {
            if start >= end {
                return Err(EmptyWindow { start, end });
            }
        }
        Ok((start.is_some() || end.is_some()).then(|| TimeWindow {
            start: start.unwrap_or(DateTime::<Utc>::MIN_UTC),
            end: end.unwrap_or(DateTime::<Utc>::MAX_UTC),
        }))
    }

    /// Whether `t` falls inside.
    pub fn contains(&self, t: DateTime<Utc>) -> bool {
        t >= self.start && t < self.end
    }
}

/// A time window asked for with its end not after its start.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the window ends ({end}) at or before its start ({start})")]
pub struct EmptyWindow {
    /// The start asked for.
    pub start: DateTime<Utc>,
    /// The end asked for, not after `start`.
    pub end: DateTime<Utc>,
}

/// What one [`PlayBatch::insert`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct InsertOutcome {
    /// Entries stored as new.
    pub added: u64,
    /// Entries that replaced a poorer record of the same play (richer record wins).
    pub replaced: u64,
    /// Entries dropped as duplicates of a stored (or earlier in-batch) record.
    pub duplicates: u64,
}

impl std::ops::AddAssign for InsertOutcome {
    fn add_assign(&mut self, o: Self) {
        self.added += o.added;
        self.replaced += o.replaced;
        self.duplicates += o.duplicates;
    }
}

/// An atomic batch of inserts for one user, e.g. the files of an import.
///
/// Guarantees: inserts are idempotent under the duplicate rule
/// ([`crate::ingest::plan_insert`]): an entry within the window of a stored play's anchor
/// ([`PlayRecord::anchor_distance_ms`]; or of one inserted earlier in the batch) is not
/// stored twice; when it is richer ([`PlayRecord::richer_than`]) than every such play it
/// replaces the nearest record in place (same id), which keeps its anchor
/// ([`HistoryEntry::anchor`], stored with the play and read back by every read of it).
/// This holds whatever windows earlier batches used: a store keeps the widest one each
/// user's plays were stored under and reads candidates by it
/// ([`PlayRules::candidate_window`]). Daily rollups and item totals are updated in the
/// same transaction. Nothing is visible to readers before [`PlayBatch::commit`];
/// dropping the batch or calling [`PlayBatch::rollback`] leaves the store as it was.
#[async_trait]
pub trait PlayBatch: Send {
    /// Adds records. May be called many times (bounded chunks of a large file).
    async fn insert(&mut self, plays: Vec<PlayRecord>) -> Result<InsertOutcome> {
        self.insert_anchored(plays, Vec::new()).await
    }

    /// [`PlayBatch::insert`], where `anchored` lists the records that stand for a stored
    /// play with its anchor (index into `plays`, ascending): plays that `echostats export`
    /// wrote, imported back. Such a record is matched from that anchor, and a play it
    /// starts keeps it, so that an export imported into an empty store gives back every
    /// play ([`crate::ingest::plan_insert`]).
    async fn insert_anchored(
        &mut self,
        plays: Vec<PlayRecord>,
        anchored: Vec<(usize, PlayAnchor)>,
    ) -> Result<InsertOutcome>;
    /// Makes everything inserted visible, atomically.
    async fn commit(self: Box<Self>) -> Result<()>;
    /// Discards everything inserted.
    async fn rollback(self: Box<Self>) -> Result<()>;

    /// Marks a point that [`PlayBatch::rollback_to_savepoint`] returns to: the start of
    /// an import file, so that one batch can hold many files and a bad one is undone
    /// alone. At most one savepoint is open at a time. Returns `false` and marks nothing
    /// where the backend's transactions have no savepoints (MongoDB): callers then use a
    /// batch per file.
    async fn savepoint(&mut self) -> Result<bool> {
        Ok(false)
    }
    /// Keeps what was inserted since the savepoint: it commits or rolls back with the
    /// batch, and the savepoint is gone.
    async fn release_savepoint(&mut self) -> Result<()> {
        Ok(())
    }
    /// Undoes every insert since the savepoint (plays, rollups, item totals), keeps what
    /// came before it, and closes the savepoint; the batch stays open.
    async fn rollback_to_savepoint(&mut self) -> Result<()> {
        Err(crate::Error::NotSupported { what: "savepoints in an insert batch".into() })
    }
}

/// Checks a 1-based page and a page size against `max_limit`.
pub(crate) fn validate_page(page: u32, limit: u32, max_limit: u32) -> Result<()> {
    if page < 1 {
        return Err(crate::Error::invalid("page must be at least 1"));
    }
    if !(1..=max_limit).contains(&limit) {
        return Err(crate::Error::invalid(format!("limit must be between 1 and {max_limit}, got {limit}")));
    }
    Ok(())
}

/// Filters and page of a history listing.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct HistoryQuery {
    /// 1-based page.
    pub page: u32,
    /// Page size, 1..=100.
    pub limit: u32,
    /// Artist name, matched case-insensitively on the whole (normalised) name.
    pub artist: Option<String>,
    /// Track name, matched case-insensitively on the whole (normalised) name.
    pub track: Option<String>,
    /// Only entries with `played_at >= start`.
    pub start: Option<DateTime<Utc>>,
    /// Only entries with `played_at < end`.
    pub end: Option<DateTime<Utc>>,
    /// Only this kind of entry.
    pub kind: Option<PlayKind>,
}

impl Default for HistoryQuery {
    fn default() -> Self {
        HistoryQuery { page: 1, limit: 50, artist: None, track: None, start: None, end: None, kind: None }
    }
}

impl HistoryQuery {
    /// Checks page and limit; stores call this first.
    pub fn validate(&self) -> Result<()> {
        validate_page(self.page, self.limit, 100)
    }
    /// Rows to skip.
    pub fn offset(&self) -> u64 {
        (self.page as u64 - 1) * self.limit as u64
    }
    /// Normalised artist filter.
    pub fn artist_key(&self) -> Option<String> {
        self.artist.as_deref().map(crate::rules::normalize_name)
    }
    /// Normalised track filter.
    pub fn track_key(&self) -> Option<String> {
        self.track.as_deref().map(crate::rules::normalize_name)
    }
}

/// One page of history.
#[derive(Debug, Clone, PartialEq)]
pub struct HistoryPage {
    /// Entries, newest first (ties by id).
    pub items: Vec<HistoryEntry>,
    /// All matching entries.
    pub total: u64,
}

/// History of plays.
#[async_trait]
pub trait HistoryStore: Send + Sync {
    /// Starts an atomic insert batch for `user_id` under `rules`.
    async fn begin_batch(&self, user_id: &str, rules: &PlayRules) -> Result<Box<dyn PlayBatch>>;
    /// The entries of one page of the user's history, newest first (ties by id), filtered.
    /// Invalid page/limit is [`crate::Error::InvalidInput`].
    async fn history_items(&self, user_id: &str, query: &HistoryQuery) -> Result<Vec<HistoryEntry>>;
    /// How many entries match the query's filters (its page and limit aside). This is the
    /// costly half of a listing on a large history: callers that page through one listing
    /// can count once (see [`crate::analytics::ReadCache::history`]).
    async fn history_count(&self, user_id: &str, query: &HistoryQuery) -> Result<u64>;
    /// A page of the user's history with the count of all matching entries.
    async fn history(&self, user_id: &str, query: &HistoryQuery) -> Result<HistoryPage> {
        query.validate()?;
        let items = self.history_items(user_id, query).await?;
        let total = self.history_count(user_id, query).await?;
        Ok(HistoryPage { items, total })
    }
    /// Every stored entry of the user in `window` (or all), oldest first (ties by id),
    /// handed to `sink` as it is read, in chunks of at most `chunk_size` entries (at
    /// least 1): memory stays bounded by a chunk, whatever the size of the history. An
    /// error of `sink` stops the reading and is returned.
    async fn plays_chunked(
        &self,
        user_id: &str,
        window: Option<TimeWindow>,
        chunk_size: usize,
        sink: PlaySink<'_>,
    ) -> Result<()>;
    /// Every stored entry of the user in `window` (or all), oldest first (ties by id).
    async fn plays_in(&self, user_id: &str, window: Option<TimeWindow>) -> Result<Vec<HistoryEntry>> {
        let mut all = Vec::new();
        self.plays_chunked(user_id, window, PLAYS_IN_CHUNK, &mut |chunk| {
            all.extend(chunk);
            Ok(())
        })
        .await?;
        Ok(all)
    }
}

/// Receives the chunks of [`HistoryStore::plays_chunked`].
pub type PlaySink<'a> = &'a mut (dyn FnMut(Vec<HistoryEntry>) -> Result<()> + Send);

/// The store's side of [`HistoryStore::plays_chunked`]: collects entries as they are
/// read and hands each full chunk to the sink.
pub struct PlayChunker<'a> {
    sink: PlaySink<'a>,
    size: usize,
    chunk: Vec<HistoryEntry>,
}

impl<'a> PlayChunker<'a> {
    /// Chunks of `size` entries (at least 1) for `sink`.
    pub fn new(sink: PlaySink<'a>, size: usize) -> Self {
        let size = size.max(1);
        PlayChunker { sink, size, chunk: Vec::with_capacity(size) }
    }
    /// Adds the next entry; hands the chunk over when it is full.
    pub fn push(&mut self, entry: HistoryEntry) -> Result<()> {
        self.chunk.push(entry);
        if self.chunk.len() < self.size {
            return Ok(());
        }
        let full = std::mem::replace(&mut self.chunk, Vec::with_capacity(self.size));
        (self.sink)(full)
    }
    /// Hands over the last, partial chunk.
    pub fn finish(self) -> Result<()> {
        if self.chunk.is_empty() {
            return Ok(());
        }
        (self.sink)(self.chunk)
    }
}

/// Chunk size of [`HistoryStore::plays_in`] (which keeps every chunk anyway).
const PLAYS_IN_CHUNK: usize = 10_000;

/// What an item ranking groups by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ItemKind {
    /// Tracks (by track key).
    Track,
    /// Artists (by album-artist name).
    Artist,
    /// Albums (by album name + album artist).
    Album,
}

impl ItemKind {
    /// Stable small integer used by stores.
    pub fn code(self) -> i32 {
        match self {
            ItemKind::Track => 0,
            ItemKind::Artist => 1,
            ItemKind::Album => 2,
        }
    }
}

/// One ranked item: counted plays and listening time in a period.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RankedItem {
    /// The grouping key (see [`crate::rules::PlayKeys`]).
    pub key: String,
    /// Display name (track, artist, album or show name).
    pub name: String,
    /// Artist of a track or album, when the item has one.
    pub artist_name: Option<String>,
    /// Spotify URI/id, when known (tracks: `spotify:track:...`).
    pub spotify_id: Option<String>,
    /// Counted plays.
    pub play_count: i64,
    /// Milliseconds of those plays.
    pub total_ms: i64,
}

/// Sorts items by the ranking order: more plays, then more ms, then name, then key.
pub fn sort_ranking(items: &mut [RankedItem]) {
    items.sort_by(|a, b| {
        b.play_count
            .cmp(&a.play_count)
            .then(b.total_ms.cmp(&a.total_ms))
            .then_with(|| a.name.cmp(&b.name))
            .then_with(|| a.key.cmp(&b.key))
    });
}

/// The top of a ranking and how many distinct items there are in all.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ItemRanking {
    /// Ranked items, best first ([`sort_ranking`] order), at most the limit asked.
    pub items: Vec<RankedItem>,
    /// Distinct items with at least one counted play.
    pub distinct: u64,
}

impl ItemRanking {
    /// The ranking of `items` in any order: items without plays dropped, the rest in
    /// [`sort_ranking`] order, cut to `limit` (`distinct` counts before the cut).
    pub fn from_unsorted(mut items: Vec<RankedItem>, limit: Option<usize>) -> ItemRanking {
        items.retain(|i| i.play_count > 0);
        sort_ranking(&mut items);
        let distinct = items.len() as u64;
        items.truncate(limit.unwrap_or(usize::MAX));
        ItemRanking { items, distinct }
    }
}

/// State of the daily rollups of a user.
#[derive(Debug, Clone, PartialEq)]
pub struct RollupStatus {
    /// Last UTC day with a rollup.
    pub last_date: Option<NaiveDate>,
    /// Days with rollups.
    pub total_days: u64,
    /// Whether the rollups account for every counted play.
    pub complete: bool,
    /// Percentage of counted plays the rollups account for.
    pub coverage: f64,
}

/// Pre-aggregated analytics. Rollups are kept up to date by every [`PlayBatch`], so
/// reading them never rescans raw history.
#[async_trait]
pub trait AnalyticsStore: Send + Sync {
    /// Rollup days of the user with `from <= day <= to` (UTC days), ascending; days
    /// without counted plays may be absent.
    async fn rollup_days(&self, user_id: &str, from: NaiveDate, to: NaiveDate) -> Result<Vec<RollupDay>>;
    /// Ranking of counted track plays in `window` (all time when `None`), at most
    /// `limit` items (all when `None`), in [`sort_ranking`] order.
    async fn item_ranking(
        &self,
        user_id: &str,
        kind: ItemKind,
        window: Option<TimeWindow>,
        limit: Option<usize>,
    ) -> Result<ItemRanking>;
    /// Podcast shows by listening time (episode entries of any length) in `window`.
    async fn show_ranking(&self, user_id: &str, window: Option<TimeWindow>, limit: usize) -> Result<Vec<RankedItem>>;
    /// Rollup status of the user.
    async fn rollup_status(&self, user_id: &str) -> Result<RollupStatus>;
    /// Rebuilds the user's rollups and item totals from raw history under `rules` (after
    /// the rules changed, or to repair). Atomic.
    async fn rebuild_rollups(&self, user_id: &str, rules: &PlayRules) -> Result<()>;
}

/// Catalog of tracks and artists (metadata shared by all users).
#[async_trait]
pub trait CatalogStore: Send + Sync {
    /// Inserts or updates tracks by Spotify id.
    async fn upsert_tracks(&self, tracks: &[Track]) -> Result<()>;
    /// A track by Spotify id, or [`crate::Error::NotFound`].
    async fn track(&self, spotify_id: &str) -> Result<Track>;
    /// Inserts or updates artists by normalised name.
    async fn upsert_artists(&self, artists: &[Artist]) -> Result<()>;
    /// An artist by Spotify id, or [`crate::Error::NotFound`].
    async fn artist(&self, spotify_id: &str) -> Result<Artist>;
    /// Genres of the given artists (by normalised name); artists without metadata are absent.
    async fn artist_genres(&self, artist_keys: &[String]) -> Result<HashMap<String, Vec<String>>>;
    /// Audio features of the given tracks (by track key); tracks without features are absent.
    async fn audio_features(&self, track_uris: &[String]) -> Result<HashMap<String, AudioFeatures>>;
}

/// Users.
#[async_trait]
pub trait UserStore: Send + Sync {
    /// Creates or updates a user by id.
    async fn upsert_user(&self, user: &User) -> Result<()>;
    /// A user by id, or [`crate::Error::NotFound`].
    async fn user(&self, id: &str) -> Result<User>;
    /// All users, by id.
    async fn users(&self) -> Result<Vec<User>>;
    /// Stores (or with `None` removes) the user's Spotify tokens, sealed by the caller.
    /// [`crate::Error::NotFound`] when the user does not exist.
    async fn set_tokens(&self, user_id: &str, tokens: Option<&EncryptedTokens>) -> Result<()>;
    /// The user's sealed Spotify tokens, `None` when not connected.
    /// [`crate::Error::NotFound`] when the user does not exist.
    async fn tokens(&self, user_id: &str) -> Result<Option<EncryptedTokens>>;
}

/// Backend identity and liveness.
#[async_trait]
pub trait StoreHealth: Send + Sync {
    /// `memory`, `sqlite`, `postgres`, `mongodb`.
    fn backend(&self) -> &'static str;
    /// Checks that the backend answers; [`crate::Error::BackendUnavailable`] when not.
    async fn ping(&self) -> Result<()>;
    /// Finishes background work (a SQLite file's log checkpoint) and closes the
    /// connections. Call it before a process that wrote ends; the store is not usable
    /// afterwards. Nothing is lost without it, the next open just finishes the work.
    async fn close(&self) {}
}

/// Everything a backend provides. Implemented for every type that implements the parts.
pub trait Store:
    HistoryStore + AnalyticsStore + CatalogStore + UserStore + JobStore + ApiLogStore + StoreHealth
{
}

impl<T: HistoryStore + AnalyticsStore + CatalogStore + UserStore + JobStore + ApiLogStore + StoreHealth> Store for T {}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn a_window_is_open_where_a_side_is_missing_and_never_empty() {
        let (a, b) =
            (Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0).unwrap(), Utc.with_ymd_and_hms(2024, 2, 1, 0, 0, 0).unwrap());
        assert_eq!(TimeWindow::open_ended(None, None), Ok(None));
        assert_eq!(TimeWindow::open_ended(Some(a), Some(b)), Ok(Some(TimeWindow { start: a, end: b })));
        assert_eq!(
            TimeWindow::open_ended(Some(a), None),
            Ok(Some(TimeWindow { start: a, end: DateTime::<Utc>::MAX_UTC }))
        );
        assert_eq!(
            TimeWindow::open_ended(None, Some(b)),
            Ok(Some(TimeWindow { start: DateTime::<Utc>::MIN_UTC, end: b }))
        );
        assert_eq!(TimeWindow::open_ended(Some(b), Some(a)), Err(EmptyWindow { start: b, end: a }));
        assert_eq!(TimeWindow::open_ended(Some(a), Some(a)), Err(EmptyWindow { start: a, end: a }));
    }
}
