//! The storage traits on [`SqlStore`].

use crate::codec::{day_from_num, day_num, entry_from_row, ms_ceil, Ph, Query, MAX_BINDS, PLAY_READ_COLS};
use crate::error::{SqlError, SqlResult};
use crate::items::{group_from_row, grouped_sql, per_item_key, GroupFilter};
use crate::sqlite_bulk::{self, KindMask};
use crate::{Dialect, SqlStore};
use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, SecondsFormat, Utc};
use echostats_core::model::{Artist, AudioFeatures, EncryptedTokens, HistoryEntry, PlayKind, RollupDay, Track, User};
use echostats_core::rules::{normalize_name, PlayRules};
use echostats_core::store::{
    AnalyticsStore, CatalogStore, HistoryQuery, HistoryStore, ItemKind, ItemRanking, PlayBatch, PlayChunker, PlaySink,
    RankedItem, RollupStatus, StoreHealth, TimeWindow, UserStore,
};
use echostats_core::{Error, Result};
use sqlx::{Executor, Row};
use std::collections::HashMap;

/// Pages of plays read by [`SqlStore::read_pages`].
type PageReceiver = tokio::sync::mpsc::Receiver<SqlResult<Option<Vec<(i64, HistoryEntry)>>>>;

/// A dynamically built argument.
enum Arg {
    I(i64),
    S(String),
}

fn bind_args<'q>(mut q: Query<'q>, args: &'q [Arg]) -> Query<'q> {
    for a in args {
        q = match a {
            Arg::I(v) => q.bind(*v),
            Arg::S(s) => q.bind(s.as_str()),
        };
    }
    q
}

/// Shows rank by listening time first, then episode count, then name (the reference
/// store's order).
fn sort_shows(items: &mut [RankedItem]) {
    items.sort_by(|a, b| {
        b.total_ms.cmp(&a.total_ms).then(b.play_count.cmp(&a.play_count)).then_with(|| a.name.cmp(&b.name))
    });
}

fn limit_i64(limit: usize) -> i64 {
    i64::try_from(limit).unwrap_or(i64::MAX)
}

impl SqlStore {
    pub(crate) fn fail(&self) -> impl Fn(SqlError) -> Error {
        let backend = self.backend();
        move |e| e.into_core(backend)
    }

    /// SQLite: the plays of `user_id` that end in `lo..=hi` (epoch ms), in (end time, id)
    /// order, read a page at a time ([`sqlite_bulk::PlayPages`]) in one transaction by a
    /// task of their own. It reads and decodes the next page while the caller hands on
    /// the last: a CSV export of 984k plays took 3.6 s with the two one after the other,
    /// 3.1 s this way. Its last message is `Ok(None)`, or an error; dropping the receiver
    /// stops it.
    async fn read_pages(&self, user_id: &str, lo: i64, hi: i64) -> SqlResult<PageReceiver> {
        let mut tx = self.pool.begin().await?;
        let (sender, receiver) = tokio::sync::mpsc::channel(1);
        let user_id = user_id.to_owned();
        tokio::spawn(async move {
            let mut pages = sqlite_bulk::PlayPages::new(&user_id, lo, hi, KindMask::ALL);
            loop {
                let page = pages.next(&mut tx).await;
                let more = matches!(page, Ok(Some(_)));
                if sender.send(page).await.is_err() || !more {
                    break;
                }
            }
            // The transaction only read; dropping it rolls it back.
        });
        Ok(receiver)
    }

    async fn history_items_inner(&self, user_id: &str, q: &HistoryQuery) -> SqlResult<Vec<HistoryEntry>> {
        let (conds, args) = history_filter(user_id, q);
        let n = args.len();
        let page_sql = format!(
            "SELECT {PLAY_READ_COLS} FROM play_rows WHERE {conds} ORDER BY played_at DESC, id DESC LIMIT ${} OFFSET ${}",
            n + 1,
            n + 2
        );
        let offset = i64::try_from(q.offset()).unwrap_or(i64::MAX);
        let rows =
            self.pool.fetch_all(bind_args(sqlx::query(&page_sql), &args).bind(q.limit as i64).bind(offset)).await?;
        rows.iter().map(|r| entry_from_row(r).map(|e| e.1)).collect()
    }

