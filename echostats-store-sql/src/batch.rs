//! Writing plays: the insert batch, rollup maintenance and rebuilds.

use crate::codec::{
    bind_play, cached_sql, day_num, derived_from_row, entry_from_row, item_ident, ms_ceil, ms_floor, play_values,
    statement_rows, Derived, Ph, Query, MAX_BINDS, PLAY_READ_COLS, PLAY_READ_COLS_DERIVED, PLAY_WRITE_COLS,
};
use crate::error::{SqlError, SqlResult};
use crate::items::{self, Items};
use crate::play_items::{CommittedItems, ItemIds, Wanted};
use crate::sqlite_bulk::{self, BulkTable, KindMask, PackedRows};
use crate::{Dialect, SqlStore};
use async_trait::async_trait;
use chrono::{DateTime, Duration, NaiveDate, Utc};
use echostats_core::ingest::{plan_insert_with, PlanDeltas, Replacement};
use echostats_core::model::{HistoryEntry, PlayAnchor, PlayRecord, RollupDay};
use echostats_core::rules::PlayRules;
use echostats_core::store::StoreHealth;
use echostats_core::store::{InsertOutcome, ItemKind, PlayBatch};
use echostats_core::Result;
use sqlx::AnyConnection;
use sqlx::{Any, Executor, Row, Transaction};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

/// Rows of plays per multi-row INSERT (PostgreSQL).
const PLAY_ROWS_PER_INSERT: usize = MAX_BINDS / PLAY_WRITE_COLS.len();
/// Rows of plays at most per call of SQLite's `echostats_insert_rows` (~1.6 MB packed):
/// a whole import chunk (5,000 entries) in one call. Each call prepares its INSERTs (the
/// 256-row one has 4,608 parameters): per 1,024 rows that was 7.6% of an import's
/// instructions, on SQLite's thread.
const PLAY_ROWS_PER_SQLITE_CALL: usize = 8192;
/// Plays read per page while rebuilding.
const REBUILD_PAGE: i64 = 20_000;
/// Pending item changes above which a batch writes its aggregates before commit (a
/// handful in unit tests, so that their batches flush in every state).
const FLUSH_ITEMS: usize = if cfg!(test) { 6 } else { 100_000 };

/// An insert batch: one database transaction holding the user's write lock. Plays are
/// written by each insert; the rollup and item-total changes are accumulated and written
/// once, at commit (or when many are pending), in the same transaction.
pub(crate) struct SqlBatch {
    tx: Transaction<'static, Any>,
    backend: &'static str,
    dialect: Dialect,
    user_id: String,
    rules: PlayRules,
    /// The widest duplicate window the user's plays were stored under, these rules' own
    /// included: what the candidate reads reach by.
    widest_window: Duration,
    /// Aggregate changes not written yet (since the savepoint, while one is set).
    pending: Pending,
    /// The open savepoint, if any.
    savepoint: Option<Savepoint>,
    /// Planned writes not sent yet (SQLite: they run while the next chunk is planned).
    queued: Queued,
    /// SQLite: the id the next new play will get.
    next_id: Option<i64>,
    /// The items met so far (those of the store's earlier batches included).
    item_ids: ItemIds,
    /// Where the items met go back on commit.
    committed_items: CommittedItems,
    /// An insert failed part-way: the batch can only be rolled back.
    poisoned: bool,
    /// Woken after the commit: the WAL checkpoint runs on another connection (SQLite).
    checkpoint: Option<Arc<tokio::sync::Notify>>,
}

impl SqlStore {
    /// Starts a write transaction holding the write lock of `user_id`: on SQLite the
    /// database write lock (`BEGIN IMMEDIATE`), on PostgreSQL a transaction-scoped
    /// advisory lock on the user.
    pub(crate) async fn begin_user_tx(&self, user_id: &str) -> SqlResult<Transaction<'static, Any>> {
        match self.dialect {
            Dialect::Sqlite => Ok(self.pool.begin_with("BEGIN IMMEDIATE").await?),
            Dialect::Postgres => {
                let mut tx = self.pool.begin().await?;
                tx.execute(sqlx::query("SELECT pg_advisory_xact_lock(hashtext($1))").bind(user_id)).await?;
                Ok(tx)
            }
        }
    }

    /// Starts a batch: locks the user, and when the stored rules count plays differently
    /// from `rules`, recomputes the user's aggregates under `rules` first (the reference
    /// store always aggregates under the rules of the last batch).
    pub(crate) async fn begin_batch_inner(&self, user_id: &str, rules: &PlayRules) -> SqlResult<SqlBatch> {
        let mut tx = self.begin_user_tx(user_id).await?;
        let stored = stored_rules(&mut tx, user_id).await?;
        let stored_window = stored.as_ref().map(|s| s.widest_window);
        let widest_window = match stored {
            Some(stored) if stored.min_play_ms != rules.min_play_ms => {
                rebuild_in_tx(&mut tx, self.dialect, user_id, rules, stored_window).await?
            }
            _ => store_rules(&mut tx, user_id, rules, stored_window).await?,
        };
        let next_id = match self.dialect {
            Dialect::Sqlite => Some(next_play_id(&mut tx).await?),
            Dialect::Postgres => None,
        };
        Ok(SqlBatch {
            tx,
            backend: self.backend(),
            dialect: self.dialect,
            user_id: user_id.to_string(),
            rules: rules.clone(),
            widest_window,
            pending: Pending::default(),
            savepoint: None,
            queued: Queued::default(),
            next_id,
            item_ids: self.committed_items.lend(),
            committed_items: self.committed_items.clone(),
            poisoned: false,
            checkpoint: self.checkpoint_waker(),
        })
    }

    pub(crate) async fn rebuild_inner(&self, user_id: &str, rules: &PlayRules) -> SqlResult<()> {
        let mut tx = self.begin_user_tx(user_id).await?;
        let stored_window = stored_rules(&mut tx, user_id).await?.map(|s| s.widest_window);
        rebuild_in_tx(&mut tx, self.dialect, user_id, rules, stored_window).await?;
        tx.commit().await?;
        if let Some(wake) = self.checkpoint_waker() {
            wake.notify_one();
        }
        Ok(())
    }
}

