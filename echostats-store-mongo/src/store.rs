//! Reads, catalog and users, and the storage trait implementations.

use crate::batch::MongoBatch;
use crate::codec::{day_from_doc, day_num, entry_from_doc, ms_ceil, num};
use crate::error::{MongoError, MongoResult};
use crate::{MongoStore, ARTISTS, PLAYS, ROLLUPS, TRACKS, USERS};
use async_trait::async_trait;
use chrono::NaiveDate;
use echostats_core::model::*;
use echostats_core::rules::{normalize_name, PlayRules};
use echostats_core::store::*;
use echostats_core::{Error, Result};
use futures_util::TryStreamExt;
use mongodb::bson::{self, doc, Bson, Document};
use std::collections::HashMap;

/// Ids per `$in` read.
const IN_CHUNK: usize = 5_000;

fn window_filter(filter: &mut Document, window: Option<TimeWindow>) {
    if let Some(w) = window {
        filter.insert("at", doc! { "$gte": ms_ceil(w.start), "$lt": ms_ceil(w.end) });
    }
}

/// One `$group` of plays: key, count, ms, lowest id, lowest id with a Spotify id.
struct Group {
    key: String,
    plays: i64,
    ms: i64,
    first: i64,
    sid: Option<i64>,
}

impl MongoStore {
    async fn history_items_inner(&self, user_id: &str, q: &HistoryQuery) -> MongoResult<Vec<HistoryEntry>> {
        let docs: Vec<Document> = self
            .coll(PLAYS)
            .find(history_filter(user_id, q))
            .sort(doc! { "at": -1, "n": -1 })
            .skip(q.offset())
            .limit(q.limit as i64)
            .await?
            .try_collect()
            .await?;
        docs.iter().map(|d| entry_from_doc(d).map(|e| e.1)).collect()
    }

    async fn rollup_days_inner(&self, user_id: &str, from: NaiveDate, to: NaiveDate) -> MongoResult<Vec<RollupDay>> {
        let docs: Vec<Document> = self
            .coll(ROLLUPS)
            .find(doc! { "u": user_id, "d": { "$gte": day_num(from), "$lte": day_num(to) } })
            .sort(doc! { "d": 1 })
            .await?
            .try_collect()
            .await?;
        docs.iter().map(day_from_doc).collect()
    }

    /// Groups the plays matching `filter` by `key_field` server-side.
    async fn groups(&self, filter: Document, key_field: &str, sid_field: Option<&str>) -> MongoResult<Vec<Group>> {
        let mut group = doc! {
            "_id": format!("${key_field}"),
            "n": { "$sum": 1 },
            "ms": { "$sum": "$ms" },
            "f": { "$min": "$n" },
        };
        if let Some(s) = sid_field {
            group.insert("s", doc! { "$min": format!("${s}") });
        }
        let pipeline = vec![doc! { "$match": filter }, doc! { "$group": group }];
        let mut cursor = self.coll(PLAYS).aggregate(pipeline).await?;
        let mut out = Vec::new();
        while let Some(d) = cursor.try_next().await? {
            let key = match d.get("_id") {
                Some(Bson::String(s)) => s.clone(),
                _ => continue,
            };
            out.push(Group {
                key,
                plays: num(&d, "n").unwrap_or(0),
                ms: num(&d, "ms").unwrap_or(0),
                first: num(&d, "f").ok_or_else(|| MongoError::Corrupt("group without first play".into()))?,
                sid: num(&d, "s"),
            });
        }
        Ok(out)
    }

    /// The records of play ids.
    async fn records(&self, user_id: &str, ids: Vec<i64>) -> MongoResult<HashMap<i64, PlayRecord>> {
        let mut ids = ids;
        ids.sort_unstable();
        ids.dedup();
        let mut out = HashMap::with_capacity(ids.len());
        for chunk in ids.chunks(IN_CHUNK) {
            let mut cursor = self
                .coll(PLAYS)
                .find(doc! { "u": user_id, "n": { "$in": chunk } })
                .projection(doc! { "u": 1, "n": 1, "r": 1 })
                .await?;
            while let Some(d) = cursor.try_next().await? {
                let (id, e) = entry_from_doc(&d)?;
                out.insert(id, e.record);
            }
        }
        Ok(out)
    }

