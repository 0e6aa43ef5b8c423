//! All-time item totals (`item_totals`) and the grouped item queries.
//!
//! The reference store derives an item's display name and artist from the *first*
//! counted play of the item (lowest id), and its Spotify id from the first counted play
//! that has one. `item_totals` keeps exactly that: besides the play and millisecond
//! totals it remembers the ids of those two plays (`first_id`, `sid_id`), so that
//! replacements can update the names precisely, and items whose first play went away are
//! recomputed from the plays.

use crate::codec::{cached_sql, statement_rows, Derived, Ph, MAX_BINDS};
use crate::error::SqlResult;
use crate::Dialect;
use echostats_core::model::PlayRecord;
use echostats_core::store::{ItemKind, RankedItem};
use sqlx::AnyConnection;
use sqlx::{Executor, Row};
use std::collections::{HashMap, HashSet};

/// What one counted play contributes to one item.
pub(crate) struct Contrib<'a> {
    pub kind: ItemKind,
    pub key: &'a str,
    pub name: &'a str,
    pub artist: Option<&'a str>,
    pub sid: Option<&'a str>,
}

/// The item contributions of a record: exactly those of `RollupDelta::add`.
pub(crate) fn contribs<'a>(r: &'a PlayRecord, d: &'a Derived) -> [Option<Contrib<'a>>; 3] {
    if !d.counted {
        return [None, None, None];
    }
    [
        d.track_key.as_deref().map(|key| Contrib {
            kind: ItemKind::Track,
            key,
            name: r.track_name.as_deref().or(r.uri.as_deref()).unwrap_or_default(),
            artist: r.artist_name.as_deref(),
            sid: r.uri.as_deref(),
        }),
        d.artist_key.as_deref().map(|key| Contrib {
            kind: ItemKind::Artist,
            key,
            name: r.artist_name.as_deref().unwrap_or_default(),
            artist: None,
            sid: r.artist_id.as_deref(),
        }),
        d.album_key.as_deref().map(|key| Contrib {
            kind: ItemKind::Album,
            key,
            name: r.album_name.as_deref().unwrap_or_default(),
            artist: r.artist_name.as_deref(),
            sid: None,
        }),
    ]
}

/// Changes to one item's row.
#[derive(Debug, Default)]
pub(crate) struct ItemAcc {
    pub plays: i64,
    pub ms: i64,
    /// Lowest-id counted play added: (id, name, artist).
    pub first: Option<(i64, String, Option<String>)>,
    /// Lowest-id counted play added that has a Spotify id: (id, spotify id).
    pub sid: Option<(i64, String)>,
}

/// Item changes by kind and key (looked up by `&str`: no key allocation per play).
#[derive(Debug, Default)]
pub(crate) struct Items {
    by_kind: [HashMap<String, ItemAcc, foldhash::fast::RandomState>; 3],
}

const KINDS: [ItemKind; 3] = [ItemKind::Track, ItemKind::Artist, ItemKind::Album];

impl Items {
    pub(crate) fn new() -> Self {
        Self::default()
    }

    pub(crate) fn len(&self) -> usize {
        self.by_kind.iter().map(HashMap::len).sum()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.by_kind.iter().all(HashMap::is_empty)
    }

    /// Adds the changes of `later`, made after these (on the same play id, the later
    /// candidate wins, as in [`add`]).
    pub(crate) fn absorb(&mut self, later: Items) {
        for (mine, theirs) in self.by_kind.iter_mut().zip(later.by_kind) {
            for (key, t) in theirs {
                let acc = mine.entry(key).or_default();
                acc.plays += t.plays;
                acc.ms += t.ms;
                if let Some(first) = t.first {
                    if acc.first.as_ref().is_none_or(|(f, _, _)| first.0 <= *f) {
                        acc.first = Some(first);
                    }
                }
                if let Some(sid) = t.sid {
                    if acc.sid.as_ref().is_none_or(|(s, _)| sid.0 <= *s) {
                        acc.sid = Some(sid);
                    }
                }
            }
        }
    }