/// The id SQLite gives the next play: AUTOINCREMENT takes one more than the largest
/// ever handed out (or present).
async fn next_play_id(conn: &mut AnyConnection) -> SqlResult<i64> {
    let row = conn
        .fetch_one(sqlx::query(
            "SELECT MAX(COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'plays'), 0), \
             COALESCE((SELECT MAX(id) FROM plays), 0)) + 1",
        ))
        .await?;
    Ok(row.try_get(0)?)
}

/// The rules a user's stored plays were written under: the minimum play length their
/// `counted` flags follow, and the widest duplicate window any of them was matched under.
struct StoredRules {
    min_play_ms: i64,
    widest_window: Duration,
}

async fn stored_rules(conn: &mut AnyConnection, user_id: &str) -> SqlResult<Option<StoredRules>> {
    let row = conn
        .fetch_optional(
            sqlx::query(
                "SELECT min_play_ms, COALESCE(widest_window_ms, duplicate_window_ms) FROM user_rules WHERE user_id = $1",
            )
            .bind(user_id),
        )
        .await?;
    let Some(row) = row else { return Ok(None) };
    Ok(Some(StoredRules { min_play_ms: row.try_get(0)?, widest_window: Duration::milliseconds(row.try_get(1)?) }))
}

/// Stores `rules` as the user's and widens the kept widest window (`stored_window`, as
/// [`stored_rules`] read it) to theirs; returns that window, which the candidate reads
/// of a batch reach by.
async fn store_rules(
    conn: &mut AnyConnection,
    user_id: &str,
    rules: &PlayRules,
    stored_window: Option<Duration>,
) -> SqlResult<Duration> {
    let widest = rules.widest_window(stored_window);
    conn.execute(
        sqlx::query(
            "INSERT INTO user_rules (user_id, min_play_ms, duplicate_window_ms, widest_window_ms) \
             VALUES ($1, $2, $3, $4) ON CONFLICT (user_id) DO UPDATE SET min_play_ms = excluded.min_play_ms, \
             duplicate_window_ms = excluded.duplicate_window_ms, widest_window_ms = excluded.widest_window_ms",
        )
        .bind(user_id)
        .bind(rules.min_play_ms)
        .bind(rules.duplicate_window.num_milliseconds())
        .bind(widest.num_milliseconds()),
    )
    .await?;
    Ok(widest)
}

#[async_trait]
impl PlayBatch for SqlBatch {
    async fn insert_anchored(
        &mut self,
        plays: Vec<PlayRecord>,
        anchored: Vec<(usize, PlayAnchor)>,
    ) -> Result<InsertOutcome> {
        self.usable()?;
        let result = self.insert_inner(plays, anchored).await;
        self.settle(result)
    }

    async fn commit(mut self: Box<Self>) -> Result<()> {
        let backend = self.backend;
        async move {
            if self.poisoned {
                self.tx.rollback().await?;
                return Err(SqlError::Poisoned);
            }
            self.release_savepoint_inner().await?;
            self.flush().await?;
            self.tx.commit().await?;
            self.committed_items.give_back(std::mem::take(&mut self.item_ids));
            if let Some(wake) = &self.checkpoint {
                wake.notify_one();
            }
            Ok(())
        }
        .await
        .map_err(|e: SqlError| e.into_core(backend))
    }

    async fn rollback(self: Box<Self>) -> Result<()> {
        let backend = self.backend;
        self.tx.rollback().await.map_err(|e| SqlError::from(e).into_core(backend))
    }