    async fn history_count_inner(&self, user_id: &str, q: &HistoryQuery) -> SqlResult<u64> {
        let (conds, args) = history_filter(user_id, q);
        let count_sql = format!("SELECT COUNT(*) FROM plays WHERE {conds}");
        let total: i64 = self.pool.fetch_one(bind_args(sqlx::query(&count_sql), &args)).await?.try_get(0)?;
        Ok(total as u64)
    }

    async fn rollup_days_inner(&self, user_id: &str, from: NaiveDate, to: NaiveDate) -> SqlResult<Vec<RollupDay>> {
        let rows = self
            .pool
            .fetch_all(
                sqlx::query(
                    "SELECT day, slots FROM rollup_days WHERE user_id = $1 AND day >= $2 AND day <= $3 ORDER BY day",
                )
                .bind(user_id)
                .bind(day_num(from))
                .bind(day_num(to)),
            )
            .await?;
        rows.iter()
            .map(|row| {
                let day = day_from_num(row.try_get(0)?)?;
                let bytes: Vec<u8> = row.try_get(1)?;
                RollupDay::decode_slots(day, &bytes)
                    .ok_or_else(|| SqlError::Corrupt(format!("rollup slots of day {day} have {} bytes", bytes.len())))
            })
            .collect()
    }

    async fn item_ranking_inner(
        &self,
        user_id: &str,
        kind: ItemKind,
        window: Option<TimeWindow>,
        limit: Option<usize>,
    ) -> SqlResult<ItemRanking> {
        let Some(w) = window else {
            let distinct: i64 = self
                .pool
                .fetch_one(
                    sqlx::query("SELECT COUNT(*) FROM item_totals WHERE user_id = $1 AND kind = $2 AND plays > 0")
                        .bind(user_id)
                        .bind(kind.code() as i64),
                )
                .await?
                .try_get(0)?;
            // Names and keys sort byte-wise: BINARY in SQLite, COLLATE "C" columns in PostgreSQL.
            let mut sql = String::from(
                "SELECT key, name, artist_name, spotify_id, plays, ms FROM item_totals \
                 WHERE user_id = $1 AND kind = $2 AND plays > 0 ORDER BY plays DESC, ms DESC, name, key",
            );
            if limit.is_some() {
                sql.push_str(" LIMIT $3");
            }
            let mut q = sqlx::query(&sql).bind(user_id).bind(kind.code() as i64);
            if let Some(l) = limit {
                q = q.bind(limit_i64(l));
            }
            let items = self
                .pool
                .fetch_all(q)
                .await?
                .iter()
                .map(|row| {
                    Ok(RankedItem {
                        key: row.try_get(0)?,
                        name: row.try_get(1)?,
                        artist_name: row.try_get(2)?,
                        spotify_id: row.try_get(3)?,
                        play_count: row.try_get(4)?,
                        total_ms: row.try_get(5)?,
                    })
                })
                .collect::<SqlResult<Vec<_>>>()?;
            return Ok(ItemRanking { items, distinct: distinct as u64 });
        };
        let sql = grouped_sql(self.dialect, kind, GroupFilter::Window);
        let rows =
            self.pool.fetch_all(sqlx::query(&sql).bind(user_id).bind(ms_ceil(w.start)).bind(ms_ceil(w.end))).await?;
        let items = rows.iter().map(|row| group_from_row(kind, row).map(|g| g.item)).collect::<SqlResult<Vec<_>>>()?;
        Ok(ItemRanking::from_unsorted(items, limit))
    }