    fn acc(&mut self, kind: ItemKind, key: &str) -> &mut ItemAcc {
        let map = &mut self.by_kind[kind.code() as usize];
        if !map.contains_key(key) {
            map.insert(key.to_string(), ItemAcc::default());
        }
        map.get_mut(key).expect("just inserted")
    }

    /// Every item, sorted by kind and key.
    fn sorted(&self) -> Vec<(ItemKind, &String, &ItemAcc)> {
        let mut rows: Vec<(ItemKind, &String, &ItemAcc)> = Vec::with_capacity(self.len());
        for (kind, map) in KINDS.iter().zip(&self.by_kind) {
            let start = rows.len();
            rows.extend(map.iter().map(|(k, a)| (*kind, k, a)));
            rows[start..].sort_unstable_by(|a, b| a.1.cmp(b.1));
        }
        rows
    }
}

/// Accounts for the counted play `id` being added. A play added again under the same
/// id (rewritten in place later in the batch) replaces the earlier candidate.
pub(crate) fn add(items: &mut Items, c: Contrib<'_>, id: i64, ms: i64) {
    let acc = items.acc(c.kind, c.key);
    acc.plays += 1;
    acc.ms += ms;
    if acc.first.as_ref().is_none_or(|(f, _, _)| id <= *f) {
        acc.first = Some((id, c.name.to_string(), c.artist.map(str::to_string)));
    }
    if let Some(sid) = c.sid {
        if acc.sid.as_ref().is_none_or(|(s, _)| id <= *s) {
            acc.sid = Some((id, sid.to_string()));
        }
    }
}

/// Accounts for a counted play being removed (its row is overwritten).
pub(crate) fn remove(items: &mut Items, c: Contrib<'_>, ms: i64) {
    let acc = items.acc(c.kind, c.key);
    acc.plays -= 1;
    acc.ms -= ms;
}

const ITEM_COLS: usize = 10;
const TAKE_FIRST: &str =
    "excluded.first_id IS NOT NULL AND (item_totals.first_id IS NULL OR excluded.first_id <= item_totals.first_id)";
const TAKE_SID: &str =
    "excluded.sid_id IS NOT NULL AND (item_totals.sid_id IS NULL OR excluded.sid_id <= item_totals.sid_id)";

/// Adds `items` to the user's item totals (multi-row upserts). A candidate first play
/// with an id not above the stored one takes over the name (same id: the play was
/// rewritten in place).
pub(crate) async fn upsert_items(
    conn: &mut AnyConnection,
    dialect: Dialect,
    user_id: &str,
    items: &Items,
) -> SqlResult<()> {
    if items.is_empty() {
        return Ok(());
    }
    let rows = items.sorted();
    let parts = statement_rows(rows.len(), MAX_BINDS / ITEM_COLS);
    let statement = |(base, n): (usize, usize)| {
        let sql = cached_sql("upsert items", dialect, n, || {
            format!(
                "INSERT INTO item_totals (user_id, kind, key, name, artist_name, spotify_id, plays, ms, first_id, sid_id) \
                 VALUES {} ON CONFLICT (user_id, kind, key) DO UPDATE SET plays = item_totals.plays + excluded.plays, \
                 ms = item_totals.ms + excluded.ms, \
                 name = CASE WHEN {TAKE_FIRST} THEN excluded.name ELSE item_totals.name END, \
                 artist_name = CASE WHEN {TAKE_FIRST} THEN excluded.artist_name ELSE item_totals.artist_name END, \
                 first_id = CASE WHEN {TAKE_FIRST} THEN excluded.first_id ELSE item_totals.first_id END, \
                 spotify_id = CASE WHEN {TAKE_SID} THEN excluded.spotify_id ELSE item_totals.spotify_id END, \
                 sid_id = CASE WHEN {TAKE_SID} THEN excluded.sid_id ELSE item_totals.sid_id END",
                Ph::new(dialect).values(n, ITEM_COLS)
            )
        });
        let mut args = sqlx::any::AnyArguments::default();
        sqlx::Arguments::reserve(&mut args, n * ITEM_COLS, 0);
        let mut q = sqlx::query_with(sql, args);
        for (kind, key, acc) in &rows[base..base + n] {
            q = q
                .bind(user_id)
                .bind(kind.code() as i64)
                .bind(key.as_str())
                .bind(acc.first.as_ref().map(|f| f.1.as_str()).unwrap_or_default())
                .bind(acc.first.as_ref().and_then(|f| f.2.as_deref()))
                .bind(acc.sid.as_ref().map(|s| s.1.as_str()))
                .bind(acc.plays)
                .bind(acc.ms)
                .bind(acc.first.as_ref().map(|f| f.0))
                .bind(acc.sid.as_ref().map(|s| s.0));
        }
        q
    };
    // Bind the next statement while the database runs this one (see the plays' inserts).
    let mut next = parts.first().map(|p| statement(*p));
    for k in 0..parts.len() {
        let q = next.take().expect("statement bound in the previous round");
        let bind_next = async { parts.get(k + 1).map(|p| statement(*p)) };
        let (done, bound) = tokio::join!(biased; conn.execute(q), bind_next);
        done?;
        next = bound;
    }
    Ok(())
}