    async fn savepoint(&mut self) -> Result<bool> {
        self.usable()?;
        if self.savepoint.is_some() {
            return Err(echostats_core::Error::invalid("a savepoint is already open in this batch"));
        }
        // The SAVEPOINT statement itself waits for the next insert (`Savepoint::set`).
        self.savepoint = Some(Savepoint::default());
        Ok(true)
    }

    async fn release_savepoint(&mut self) -> Result<()> {
        self.usable()?;
        let result = self.release_savepoint_inner().await;
        self.settle(result)
    }

    async fn rollback_to_savepoint(&mut self) -> Result<()> {
        self.usable()?;
        let result = self.rollback_to_savepoint_inner().await;
        self.settle(result)
    }
}

/// The poison guard of the batch's writes: after a failed write the transaction's state
/// is unknown, so every later call fails until the batch is rolled back.
impl SqlBatch {
    fn usable(&self) -> Result<()> {
        if self.poisoned {
            return Err(SqlError::Poisoned.into_core(self.backend));
        }
        Ok(())
    }

    /// Poisons the batch when `result` is an error, and hands it over as the core's.
    fn settle<T>(&mut self, result: SqlResult<T>) -> Result<T> {
        self.poisoned = result.is_err();
        result.map_err(|e| e.into_core(self.backend))
    }
}

/// The statements of the one savepoint a batch holds at a time (same on both dialects).
const SET_SAVEPOINT: &str = "SAVEPOINT echostats_part";
const RELEASE_SAVEPOINT: &str = "RELEASE SAVEPOINT echostats_part";
const ROLLBACK_TO_SAVEPOINT: &str = "ROLLBACK TO SAVEPOINT echostats_part";

/// A savepoint of a batch ([`PlayBatch::savepoint`]).
#[derive(Default)]
struct Savepoint {
    /// The SAVEPOINT statement has run. It runs in the first insert after
    /// [`PlayBatch::savepoint`], once the writes still queued from before are sent (they
    /// belong before it): sending them while the next chunk is planned is what keeps
    /// both cores busy across files.
    set: bool,
    /// The aggregate changes of before the savepoint, apart from those after it, so
    /// that a rollback to it keeps them.
    before: Pending,
    /// `before` was written after the savepoint (a flush while it was open): a rollback
    /// undoes that write, so it stays pending until the savepoint is released.
    before_written: bool,
}

/// Aggregate changes not written yet.
#[derive(Default)]
struct Pending {
    days: BTreeMap<NaiveDate, RollupDay>,
    items: Items,
    /// Items whose first play (or Spotify id play) was rewritten away: recomputed from
    /// the plays after the item changes are written.
    recompute: HashSet<(ItemKind, String)>,
}

impl Pending {
    fn add_days(&mut self, days: impl IntoIterator<Item = (NaiveDate, RollupDay)>) {
        for (day, d) in days {
            match self.days.get_mut(&day) {
                Some(pending) => pending.add(&d),
                None => {
                    self.days.insert(day, d);
                }
            }
        }
    }

    /// Adds the changes of `later`, made after these.
    fn absorb(&mut self, later: Pending) {
        self.add_days(later.days);
        self.items.absorb(later.items);
        self.recompute.extend(later.recompute);
    }

    /// Writes the changes: rollups, item totals, then the recomputed items.
    async fn write(&self, conn: &mut AnyConnection, dialect: Dialect, user_id: &str) -> SqlResult<()> {
        apply_days(conn, dialect, user_id, &self.days).await?;
        items::upsert_items(conn, dialect, user_id, &self.items).await?;
        if !self.recompute.is_empty() {
            items::recompute_items(conn, dialect, user_id, &self.recompute).await?;
        }
        Ok(())
    }
}

impl SqlBatch {
    /// Writes the queued plays, then the pending rollup and item changes (those of
    /// before an open savepoint first: on a tie, the later change wins).
    async fn flush(&mut self) -> SqlResult<()> {
        self.write_queued().await?;
        let conn: &mut AnyConnection = &mut self.tx;
        if let Some(sp) = self.savepoint.as_mut().filter(|sp| sp.set && !sp.before_written) {
            sp.before.write(conn, self.dialect, &self.user_id).await?;
            sp.before_written = true;
        }
        self.pending.write(conn, self.dialect, &self.user_id).await?;
        self.pending = Pending::default();
        Ok(())
    }

    /// Runs the SAVEPOINT statement if [`PlayBatch::savepoint`] asked for one: the
    /// queued writes have been sent, so everything from here on is after it.
    async fn set_savepoint(&mut self) -> SqlResult<()> {
        let Some(sp) = self.savepoint.as_mut().filter(|sp| !sp.set) else { return Ok(()) };
        self.tx.execute(SET_SAVEPOINT).await?;
        sp.set = true;
        sp.before = std::mem::take(&mut self.pending);
        Ok(())
    }