    async fn show_ranking_inner(
        &self,
        user_id: &str,
        window: Option<TimeWindow>,
        limit: usize,
    ) -> SqlResult<Vec<RankedItem>> {
        let range = if window.is_some() { " AND played_at >= $2 AND played_at < $3" } else { "" };
        let episode = PlayKind::Episode.code();
        let groups = per_item_key("show_key", &format!("user_id = $1 AND kind = {episode}{range}"), "");
        let sql = format!(
            "SELECT g.k, g.n, g.ms, f.show_name FROM {groups} g \
             JOIN plays fp ON fp.id = g.fid JOIN play_items f ON f.id = fp.item_id"
        );
        let mut q = sqlx::query(&sql).bind(user_id);
        if let Some(w) = window {
            q = q.bind(ms_ceil(w.start)).bind(ms_ceil(w.end));
        }
        let mut items = self
            .pool
            .fetch_all(q)
            .await?
            .iter()
            .map(|row| {
                Ok(RankedItem {
                    key: row.try_get(0)?,
                    name: row.try_get::<Option<String>, _>(3)?.unwrap_or_default(),
                    artist_name: None,
                    spotify_id: None,
                    play_count: row.try_get(1)?,
                    total_ms: row.try_get(2)?,
                })
            })
            .collect::<SqlResult<Vec<_>>>()?;
        sort_shows(&mut items);
        items.truncate(limit);
        Ok(items)
    }

    async fn rollup_status_inner(&self, user_id: &str) -> SqlResult<RollupStatus> {
        let row = self
            .pool
            .fetch_one(
                sqlx::query(
                    "SELECT MAX(day), COUNT(*), CAST(COALESCE(SUM(plays), 0) AS BIGINT) FROM rollup_days WHERE user_id = $1",
                )
                .bind(user_id),
            )
            .await?;
        let last: Option<i64> = row.try_get(0)?;
        let total_days: i64 = row.try_get(1)?;
        let rolled: i64 = row.try_get(2)?;
        let counted: i64 = self
            .pool
            .fetch_one(sqlx::query("SELECT COUNT(*) FROM plays WHERE user_id = $1 AND counted = 1").bind(user_id))
            .await?
            .try_get(0)?;
        let coverage = if counted == 0 { 100.0 } else { (rolled as f64 / counted as f64 * 100.0).min(100.0) };
        Ok(RollupStatus {
            last_date: last.map(day_from_num).transpose()?,
            total_days: total_days as u64,
            complete: rolled == counted,
            coverage,
        })
    }