/// Key column of an item kind in `play_items`.
fn key_col(kind: ItemKind) -> &'static str {
    match kind {
        ItemKind::Track => "track_key",
        ItemKind::Artist => "artist_key",
        ItemKind::Album => "album_key",
    }
}

/// Column holding an item kind's Spotify id in `play_items`.
fn sid_col(kind: ItemKind) -> Option<&'static str> {
    match kind {
        ItemKind::Track => Some("uri"),
        ItemKind::Artist => Some("artist_id"),
        ItemKind::Album => None,
    }
}

/// One group of counted plays of an item.
pub(crate) struct Group {
    pub item: RankedItem,
    pub first_id: i64,
    pub sid_id: Option<i64>,
}

/// Which plays [`grouped_sql`] groups (besides the user's counted plays of the kind).
pub(crate) enum GroupFilter {
    /// Binds: start, end (epoch ms).
    Window,
    /// Binds: that many item keys.
    Keys(usize),
}

/// SQL grouping the user's counted plays by item key, with the name of the first play
/// and the Spotify id of the first play that has one. Binds: the user, then those of
/// `filter`. Read with [`group_from_row`].
///
/// Grouped with [`per_item_key`] (a Spotify id is a field of the item, so the first
/// play with one is the first play of the first item with one). The names come from
/// the items of those plays (joined as tables: SQLite would build the whole `play_rows`
/// view to join it).
pub(crate) fn grouped_sql(dialect: Dialect, kind: ItemKind, filter: GroupFilter) -> String {
    let k = key_col(kind);
    let mut ph = Ph::new(dialect);
    let user = ph.next();
    let extra = match filter {
        GroupFilter::Window => format!(" AND played_at >= {} AND played_at < {}", ph.next(), ph.next()),
        GroupFilter::Keys(n) => format!(" AND item_id IN (SELECT id FROM play_items WHERE {k} IN ({}))", ph.list(n)),
    };
    let (sid_min, sid_val, sid_join) = match sid_col(kind) {
        Some(c) => (
            format!("MIN(CASE WHEN i.{c} IS NOT NULL THEN c.fid END)"),
            format!("s.{c}"),
            " LEFT JOIN plays sp ON sp.id = g.sid LEFT JOIN play_items s ON s.id = sp.item_id".to_string(),
        ),
        None => ("CAST(NULL AS BIGINT)".to_string(), "CAST(NULL AS TEXT)".to_string(), String::new()),
    };
    let groups = per_item_key(k, &format!("user_id = {user} AND counted = 1{extra}"), &format!(", {sid_min} AS sid"));
    format!(
        "SELECT g.k, g.n, g.ms, g.fid, g.sid, f.track_name, f.uri, f.artist_name, f.album_name, {sid_val} \
         FROM {groups} g JOIN plays fp ON fp.id = g.fid JOIN play_items f ON f.id = fp.item_id{sid_join}"
    )
}