    async fn release_savepoint_inner(&mut self) -> SqlResult<()> {
        let Some(sp) = self.savepoint.take() else { return Ok(()) };
        if !sp.set {
            return Ok(());
        }
        self.tx.execute(RELEASE_SAVEPOINT).await?;
        if !sp.before_written {
            let after = std::mem::replace(&mut self.pending, sp.before);
            self.pending.absorb(after);
        }
        if self.pending.items.len() > FLUSH_ITEMS {
            self.flush().await?;
        }
        Ok(())
    }

    async fn rollback_to_savepoint_inner(&mut self) -> SqlResult<()> {
        let Some(sp) = self.savepoint.take() else {
            return Err(SqlError::Corrupt("no savepoint to roll back to".into()));
        };
        if !sp.set {
            // Nothing was inserted since: what is queued comes from before.
            return Ok(());
        }
        // ROLLBACK TO leaves the savepoint open, on both dialects.
        self.tx.execute(ROLLBACK_TO_SAVEPOINT).await?;
        self.tx.execute(RELEASE_SAVEPOINT).await?;
        self.queued = Queued::default();
        self.pending = sp.before;
        // Items added since the savepoint are gone with it.
        self.item_ids = ItemIds::default();
        if self.dialect == Dialect::Sqlite {
            self.next_id = Some(next_play_id(&mut self.tx).await?);
        }
        Ok(())
    }

    /// Plans a chunk against the stored plays in its duplicate window, and queues its
    /// writes. On SQLite the writes of chunk `k` run while chunk `k + 1` is planned (on a
    /// blocking thread): planning and SQLite's inserts took turns before, each leaving a
    /// core idle. That needs the ids of queued plays before they are written, which only
    /// SQLite gives (the batch holds the database write lock and AUTOINCREMENT hands out
    /// consecutive ids); PostgreSQL writes each chunk before returning.
    async fn insert_inner(
        &mut self,
        plays: Vec<PlayRecord>,
        anchored: Vec<(usize, PlayAnchor)>,
    ) -> SqlResult<InsertOutcome> {
        let (Some(min), Some(max)) = (plays.iter().map(|p| p.played_at).min(), plays.iter().map(|p| p.played_at).max())
        else {
            return Ok(InsertOutcome::default());
        };
        let (lo, hi) = self.rules.candidate_window(self.widest_window, min, max);
        let window = Window { lo, hi, kinds: plays.iter().map(|p| p.kind.code()).collect() };
        let dialect = self.dialect;

        // Stored plays that may be duplicates, in id (= insertion) order like the
        // reference store, so the plan picks the same candidates. Only entries of the
        // same kind can match: a year of podcast rows must not load a year of music.
        // The queued writes have not run yet: the plan sees the plays as they will leave them.
        let mut existing = read_window(&mut self.tx, dialect, &self.user_id, &window).await?;
        self.queued.overlay(&mut existing, &self.user_id, &window)?;

        let rules = self.rules.clone();
        let planning = tokio::task::spawn_blocking(move || {
            // Item totals are counted as plays are written, per play id (the plan's
            // item deltas carry no ids).
            let mut plan = plan_insert_with(existing, plays, &anchored, &rules, PlanDeltas::DaysOnly);
            // The keys move into the derived columns (nothing reads them after).
            let keys = std::mem::take(&mut plan.insert_keys);
            let derived: Vec<Derived> = plan.inserts.iter().zip(keys).map(|(r, k)| Derived::from_keys(r, k)).collect();
            let idents: Vec<String> = plan.inserts.iter().map(item_ident).collect();
            (plan, derived, idents)
        });
        let (written, planned) = tokio::join!(self.write_queued(), planning);
        written?;
        let (mut plan, derived, idents) = planned.map_err(|e| SqlError::Crashed(format!("planning an insert: {e}")))?;
        self.set_savepoint().await?;

        // Replacements: rewritten in place, same id.
        let rules = &self.rules;
        for Replacement { id, original, record, anchor } in std::mem::take(&mut plan.replacements) {
            let id_num = crate::codec::parse_id(&id)?;
            let d_old = Derived::of(&original, rules);
            let d_new = Derived::of(&record, rules);
            let new_contribs = items::contribs(&record, &d_new);
            for c in items::contribs(&original, &d_old).into_iter().flatten() {
                // The item keeps its first play (and Spotify id) only when the new record
                // still belongs to it (and still has a Spotify id when the old one had).
                let kept = new_contribs
                    .iter()
                    .flatten()
                    .any(|n| n.kind == c.kind && n.key == c.key && (c.sid.is_none() || n.sid.is_some()));
                if !kept {
                    self.pending.recompute.insert((c.kind, c.key.to_string()));
                }
                items::remove(&mut self.pending.items, c, original.ms_played);
            }
            for c in new_contribs.into_iter().flatten() {
                items::add(&mut self.pending.items, c, id_num, record.ms_played);
            }
            let ident = item_ident(&record);
            self.queued.replacements.push(QueuedReplacement { id: id_num, record, anchor, derived: d_new, ident });
        }
        self.queued.first_id = self.next_id;
        self.queued.inserts = plan.inserts;
        self.queued.anchors = plan.insert_anchors;
        self.queued.derived = derived;
        self.queued.idents = idents;

        self.pending.add_days(plan.delta.days);
        if dialect == Dialect::Postgres {
            self.write_queued().await?;
        }
        if self.pending.items.len() > FLUSH_ITEMS {
            self.flush().await?;
        }
        Ok(plan.outcome)
    }