    /// Starts a write transaction for catalog writes (SQLite: take the write lock up front).
    async fn begin_write(&self) -> SqlResult<sqlx::Transaction<'static, sqlx::Any>> {
        Ok(match self.dialect {
            Dialect::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await?,
            Dialect::Postgres => self.pool.begin().await?,
        })
    }

    async fn upsert_tracks_inner(&self, tracks: &[Track]) -> SqlResult<()> {
        // The last of several tracks with one id wins, like sequential upserts.
        let mut last: HashMap<&str, usize> = HashMap::new();
        for (i, t) in tracks.iter().enumerate() {
            last.insert(t.spotify_id.as_str(), i);
        }
        let mut rows: Vec<(&Track, String)> = Vec::with_capacity(last.len());
        for (i, t) in tracks.iter().enumerate() {
            if last.get(t.spotify_id.as_str()) == Some(&i) {
                let bare = Track { audio_features: None, ..t.clone() };
                rows.push((t, serde_json::to_string(&bare)?));
            }
        }
        // A fixed order, so concurrent upserts cannot deadlock on PostgreSQL.
        rows.sort_by(|a, b| a.0.spotify_id.cmp(&b.0.spotify_id));
        if rows.is_empty() {
            return Ok(());
        }
        const COLS: usize = 10;
        let mut tx = self.begin_write().await?;
        for chunk in rows.chunks(MAX_BINDS / COLS) {
            let sql = format!(
                "INSERT INTO tracks (spotify_id, json, danceability, energy, valence, acousticness, instrumentalness, \
                 liveness, speechiness, tempo) VALUES {} ON CONFLICT (spotify_id) DO UPDATE SET json = excluded.json, \
                 danceability = excluded.danceability, energy = excluded.energy, valence = excluded.valence, \
                 acousticness = excluded.acousticness, instrumentalness = excluded.instrumentalness, \
                 liveness = excluded.liveness, speechiness = excluded.speechiness, tempo = excluded.tempo",
                Ph::new(self.dialect).values(chunk.len(), COLS)
            );
            let mut q = sqlx::query(&sql);
            for (t, json) in chunk {
                let f = t.audio_features.as_ref();
                q = q
                    .bind(t.spotify_id.as_str())
                    .bind(json.as_str())
                    .bind(f.map(|f| f.danceability))
                    .bind(f.map(|f| f.energy))
                    .bind(f.map(|f| f.valence))
                    .bind(f.map(|f| f.acousticness))
                    .bind(f.map(|f| f.instrumentalness))
                    .bind(f.map(|f| f.liveness))
                    .bind(f.map(|f| f.speechiness))
                    .bind(f.map(|f| f.tempo));
            }
            tx.execute(q).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn track_inner(&self, spotify_id: &str) -> SqlResult<Option<Track>> {
        let row = self
            .pool
            .fetch_optional(
                sqlx::query(
                    "SELECT json, danceability, energy, valence, acousticness, instrumentalness, liveness, \
                     speechiness, tempo FROM tracks WHERE spotify_id = $1",
                )
                .bind(spotify_id),
            )
            .await?;
        let Some(row) = row else { return Ok(None) };
        let mut track: Track = serde_json::from_str(&row.try_get::<String, _>(0)?)?;
        track.audio_features = features_from_row(&row, 1)?;
        Ok(Some(track))
    }

    async fn upsert_artists_inner(&self, artists: &[Artist]) -> SqlResult<()> {
        let mut last: HashMap<String, usize> = HashMap::new();
        for (i, a) in artists.iter().enumerate() {
            last.insert(normalize_name(&a.name), i);
        }
        let mut rows: Vec<(String, &Artist, String)> = Vec::with_capacity(last.len());
        for (key, i) in last {
            let a = &artists[i];
            rows.push((key, a, serde_json::to_string(&a.genres)?));
        }
        if rows.is_empty() {
            return Ok(());
        }
        rows.sort_by(|a, b| a.0.cmp(&b.0));
        const COLS: usize = 5;
        let mut tx = self.begin_write().await?;
        for chunk in rows.chunks(MAX_BINDS / COLS) {
            let sql = format!(
                "INSERT INTO artists (key, spotify_id, name, genres, image_url) VALUES {} ON CONFLICT (key) DO UPDATE \
                 SET spotify_id = excluded.spotify_id, name = excluded.name, genres = excluded.genres, \
                 image_url = excluded.image_url",
                Ph::new(self.dialect).values(chunk.len(), COLS)
            );
            let mut q = sqlx::query(&sql);
            for (key, a, genres) in chunk {
                q = q
                    .bind(key.as_str())
                    .bind(a.spotify_id.as_deref())
                    .bind(a.name.as_str())
                    .bind(genres.as_str())
                    .bind(a.image_url.as_deref());
            }
            tx.execute(q).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn artist_inner(&self, spotify_id: &str) -> SqlResult<Option<Artist>> {
        let row = self
            .pool
            .fetch_optional(
                sqlx::query(
                    "SELECT spotify_id, name, genres, image_url FROM artists WHERE spotify_id = $1 ORDER BY key LIMIT 1",
                )
                .bind(spotify_id),
            )
            .await?;
        let Some(row) = row else { return Ok(None) };
        Ok(Some(Artist {
            spotify_id: row.try_get(0)?,
            name: row.try_get(1)?,
            genres: serde_json::from_str(&row.try_get::<String, _>(2)?)?,
            image_url: row.try_get(3)?,
        }))
    }

    async fn artist_genres_inner(&self, keys: &[String]) -> SqlResult<HashMap<String, Vec<String>>> {
        let mut unique: Vec<&str> = keys.iter().map(String::as_str).collect();
        unique.sort_unstable();
        unique.dedup();
        let mut out = HashMap::new();
        for chunk in unique.chunks(MAX_BINDS) {
            let sql =
                format!("SELECT key, genres FROM artists WHERE key IN ({})", Ph::new(self.dialect).list(chunk.len()));
            // IN lists vary in length: not worth a cached prepared statement each.
            let mut q = sqlx::query(&sql).persistent(false);
            for k in chunk {
                q = q.bind(*k);
            }
            for row in self.pool.fetch_all(q).await? {
                let genres: Vec<String> = serde_json::from_str(&row.try_get::<String, _>(1)?)?;
                if !genres.is_empty() {
                    out.insert(row.try_get::<String, _>(0)?, genres);
                }
            }
        }
        Ok(out)
    }

    async fn audio_features_inner(&self, uris: &[String]) -> SqlResult<HashMap<String, AudioFeatures>> {
        let id_of = |u: &'_ str| -> String { u.strip_prefix("spotify:track:").unwrap_or(u).to_string() };
        let mut ids: Vec<String> = uris.iter().map(|u| id_of(u)).collect();
        ids.sort_unstable();
        ids.dedup();
        let mut by_id: HashMap<String, AudioFeatures> = HashMap::new();
        for chunk in ids.chunks(MAX_BINDS) {
            let sql = format!(
                "SELECT spotify_id, danceability, energy, valence, acousticness, instrumentalness, liveness, \
                 speechiness, tempo FROM tracks WHERE danceability IS NOT NULL AND spotify_id IN ({})",
                Ph::new(self.dialect).list(chunk.len())
            );
            let mut q = sqlx::query(&sql).persistent(false);
            for id in chunk {
                q = q.bind(id.as_str());
            }
            for row in self.pool.fetch_all(q).await? {
                if let Some(f) = features_from_row(&row, 1)? {
                    by_id.insert(row.try_get(0)?, f);
                }
            }
        }
        Ok(uris.iter().filter_map(|u| by_id.get(&id_of(u)).map(|f| (u.clone(), f.clone()))).collect())
    }

    async fn upsert_user_inner(&self, user: &User) -> SqlResult<()> {
        self.pool
            .execute(
                sqlx::query(
                    "INSERT INTO users (id, spotify_id, display_name, image_url, product, created_at) \
                     VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (id) DO UPDATE SET spotify_id = excluded.spotify_id, \
                     display_name = excluded.display_name, image_url = excluded.image_url, product = excluded.product, \
                     created_at = excluded.created_at",
                )
                .bind(user.id.as_str())
                .bind(user.spotify_id.as_deref())
                .bind(user.display_name.as_deref())
                .bind(user.image_url.as_deref())
                .bind(user.product.as_deref())
                .bind(user.created_at.to_rfc3339_opts(SecondsFormat::AutoSi, true)),
            )
            .await?;
        Ok(())
    }

    async fn users_inner(&self, id: Option<&str>) -> SqlResult<Vec<User>> {
        const COLS: &str = "id, spotify_id, display_name, image_url, product, created_at";
        let rows = match id {
            Some(id) => {
                self.pool.fetch_all(sqlx::query(&format!("SELECT {COLS} FROM users WHERE id = $1")).bind(id)).await?
            }
            None => self.pool.fetch_all(sqlx::query(&format!("SELECT {COLS} FROM users ORDER BY id"))).await?,
        };
        rows.iter()
            .map(|row| {
                let created: String = row.try_get(5)?;
                Ok(User {
                    id: row.try_get(0)?,
                    spotify_id: row.try_get(1)?,
                    display_name: row.try_get(2)?,
                    image_url: row.try_get(3)?,
                    product: row.try_get(4)?,
                    created_at: DateTime::parse_from_rfc3339(&created)
                        .map_err(|e| SqlError::Corrupt(format!("user created_at {created:?}: {e}")))?
                        .with_timezone(&Utc),
                })
            })
            .collect()
    }
}

fn features_from_row(row: &sqlx::any::AnyRow, first: usize) -> SqlResult<Option<AudioFeatures>> {
    let f = |i: usize| row.try_get::<Option<f64>, _>(first + i);
    let Some(danceability) = f(0)? else { return Ok(None) };
    Ok(Some(AudioFeatures {
        danceability,
        energy: f(1)?.unwrap_or_default(),
        valence: f(2)?.unwrap_or_default(),
        acousticness: f(3)?.unwrap_or_default(),
        instrumentalness: f(4)?.unwrap_or_default(),
        liveness: f(5)?.unwrap_or_default(),
        speechiness: f(6)?.unwrap_or_default(),
        tempo: f(7)?.unwrap_or_default(),
    }))
}

/// The `WHERE` clause of a history listing and its arguments (`$1` is the user). Name
/// filters select items; the plays are then filtered by item id inside the index.
fn history_filter(user_id: &str, q: &HistoryQuery) -> (String, Vec<Arg>) {
    let mut conds = String::from("user_id = $1");
    let mut args = vec![Arg::S(user_id.to_string())];
    let mut push = |cond: &str, arg: Arg, close: &str| {
        args.push(arg);
        conds.push_str(&format!(" AND {cond} ${}{close}", args.len()));
    };
    if let Some(s) = q.start {
        push("played_at >=", Arg::I(ms_ceil(s)), "");
    }
    if let Some(e) = q.end {
        push("played_at <", Arg::I(ms_ceil(e)), "");
    }
    if let Some(k) = q.kind {
        push("kind =", Arg::I(k.code() as i64), "");
    }
    if let Some(a) = q.artist_key() {
        push("item_id IN (SELECT id FROM play_items WHERE artist_norm =", Arg::S(a), ")");
    }
    if let Some(t) = q.track_key() {
        push("item_id IN (SELECT id FROM play_items WHERE track_norm =", Arg::S(t), ")");
    }
    (conds, args)
}

#[async_trait]
impl HistoryStore for SqlStore {
    async fn begin_batch(&self, user_id: &str, rules: &PlayRules) -> Result<Box<dyn PlayBatch>> {
        let batch = self.begin_batch_inner(user_id, rules).await.map_err(self.fail())?;
        Ok(Box::new(batch))
    }

    async fn history_items(&self, user_id: &str, query: &HistoryQuery) -> Result<Vec<HistoryEntry>> {
        query.validate()?;
        self.history_items_inner(user_id, query).await.map_err(self.fail())
    }

    async fn history_count(&self, user_id: &str, query: &HistoryQuery) -> Result<u64> {
        self.history_count_inner(user_id, query).await.map_err(self.fail())
    }

    /// SQLite: read through the store's read function, a page at a time in one
    /// transaction. Through sqlx, which copies every value of every row for its thread
    /// and turns it into an `Any` value, a CSV export of 984k plays took 7.7 s and 12.4 s
    /// of CPU; this way 3.1 s and 3.2 s. PostgreSQL: streams the rows and decodes each as
    /// it arrives (a whole history collected as rows first held every value twice: 3 GB
    /// for a million plays).
    async fn plays_chunked(
        &self,
        user_id: &str,
        window: Option<TimeWindow>,
        chunk_size: usize,
        sink: PlaySink<'_>,
    ) -> Result<()> {
        use futures_util::TryStreamExt;
        let fail = self.fail();
        let mut chunker = PlayChunker::new(sink, chunk_size);
        if self.dialect == Dialect::Sqlite {
            // `played_at < end` in whole milliseconds, as below.
            let (lo, hi) = window.map_or((i64::MIN, i64::MAX), |w| (ms_ceil(w.start), ms_ceil(w.end) - 1));
            let mut pages = self.read_pages(user_id, lo, hi).await.map_err(&fail)?;
            while let Some(page) = pages.recv().await {
                let Some(page) = page.map_err(&fail)? else {
                    return chunker.finish();
                };
                for (_, entry) in page {
                    chunker.push(entry)?;
                }
            }
            return Err(fail(SqlError::Crashed("reading the history: the reading task ended early".into())));
        }
        let (sql, range) = match window {
            None => (format!("SELECT {PLAY_READ_COLS} FROM play_rows WHERE user_id = $1 ORDER BY played_at, id"), None),
            Some(w) => (
                format!(
                    "SELECT {PLAY_READ_COLS} FROM play_rows WHERE user_id = $1 AND played_at >= $2 AND played_at < $3 \
                     ORDER BY played_at, id"
                ),
                Some((ms_ceil(w.start), ms_ceil(w.end))),
            ),
        };
        let mut query = sqlx::query(&sql).bind(user_id);
        if let Some((start, end)) = range {
            query = query.bind(start).bind(end);
        }
        let mut rows = self.pool.fetch(query);
        while let Some(row) = rows.try_next().await.map_err(|e| fail(e.into()))? {
            chunker.push(entry_from_row(&row).map_err(&fail)?.1)?;
        }
        chunker.finish()
    }
}

#[async_trait]
impl AnalyticsStore for SqlStore {
    async fn rollup_days(&self, user_id: &str, from: NaiveDate, to: NaiveDate) -> Result<Vec<RollupDay>> {
        self.rollup_days_inner(user_id, from, to).await.map_err(self.fail())
    }

    async fn item_ranking(
        &self,
        user_id: &str,
        kind: ItemKind,
        window: Option<TimeWindow>,
        limit: Option<usize>,
    ) -> Result<ItemRanking> {
        self.item_ranking_inner(user_id, kind, window, limit).await.map_err(self.fail())
    }

    async fn show_ranking(&self, user_id: &str, window: Option<TimeWindow>, limit: usize) -> Result<Vec<RankedItem>> {
        self.show_ranking_inner(user_id, window, limit).await.map_err(self.fail())
    }

    async fn rollup_status(&self, user_id: &str) -> Result<RollupStatus> {
        self.rollup_status_inner(user_id).await.map_err(self.fail())
    }

    async fn rebuild_rollups(&self, user_id: &str, rules: &PlayRules) -> Result<()> {
        self.rebuild_inner(user_id, rules).await.map_err(self.fail())
    }
}

#[async_trait]
impl CatalogStore for SqlStore {
    async fn upsert_tracks(&self, tracks: &[Track]) -> Result<()> {
        self.upsert_tracks_inner(tracks).await.map_err(self.fail())
    }

    async fn track(&self, spotify_id: &str) -> Result<Track> {
        self.track_inner(spotify_id)
            .await
            .map_err(self.fail())?
            .ok_or_else(|| Error::not_found(format!("track {spotify_id:?}")))
    }

    async fn upsert_artists(&self, artists: &[Artist]) -> Result<()> {
        self.upsert_artists_inner(artists).await.map_err(self.fail())
    }

    async fn artist(&self, spotify_id: &str) -> Result<Artist> {
        self.artist_inner(spotify_id)
            .await
            .map_err(self.fail())?
            .ok_or_else(|| Error::not_found(format!("artist {spotify_id:?}")))
    }

    async fn artist_genres(&self, artist_keys: &[String]) -> Result<HashMap<String, Vec<String>>> {
        self.artist_genres_inner(artist_keys).await.map_err(self.fail())
    }

    async fn audio_features(&self, track_uris: &[String]) -> Result<HashMap<String, AudioFeatures>> {
        self.audio_features_inner(track_uris).await.map_err(self.fail())
    }
}

#[async_trait]
impl UserStore for SqlStore {
    async fn upsert_user(&self, user: &User) -> Result<()> {
        self.upsert_user_inner(user).await.map_err(self.fail())
    }

    async fn user(&self, id: &str) -> Result<User> {
        self.users_inner(Some(id))
            .await
            .map_err(self.fail())?
            .into_iter()
            .next()
            .ok_or_else(|| Error::not_found(format!("user {id:?}")))
    }

    async fn users(&self) -> Result<Vec<User>> {
        self.users_inner(None).await.map_err(self.fail())
    }

    async fn set_tokens(&self, user_id: &str, tokens: Option<&EncryptedTokens>) -> Result<()> {
        match self.set_tokens_inner(user_id, tokens).await.map_err(self.fail())? {
            true => Ok(()),
            false => Err(Error::not_found(format!("user {user_id:?}"))),
        }
    }

    async fn tokens(&self, user_id: &str) -> Result<Option<EncryptedTokens>> {
        self.tokens_inner(user_id)
            .await
            .map_err(self.fail())?
            .ok_or_else(|| Error::not_found(format!("user {user_id:?}")))
    }
}

#[async_trait]
impl StoreHealth for SqlStore {
    fn backend(&self) -> &'static str {
        match self.dialect {
            Dialect::Sqlite => "sqlite",
            Dialect::Postgres => "postgres",
        }
    }

    async fn ping(&self) -> Result<()> {
        self.pool.execute("SELECT 1").await.map_err(|e| SqlError::from(e).into_core(self.backend()))?;
        Ok(())
    }

    async fn close(&self) {
        SqlStore::close(self).await;
    }
}