    async fn item_ranking_inner(
        &self,
        user_id: &str,
        kind: ItemKind,
        window: Option<TimeWindow>,
        limit: Option<usize>,
    ) -> MongoResult<ItemRanking> {
        let min = self.min_play_ms(user_id).await?;
        let (key_field, sid_field) = match kind {
            ItemKind::Track => ("tk", Some("tsid")),
            ItemKind::Artist => ("ak", Some("asid")),
            ItemKind::Album => ("alk", None),
        };
        let mut filter = doc! {
            "u": user_id,
            "k": PlayKind::Track.code(),
            "ms": { "$gte": min },
            "tk": { "$ne": Bson::Null },
        };
        filter.insert(key_field, doc! { "$ne": Bson::Null });
        window_filter(&mut filter, window);
        let groups = self.groups(filter, key_field, sid_field).await?;
        let records =
            self.records(user_id, groups.iter().flat_map(|g| std::iter::once(g.first).chain(g.sid)).collect()).await?;
        let mut items = Vec::with_capacity(groups.len());
        for g in groups {
            let first =
                records.get(&g.first).ok_or_else(|| MongoError::Corrupt(format!("play {} vanished", g.first)))?;
            let sid = g.sid.and_then(|s| records.get(&s));
            let (name, artist_name, spotify_id) = match kind {
                ItemKind::Track => (
                    first.track_name.clone().or_else(|| first.uri.clone()).unwrap_or_default(),
                    first.artist_name.clone(),
                    sid.and_then(|r| r.uri.clone()),
                ),
                ItemKind::Artist => {
                    (first.artist_name.clone().unwrap_or_default(), None, sid.and_then(|r| r.artist_id.clone()))
                }
                ItemKind::Album => (first.album_name.clone().unwrap_or_default(), first.artist_name.clone(), None),
            };
            items.push(RankedItem { key: g.key, name, artist_name, spotify_id, play_count: g.plays, total_ms: g.ms });
        }
        Ok(ItemRanking::from_unsorted(items, limit))
    }

    async fn show_ranking_inner(
        &self,
        user_id: &str,
        window: Option<TimeWindow>,
        limit: usize,
    ) -> MongoResult<Vec<RankedItem>> {
        let mut filter = doc! { "u": user_id, "k": PlayKind::Episode.code(), "sk": { "$ne": Bson::Null } };
        window_filter(&mut filter, window);
        let groups = self.groups(filter, "sk", None).await?;
        let records = self.records(user_id, groups.iter().map(|g| g.first).collect()).await?;
        let mut items: Vec<RankedItem> = groups
            .into_iter()
            .map(|g| RankedItem {
                name: records.get(&g.first).and_then(|r| r.show_name.clone()).unwrap_or_default(),
                key: g.key,
                artist_name: None,
                spotify_id: None,
                play_count: g.plays,
                total_ms: g.ms,
            })
            .collect();
        items.sort_by(|a, b| {
            b.total_ms.cmp(&a.total_ms).then(b.play_count.cmp(&a.play_count)).then_with(|| a.name.cmp(&b.name))
        });
        items.truncate(limit);
        Ok(items)
    }

    async fn rollup_status_inner(&self, user_id: &str) -> MongoResult<RollupStatus> {
        let coll = self.coll(ROLLUPS);
        let total_days = coll.count_documents(doc! { "u": user_id }).await?;
        let last = coll.find_one(doc! { "u": user_id }).sort(doc! { "d": -1 }).await?;
        let last_date = last.map(|d| day_from_doc(&d).map(|d| d.day)).transpose()?;
        Ok(RollupStatus { last_date, total_days, complete: true, coverage: 100.0 })
    }

    async fn upsert_tracks_inner(&self, tracks: &[Track]) -> MongoResult<()> {
        let coll = self.coll(TRACKS);
        for t in tracks {
            let mut d = bson::to_document(t)?;
            d.insert("_id", t.spotify_id.as_str());
            coll.replace_one(doc! { "_id": t.spotify_id.as_str() }, d).upsert(true).await?;
        }
        Ok(())
    }

    async fn track_inner(&self, spotify_id: &str) -> MongoResult<Option<Track>> {
        let d = self.coll(TRACKS).find_one(doc! { "_id": spotify_id }).await?;
        Ok(d.map(bson::from_document).transpose()?)
    }

