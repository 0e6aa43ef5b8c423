//! The items plays point at (`play_items`): looked up by identity, added when new.

use crate::codec::{bind_values, cached_sql, item_values, statement_rows, Derived, Ph, ITEM_WRITE_COLS, MAX_BINDS};
use crate::error::{SqlError, SqlResult};
use crate::sqlite_bulk::{self, BulkTable, PackedRows};
use crate::Dialect;
use echostats_core::model::PlayRecord;
use sqlx::{AnyConnection, Executor, Row};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError};

/// Items remembered by a batch past which it forgets them all (the ids are looked up
/// again): bounds the memory of an import whatever the number of distinct items.
const MAX_REMEMBERED: usize = 200_000;

/// The ids of the items a batch has met, by identity ([`crate::codec::item_ident`]).
#[derive(Default)]
pub(crate) struct ItemIds {
    known: HashMap<String, Known, foldhash::fast::RandomState>,
    /// Counts the batches these ids were lent to ([`CommittedItems`]).
    batch: u32,
}

/// A remembered item.
struct Known {
    id: i64,
    /// The last batch that wanted it.
    batch: u32,
}

/// The item ids a store's committed batches met, handed from batch to batch: an import
/// writes a batch per ~2 s of files, and the items of one file are mostly those of the
/// others, which each batch looked up again. Items are never deleted and keep their ids,
/// so a committed id stays right; the ids of a batch rolled back are dropped with it.
/// Only the items the last batch wanted are handed on: carrying every item met (up to
/// [`MAX_REMEMBERED`]) let the map grow with the export's distinct items (a 6M-entry
/// import peaked at 248 and 285 MB in two runs, 238 and 256 MB before any were carried,
/// 231 MB with this; the peak varies by ±25 MB from run to run).
#[derive(Clone, Default)]
pub(crate) struct CommittedItems(Arc<Mutex<ItemIds>>);

impl CommittedItems {
    /// The known ids, for a starting batch (a batch beside it starts with none).
    pub(crate) fn lend(&self) -> ItemIds {
        let mut ids = std::mem::take(&mut *self.0.lock().unwrap_or_else(PoisonError::into_inner));
        ids.batch = ids.batch.wrapping_add(1);
        ids
    }

    /// The ids of a committed batch: those it wanted are kept, unless another batch
    /// brought back more.
    pub(crate) fn give_back(&self, mut ids: ItemIds) {
        let batch = ids.batch;
        ids.known.retain(|_, known| known.batch == batch);
        let mut kept = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if ids.known.len() >= kept.known.len() {
            *kept = ids;
        }
    }
}

/// One record whose item is wanted: its identity, fields and derived columns.
pub(crate) struct Wanted<'a> {
    pub ident: &'a str,
    pub record: &'a PlayRecord,
    pub derived: &'a Derived,
}