    /// Runs the queued writes: the items they need, the replacements, then the new plays
    /// (multi-row inserts), counting the new plays' item totals.
    async fn write_queued(&mut self) -> SqlResult<()> {
        let queued = std::mem::take(&mut self.queued);
        let SqlBatch { tx, dialect, user_id, pending, next_id, item_ids, .. } = self;
        let items = &mut pending.items;
        let conn: &mut AnyConnection = tx;
        let (dialect, user_id) = (*dialect, user_id.as_str());
        let wanted: Vec<Wanted<'_>> = queued
            .replacements
            .iter()
            .map(|q| Wanted { ident: &q.ident, record: &q.record, derived: &q.derived })
            .chain(
                (queued.inserts.iter().zip(&queued.derived).zip(&queued.idents))
                    .map(|((record, derived), ident)| Wanted { ident, record, derived }),
            )
            .collect();
        let item_of = item_ids.resolve(conn, dialect, &wanted).await?;
        drop(wanted);
        let (replaced_items, inserted_items) = item_of.split_at(queued.replacements.len());
        for (r, item_id) in queued.replacements.iter().zip(replaced_items) {
            // Every written column (user_id included: rewritten to itself), in bind order.
            let mut ph = Ph::new(dialect);
            let set: Vec<String> = PLAY_WRITE_COLS.iter().map(|col| format!("{col} = {}", ph.next())).collect();
            let sql =
                format!("UPDATE plays SET {} WHERE id = {} AND user_id = {}", set.join(", "), ph.next(), ph.next());
            let q = bind_play(sqlx::query(&sql), user_id, &r.record, r.anchor, r.derived.counted, *item_id)
                .bind(r.id)
                .bind(user_id);
            conn.execute(q).await?;
        }

        // Ids are assigned in VALUES order. PostgreSQL returns them (sorted, they map to
        // the rows in order); on SQLite the function returns the last of a call's ids.
        let n = queued.inserts.len();
        let chunks = match dialect {
            Dialect::Postgres => statement_rows(n, PLAY_ROWS_PER_INSERT),
            Dialect::Sqlite => (0..n)
                .step_by(PLAY_ROWS_PER_SQLITE_CALL)
                .map(|base| (base, PLAY_ROWS_PER_SQLITE_CALL.min(n - base)))
                .collect(),
        };
        let derived = &queued.derived;
        // The statement of chunk `k`, with its rows bound.
        let bind_chunk = |k: usize| {
            let (base, rows) = chunks[k];
            let plays = (queued.inserts[base..base + rows].iter().zip(&queued.anchors[base..]))
                .zip(&derived[base..])
                .zip(&inserted_items[base..]);
            match dialect {
                Dialect::Sqlite => {
                    let mut packed = PackedRows::new(BulkTable::Plays, rows);
                    for (((r, anchor), d), item_id) in plays {
                        packed.push(play_values(user_id, r, *anchor, d.counted, *item_id));
                    }
                    packed.into_call()
                }
                Dialect::Postgres => {
                    // Reserve the arguments up front: growing a vector of ~30,000 values
                    // one push at a time was a tenth of the import's time in memmove.
                    let mut args = sqlx::any::AnyArguments::default();
                    sqlx::Arguments::reserve(&mut args, rows * PLAY_WRITE_COLS.len(), 0);
                    let mut q = sqlx::query_with(insert_plays_sql(dialect, rows), args);
                    for (((r, anchor), d), item_id) in plays {
                        q = bind_play(q, user_id, r, *anchor, d.counted, *item_id);
                    }
                    q
                }
            }
        };
        // The item totals of chunk `k`, whose rows got `ids`.
        let count_items = |items: &mut Items, k: usize, ids: Vec<i64>| {
            let (base, rows) = chunks[k];
            for ((r, d), id) in queued.inserts[base..base + rows].iter().zip(&derived[base..]).zip(ids) {
                for c in items::contribs(r, d).into_iter().flatten() {
                    items::add(items, c, id, r.ms_played);
                }
            }
        };
        // SQLite executes on a thread of its own: while it runs statement `k`, this
        // thread binds statement `k + 1` and counts the items of `k - 1` (`biased` polls
        // the statement first, so that it is sent before the binding starts).
        let mut next = (!chunks.is_empty()).then(|| bind_chunk(0));
        let mut counted_later: Option<(usize, Vec<i64>)> = None;
        for k in 0..chunks.len() {
            let q = next.take().expect("statement bound in the previous round");
            let prepare = async {
                if let Some((j, ids)) = counted_later.take() {
                    count_items(items, j, ids);
                }
                (k + 1 < chunks.len()).then(|| bind_chunk(k + 1))
            };
            let (ids, bound) = tokio::join!(biased; insert_rows(&mut *conn, dialect, user_id, q, chunks[k].1), prepare);
            next = bound;
            let ids = ids?;
            if let (Some(first), Some(&got)) = (queued.first_id, ids.first()) {
                let expected = first + chunks[k].0 as i64;
                if got != expected {
                    return Err(SqlError::Corrupt(format!("new plays got ids from {got}, expected {expected}")));
                }
            }
            if let (Some(next_id), Some(&last)) = (next_id.as_mut(), ids.last()) {
                *next_id = last + 1;
            }
            counted_later = Some((k, ids));
        }
        if let Some((j, ids)) = counted_later.take() {
            count_items(items, j, ids);
        }
        // Freeing a chunk's records (a dozen allocations each) took ~8% of the 1M
        // import's wall time on this thread, which the database waits for.
        tokio::task::spawn_blocking(move || drop(queued));
        Ok(())
    }
}