    async fn upsert_artists_inner(&self, artists: &[Artist]) -> MongoResult<()> {
        let coll = self.coll(ARTISTS);
        for a in artists {
            let key = normalize_name(&a.name);
            let mut d = bson::to_document(a)?;
            d.insert("_id", key.as_str());
            coll.replace_one(doc! { "_id": key.as_str() }, d).upsert(true).await?;
        }
        Ok(())
    }

    async fn artist_inner(&self, spotify_id: &str) -> MongoResult<Option<Artist>> {
        let d = self.coll(ARTISTS).find_one(doc! { "spotify_id": spotify_id }).sort(doc! { "_id": 1 }).await?;
        Ok(d.map(bson::from_document).transpose()?)
    }

    async fn artist_genres_inner(&self, keys: &[String]) -> MongoResult<HashMap<String, Vec<String>>> {
        let mut out = HashMap::new();
        for chunk in keys.chunks(IN_CHUNK) {
            let mut cursor = self.coll(ARTISTS).find(doc! { "_id": { "$in": chunk } }).await?;
            while let Some(d) = cursor.try_next().await? {
                let key = d.get_str("_id").map_err(|e| MongoError::Corrupt(format!("artist key: {e}")))?.to_string();
                let a: Artist = bson::from_document(d)?;
                if !a.genres.is_empty() {
                    out.insert(key, a.genres);
                }
            }
        }
        Ok(out)
    }

    async fn audio_features_inner(&self, uris: &[String]) -> MongoResult<HashMap<String, AudioFeatures>> {
        let id_of = |u: &str| u.strip_prefix("spotify:track:").unwrap_or(u).to_string();
        let mut ids: Vec<String> = uris.iter().map(|u| id_of(u)).collect();
        ids.sort_unstable();
        ids.dedup();
        let mut by_id: HashMap<String, AudioFeatures> = HashMap::new();
        for chunk in ids.chunks(IN_CHUNK) {
            let mut cursor = self.coll(TRACKS).find(doc! { "_id": { "$in": chunk } }).await?;
            while let Some(d) = cursor.try_next().await? {
                let t: Track = bson::from_document(d)?;
                if let Some(f) = t.audio_features {
                    by_id.insert(t.spotify_id, f);
                }
            }
        }
        Ok(uris.iter().filter_map(|u| by_id.get(&id_of(u)).map(|f| (u.clone(), f.clone()))).collect())
    }

    async fn upsert_user_inner(&self, user: &User) -> MongoResult<()> {
        let mut d = bson::to_document(user)?;
        d.insert("_id", user.id.as_str());
        self.coll(USERS).replace_one(doc! { "_id": user.id.as_str() }, d).upsert(true).await?;
        Ok(())
    }

    async fn users_inner(&self, id: Option<&str>) -> MongoResult<Vec<User>> {
        let filter = match id {
            Some(id) => doc! { "_id": id },
            None => doc! {},
        };
        let docs: Vec<Document> = self.coll(USERS).find(filter).sort(doc! { "_id": 1 }).await?.try_collect().await?;
        Ok(docs.into_iter().map(bson::from_document).collect::<std::result::Result<_, _>>()?)
    }
}

/// The filter of a history listing.
fn history_filter(user_id: &str, q: &HistoryQuery) -> Document {
    let mut filter = doc! { "u": user_id };
    let mut at = Document::new();
    if let Some(s) = q.start {
        at.insert("$gte", ms_ceil(s));
    }
    if let Some(e) = q.end {
        at.insert("$lt", ms_ceil(e));
    }
    if !at.is_empty() {
        filter.insert("at", at);
    }
    if let Some(k) = q.kind {
        filter.insert("k", k.code());
    }
    if let Some(a) = q.artist_key() {
        filter.insert("an", a);
    }
    if let Some(t) = q.track_key() {
        filter.insert("tn", t);
    }
    filter
}

#[async_trait]
impl HistoryStore for MongoStore {
    async fn begin_batch(&self, user_id: &str, rules: &PlayRules) -> Result<Box<dyn PlayBatch>> {
        let batch: MongoBatch = self.begin_batch_inner(user_id, rules).await?;
        Ok(Box::new(batch))
    }

    async fn history_items(&self, user_id: &str, query: &HistoryQuery) -> Result<Vec<HistoryEntry>> {
        query.validate()?;
        Ok(self.history_items_inner(user_id, query).await?)
    }