impl ItemIds {
    /// The item id of each wanted record, in order: remembered, found in `play_items`,
    /// or added there.
    pub(crate) async fn resolve(
        &mut self,
        conn: &mut AnyConnection,
        dialect: Dialect,
        wanted: &[Wanted<'_>],
    ) -> SqlResult<Vec<i64>> {
        if self.known.len() > MAX_REMEMBERED {
            self.known.clear();
        }
        // The identities not remembered, each once, first-seen first.
        let mut missing: Vec<&Wanted<'_>> = Vec::new();
        let mut seen: HashSet<&str, foldhash::fast::RandomState> = HashSet::default();
        for w in wanted {
            if !self.known.contains_key(w.ident) && seen.insert(w.ident) {
                missing.push(w);
            }
        }
        if !missing.is_empty() {
            self.find(conn, dialect, &missing).await?;
            missing.retain(|w| !self.known.contains_key(w.ident));
            self.add(conn, dialect, &missing).await?;
        }
        let batch = self.batch;
        wanted
            .iter()
            .map(|w| match self.known.get_mut(w.ident) {
                Some(known) => {
                    known.batch = batch;
                    Ok(known.id)
                }
                None => Err(SqlError::Corrupt(format!("item {:?} was neither found nor added", w.ident))),
            })
            .collect()
    }

    /// Remembers the ids of those of `wanted` already stored.
    async fn find(&mut self, conn: &mut AnyConnection, dialect: Dialect, wanted: &[&Wanted<'_>]) -> SqlResult<()> {
        for (base, n) in statement_rows(wanted.len(), MAX_BINDS) {
            let sql = cached_sql("find items", dialect, n, || {
                format!("SELECT id, ident FROM play_items WHERE ident IN ({})", Ph::new(dialect).list(n))
            });
            let mut q = sqlx::query(sql);
            for w in &wanted[base..base + n] {
                q = q.bind(w.ident);
            }
            for row in conn.fetch_all(q).await? {
                // On PostgreSQL an item may be stored twice (see migration 0003): any id will do.
                self.known.insert(row.try_get(1)?, Known { id: row.try_get(0)?, batch: self.batch });
            }
        }
        Ok(())
    }

    /// Stores `wanted` as new items and remembers their ids.
    async fn add(&mut self, conn: &mut AnyConnection, dialect: Dialect, wanted: &[&Wanted<'_>]) -> SqlResult<()> {
        if dialect == Dialect::Sqlite {
            if wanted.is_empty() {
                return Ok(());
            }
            // Through SQLite's C API, like the plays (`crate::sqlite_bulk`). The function
            // checked that the rows got consecutive ids, in pack order, ending at `last`.
            let mut packed = PackedRows::new(BulkTable::Items, wanted.len());
            for w in wanted {
                packed.push(item_values(w.ident, w.record, w.derived));
            }
            let ids = sqlite_bulk::inserted_ids(conn, packed.into_call(), wanted.len()).await?;
            for (w, id) in wanted.iter().zip(ids) {
                self.known.insert(w.ident.to_string(), Known { id, batch: self.batch });
            }
            return Ok(());
        }
        for (base, n) in statement_rows(wanted.len(), MAX_BINDS / ITEM_WRITE_COLS.len()) {
            let sql = cached_sql("add items", dialect, n, || {
                format!(
                    "INSERT INTO play_items ({}) VALUES {} RETURNING id, ident",
                    ITEM_WRITE_COLS.join(", "),
                    Ph::new(dialect).values(n, ITEM_WRITE_COLS.len())
                )
            });
            let mut q = sqlx::query(sql);
            for w in &wanted[base..base + n] {
                q = bind_values(q, item_values(w.ident, w.record, w.derived));
            }
            for row in conn.fetch_all(q).await? {
                self.known.insert(row.try_get(1)?, Known { id: row.try_get(0)?, batch: self.batch });
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A batch hands on the items it wanted, those it only inherited are dropped.
    #[test]
    fn only_the_items_the_last_batch_wanted_are_handed_on() {
        let committed = CommittedItems::default();
        let mut first = committed.lend();
        first.known.insert("a".into(), Known { id: 1, batch: first.batch });
        first.known.insert("b".into(), Known { id: 2, batch: first.batch });
        committed.give_back(first);

        let mut second = committed.lend();
        assert_eq!(second.known.get("a").map(|k| k.id), Some(1), "lent to the next batch");
        // The second batch wants "b" (as `resolve` marks it) and adds "c".
        second.known.get_mut("b").unwrap().batch = second.batch;
        second.known.insert("c".into(), Known { id: 3, batch: second.batch });
        // A batch beside it starts with none.
        assert!(committed.lend().known.is_empty());
        committed.give_back(second);

        let mut kept: Vec<(&str, i64)> = Vec::new();
        let third = committed.lend();
        kept.extend(third.known.iter().map(|(ident, k)| (ident.as_str(), k.id)));
        kept.sort();
        assert_eq!(kept, [("b", 2), ("c", 3)]);
    }
}