/// A subquery of the plays matching `plays_where` grouped by their items' column `key`
/// (non-null): `k`, `n` (plays), `ms`, `fid` (the first play's id), then `extra_cols`,
/// which may aggregate the items `i` and their counts `c` (`c.fid`: an item's first
/// play). Plays are counted per item id first, inside the plays' index, and the far
/// fewer items are then grouped by key.
pub(crate) fn per_item_key(key: &str, plays_where: &str, extra_cols: &str) -> String {
    format!(
        "(SELECT i.{key} AS k, CAST(SUM(c.n) AS BIGINT) AS n, CAST(SUM(c.ms) AS BIGINT) AS ms, \
                 MIN(c.fid) AS fid{extra_cols} \
          FROM (SELECT item_id, COUNT(*) AS n, SUM(ms_played) AS ms, MIN(id) AS fid \
                FROM plays WHERE {plays_where} GROUP BY item_id) c \
          JOIN play_items i ON i.id = c.item_id WHERE i.{key} IS NOT NULL GROUP BY i.{key})"
    )
}

/// Reads a row of [`grouped_sql`].
pub(crate) fn group_from_row(kind: ItemKind, row: &sqlx::any::AnyRow) -> SqlResult<Group> {
    let s = |i: usize| row.try_get::<Option<String>, _>(i);
    let (track_name, uri, artist_name, album_name) = (s(5)?, s(6)?, s(7)?, s(8)?);
    let (name, artist_name) = match kind {
        ItemKind::Track => (track_name.or(uri).unwrap_or_default(), artist_name),
        ItemKind::Artist => (artist_name.unwrap_or_default(), None),
        ItemKind::Album => (album_name.unwrap_or_default(), artist_name),
    };
    Ok(Group {
        item: RankedItem {
            key: row.try_get(0)?,
            name,
            artist_name,
            spotify_id: s(9)?,
            play_count: row.try_get(1)?,
            total_ms: row.try_get(2)?,
        },
        first_id: row.try_get(3)?,
        sid_id: row.try_get(4)?,
    })
}

/// Recomputes name, artist and Spotify id of `keys` from the plays (after the first play
/// of an item was rewritten into another item or stopped counting).
pub(crate) async fn recompute_items(
    conn: &mut AnyConnection,
    dialect: Dialect,
    user_id: &str,
    keys: &HashSet<(ItemKind, String)>,
) -> SqlResult<()> {
    for kind in [ItemKind::Track, ItemKind::Artist, ItemKind::Album] {
        let mut of_kind: Vec<&str> = keys.iter().filter(|(k, _)| *k == kind).map(|(_, key)| key.as_str()).collect();
        of_kind.sort_unstable();
        for chunk in of_kind.chunks(MAX_BINDS - 1) {
            let sql = grouped_sql(dialect, kind, GroupFilter::Keys(chunk.len()));
            let mut q = sqlx::query(&sql).persistent(false).bind(user_id);
            for key in chunk {
                q = q.bind(*key);
            }
            let mut found: HashMap<String, Group> = HashMap::new();
            for row in conn.fetch_all(q).await? {
                let g = group_from_row(kind, &row)?;
                found.insert(g.item.key.clone(), g);
            }
            for key in chunk {
                let q = match found.get(*key) {
                    Some(g) => sqlx::query(
                        "UPDATE item_totals SET name = $4, artist_name = $5, first_id = $6, spotify_id = $7, sid_id = $8 \
                         WHERE user_id = $1 AND kind = $2 AND key = $3",
                    )
                    .bind(user_id)
                    .bind(kind.code() as i64)
                    .bind(*key)
                    .bind(g.item.name.as_str())
                    .bind(g.item.artist_name.as_deref())
                    .bind(g.first_id)
                    .bind(g.item.spotify_id.as_deref())
                    .bind(g.sid_id),
                    None => sqlx::query(
                        "UPDATE item_totals SET first_id = NULL, spotify_id = NULL, sid_id = NULL \
                         WHERE user_id = $1 AND kind = $2 AND key = $3",
                    )
                    .bind(user_id)
                    .bind(kind.code() as i64)
                    .bind(*key),
                };
                conn.execute(q).await?;
            }
        }
    }
    Ok(())
}