/// The stored plays in `window`, in id order.
async fn read_window(
    conn: &mut AnyConnection,
    dialect: Dialect,
    user_id: &str,
    window: &Window,
) -> SqlResult<Vec<HistoryEntry>> {
    let (lo, hi) = (ms_ceil(window.lo), ms_floor(window.hi));
    match dialect {
        Dialect::Sqlite => {
            // Read in (end time, id) order, a page at a time, then put in id order.
            let mut by_id = Vec::new();
            let mut pages = sqlite_bulk::PlayPages::new(user_id, lo, hi, KindMask::of(window.kinds.iter().copied()));
            while let Some(page) = pages.next(conn).await? {
                by_id.extend(page);
            }
            by_id.sort_unstable_by_key(|(id, _)| *id);
            Ok(by_id.into_iter().map(|(_, entry)| entry).collect())
        }
        Dialect::Postgres => {
            use futures_util::TryStreamExt;
            let kind_list = window.kinds.iter().map(|k| k.to_string()).collect::<Vec<_>>().join(", ");
            let sql = format!(
                "SELECT {PLAY_READ_COLS} FROM play_rows WHERE user_id = $1 AND played_at >= $2 AND played_at <= $3 \
                 AND kind IN ({kind_list}) ORDER BY id"
            );
            // Decoded row by row: sqlx's rows are several times the size of the entries
            // (at the peak of a 6M-entry import, heaptrack found 35 MB held in such rows).
            let mut existing = Vec::new();
            let mut rows = conn.fetch(sqlx::query(&sql).bind(user_id).bind(lo).bind(hi));
            while let Some(row) = rows.try_next().await? {
                existing.push(entry_from_row(&row)?.1);
            }
            Ok(existing)
        }
    }
}

/// The stored plays a chunk's plan must see: end times and kinds.
struct Window {
    lo: DateTime<Utc>,
    hi: DateTime<Utc>,
    kinds: std::collections::BTreeSet<i32>,
}

impl Window {
    fn holds(&self, r: &PlayRecord) -> bool {
        (self.lo..=self.hi).contains(&r.played_at) && self.kinds.contains(&r.kind.code())
    }
}

/// A stored play to rewrite in place.
struct QueuedReplacement {
    id: i64,
    /// What it becomes, its anchor, derived columns and item identity.
    record: PlayRecord,
    anchor: Option<PlayAnchor>,
    derived: Derived,
    ident: String,
}

/// Planned writes not yet sent to the database (see [`SqlBatch::insert_inner`]).
#[derive(Default)]
struct Queued {
    replacements: Vec<QueuedReplacement>,
    /// New plays, in insertion order, their anchors, derived columns and item identities.
    inserts: Vec<PlayRecord>,
    anchors: Vec<Option<PlayAnchor>>,
    derived: Vec<Derived>,
    idents: Vec<String>,
    /// SQLite: the id the first new play will get.
    first_id: Option<i64>,
}

impl Queued {
    /// Brings `existing` (the stored plays in `window`, by id) to what they will be
    /// once these writes ran.
    fn overlay(&self, existing: &mut Vec<HistoryEntry>, user_id: &str, window: &Window) -> SqlResult<()> {
        if self.replacements.is_empty() && self.inserts.is_empty() {
            return Ok(());
        }
        let entry = |id: i64, record: &PlayRecord, anchor: Option<PlayAnchor>| HistoryEntry {
            id: id.to_string(),
            user_id: user_id.to_string(),
            record: record.clone(),
            anchor,
        };
        // A rewritten play may enter or leave the window (its end time can move).
        let rewritten: HashSet<String> = self.replacements.iter().map(|q| q.id.to_string()).collect();
        existing.retain(|e| !rewritten.contains(&e.id));
        existing.extend(
            self.replacements.iter().filter(|q| window.holds(&q.record)).map(|q| entry(q.id, &q.record, q.anchor)),
        );
        if !self.inserts.is_empty() {
            let first = self.first_id.ok_or_else(|| SqlError::Corrupt("queued plays without ids".into()))?;
            existing.extend(
                (self.inserts.iter().zip(&self.anchors))
                    .enumerate()
                    .filter(|(_, (r, _))| window.holds(r))
                    .map(|(i, (r, anchor))| entry(first + i as i64, r, *anchor)),
            );
        }
        let mut keyed = Vec::with_capacity(existing.len());
        for e in existing.drain(..) {
            keyed.push((crate::codec::parse_id(&e.id)?, e));
        }
        keyed.sort_by_key(|(id, _)| *id);
        existing.extend(keyed.into_iter().map(|(_, e)| e));
        Ok(())
    }
}