    async fn history_count(&self, user_id: &str, query: &HistoryQuery) -> Result<u64> {
        Ok(self.coll(PLAYS).count_documents(history_filter(user_id, query)).await.map_err(MongoError::from)?)
    }

    async fn plays_chunked(
        &self,
        user_id: &str,
        window: Option<TimeWindow>,
        chunk_size: usize,
        sink: PlaySink<'_>,
    ) -> Result<()> {
        let mut filter = doc! { "u": user_id };
        window_filter(&mut filter, window);
        let mut chunker = PlayChunker::new(sink, chunk_size);
        let mut cursor =
            self.coll(PLAYS).find(filter).sort(doc! { "at": 1, "n": 1 }).await.map_err(MongoError::from)?;
        while let Some(d) = cursor.try_next().await.map_err(MongoError::from)? {
            chunker.push(entry_from_doc(&d)?.1)?;
        }
        chunker.finish()
    }
}

#[async_trait]
impl AnalyticsStore for MongoStore {
    async fn rollup_days(&self, user_id: &str, from: NaiveDate, to: NaiveDate) -> Result<Vec<RollupDay>> {
        Ok(self.rollup_days_inner(user_id, from, to).await?)
    }

    async fn item_ranking(
        &self,
        user_id: &str,
        kind: ItemKind,
        window: Option<TimeWindow>,
        limit: Option<usize>,
    ) -> Result<ItemRanking> {
        Ok(self.item_ranking_inner(user_id, kind, window, limit).await?)
    }

    async fn show_ranking(&self, user_id: &str, window: Option<TimeWindow>, limit: usize) -> Result<Vec<RankedItem>> {
        Ok(self.show_ranking_inner(user_id, window, limit).await?)
    }

    async fn rollup_status(&self, user_id: &str) -> Result<RollupStatus> {
        Ok(self.rollup_status_inner(user_id).await?)
    }

    async fn rebuild_rollups(&self, user_id: &str, rules: &PlayRules) -> Result<()> {
        Ok(self.rebuild_inner(user_id, rules).await?)
    }
}

#[async_trait]
impl CatalogStore for MongoStore {
    async fn upsert_tracks(&self, tracks: &[Track]) -> Result<()> {
        Ok(self.upsert_tracks_inner(tracks).await?)
    }

    async fn track(&self, spotify_id: &str) -> Result<Track> {
        self.track_inner(spotify_id).await?.ok_or_else(|| Error::not_found(format!("track {spotify_id:?}")))
    }

    async fn upsert_artists(&self, artists: &[Artist]) -> Result<()> {
        Ok(self.upsert_artists_inner(artists).await?)
    }

    async fn artist(&self, spotify_id: &str) -> Result<Artist> {
        self.artist_inner(spotify_id).await?.ok_or_else(|| Error::not_found(format!("artist {spotify_id:?}")))
    }

    async fn artist_genres(&self, artist_keys: &[String]) -> Result<HashMap<String, Vec<String>>> {
        Ok(self.artist_genres_inner(artist_keys).await?)
    }

    async fn audio_features(&self, track_uris: &[String]) -> Result<HashMap<String, AudioFeatures>> {
        Ok(self.audio_features_inner(track_uris).await?)
    }
}

#[async_trait]
impl UserStore for MongoStore {
    async fn upsert_user(&self, user: &User) -> Result<()> {
        Ok(self.upsert_user_inner(user).await?)
    }

    async fn user(&self, id: &str) -> Result<User> {
        self.users_inner(Some(id)).await?.into_iter().next().ok_or_else(|| Error::not_found(format!("user {id:?}")))
    }

    async fn users(&self) -> Result<Vec<User>> {
        Ok(self.users_inner(None).await?)
    }

    async fn set_tokens(&self, user_id: &str, tokens: Option<&EncryptedTokens>) -> Result<()> {
        self.set_tokens_checked(user_id, tokens).await
    }

    async fn tokens(&self, user_id: &str) -> Result<Option<EncryptedTokens>> {
        self.tokens_checked(user_id).await
    }
}

#[async_trait]
impl StoreHealth for MongoStore {
    fn backend(&self) -> &'static str {
        "mongodb"
    }

    async fn ping(&self) -> Result<()> {
        self.db.run_command(doc! { "ping": 1 }).await.map_err(|e| MongoError::from(e).into_core())?;
        Ok(())
    }
}