/// The multi-row insert of `rows` plays, returning their ids (PostgreSQL).
fn insert_plays_sql(dialect: Dialect, rows: usize) -> &'static str {
    cached_sql("insert plays", dialect, rows, || {
        format!(
            "INSERT INTO plays ({}) VALUES {} RETURNING id",
            PLAY_WRITE_COLS.join(", "),
            Ph::new(dialect).values(rows, PLAY_WRITE_COLS.len())
        )
    })
}

/// Executes the insert of `n` plays and returns their ids, ascending.
async fn insert_rows(
    conn: &mut AnyConnection,
    dialect: Dialect,
    user_id: &str,
    q: Query<'_>,
    n: usize,
) -> SqlResult<Vec<i64>> {
    let mut ids: Vec<i64> = match dialect {
        Dialect::Postgres => {
            conn.fetch_all(q).await?.iter().map(|row| row.try_get::<i64, _>(0)).collect::<Result<_, _>>()?
        }
        Dialect::Sqlite => {
            let ids = sqlite_bulk::inserted_ids(conn, q, n).await?;
            #[cfg(debug_assertions)]
            {
                let row = conn
                    .fetch_one(
                        sqlx::query("SELECT COUNT(*) FROM plays WHERE user_id = $1 AND id >= $2 AND id <= $3")
                            .bind(user_id)
                            .bind(*ids.start())
                            .bind(*ids.end()),
                    )
                    .await?;
                debug_assert_eq!(row.try_get::<i64, _>(0)?, n as i64, "inserted ids are not consecutive");
            }
            #[cfg(not(debug_assertions))]
            let _ = user_id;
            ids.collect()
        }
    };
    if ids.len() != n {
        return Err(SqlError::Corrupt(format!("inserted {n} plays, got {} ids", ids.len())));
    }
    ids.sort_unstable();
    Ok(ids)
}

/// Adds day deltas to the stored rollups (read the range once, write back multi-row;
/// days left without plays are deleted, as the reference store never reports them).
pub(crate) async fn apply_days(
    conn: &mut AnyConnection,
    dialect: Dialect,
    user_id: &str,
    delta: &BTreeMap<NaiveDate, RollupDay>,
) -> SqlResult<()> {
    let (Some(first), Some(last)) = (delta.keys().next(), delta.keys().next_back()) else { return Ok(()) };
    let rows = conn
        .fetch_all(
            sqlx::query("SELECT day, slots FROM rollup_days WHERE user_id = $1 AND day >= $2 AND day <= $3")
                .bind(user_id)
                .bind(day_num(*first))
                .bind(day_num(*last)),
        )
        .await?;
    let mut stored: HashMap<i64, Vec<u8>> = HashMap::with_capacity(rows.len());
    for row in rows {
        stored.insert(row.try_get(0)?, row.try_get(1)?);
    }
    let mut upserts: Vec<RollupDay> = Vec::with_capacity(delta.len());
    let mut deletes: Vec<i64> = Vec::new();
    for (day, d) in delta {
        let n = day_num(*day);
        let mut total = match stored.get(&n) {
            Some(bytes) => RollupDay::decode_slots(*day, bytes)
                .ok_or_else(|| SqlError::Corrupt(format!("rollup slots of day {day} have {} bytes", bytes.len())))?,
            None => RollupDay::empty(*day),
        };
        total.add(d);
        if total.is_empty() {
            if stored.contains_key(&n) {
                deletes.push(n);
            }
        } else {
            upserts.push(total);
        }
    }
    write_days(conn, dialect, user_id, &upserts).await?;
    for chunk in deletes.chunks(MAX_BINDS - 1) {
        let mut ph = Ph::new(dialect);
        let sql =
            format!("DELETE FROM rollup_days WHERE user_id = {} AND day IN ({})", ph.next(), ph.list(chunk.len()));
        let mut q = sqlx::query(&sql).persistent(false).bind(user_id);
        for n in chunk {
            q = q.bind(*n);
        }
        conn.execute(q).await?;
    }
    Ok(())
}

/// Writes whole rollup days (insert or overwrite).
async fn write_days(conn: &mut AnyConnection, dialect: Dialect, user_id: &str, days: &[RollupDay]) -> SqlResult<()> {
    const COLS: usize = 5;
    for chunk in days.chunks(MAX_BINDS / COLS) {
        let sql = format!(
            "INSERT INTO rollup_days (user_id, day, plays, ms, slots) VALUES {} \
             ON CONFLICT (user_id, day) DO UPDATE SET plays = excluded.plays, ms = excluded.ms, slots = excluded.slots",
            Ph::new(dialect).values(chunk.len(), COLS)
        );
        let mut q = sqlx::query(&sql).persistent(false);
        for d in chunk {
            q = q.bind(user_id).bind(day_num(d.day)).bind(d.total_plays()).bind(d.total_ms()).bind(d.encode_slots());
        }
        conn.execute(q).await?;
    }
    Ok(())
}

/// Recomputes the `counted` flag and keys of every play of the user under `rules`, then
/// rebuilds rollups and item totals from scratch, and stores the rules (returning the
/// widest window, as [`store_rules`]).
pub(crate) async fn rebuild_in_tx(
    conn: &mut AnyConnection,
    dialect: Dialect,
    user_id: &str,
    rules: &PlayRules,
    stored_window: Option<Duration>,
) -> SqlResult<Duration> {
    // The flag in one statement (what a change of rules touches) ...
    conn.execute(
        sqlx::query(
            "UPDATE plays SET counted = CASE WHEN kind = 0 AND ms_played >= $2 \
             AND item_id IN (SELECT id FROM play_items WHERE track_key IS NOT NULL) THEN 1 ELSE 0 END WHERE user_id = $1",
        )
        .bind(user_id)
        .bind(rules.min_play_ms),
    )
    .await?;
    conn.execute(sqlx::query("DELETE FROM rollup_days WHERE user_id = $1").bind(user_id)).await?;
    conn.execute(sqlx::query("DELETE FROM item_totals WHERE user_id = $1").bind(user_id)).await?;

    // ... then every play in id order: the aggregates, and any derived column that is
    // not what the rules say (repairs).
    let mut days: BTreeMap<NaiveDate, RollupDay> = BTreeMap::new();
    let mut items = Items::new();
    // Repairs: the counted flags of plays, the keys of items (by item id).
    let mut counted_fixes: Vec<(i64, bool)> = Vec::new();
    let mut item_fixes: BTreeMap<i64, Derived> = BTreeMap::new();
    let sql =
        format!("SELECT {PLAY_READ_COLS_DERIVED} FROM play_rows WHERE user_id = $1 AND id > $2 ORDER BY id LIMIT $3");
    let mut after = i64::MIN;
    loop {
        let rows = conn.fetch_all(sqlx::query(&sql).bind(user_id).bind(after).bind(REBUILD_PAGE)).await?;
        let Some(last) = rows.last() else { break };
        after = last.try_get(0)?;
        let full = rows.len() as i64 == REBUILD_PAGE;
        for row in &rows {
            let (id, entry) = entry_from_row(row)?;
            let r = &entry.record;
            let d = Derived::of(r, rules);
            let (stored, item_id) = derived_from_row(row)?;
            if d.counted != stored.counted {
                counted_fixes.push((id, d.counted));
            }
            if !d.same_item_keys(&stored) {
                item_fixes.entry(item_id).or_insert_with(|| d.clone());
            }
            if d.counted {
                let (day, slot) = RollupDay::slot_of(r.played_at);
                let day = days.entry(day).or_insert_with(|| RollupDay::empty(day));
                day.plays[slot] += 1;
                day.ms[slot] += r.ms_played;
            }
            for c in items::contribs(r, &d).into_iter().flatten() {
                items::add(&mut items, c, id, r.ms_played);
            }
        }
        if !full {
            break;
        }
    }
    for (id, counted) in &counted_fixes {
        conn.execute(sqlx::query("UPDATE plays SET counted = $2 WHERE id = $1").bind(*id).bind(*counted as i64))
            .await?;
    }
    for (item_id, d) in &item_fixes {
        conn.execute(
            sqlx::query(
                "UPDATE play_items SET track_key = $2, artist_key = $3, album_key = $4, artist_norm = $5, \
                 track_norm = $6, show_key = $7 WHERE id = $1",
            )
            .bind(*item_id)
            .bind(d.track_key.as_deref())
            .bind(d.artist_key.as_deref())
            .bind(d.album_key.as_deref())
            .bind(d.artist_norm.as_deref())
            .bind(d.track_norm.as_deref())
            .bind(d.show_key.as_deref()),
        )
        .await?;
    }
    let days: Vec<RollupDay> = days.into_values().collect();
    write_days(conn, dialect, user_id, &days).await?;
    items::upsert_items(conn, dialect, user_id, &items).await?;
    let widest = store_rules(conn, user_id, rules, stored_window).await?;
    tracing::debug!(
        user_id,
        days = days.len(),
        items = items.len(),
        repaired = counted_fixes.len() + item_fixes.len(),
        "rebuilt rollups"
    );
    Ok(widest)
}
